//! What the account use cases can fail with: bad credentials, a missing user or group, a wrong
//! old password, a throttled attempt, a broken input rule, a busy hashing pool, the session
//! engine or the database. No HTTP here: each face maps these once (`http::error`, `admin_cli`).

use super::passwords::HashError;
use crate::domain::validate::Invalid;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown user or wrong password: the two look the same.
    #[error("invalid username or password")]
    InvalidCredentials,
    #[error("no such user")]
    UserNotFound,
    #[error("no such group")]
    GroupNotFound,
    /// A self-service password change gave the wrong current password.
    #[error("the old password is wrong")]
    WrongOldPassword,
    /// The account or the client address is locked, or has no attempt left for now.
    #[error("too many requests; retry after {retry_after_secs} seconds")]
    Throttled { retry_after_secs: u64 },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Sessions(#[from] crate::sessions::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The user actor is gone: the daemon is shutting down.
    #[error("the account service is stopping")]
    Stopping,
}

impl Error {
    /// Whether the database could not be reached or could not answer in time (rather than a bug).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Sessions(e) => e.is_unavailable(),
            Self::Store(e) => matches!(e, StoreError::Unavailable(_)),
            Self::Stopping => true,
            _ => false,
        }
    }
}

impl From<actix::MailboxError> for Error {
    fn from(_: actix::MailboxError) -> Self {
        Self::Stopping
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Store(err.into())
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Store(err.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
