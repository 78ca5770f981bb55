//! Test support: a real PostgreSQL (from `PGUSERS_TEST_DATABASE_URL`, or a private throwaway
//! cluster shared by the test binary), a migrated template cloned per test, and the real daemon
//! started in-process on port 0 exactly as production starts it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod client;

use std::sync::{Arc, Mutex, OnceLock};

use pgusers::clock::ManualClock;
use pgusers::config::{Secret, Settings};
use pgusers::daemon::startup::{self, Daemon, Inherited};
use pgusers::store::embedded::{self, EmbeddedPostgres};
use reqwest::StatusCode;
use serde_json::json;

pub use client::ApiClient;
// Not every test binary uses it.
#[allow(unused_imports)]
pub use client::Reply;

pub const TOKEN: &str = "test-api-token-0123456789";

/// Runs the `openssl` command line in `dir` (test certificates); panics with its error output.
pub fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Where test databases live: an external server or our private cluster.
struct Server {
    base: tokio_postgres::Config,
    _private: Option<Mutex<EmbeddedPostgres>>,
}

static SERVER: OnceLock<Server> = OnceLock::new();
/// The servers (hosts and ports) whose template database is migrated: a test binary may use
/// the shared server and clusters of its own.
static TEMPLATES: tokio::sync::Mutex<Vec<String>> = tokio::sync::Mutex::const_new(Vec::new());

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("PGUSERS_TEST_DATABASE_URL") {
        Ok(url) => Server {
            base: url
                .parse()
                .expect("PGUSERS_TEST_DATABASE_URL is not a connection string"),
            _private: None,
        },
        Err(_) => {
            let dir = tempfile::Builder::new()
                .prefix("pgusers-test-")
                .tempdir()
                .expect("temp dir")
                .keep();
            let pg = EmbeddedPostgres::start(
                &dir,
                embedded::Options {
                    durable: false,
                    remove_on_exit: true,
                    ..Default::default()
                },
            )
            .expect("cannot start a throwaway PostgreSQL for the tests");
            Server {
                base: pg.config("postgres"),
                _private: Some(Mutex::new(pg)),
            }
        }
    })
}

/// A connection to `dbname` that sees the daemon's schema, as the daemon's own connections do.
fn config_for(base: &tokio_postgres::Config, dbname: &str) -> tokio_postgres::Config {
    let mut cfg = base.clone();
    cfg.dbname(dbname);
    pgusers::store::pin_schema(&mut cfg, SCHEMA);
    cfg
}

/// The daemon's default schema (`database.schema`).
pub const SCHEMA: &str = "pgusers_daemon";

pub async fn connect(cfg: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = cfg.connect(tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

fn migrations_fingerprint() -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for m in pgusers::store::migrate::MIGRATIONS {
        h.update(m.sql.as_bytes());
    }
    hex::encode(&h.finalize()[..6])
}

async fn template(base: &tokio_postgres::Config) -> String {
    let name = format!("pgusers_tmpl_{}", migrations_fingerprint());
    let server = format!("{:?} {:?}", base.get_hosts(), base.get_ports());
    let mut migrated = TEMPLATES.lock().await;
    if migrated.contains(&server) {
        return name;
    }
    let admin = connect(&config_for(base, "postgres")).await;
    admin
        .execute("SELECT pg_advisory_lock(4242)", &[])
        .await
        .unwrap();
    embedded::create_database_if_missing(&admin, &name)
        .await
        .unwrap();
    {
        let (mut client, connection) = config_for(base, &name)
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        pgusers::store::migrate::run(&mut client, SCHEMA)
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
    }
    admin
        .execute("SELECT pg_advisory_unlock(4242)", &[])
        .await
        .unwrap();
    migrated.push(server);
    name
}

/// A fresh database cloned from the migrated template; dropped with the value.
pub struct TestDb {
    pub name: String,
    pub config: tokio_postgres::Config,
    base: tokio_postgres::Config,
}

impl TestDb {
    pub async fn create() -> Self {
        Self::create_on(&server().base).await
    }

    /// A fresh database with nothing of the daemon's in it (not cloned from the template).
    pub async fn create_empty() -> Self {
        Self::create_from(&server().base, "template1").await
    }

    pub async fn create_on(base: &tokio_postgres::Config) -> Self {
        let template = template(base).await;
        Self::create_from(base, &template).await
    }

    async fn create_from(base: &tokio_postgres::Config, template: &str) -> Self {
        let name = format!("t_{}", pgusers::domain::keys::random_hex(6));
        let admin = connect(&config_for(base, "postgres")).await;
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        let mut tries = 0;
        loop {
            match admin.batch_execute(&sql).await {
                Ok(()) => break,
                // The template may still show the migrating connection for a moment.
                Err(e)
                    if tries < 50
                        && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot create the test database: {e}"),
            }
        }
        Self {
            config: config_for(base, &name),
            name,
            base: base.clone(),
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.config).await
    }

    /// A client with PostgreSQL's default `search_path` (`"$user", public`), as another
    /// application or psql connects.
    pub async fn plain_client(&self) -> tokio_postgres::Client {
        let mut cfg = self.config.clone();
        cfg.options("");
        connect(&cfg).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let base = self.base.clone();
        let name = self.name.clone();
        finish_on_a_thread(async move {
            if let Ok((admin, connection)) = config_for(&base, "postgres")
                .connect(tokio_postgres::NoTls)
                .await
            {
                tokio::spawn(connection);
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            }
        });
    }
}

/// Runs `work` to the end on a thread of its own, with a runtime of its own, and waits for it:
/// for a `Drop`, which cannot await, called inside a test's runtime, which cannot block on
/// another future (the test's runtime goes on driving whatever `work` talks to).
pub fn finish_on_a_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work);
    })
    .join();
}

/// Settings for a test daemon on `db`: port 0, cheap hashing, a known API token.
pub fn settings_for(db: &tokio_postgres::Config) -> Settings {
    let mut s = Settings::default();
    let d = &mut s.database;
    d.url = None;
    d.dbname = db.get_dbname().map(String::from);
    d.user = db.get_user().map(String::from);
    d.password = db
        .get_password()
        .map(|p| Secret::new(String::from_utf8_lossy(p)));
    d.host = db.get_hosts().first().map(|h| match h {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    });
    d.port = db.get_ports().first().copied();
    d.pool_size = 4;
    d.connect_timeout = std::time::Duration::from_secs(2);
    s.server.listen = vec![pgusers::config::ListenAddr::Tcp("127.0.0.1:0".into())];
    s.server.workers = 2;
    s.api.tokens = vec![Secret::new(TOKEN)];
    s.password.argon2_memory_kib = 256;
    s.password.argon2_iterations = 1;
    s.password.hash_threads = 2;
    s.janitor.interval = std::time::Duration::from_secs(3600);
    s.session.cookie_secure = false;
    s
}

/// The real daemon, in-process, on its own database; its API client (with the test token) is
/// the app's own methods and fields (`app.login(..)`, `app.base`) through `Deref`.
pub struct TestApp {
    pub api: ApiClient,
    pub clock: Arc<ManualClock>,
    pub daemon: Daemon,
    pub db: TestDb,
}

/// Another daemon instance on the same database.
pub struct Instance {
    pub base: String,
    pub daemon: Daemon,
}

impl std::ops::Deref for TestApp {
    type Target = ApiClient;

    fn deref(&self) -> &ApiClient {
        &self.api
    }
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::create().await;
        Self::start_on(db, tune).await
    }

    pub async fn start_on(db: TestDb, tune: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = settings_for(&db.config);
        tune(&mut settings);
        let clock = ManualClock::new();
        let mut daemon = startup::build(settings, clock.clone(), Inherited::default())
            .await
            .expect("daemon starts");
        let base = daemon.base_url().expect("a TCP listener");
        daemon.spawn();
        Self {
            api: ApiClient::new(base, TOKEN),
            clock,
            daemon,
            db,
        }
    }

    /// A second daemon on the same database and clock (another instance behind a balancer).
    pub async fn another_instance(&self, tune: impl FnOnce(&mut Settings)) -> Instance {
        let mut settings = settings_for(&self.db.config);
        tune(&mut settings);
        let mut daemon = startup::build(settings, self.clock.clone(), Inherited::default())
            .await
            .expect("daemon starts");
        let base = daemon.base_url().expect("a TCP listener");
        daemon.spawn();
        Instance { base, daemon }
    }

    /// Checks a key on another instance.
    pub async fn check_on(&self, instance: &Instance, key: &str) -> StatusCode {
        self.http
            .post(format!("{}/v1/sessions/check", instance.base))
            .json(&json!({ "key": key }))
            .send()
            .await
            .expect("request")
            .status()
    }

    /// The stored expiry of a session, read straight from the database.
    pub async fn stored_expiry(&self, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        let digest = pgusers::domain::KeyDigest::of(key);
        let client = self.db.client().await;
        client
            .query_opt(
                "SELECT expires_at FROM sessions WHERE key_digest = $1",
                &[&digest.as_bytes()],
            )
            .await
            .unwrap()
            .map(|r| r.get(0))
    }
}

/// The Python library's tables exactly as its `dbinit` creates them (pgusers 0.9.4).
pub const LIBRARY_DDL: &str = "
    create table if not exists users (
        userid      serial primary key,
        username    varchar(20),
        email       varchar(128),
        salt        varchar(32),
        kpasswd     varchar(128),
        admin       boolean not null default 'no',
        extra_data  bytea
    );
    create table if not exists sessions (
        userid  integer,
        key     varchar(32),
        expiration real,
        extra_data  bytea
    );";

/// Everything about the library's `public.users`/`public.sessions` that a write, a DDL change or
/// an added trigger or index would alter: definitions, storage, and every row with its version.
pub async fn library_fingerprint(client: &tokio_postgres::Client) -> String {
    let mut out = String::new();
    for table in ["public.users", "public.sessions"] {
        let row = client
            .query_one(
                &format!(
                    "SELECT c.relfilenode::text,
                       (SELECT string_agg(format('%s %s %s %s', attname, atttypid::regtype,
                                                  attnotnull, d.adbin::text),
                                          ',' ORDER BY attnum)
                        FROM pg_attribute a LEFT JOIN pg_attrdef d
                             ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                        WHERE a.attrelid = c.oid AND a.attnum > 0),
                       (SELECT count(*) FROM pg_trigger WHERE tgrelid = c.oid)::text,
                       (SELECT count(*) FROM pg_index WHERE indrelid = c.oid)::text,
                       (SELECT coalesce(string_agg(format('%s %s %s', t.ctid, t.xmin, t::text),
                                                   E'\\n' ORDER BY t.ctid), '')
                        FROM {table} t)
                     FROM pg_class c WHERE c.oid = '{table}'::regclass"
                ),
                &[],
            )
            .await
            .expect("the library's table is there");
        for i in 0..5 {
            out.push_str(&row.get::<_, String>(i));
            out.push('\n');
        }
    }
    out
}

/// A PostgreSQL cluster of the test's own, which it may stop, freeze or restart, in a temporary
/// directory (prefixed `prefix`) that lives as long as the returned guard.
pub async fn private_cluster(prefix: &str) -> (tempfile::TempDir, EmbeddedPostgres) {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let pg = tokio::task::spawn_blocking(move || {
        EmbeddedPostgres::start(
            &path,
            embedded::Options {
                durable: false,
                remove_on_exit: false,
                ..Default::default()
            },
        )
        .unwrap()
    })
    .await
    .unwrap();
    (dir, pg)
}
