//! `pgusers serve`: the embedded PostgreSQL when no database is configured, the daemon, systemd
//! readiness and watchdog, and the signal loop (SIGTERM/SIGINT stop in order, SIGHUP reloads what
//! can change at run time).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::{self, Secret, Settings, Sources};
use crate::daemon::startup::{self, Inherited};
use crate::daemon::systemd::Notifier;
use crate::store::embedded::{self, EmbeddedError, EmbeddedPostgres};
use crate::telemetry::{self, LogControl};

/// Starts the embedded PostgreSQL and points the settings at it.
async fn start_embedded(
    settings: &mut Settings,
    dir: PathBuf,
) -> Result<EmbeddedPostgres, EmbeddedError> {
    tracing::info!(dir = %dir.display(), "starting the embedded PostgreSQL");
    let start_dir = dir.clone();
    let pg = tokio::task::spawn_blocking(move || {
        EmbeddedPostgres::start(
            &start_dir,
            embedded::Options {
                durable: true,
                remove_on_exit: false,
                ..Default::default()
            },
        )
    })
    .await
    .map_err(EmbeddedError::Interrupted)??;
    let (admin, connection) = pg
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|source| EmbeddedError::CreateDatabase {
            name: embedded::DATABASE.into(),
            source,
        })?;
    let driver = actix_web::rt::spawn(connection);
    embedded::create_database_if_missing(&admin, embedded::DATABASE).await?;
    drop(admin);
    driver.abort();
    let db = &mut settings.database;
    db.url = None;
    db.host = Some(pg.dir().display().to_string());
    db.port = Some(5432);
    db.user = Some(embedded::ROLE.into());
    db.password = None;
    db.dbname = Some(embedded::DATABASE.into());
    if settings.api.tokens.is_empty() {
        let (path, token) = embedded::api_token(pg.dir())?;
        settings.api.tokens.push(Secret::new(token));
        tracing::info!(file = %path.display(), "no API token configured: generated one (read it from this file)");
    }
    Ok(pg)
}

pub async fn serve(
    mut settings: Settings,
    sources: Sources,
    embedded_flag: Option<Option<PathBuf>>,
    inherited: Inherited,
) -> ExitCode {
    let log = telemetry::init(&settings.log);
    let notifier = Notifier::from_env();
    notifier.status("starting");
    let embedded_dir = match embedded_flag {
        Some(None) => Some(settings.database.embedded_dir.clone()),
        Some(Some(dir)) => Some(dir),
        None if settings.database.embedded => Some(settings.database.embedded_dir.clone()),
        None if !settings.database_configured() => {
            tracing::warn!("no database configured: using an embedded PostgreSQL (see database.* in config/pgusers.toml)");
            Some(settings.database.embedded_dir.clone())
        }
        None => None,
    };
    let mut embedded_pg = None;
    if let Some(dir) = embedded_dir {
        match start_embedded(&mut settings, dir).await {
            Ok(pg) => embedded_pg = Some(pg),
            Err(e) => {
                let error = telemetry::cause_chain(&e);
                tracing::error!(%error, "cannot start the embedded PostgreSQL");
                return ExitCode::from(1);
            }
        }
    }
    notifier.status("connecting to the database and applying migrations");
    let mut daemon = match startup::build(settings.clone(), Arc::new(SystemClock), inherited).await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %telemetry::cause_chain(&e), "cannot start");
            return ExitCode::from(1);
        }
    };
    for addr in &daemon.addresses {
        tracing::info!(address = %addr, "listening");
    }
    let server = daemon.spawn();
    notifier.ready();
    notifier.status(&format!("serving on {}", daemon.addresses.join(", ")));
    if let Some(every) = notifier.watchdog_interval() {
        let n = notifier.clone();
        let pool = daemon.pool.clone();
        let services = daemon.services.clone();
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                // Only pet the watchdog while the pool can hand out a working connection.
                let healthy = match tokio::time::timeout(every, pool.get()).await {
                    Ok(Ok(client)) => client.simple_query("").await.is_ok(),
                    _ => false,
                };
                if healthy && services.actors_alive() {
                    n.watchdog();
                }
            }
        });
    }

    let code = wait_for_signals(&daemon, &sources, &settings, &log, &notifier).await;
    notifier.stopping();
    notifier.status("stopping");
    tracing::info!("shutting down: finishing in-flight requests");
    daemon.shutdown().await;
    let _ = server.await;
    drop(embedded_pg);
    tracing::info!("stopped");
    code
}

async fn wait_for_signals(
    daemon: &startup::Daemon,
    sources: &Sources,
    current: &Settings,
    log: &LogControl,
    notifier: &Notifier,
) -> ExitCode {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return ExitCode::from(1);
    };
    let mut current = current.clone();
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received"); return ExitCode::SUCCESS; }
            _ = int.recv() => { tracing::info!("SIGINT received"); return ExitCode::SUCCESS; }
            _ = hup.recv() => {
                notifier.reloading();
                let janitor_was = current.janitor.interval;
                reload(daemon, sources, &mut current, log);
                if current.janitor.interval != janitor_was {
                    daemon.services.janitor.reschedule().await;
                }
                notifier.ready();
            }
        }
    }
}

/// Re-reads the configuration and applies what can change without a restart.
fn reload(daemon: &startup::Daemon, sources: &Sources, current: &mut Settings, log: &LogControl) {
    tracing::info!("SIGHUP received: reloading the configuration");
    let fresh = match config::load(sources) {
        Ok(s) => s,
        Err(problems) => {
            tracing::error!(problems = %problems.join("; "), "the new configuration is invalid; keeping the old one");
            return;
        }
    };
    // What a reload applies and logs: the keys in `RELOADABLE` (others wait for a restart).
    let mut changed = Vec::new();
    match config::changes(current, &fresh) {
        Ok(changes) => {
            for change in changes {
                if change.key == "log.level" {
                    match log.set_level(&fresh.log.level) {
                        Ok(()) => changed.push(change.to_string()),
                        Err(e) => {
                            let error = telemetry::cause_chain(&e);
                            tracing::error!(%error, "cannot apply log.level")
                        }
                    }
                } else if config::live::RELOADABLE.contains(&change.key.as_str()) {
                    changed.push(change.to_string());
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot compare the configurations"),
    }
    daemon.services.core.tunables.apply_config(&fresh);
    match daemon.reload_tls() {
        Ok(true) => changed.push("HTTPS certificate re-read".into()),
        Ok(false) => {}
        Err(e) => {
            let error = telemetry::cause_chain(&e);
            tracing::error!(%error, "cannot re-read the HTTPS certificate; keeping the old one")
        }
    }
    current.session = fresh.session;
    current.janitor = fresh.janitor;
    current.log = fresh.log;
    if changed.is_empty() {
        tracing::info!("configuration reloaded: nothing that can change at run time changed");
    } else {
        tracing::info!(changes = %changed.join("; "), "configuration reloaded");
    }
}
