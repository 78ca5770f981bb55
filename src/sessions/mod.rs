//! The session engine: the hot path of checks (a moka cache with invalidation from every
//! instance, batched lookups for misses), session creation and kills written through to
//! PostgreSQL, expiry refreshes written behind, and the janitor. Nothing outside this room sees
//! an `Addr`, a message or a `MailboxError`.

pub mod cache;
mod error;
pub mod invalidation;
mod janitor;
pub mod lookups;
pub mod refresh;
mod service;

use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use deadpool_postgres::{Object, Pool};

pub use error::{Error, Result};
pub use janitor::{JanitorHandle, Retention};
pub use service::{OpenSession, SessionHandle};

use crate::clock::SharedClock;
use crate::config::live::Tunables;
use crate::sessions::cache::SessionCache;

/// What the session engine's actors and handles share.
#[derive(Clone)]
pub struct SessionCore {
    pub pool: Pool,
    pub cache: Arc<SessionCache>,
    pub clock: SharedClock,
    pub tunables: Arc<Tunables>,
    /// Session lookups for cache misses, batched across concurrent checks.
    pub lookups: Arc<lookups::LookupBatcher>,
}

impl SessionCore {
    pub fn new(
        settings: &crate::config::Settings,
        pool: Pool,
        clock: SharedClock,
        cache: Arc<SessionCache>,
    ) -> Self {
        Self {
            lookups: Arc::new(lookups::LookupBatcher::for_pool(
                pool.clone(),
                settings.database.pool_size,
            )),
            pool,
            cache,
            clock,
            tunables: Arc::new(Tunables::new(settings)),
        }
    }

    pub async fn db(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }
}

/// Sends a message and flattens a mailbox failure (the actor has stopped) into the answer's
/// own error type.
pub(crate) async fn ask<A, M, T, E>(addr: &Addr<A>, msg: M) -> std::result::Result<T, E>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = std::result::Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: From<actix::MailboxError> + Send + 'static,
{
    addr.send(msg).await?
}
