//! The session engine: the hot path of checks (a moka cache with invalidation from every
//! instance, batched lookups for misses), session creation and kills written through to
//! PostgreSQL, expiry refreshes written behind, and the janitor. Nothing outside this room sees
//! an `Addr`, a message or a `MailboxError`.

pub mod cache;
pub mod invalidation;
mod janitor;
pub mod lookups;
pub mod refresh;
mod service;

use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use deadpool_postgres::{Object, Pool};

use crate::accounts::UserHandle;
pub use janitor::JanitorHandle;
pub use service::{LoginOutcome, NewLogin, SessionHandle};

use crate::accounts::passwords::PasswordHasher;
use crate::clock::SharedClock;
use crate::config::live::Tunables;
use crate::domain::validate::PasswordPolicy;
use crate::error::ApiError;
use crate::sessions::cache::SessionCache;
use crate::store::StoreError;

/// What every actor and handle shares.
#[derive(Clone)]
pub struct Core {
    pub pool: Pool,
    pub cache: Arc<SessionCache>,
    pub clock: SharedClock,
    pub tunables: Arc<Tunables>,
    pub hasher: Arc<PasswordHasher>,
    pub password_policy: PasswordPolicy,
    pub guard: Arc<crate::accounts::throttle::Guard>,
    pub refreshes: Arc<crate::sessions::refresh::RefreshQueue>,
    /// Session lookups for cache misses, batched across concurrent checks.
    pub lookups: Arc<crate::sessions::lookups::LookupBatcher>,
}

impl Core {
    pub async fn db(&self) -> Result<Object, ApiError> {
        self.pool
            .get()
            .await
            .map_err(|e| ApiError::from(StoreError::from(e)))
    }
}

/// The handles the HTTP layer uses, one per concern.
#[derive(Clone)]
pub struct Services {
    pub core: Core,
    pub sessions: SessionHandle,
    pub users: UserHandle,
    pub janitor: JanitorHandle,
}

impl Services {
    /// Starts the actors on the current actix system.
    pub fn start(core: Core, janitor_batch: i64) -> Self {
        let sessions = SessionHandle::start(core.clone());
        let users = UserHandle::start(core.clone(), sessions.clone());
        let janitor = JanitorHandle::start(core.clone(), janitor_batch);
        Self {
            core,
            sessions,
            users,
            janitor,
        }
    }
}

impl Services {
    /// True while every actor is running (for the systemd watchdog).
    pub fn actors_alive(&self) -> bool {
        self.sessions.is_alive() && self.users.is_alive() && self.janitor.is_alive()
    }
}

/// Sends a message and flattens the mailbox failure into an internal error.
pub(crate) async fn ask<A, M, T>(addr: &Addr<A>, msg: M) -> Result<T, ApiError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = Result<T, ApiError>> + Send + 'static,
    T: Send + 'static,
{
    addr.send(msg)
        .await
        .map_err(|e| ApiError::internal_msg(format!("actor mailbox: {e}")))?
}
