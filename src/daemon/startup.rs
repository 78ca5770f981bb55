//! One entry point for production and tests: `build(settings)` connects, migrates, starts the
//! actors, binds every listener (port 0 allowed) and returns the server with its real addresses.

use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use deadpool_postgres::Pool;

use crate::accounts::passwords::PasswordHasher;
use crate::accounts::{AccountCore, Services};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::daemon::listeners;
use crate::http::tls::ReloadableCert;
use crate::http::{routes, ApiTokens, AppState, IdentityHeaders};
use crate::sessions::cache::SessionCache;
use crate::sessions::invalidation::{self, ListenerStatus};
use crate::sessions::{Retention, SessionCore};
use crate::store::{self, migrate, StoreError};

/// Listeners handed over by the caller (systemd socket activation) instead of `server.listen`.
#[derive(Default)]
pub struct Inherited {
    pub tcp: Vec<TcpListener>,
    pub unix: Vec<UnixListener>,
}

/// A daemon that is bound and ready; await `server` to run it.
pub struct Daemon {
    server: Option<Server>,
    metrics_server: Option<Server>,
    /// The address of the separate metrics listener, when `metrics.listen` is set.
    pub metrics_address: Option<String>,
    pub handle: ServerHandle,
    metrics_handle: Option<ServerHandle>,
    /// The addresses actually bound (`127.0.0.1:41234`, `unix:/run/pgusers.sock`).
    pub addresses: Vec<String>,
    pub services: Services,
    pub pool: Pool,
    pub state: web::Data<AppState>,
    /// Whether the invalidation listener is subscribed.
    pub listener: ListenerStatus,
    /// The HTTPS addresses actually bound, and their reloadable certificate.
    pub tls_addresses: Vec<String>,
    pub tls: Option<Arc<ReloadableCert>>,
}

impl Daemon {
    /// Re-reads the HTTPS certificate and key (SIGHUP); the old pair stays on a problem.
    pub fn reload_tls(&self) -> Result<bool, crate::http::tls::CertError> {
        match &self.tls {
            Some(cert) => cert.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Runs the server on the current actix system; the returned task ends when it stops.
    pub fn spawn(&mut self) -> actix_web::rt::task::JoinHandle<std::io::Result<()>> {
        if let Some(metrics) = self.metrics_server.take() {
            actix_web::rt::spawn(metrics);
        }
        match self.server.take() {
            Some(server) => actix_web::rt::spawn(server),
            None => actix_web::rt::spawn(async { Ok(()) }),
        }
    }

    /// `http://` URL of the first TCP listener.
    pub fn base_url(&self) -> Option<String> {
        self.addresses
            .iter()
            .find(|a| !a.starts_with("unix:"))
            .map(|a| format!("http://{a}"))
    }

    /// Stops accepting, lets in-flight requests finish (bounded by `server.shutdown_timeout`),
    /// writes the pending expiry refreshes (after a flush already running has ended), then
    /// stops the janitor and closes the pool.
    pub async fn shutdown(&self) {
        if let Some(h) = &self.metrics_handle {
            h.stop(true).await;
        }
        self.handle.stop(true).await;
        if let Err(e) = self.services.sessions.flush().await {
            tracing::warn!(error = %e, "could not write the pending expiry refreshes");
        }
        self.services.janitor.stop().await;
        self.pool.close();
    }
}

/// Why the daemon could not start; its cause chain (`telemetry::cause_chain`) says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration")]
    Database(#[from] store::SetupError),
    #[error("configuration")]
    Passwords(#[from] crate::accounts::passwords::SetupError),
    #[error("configuration")]
    Certificate(#[from] crate::http::tls::CertError),
    #[error("configuration")]
    IdentityHeader(#[from] crate::http::InvalidHeaderName),
    #[error("configuration: server.tls_listen needs server.tls_cert_file and server.tls_key_file")]
    TlsWithoutCertificate,
    #[error("database")]
    Store(#[from] StoreError),
    #[error("database")]
    Sessions(#[from] crate::sessions::Error),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<deadpool_postgres::PoolError> for StartupError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        Self::Store(err.into())
    }
}

/// Connects to the database described by `settings`, applies pending migrations, and returns
/// the pool.
pub async fn connect_and_migrate(settings: &Settings) -> Result<Pool, StartupError> {
    let pg_config = store::connect_config(&settings.database)?;
    let tls = store::tls_connector(&settings.database)?;
    let pool = store::build_pool(
        pg_config,
        settings.database.pool_size,
        tls,
        settings.database.connect_timeout,
    )?;
    let mut client = pool.get().await?;
    let applied = migrate::run(&mut client, &settings.database.schema).await?;
    for name in applied {
        tracing::info!(migration = name, "applied migration");
    }
    let look_alikes = store::users::fill_skeletons(&client).await?;
    for l in look_alikes {
        tracing::warn!(
            userid = l.userid,
            username = %l.username,
            like_userid = l.like_userid,
            like_username = %l.like_username,
            "username looks like another user's (same confusable skeleton, from before the rule); \
             both keep working, but rename one of them"
        );
    }
    Ok(pool)
}

/// Builds the whole daemon. Must run inside an actix system (`#[actix_web::main]`/`::test`).
pub async fn build(
    settings: Settings,
    clock: SharedClock,
    inherited: Inherited,
) -> Result<Daemon, StartupError> {
    let pool = connect_and_migrate(&settings).await?;
    let pg_config = store::connect_config(&settings.database)?;
    let hasher = PasswordHasher::new(&settings.password, settings.hash_threads())?;
    let client = pool.get().await?;
    if store::users::any_legacy_hash(&client).await? {
        hasher.expect_legacy_hashes();
    }
    drop(client);
    let cache = Arc::new(SessionCache::new(
        settings.session.cache_capacity,
        settings.session.cache_max_bytes,
        settings.session.cache_max_age,
    ));
    let core = SessionCore::new(&settings, pool.clone(), clock.clone(), cache.clone());
    let accounts = AccountCore::new(&settings, pool.clone(), clock, cache, Arc::new(hasher));
    let services = Services::start(
        core,
        accounts,
        settings.janitor.batch_size,
        Retention::from_settings(&settings),
    );
    services.sessions.load_ttl().await?;
    let listener_tls = store::tls_connector(&settings.database)?;
    let mut listener = invalidation::spawn(
        listener_tls,
        pg_config,
        services.core.cache.clone(),
        services.sessions.clone(),
    );
    if !listener
        .wait_listening(settings.database.connect_timeout)
        .await
    {
        tracing::warn!(
            "the invalidation listener is not subscribed yet: the cache is bypassed until it is"
        );
    }

    let identity_headers = IdentityHeaders::from_settings(&settings)?;
    let state = web::Data::new(AppState {
        services: services.clone(),
        api_tokens: ApiTokens::new(settings.api.tokens.clone()),
        identity_headers,
        settings: settings.clone(),
    });
    let app_state = state.clone();
    let max_body = settings.server.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(crate::http::observe))
            .app_data(app_state.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .configure(routes)
    })
    .disable_signals()
    .shutdown_timeout(settings.server.shutdown_timeout.as_secs());
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }

    let bound = listeners::bind(&settings, inherited)?;
    let listen_err = |addr: &str, source| StartupError::Listen {
        addr: addr.to_string(),
        source,
    };
    let mut addresses = Vec::new();
    for (addr, listener) in bound.tcp {
        server = server.listen(listener).map_err(|e| listen_err(&addr, e))?;
        addresses.push(addr);
    }
    for (addr, listener) in bound.unix {
        server = server
            .listen_uds(listener)
            .map_err(|e| listen_err(&addr, e))?;
        addresses.push(addr);
    }
    let mut tls_addresses = Vec::new();
    if let Some(cert) = &bound.cert {
        for (addr, listener) in bound.https {
            let config = cert.server_config()?;
            server = server
                .listen_rustls_0_23(listener, config)
                .map_err(|e| listen_err(&addr, e))?;
            tls_addresses.push(addr);
        }
    }
    let server = server.run();
    let handle = server.handle();
    let (metrics_server, metrics_address) =
        match (&settings.metrics.listen, settings.metrics.enabled) {
            (Some(addr), true) => {
                let (server, bound) =
                    metrics_server(state.clone(), addr).map_err(|e| listen_err(addr, e))?;
                (Some(server), Some(bound))
            }
            _ => (None, None),
        };
    let metrics_handle = metrics_server.as_ref().map(Server::handle);
    Ok(Daemon {
        server: Some(server),
        metrics_server,
        metrics_address,
        metrics_handle,
        handle,
        addresses,
        services,
        pool,
        state,
        listener,
        tls_addresses,
        tls: bound.cert,
    })
}

/// A one-route server for `/metrics` on its own address (e.g. reachable only by Prometheus).
fn metrics_server(state: web::Data<AppState>, addr: &str) -> std::io::Result<(Server, String)> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?.to_string();
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route(
            "/metrics",
            web::get().to(|state: web::Data<AppState>| async move {
                crate::http::render_metrics(&state)
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, bound))
}
