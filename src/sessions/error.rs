//! What the session engine can fail with: no such session, an expired one, the database, or a
//! daemon that is stopping. No HTTP here: each face maps these once (`http::error`, `admin_cli`).

use std::sync::Arc;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no such session")]
    NotFound,
    #[error("the session has expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A batched lookup failed: every waiter of the batch reports the one shared cause.
    #[error("a batched session lookup failed")]
    Lookup(#[source] Arc<StoreError>),
    /// The session actor or a lookup task is gone: the daemon is shutting down.
    #[error("the session engine is stopping")]
    Stopping,
}

impl Error {
    /// Whether the database could not be reached or could not answer in time (rather than a bug).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Store(e) => matches!(e, StoreError::Unavailable(_)),
            Self::Lookup(e) => matches!(e.as_ref(), StoreError::Unavailable(_)),
            Self::Stopping => true,
            Self::NotFound | Self::Expired => false,
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
