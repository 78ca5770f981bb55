//! Account use cases: logins, creating, changing and deleting users, their groups and passwords,
//! the brute-force throttle and audit trail in front of them, and password hashing on its own
//! pool. Both faces, the HTTP API and the admin command line, go through [`Services`].

mod actor;
mod error;
mod login;
pub mod passwords;
pub mod priority;
mod service;
pub mod throttle;

use std::net::IpAddr;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use serde_json::Value;

pub use actor::{GroupChange, NewAccount, PasswordChange};
pub use error::{Error, Result};
pub use login::{LoginOutcome, NewLogin};
pub use service::UserHandle;

use crate::clock::SharedClock;
use crate::domain::validate::PasswordPolicy;
use crate::sessions::cache::SessionCache;
use crate::sessions::{JanitorHandle, Retention, SessionCore, SessionHandle};
use passwords::PasswordHasher;
use throttle::Guard;

/// Who asks for a change, as the audit trail records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// An HTTP request from this client address (when known).
    Api(Option<IpAddr>),
    /// The admin command line on the daemon's host: its events carry `"by": "cli"`.
    Cli,
}

impl Origin {
    pub fn client(self) -> Option<IpAddr> {
        match self {
            Self::Api(client) => client,
            Self::Cli => None,
        }
    }

    /// The event's detail, with `"by": "cli"` set for the command line.
    fn mark(self, detail: Option<Value>) -> Option<Value> {
        match (self, detail) {
            (Self::Api(_), detail) => detail,
            (Self::Cli, Some(Value::Object(mut fields))) => {
                fields.insert("by".into(), Value::from("cli"));
                Some(Value::Object(fields))
            }
            (Self::Cli, _) => Some(serde_json::json!({ "by": "cli" })),
        }
    }
}

/// What the account use cases share.
#[derive(Clone)]
pub struct AccountCore {
    pub pool: Pool,
    pub clock: SharedClock,
    /// The session cache, for evicting a changed or deleted user's sessions at once.
    pub cache: Arc<SessionCache>,
    pub hasher: Arc<PasswordHasher>,
    pub password_policy: PasswordPolicy,
    pub guard: Arc<Guard>,
}

impl AccountCore {
    pub fn new(
        settings: &crate::config::Settings,
        pool: Pool,
        clock: SharedClock,
        cache: Arc<SessionCache>,
        hasher: Arc<PasswordHasher>,
    ) -> Self {
        Self {
            pool,
            clock,
            cache,
            hasher,
            password_policy: settings.password.policy(),
            guard: Arc::new(Guard::new(
                settings.throttle.clone(),
                settings.audit.clone(),
                settings.server.instance_name.clone(),
            )),
        }
    }

    pub async fn db(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }
}

/// The services both faces use, one handle per concern.
#[derive(Clone)]
pub struct Services {
    pub core: SessionCore,
    pub sessions: SessionHandle,
    pub users: UserHandle,
    pub janitor: JanitorHandle,
}

impl Services {
    /// Starts the actors on the current actix system.
    pub fn start(
        core: SessionCore,
        accounts: AccountCore,
        janitor_batch: i64,
        retention: Retention,
    ) -> Self {
        let sessions = SessionHandle::start(core.clone());
        let users = UserHandle::start(accounts, sessions.clone());
        let janitor = JanitorHandle::start(core.clone(), janitor_batch, retention);
        Self {
            core,
            sessions,
            users,
            janitor,
        }
    }

    /// True while every actor is running (for the systemd watchdog).
    pub fn actors_alive(&self) -> bool {
        self.sessions.is_alive() && self.users.is_alive() && self.janitor.is_alive()
    }
}
