//! The use cases' error: every failure with its stable code (`api.md`) and a safe message; the
//! HTTP face maps it to a status once (`http/error.rs`), the command line to an exit code once
//! (`admin_cli`).

use std::fmt::Write as _;

use crate::domain::validate::Invalid;
use crate::store::StoreError;

/// Everything a request can fail with, as clients see it. Messages never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadCall(String),
    #[error("a valid credential is required")]
    Unauthenticated,
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("{0}")]
    NotFound(String),
    #[error("no such session")]
    SessionNotFound,
    #[error("the session has expired")]
    Expired,
    #[error("the old password is wrong")]
    Rejected,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("too many requests; retry after {retry_after_secs} seconds")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("the database cannot be reached; nothing was changed")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The request outlived `server.request_timeout` (a stalled database): whatever it was
    /// writing may or may not have been done, so the message does not promise either.
    #[error("no answer from the database within {}; retry later", crate::config::duration::format(*.0))]
    TimedOut(std::time::Duration),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn bad_call(msg: impl Into<String>) -> Self {
        Self::BadCall(msg.into())
    }

    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(err))
    }

    pub fn internal_msg(msg: impl Into<String>) -> Self {
        Self::Internal(msg.into().into())
    }

    pub fn user_not_found() -> Self {
        Self::NotFound("no such user".into())
    }

    /// The stable code of `api.md`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadCall(_) => "BAD_CALL",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::NotFound(_) | Self::SessionNotFound => "NOT_FOUND",
            Self::Expired => "EXPIRED",
            Self::Rejected => "REJECTED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Conflict(_) => "CONFLICT",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            Self::Unavailable(_) | Self::TimedOut(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

/// The full cause chain of an error, for the log (never for the client).
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(out, ": {cause}");
        source = cause.source();
    }
    out
}

impl From<Invalid> for ApiError {
    fn from(err: Invalid) -> Self {
        Self::BadCall(err.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        if !matches!(err, StoreError::Conflict(_)) {
            crate::telemetry::metrics::METRICS.db_error(matches!(err, StoreError::Unavailable(_)));
        }
        match err {
            StoreError::Unavailable(source) => Self::Unavailable(source),
            StoreError::Conflict(what) => Self::Conflict(what),
            other => Self::Internal(Box::new(other)),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
