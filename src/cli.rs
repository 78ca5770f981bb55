//! The command line: `serve`, `migrate`, `check-config`, `healthcheck` (and the admin commands).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::clock::SystemClock;
use crate::config::{self, Secret, Settings, Sources};
use crate::daemon::embedded_postgres::{self, EmbeddedPostgres};
use crate::daemon::startup::{self, Inherited};
use crate::daemon::systemd::Notifier;
use crate::telemetry::{self, LogControl};

#[derive(Parser, Debug)]
#[command(
    name = "pgusers",
    version,
    about = "User authentication and session daemon on PostgreSQL"
)]
pub struct Args {
    /// Configuration file (default: $PGUSERS_CONFIG, else /etc/pgusers/pgusers.toml if present).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Set any configuration key, e.g. --set session.ttl=1h (repeatable; beats file and environment).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    set: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon.
    Serve {
        /// Run against a private PostgreSQL managed in DIR (default: ./.pgusers).
        #[arg(long, value_name = "DIR", num_args = 0..=1)]
        embedded: Option<Option<PathBuf>>,
        /// Address to listen on (repeatable): host:port or unix:/path.
        #[arg(long, value_name = "ADDR")]
        listen: Vec<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration as TOML (secrets masked), or every problem on stderr and exit non-zero.
    CheckConfig,
    /// Exit 0 when the daemon answers GET /healthz (for container health checks).
    Healthcheck {
        /// URL to probe (default: the first TCP listener, 0.0.0.0 read as 127.0.0.1).
        #[arg(long)]
        url: Option<String>,
    },
    #[command(flatten)]
    Admin(crate::admin_cli::AdminCommand),
}

fn cli_overrides(args: &Args) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in &args.set {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("--set {item}: expected KEY=VALUE"))?;
        out.push((k.trim().to_string(), v.to_string()));
    }
    if let Command::Serve { listen, .. } = &args.command {
        if !listen.is_empty() {
            out.push(("server.listen".into(), listen.join(",")));
        }
    }
    Ok(out)
}

fn load_settings(args: &Args) -> Result<(Settings, Sources), Vec<String>> {
    let cli = cli_overrides(args).map_err(|e| vec![e])?;
    let sources = Sources::from_process(args.config.clone(), cli);
    config::load(&sources).map(|s| (s, sources))
}

fn report(problems: &[String]) {
    eprintln!(
        "pgusers: the configuration has {} problem(s):",
        problems.len()
    );
    for p in problems {
        eprintln!("  - {p}");
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let inherited = match &args.command {
        Command::Serve { .. } => match take_inherited() {
            Ok(i) => i,
            Err(e) => {
                eprintln!("pgusers: socket activation: {e}");
                return ExitCode::from(1);
            }
        },
        _ => Inherited::default(),
    };
    actix_web::rt::System::new().block_on(run(args, inherited))
}

fn take_inherited() -> std::io::Result<Inherited> {
    Ok(Inherited {
        tcp: crate::daemon::listeners::inherited_tcp_listeners()?,
        unix: crate::daemon::listeners::inherited_unix_listeners()?,
    })
}

async fn run(args: Args, inherited: Inherited) -> ExitCode {
    let (settings, sources) = match load_settings(&args) {
        Ok(s) => s,
        Err(problems) => {
            report(&problems);
            return ExitCode::from(2);
        }
    };
    match args.command {
        Command::CheckConfig => match config::to_toml(&settings) {
            Ok(text) => {
                print!("{text}");
                eprintln!("pgusers: configuration OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("pgusers: {e}");
                ExitCode::from(1)
            }
        },
        Command::Healthcheck { url } => healthcheck(&settings, url),
        Command::Migrate => {
            let _log = telemetry::init(&settings.log);
            match startup::connect_and_migrate(&settings).await {
                Ok(_) => {
                    println!(
                        "schema is at version {}",
                        crate::store::migrate::latest_version()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pgusers: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Serve { embedded, .. } => serve(settings, sources, embedded, inherited).await,
        Command::Admin(cmd) => crate::admin_cli::run(cmd, settings).await,
    }
}

/// Starts the embedded PostgreSQL and points the settings at it.
async fn start_embedded(settings: &mut Settings, dir: PathBuf) -> Result<EmbeddedPostgres, String> {
    tracing::info!(dir = %dir.display(), "starting the embedded PostgreSQL");
    let start_dir = dir.clone();
    let pg = tokio::task::spawn_blocking(move || {
        EmbeddedPostgres::start(
            &start_dir,
            embedded_postgres::Options {
                durable: true,
                remove_on_exit: false,
                ..Default::default()
            },
        )
    })
    .await
    .map_err(|e| e.to_string())??;
    let (admin, connection) = pg
        .config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = actix_web::rt::spawn(connection);
    embedded_postgres::create_database_if_missing(&admin, embedded_postgres::DATABASE).await?;
    drop(admin);
    driver.abort();
    let db = &mut settings.database;
    db.url = None;
    db.host = Some(pg.dir().display().to_string());
    db.port = Some(5432);
    db.user = Some(embedded_postgres::ROLE.into());
    db.password = None;
    db.dbname = Some(embedded_postgres::DATABASE.into());
    if settings.api.tokens.is_empty() {
        let (path, token) = embedded_postgres::api_token(pg.dir())?;
        settings.api.tokens.push(Secret::new(token));
        tracing::info!(file = %path.display(), "no API token configured: generated one (read it from this file)");
    }
    Ok(pg)
}

async fn serve(
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
                tracing::error!(error = %e, "cannot start the embedded PostgreSQL");
                return ExitCode::from(1);
            }
        }
    }
    notifier.status("connecting to the database and applying migrations");
    let mut daemon = match startup::build(settings.clone(), Arc::new(SystemClock), inherited).await
    {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
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
    let mut changed = Vec::new();
    let was = &current.session;
    if was.ttl != fresh.session.ttl {
        changed.push(format!(
            "session.ttl: {:?} -> {:?}",
            was.ttl, fresh.session.ttl
        ));
    }
    if was.remember_ttl != fresh.session.remember_ttl {
        changed.push(format!(
            "session.remember_ttl: {:?} -> {:?}",
            was.remember_ttl, fresh.session.remember_ttl
        ));
    }
    if was.refresh_interval != fresh.session.refresh_interval {
        changed.push(format!(
            "session.refresh_interval: {:?} -> {:?}",
            was.refresh_interval, fresh.session.refresh_interval
        ));
    }
    if was.max_lifetime != fresh.session.max_lifetime {
        changed.push(format!(
            "session.max_lifetime: {:?} -> {:?}",
            was.max_lifetime, fresh.session.max_lifetime
        ));
    }
    if was.max_per_user != fresh.session.max_per_user {
        changed.push(format!(
            "session.max_per_user: {} -> {}",
            was.max_per_user, fresh.session.max_per_user
        ));
    }
    if current.janitor.interval != fresh.janitor.interval {
        changed.push(format!(
            "janitor.interval: {:?} -> {:?}",
            current.janitor.interval, fresh.janitor.interval
        ));
    }
    if current.log.level != fresh.log.level {
        match log.set_level(&fresh.log.level) {
            Ok(()) => changed.push(format!(
                "log.level: {} -> {}",
                current.log.level, fresh.log.level
            )),
            Err(e) => tracing::error!(error = %e, "cannot apply log.level"),
        }
    }
    daemon.services.core.tunables.apply_config(&fresh);
    match daemon.reload_tls() {
        Ok(true) => changed.push("HTTPS certificate re-read".into()),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot re-read the HTTPS certificate; keeping the old one")
        }
    }
    current.session = fresh.session.clone();
    current.janitor = fresh.janitor.clone();
    current.log = fresh.log.clone();
    if changed.is_empty() {
        tracing::info!("configuration reloaded: nothing that can change at run time changed");
    } else {
        tracing::info!(changes = %changed.join("; "), "configuration reloaded");
    }
}

fn healthcheck(settings: &Settings, url: Option<String>) -> ExitCode {
    use std::io::{Read, Write};
    let target = url.unwrap_or_else(|| {
        let addr = settings
            .server
            .listen
            .iter()
            .find_map(|l| match l {
                config::ListenAddr::Tcp(a) => {
                    Some(a.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]"))
                }
                config::ListenAddr::Unix(_) => None,
            })
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        format!("http://{addr}/healthz")
    });
    let Some(rest) = target.strip_prefix("http://") else {
        eprintln!("healthcheck: only http:// URLs are supported");
        return ExitCode::from(2);
    };
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/healthz".into()));
    let attempt = || -> std::io::Result<bool> {
        use std::net::ToSocketAddrs;
        let addr = host
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf)?;
        Ok(buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    };
    match attempt() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("healthcheck: {target} did not answer 200");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("healthcheck: {target}: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded_of(argv: &[&str]) -> Option<Option<PathBuf>> {
        match Args::try_parse_from(argv).map(|a| a.command) {
            Ok(Command::Serve { embedded, .. }) => embedded,
            other => panic!("not a serve command: {other:?}"),
        }
    }

    #[test]
    fn embedded_takes_an_optional_directory() {
        assert_eq!(embedded_of(&["pgusers", "serve", "--embedded"]), Some(None));
        assert_eq!(
            embedded_of(&["pgusers", "serve", "--embedded", "/tmp/x"]),
            Some(Some(PathBuf::from("/tmp/x")))
        );
        assert_eq!(
            embedded_of(&["pgusers", "serve", "--embedded", "--listen", "127.0.0.1:0"]),
            Some(None)
        );
        assert_eq!(embedded_of(&["pgusers", "serve"]), None);
    }
}
