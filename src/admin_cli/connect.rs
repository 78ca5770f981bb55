//! The admin commands' database connection: the daemon's configuration (or the running embedded
//! cluster when none is configured), and a check that the schema is current.

use std::path::Path;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use tokio_postgres::config::Host;

use super::Failure;
use crate::accounts::passwords::PasswordHasher;
use crate::accounts::{AccountCore, UserHandle};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{DatabaseSettings, Settings};
use crate::sessions::cache::SessionCache;
use crate::sessions::{SessionCore, SessionHandle};
use crate::store::embedded;
use crate::store::{self, migrate};
use crate::telemetry::cause_chain;

/// The port the embedded cluster's socket is named after (see `embedded.rs`).
const EMBEDDED_PORT: u16 = 5432;

/// One connection for the length of a command; the pool is kept so the connection stays owned.
pub(super) struct Database {
    pub client: Object,
    _pool: Pool,
}

/// Connects with the daemon's configuration and refuses a schema that is not current.
pub(super) async fn open(settings: &Settings) -> Result<Database, Failure> {
    let (pool, client) = connect(settings, 1).await?;
    Ok(Database {
        client,
        _pool: pool,
    })
}

/// A pool of `size` with the daemon's configuration, and one connection of it whose schema was
/// found current.
async fn connect(settings: &Settings, size: usize) -> Result<(Pool, Object), Failure> {
    let db_settings = effective(settings)?;
    let cfg =
        store::connect_config(&db_settings).map_err(|e| Failure::BadInput(cause_chain(&e)))?;
    let target = describe(&cfg);
    tracing::debug!(database = %target, "connecting");
    let tls = store::tls_connector(&db_settings).map_err(|e| Failure::BadInput(cause_chain(&e)))?;
    let pool = store::build_pool(cfg, size, tls, db_settings.connect_timeout)
        .map_err(|e| Failure::BadInput(cause_chain(&e)))?;
    let client = pool.get().await.map_err(|e| {
        Failure::Unavailable(format!(
            "cannot connect to the database ({target}): {}",
            cause_chain(&e)
        ))
    })?;
    check_schema(&client).await?;
    tracing::info!(database = %target, "connected");
    Ok((pool, client))
}

/// The daemon's account and session services, for the commands that change something: the same
/// validation, audit trail, clock and cache invalidation (through the database's triggers, in
/// every running daemon) as the HTTP API. They run on their own pool of two connections and
/// keep no cache of their own.
pub(super) struct Services {
    pub users: UserHandle,
    pub sessions: SessionHandle,
}

pub(super) async fn services(settings: &Settings) -> Result<Services, Failure> {
    let (pool, client) = connect(settings, 2).await?;
    drop(client);
    let hasher = PasswordHasher::new(&settings.password, 1)
        .map_err(|e| Failure::BadInput(cause_chain(&e)))?;
    let clock: SharedClock = Arc::new(SystemClock);
    let cache = Arc::new(SessionCache::new(0, 0, settings.session.cache_max_age));
    let sessions = SessionCore::new(settings, pool.clone(), clock.clone(), cache.clone());
    let accounts = AccountCore::new(settings, pool, clock, cache, Arc::new(hasher));
    let sessions = SessionHandle::start(sessions);
    Ok(Services {
        users: UserHandle::start(accounts, sessions.clone()),
        sessions,
    })
}

fn uses_embedded(settings: &Settings) -> bool {
    settings.database.embedded || !settings.database_configured()
}

/// The database settings to connect with: the configured ones, or the embedded cluster's.
fn effective(settings: &Settings) -> Result<DatabaseSettings, Failure> {
    if !uses_embedded(settings) {
        return Ok(settings.database.clone());
    }
    let dir = &settings.database.embedded_dir;
    let socket_dir = running_embedded_dir(dir)?;
    let mut db = settings.database.clone();
    db.url = None;
    db.host = Some(socket_dir);
    db.port = Some(EMBEDDED_PORT);
    db.user = Some(embedded::ROLE.into());
    db.password = None;
    db.dbname = Some(embedded::DATABASE.into());
    Ok(db)
}

/// The absolute socket directory of the embedded cluster in `dir`, if it is running.
fn running_embedded_dir(dir: &Path) -> Result<String, Failure> {
    let socket = dir.join(format!(".s.PGSQL.{EMBEDDED_PORT}"));
    let absolute = dir.canonicalize().ok().filter(|_| socket.exists());
    absolute.map(|p| p.display().to_string()).ok_or_else(|| {
        Failure::Unavailable(format!(
            "no database is configured and the embedded PostgreSQL in {} is not running: \
             start the daemon (`pgusers serve --embedded {}`), or configure the database \
             (database.url / PGUSERS_CONNECTION_STRING, or database.host and database.dbname)",
            dir.display(),
            dir.display()
        ))
    })
}

/// Where a configuration points, without its password.
fn describe(cfg: &tokio_postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "host {host}, port {port}, database {}, role {}",
        cfg.get_dbname().unwrap_or("?"),
        cfg.get_user().unwrap_or("?")
    )
}

async fn check_schema(client: &tokio_postgres::Client) -> Result<(), Failure> {
    let current = migrate::current_version(client).await?.unwrap_or(0);
    let latest = migrate::latest_version();
    tracing::debug!(current, latest, "schema version");
    if current < latest {
        return Err(Failure::BadInput(format!(
            "the database schema is at version {current} but this pgusers needs version {latest}: \
             run `pgusers migrate` (with the same configuration) first"
        )));
    }
    if current > latest {
        return Err(Failure::BadInput(format!(
            "the database schema is at version {current}, newer than this pgusers knows \
             (version {latest}): use the pgusers release that migrated it"
        )));
    }
    Ok(())
}

/// Finds USER: `#<userid>`, else a username, else (when it has an `@`) an email.
pub(super) async fn resolve(
    db: &impl crate::store::GenericClient,
    spec: &str,
) -> Result<crate::store::users::UserRow, Failure> {
    let found = match spec.strip_prefix('#') {
        Some(id) => {
            let id: i64 = id.parse().map_err(|_| {
                Failure::BadInput(format!("'{spec}' is not a user id (expected #<number>)"))
            })?;
            crate::store::users::find_by_id(db, id).await?
        }
        None => match crate::store::users::find_by_username(db, spec).await? {
            Some(user) => Some(user),
            None if spec.contains('@') => crate::store::users::find_by_email(db, spec).await?,
            None => None,
        },
    };
    let user = found.ok_or_else(|| Failure::NotFound(format!("no such user: {spec}")))?;
    tracing::debug!(spec, userid = user.userid, "user found");
    Ok(user)
}
