//! The command line: parses the arguments and the configuration, then dispatches to the daemon
//! (`serve`, `healthcheck`), the migrations, `check-config` or the admin commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Settings, Sources};
use crate::daemon::startup::{self, Inherited};
use crate::telemetry;

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
        Command::Serve { .. } => match crate::daemon::listeners::take_inherited() {
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
        Command::Healthcheck { url } => crate::daemon::healthcheck::probe(&settings, url),
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
                    eprintln!("pgusers: {}", telemetry::cause_chain(&e));
                    ExitCode::from(1)
                }
            }
        }
        Command::Serve { embedded, .. } => {
            crate::daemon::run::serve(settings, sources, embedded, inherited).await
        }
        Command::Admin(cmd) => crate::admin_cli::run(cmd, settings).await,
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
