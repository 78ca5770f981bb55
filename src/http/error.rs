//! The HTTP face's error: every failure with its stable code (`api.md`) and a safe message; the
//! one mapping from the layers' errors (store, sessions, accounts) and from every failure to a
//! status, the JSON envelope, and a correlation id for internal errors (logged with the cause
//! chain, where database failures are also counted).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::accounts::passwords::HashError;
use crate::domain::validate::Invalid;
use crate::store::StoreError;
use crate::telemetry::cause_chain;
use crate::telemetry::metrics::METRICS;
use crate::{accounts, sessions};

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
    WrongOldPassword,
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

    /// The stable code of `api.md`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadCall(_) => "BAD_CALL",
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::NotFound(_) | Self::SessionNotFound => "NOT_FOUND",
            Self::Expired => "EXPIRED",
            Self::WrongOldPassword => "REJECTED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Conflict(_) => "CONFLICT",
            Self::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::TooManyRequests { .. } => "TOO_MANY_REQUESTS",
            Self::Unavailable(_) | Self::TimedOut(_) => "UNAVAILABLE",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadCall(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated
            | ApiError::InvalidCredentials
            | ApiError::SessionNotFound
            | ApiError::Expired => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::WrongOldPassword | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::TimedOut(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut correlation_id = None;
        match self {
            ApiError::Internal(cause) => {
                if let Some(unavailable) = database_failure(cause.as_ref()) {
                    METRICS.db_error(unavailable);
                }
                let id = crate::domain::keys::random_hex(8);
                tracing::error!(correlation_id = %id, error = %cause_chain(cause.as_ref()), "internal error");
                correlation_id = Some(id);
            }
            ApiError::Unavailable(cause) => {
                if database_failure(cause.as_ref()).is_some() {
                    METRICS.db_error(true);
                }
                tracing::warn!(error = %cause_chain(cause.as_ref()), "database unavailable");
            }
            ApiError::TimedOut(after) => {
                tracing::warn!(
                    after_ms = after.as_millis(),
                    "request timed out waiting for the database"
                );
            }
            _ => {}
        }
        let message = match &correlation_id {
            Some(id) => format!("internal error (correlation id {id})"),
            None => self.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if self.status_code() == StatusCode::UNAUTHORIZED
            && !matches!(self, ApiError::InvalidCredentials)
        {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pgusers\""),
            ));
        }
        response.json(ErrorBody {
            error: self.code(),
            message,
            correlation_id,
        })
    }
}

/// Whether a database failure is behind an error (for the error metric), and if so whether it
/// was an outage: a `StoreError` (also one shared by a batch of lookups) says which; a driver
/// or pool error without one is what an outage carries. A daemon stopping, or a readiness
/// check's own refusal, is no database failure.
fn database_failure(err: &(dyn std::error::Error + Send + Sync + 'static)) -> Option<bool> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        let store = e.downcast_ref::<StoreError>().or_else(|| {
            e.downcast_ref::<std::sync::Arc<StoreError>>()
                .map(AsRef::as_ref)
        });
        if let Some(store) = store {
            return Some(matches!(store, StoreError::Unavailable(_)));
        }
        if e.is::<tokio_postgres::Error>() || e.is::<deadpool_postgres::PoolError>() {
            return Some(true);
        }
        cause = e.source();
    }
    None
}

impl From<Invalid> for ApiError {
    fn from(err: Invalid) -> Self {
        Self::BadCall(err.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(source) => Self::Unavailable(source),
            StoreError::Conflict(constraint) => Self::Conflict(constraint.to_string()),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<sessions::Error> for ApiError {
    fn from(err: sessions::Error) -> Self {
        use sessions::Error;
        match err {
            Error::NotFound => Self::SessionNotFound,
            Error::Expired => Self::Expired,
            Error::Store(e) => e.into(),
            Error::Lookup(_) | Error::Stopping if err.is_unavailable() => {
                Self::Unavailable(Box::new(err))
            }
            Error::Lookup(_) | Error::Stopping => Self::Internal(Box::new(err)),
        }
    }
}

impl From<HashError> for ApiError {
    /// A full hashing queue is back-pressure (429, retry in a second), not a bug.
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => Self::TooManyRequests {
                retry_after_secs: 1,
            },
            failed @ HashError::Failed(_) => Self::internal(failed),
        }
    }
}

impl From<accounts::Error> for ApiError {
    fn from(err: accounts::Error) -> Self {
        use accounts::Error;
        match err {
            Error::InvalidCredentials => Self::InvalidCredentials,
            Error::UserNotFound | Error::GroupNotFound => Self::NotFound(err.to_string()),
            Error::WrongOldPassword => Self::WrongOldPassword,
            Error::Throttled { retry_after_secs } => Self::TooManyRequests { retry_after_secs },
            Error::Invalid(invalid) => invalid.into(),
            Error::Hash(e) => e.into(),
            Error::Sessions(e) => e.into(),
            Error::Store(e) => e.into(),
            Error::Stopping => Self::Unavailable(Box::new(err)),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn counted(err: ApiError) -> Option<bool> {
        match err {
            ApiError::Internal(cause) | ApiError::Unavailable(cause) => {
                database_failure(cause.as_ref())
            }
            _ => None,
        }
    }

    #[test]
    fn the_error_metric_counts_database_failures_only() {
        let bug = || StoreError::Data("a digest is not 32 bytes".into());
        assert_eq!(counted(bug().into()), Some(false));
        let shared = sessions::Error::Lookup(Arc::new(bug()));
        assert_eq!(
            counted(shared.into()),
            Some(false),
            "a failed batch counts too"
        );
        assert_eq!(counted(sessions::Error::Stopping.into()), None);
        assert_eq!(counted(accounts::Error::Stopping.into()), None);
        assert_eq!(counted(ApiError::internal_msg("no state")), None);
    }
}
