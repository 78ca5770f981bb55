//! The actor core behind small handles: sessions (cache + write-through), user mutations, and
//! the janitor. Nothing outside this module sees an `Addr`, a message or a `MailboxError`.

mod janitor;
mod session;
mod user;

use std::sync::Arc;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Handler, Message};
use deadpool_postgres::{Object, Pool};

pub use janitor::JanitorHandle;
pub use session::{LoginOutcome, NewLogin, SessionHandle};
pub use user::{GroupChange, NewAccount, PasswordChange, UserHandle};

use crate::cache::SessionCache;
use crate::clock::SharedClock;
use crate::domain::validate::PasswordPolicy;
use crate::error::ApiError;
use crate::passwords::PasswordHasher;
use crate::store::StoreError;
use crate::tunables::Tunables;

/// What every actor and handle shares.
#[derive(Clone)]
pub struct Core {
    pub pool: Pool,
    pub cache: Arc<SessionCache>,
    pub clock: SharedClock,
    pub tunables: Arc<Tunables>,
    pub hasher: Arc<PasswordHasher>,
    pub password_policy: PasswordPolicy,
    pub guard: Arc<crate::guard::Guard>,
    pub refreshes: Arc<crate::refresh_queue::RefreshQueue>,
    /// Session lookups for cache misses, batched across concurrent checks.
    pub lookups: Arc<crate::lookups::LookupBatcher>,
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
async fn ask<A, M, T>(addr: &Addr<A>, msg: M) -> Result<T, ApiError>
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
