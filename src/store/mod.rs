//! PostgreSQL access: the connection pool, error classification, and the SQL of each table.

pub mod embedded;
pub mod groups;
pub mod migrate;
pub mod security;
pub mod sessions;
pub mod settings;
pub mod tls;
pub mod users;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;

pub use deadpool_postgres::GenericClient;

use crate::config::DatabaseSettings;

/// What the store can fail with; conflicts and outages are told apart from bugs.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    Conflict(Constraint),
    #[error("database error")]
    Db(#[source] tokio_postgres::Error),
    #[error("unexpected data: {0}")]
    Data(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The unique rule a write ran into (SQLSTATE 23505), named by its constraint or index; its
/// words are the ones both faces show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Constraint {
    #[error("username already taken")]
    Username,
    /// The username's confusable skeleton (Unicode TR39) matches another user's.
    #[error("username looks like an existing username (confusable characters); choose another")]
    UsernameLookAlike,
    #[error("email already taken")]
    Email,
    #[error("already exists")]
    Other,
}

impl Constraint {
    /// The rule behind a constraint or unique index name of the migrations.
    fn named(name: Option<&str>) -> Self {
        match name {
            Some(c) if c.contains("skeleton") => Self::UsernameLookAlike,
            Some(c) if c.contains("username") => Self::Username,
            Some(c) if c.contains("email") => Self::Email,
            _ => Self::Other,
        }
    }
}

impl StoreError {
    /// A deadlock (40P01) or serialization failure (40001): the same statement may succeed when
    /// run again.
    pub fn is_transient_conflict(&self) -> bool {
        matches!(self, Self::Db(e) if e.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }))
    }
}

/// Whether a driver error means the database cannot be reached or cannot answer now (rather
/// than a bug): a closed connection, an I/O, connect or TLS failure below the protocol (their
/// cause is an `io::Error`), or a SQLSTATE of the connection, shutdown, overload, read-only
/// and timeout classes.
fn is_outage(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                    // statement_timeout and lock_timeout: the database cannot answer in time.
                    SqlState::QUERY_CANCELED,
                    SqlState::LOCK_NOT_AVAILABLE,
                ]
                .contains(code)
        }
        None => caused_by_io(err),
    }
}

/// Whether an `io::Error` is among the causes of `err`, not counting malformed data (a
/// parameter or a message that did not encode or parse is a bug, not an outage).
fn caused_by_io(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = err.source();
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            );
        }
        cause = e.source();
    }
    false
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> Self {
        if err.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            let name = err.as_db_error().and_then(|d| d.constraint());
            return Self::Conflict(Constraint::named(name));
        }
        if is_outage(&err) {
            return Self::Unavailable(Box::new(err));
        }
        Self::Db(err)
    }
}

impl From<PoolError> for StoreError {
    fn from(err: PoolError) -> Self {
        match err {
            PoolError::Backend(e) => e.into(),
            other => Self::Unavailable(Box::new(other)),
        }
    }
}

/// Why the database settings cannot be used (the operator's to fix, before any connection).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The driver's message names the part that is wrong, never the password.
    #[error("database.url is not a valid connection string")]
    ConnectionString(#[source] tokio_postgres::Error),
    #[error(
        "no database named: set database.dbname (PGUSERS_USERSPACE) or put it in database.url"
    )]
    NoDatabaseName,
    #[error(transparent)]
    Tls(#[from] tls::TlsSetupError),
    #[error("cannot build the connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
}

/// The libpq configuration from the settings: explicit parts beat the same part in the URL.
pub fn connect_config(db: &DatabaseSettings) -> Result<tokio_postgres::Config, SetupError> {
    let mut cfg = match &db.url {
        Some(url) => {
            tokio_postgres::Config::from_str(url.expose()).map_err(SetupError::ConnectionString)?
        }
        None => tokio_postgres::Config::new(),
    };
    if let Some(name) = &db.dbname {
        cfg.dbname(name);
    }
    if let Some(user) = &db.user {
        cfg.user(user);
    }
    if let Some(password) = &db.password {
        cfg.password(password.expose());
    }
    if let Some(host) = &db.host {
        cfg = replace_hosts(cfg, host);
    }
    if let Some(port) = db.port {
        cfg = replace_ports(cfg, port);
    }
    if cfg.get_hosts().is_empty() {
        cfg.host("localhost");
    }
    if cfg.get_user().is_none() {
        let user = std::env::var("PGUSER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "postgres".into());
        cfg.user(&user);
    }
    if cfg.get_dbname().is_none() {
        return Err(SetupError::NoDatabaseName);
    }
    if let Some(policy) = db.sslmode {
        cfg.ssl_mode(tls::ssl_mode(policy));
    }
    cfg.connect_timeout(db.connect_timeout);
    cfg.application_name("pgusers");
    bound_waits(&mut cfg, db);
    pin_schema(&mut cfg, &db.schema);
    Ok(cfg)
}

/// Bounds every wait on the database: PostgreSQL cancels a statement that runs or waits for a
/// lock too long (added to the options the URL carries, unless it sets them), and TCP keepalives with a user
/// timeout notice a silently dead network path.
fn bound_waits(cfg: &mut tokio_postgres::Config, db: &DatabaseSettings) {
    let mut options = cfg.get_options().unwrap_or_default().to_string();
    for (name, value) in [
        ("statement_timeout", db.statement_timeout),
        ("lock_timeout", db.lock_timeout),
    ] {
        if options.contains(&format!("{name}=")) {
            continue; // the connection string's own setting wins
        }
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!("-c {name}={}", value.as_millis()));
    }
    cfg.options(&options);
    let idle = db.tcp_keepalive;
    cfg.keepalives(true)
        .keepalives_idle(idle)
        .keepalives_interval((idle / 3).max(Duration::from_secs(1)))
        .keepalives_retries(3)
        .tcp_user_timeout(idle);
}

/// Pins the connection's `search_path` to the daemon's schema (and nothing else, so tables of
/// the same names in `public` are never seen), keeping any options the connection string gave.
pub fn pin_schema(cfg: &mut tokio_postgres::Config, schema: &str) {
    let pin = format!("-c search_path={schema}");
    let options = match cfg.get_options() {
        Some(given) if !given.trim().is_empty() => format!("{given} {pin}"),
        _ => pin,
    };
    cfg.options(&options);
}

fn rebuild(cfg: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut fresh = tokio_postgres::Config::new();
    if let Some(u) = cfg.get_user() {
        fresh.user(u);
    }
    if let Some(p) = cfg.get_password() {
        fresh.password(p);
    }
    if let Some(d) = cfg.get_dbname() {
        fresh.dbname(d);
    }
    if let Some(o) = cfg.get_options() {
        fresh.options(o);
    }
    fresh.ssl_mode(cfg.get_ssl_mode());
    fresh
}

fn replace_hosts(cfg: tokio_postgres::Config, host: &str) -> tokio_postgres::Config {
    let mut fresh = rebuild(&cfg);
    fresh.host(host);
    for port in cfg.get_ports().iter().take(1) {
        fresh.port(*port);
    }
    fresh
}

fn replace_ports(cfg: tokio_postgres::Config, port: u16) -> tokio_postgres::Config {
    let mut fresh = rebuild(&cfg);
    for host in cfg.get_hosts() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => fresh.host(h),
            tokio_postgres::config::Host::Unix(p) => fresh.host_path(p),
        };
    }
    fresh.port(port);
    fresh
}

/// A pool whose waits are bounded, so an unreachable database answers UNAVAILABLE quickly.
/// The TLS connector the settings ask for (see `tls`).
pub fn tls_connector(db: &DatabaseSettings) -> Result<crate::store::tls::PgTls, SetupError> {
    Ok(tls::connector(
        db.sslmode.unwrap_or(tls::SslPolicy::Prefer),
        db.sslrootcert.as_deref(),
    )?)
}

pub fn build_pool(
    cfg: tokio_postgres::Config,
    size: usize,
    tls: crate::store::tls::PgTls,
    timeout: Duration,
) -> Result<Pool, SetupError> {
    let manager = Manager::from_config(
        cfg,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(SetupError::Pool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, Settings};

    #[test]
    fn explicit_parts_beat_the_connection_string() {
        let mut db = Settings::default().database;
        db.url = Some(Secret::new("postgres://urluser:urlpw@urlhost:5555/urldb"));
        db.user = Some("explicit".into());
        db.dbname = Some("space".into());
        db.port = Some(6000);
        let cfg = connect_config(&db).expect("a valid configuration");
        assert_eq!(cfg.get_user(), Some("explicit"));
        assert_eq!(cfg.get_dbname(), Some("space"));
        assert_eq!(cfg.get_ports(), &[6000]);
        assert_eq!(cfg.get_password(), Some(&b"urlpw"[..]));
        assert!(
            matches!(&cfg.get_hosts()[0], tokio_postgres::config::Host::Tcp(h) if h == "urlhost")
        );
    }

    #[test]
    fn every_connection_is_pinned_to_the_schema_keeping_given_options() {
        let mut db = Settings::default().database;
        db.url = Some(Secret::new(
            "postgres://u@h/d?options=-c%20statement_timeout%3D5s",
        ));
        db.schema = "auth".into();
        let cfg = connect_config(&db).expect("a valid configuration");
        assert_eq!(
            cfg.get_options(),
            Some("-c statement_timeout=5s -c lock_timeout=2000 -c search_path=auth")
        );
        db.url = None;
        db.dbname = Some("d".into());
        let cfg = connect_config(&db).expect("a valid configuration");
        assert_eq!(
            cfg.get_options(),
            Some("-c statement_timeout=5000 -c lock_timeout=2000 -c search_path=auth")
        );
    }

    #[test]
    fn the_url_alone_is_enough() {
        let mut db = Settings::default().database;
        db.url = Some(Secret::new("host=/tmp dbname=x user=y"));
        let cfg = connect_config(&db).expect("a valid configuration");
        assert_eq!(cfg.get_dbname(), Some("x"));
    }

    #[test]
    fn statement_and_lock_timeouts_are_added_to_the_options_of_the_url() {
        let mut db = Settings::default().database;
        db.url = Some(Secret::new("host=/tmp dbname=x options='-c work_mem=8MB'"));
        let cfg = connect_config(&db).expect("a valid configuration");
        assert_eq!(
            cfg.get_options(),
            Some("-c work_mem=8MB -c statement_timeout=5000 -c lock_timeout=2000 -c search_path=pgusers_daemon")
        );
        assert!(cfg.get_keepalives());
        assert_eq!(cfg.get_tcp_user_timeout(), Some(&Duration::from_secs(10)));
    }

    #[test]
    fn a_database_name_is_required() {
        let mut db = Settings::default().database;
        db.host = Some("localhost".into());
        assert!(matches!(
            connect_config(&db),
            Err(SetupError::NoDatabaseName)
        ));
    }
}
