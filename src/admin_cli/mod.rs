//! Owns the admin command line (`pgusers user …`, `pgusers sessions …`): the original `usermgr`'s
//! abilities as subcommands of the one binary, run against the database directly with the
//! daemon's configuration.
//!
//! Commands (USER is a username, an email address, or `#<userid>`; names and emails ignore
//! letter case, the username is tried first and the email only when USER contains `@`):
//!
//! - `pgusers user add USERNAME --email EMAIL [--admin] [--extra-data JSON]`
//! - `pgusers user list`, `pgusers user info USER`
//! - `pgusers user modify USER [--username NEW] [--email NEW] [--extra-data JSON]`
//! - `pgusers user passwd USER` (ends every session of the user)
//! - `pgusers user admin USER [--remove]`, `pgusers user delete USER [--yes]`
//! - `pgusers user groups USER [--replace a,b]`, `pgusers groups list`, `pgusers groups members NAME`
//! - `pgusers sessions list [--expired] [USER | --all]`
//! - `pgusers sessions kill [--expired] (USER | --all)`
//! - `pgusers settings session-ttl [DURATION | --reset]`
//! - the library's `usermgr` command names at the top level (`adduser`, `setadmin`, `cpasswd`,
//!   `delete`, `list`, `info`, `listsessions`, `killsessions`; see `usermgr.rs`).
//! - `pgusers import [--from CONNINFO] [--dry-run]`: the Python library's users and sessions
//!   (see `crate::import` for the rules)
//!
//! Every command takes `--json` (print the result, or what was done, as JSON) and `-v`/`-vv`
//! (log this crate's info/debug events to standard error; other crates, among them the database
//! driver whose debug output shows query parameters, stay at warnings).
//!
//! Passwords are prompted twice without echo on a terminal; when standard input is not a
//! terminal, one line is read from it (for scripts). `user delete` asks for confirmation on a
//! terminal and refuses to run non-interactively without `--yes`.
//!
//! The database is the configured one; with none configured, the embedded daemon's cluster in
//! `database.embedded_dir` (role and database `pgusers`), which must be running. Migrations are
//! never applied here: a schema that is not current is refused (run `pgusers migrate`).
//!
//! Output is an aligned table or a sentence, or with `--json` the API's objects: a user object for
//! `user info`, `add`, `modify` and `admin`, `{"users": [...]}` for `user list` and `groups members`, `{"userid", "username", "groups"}` for
//! `user groups`, `{"groups": [{"name", "members"}]}` for `groups list`, `{"sessions": [...]}`
//! for `sessions list`, `{"killed": N}` for `sessions kill`, the `session_ttl` object of
//! `GET /v1/settings` for `settings session-ttl` (never a password hash, never a session key). Errors go to standard error. Running daemons see the changes on
//! their next check: the database's triggers notify them.
//!
//! Exit codes:
//! - 0: done.
//! - 1: not found or rejected: no such user, username or email already taken, confirmation
//!   declined or interrupted.
//! - 2: bad input or configuration: an invalid username, email, password or `--extra-data`,
//!   passwords that differ, deletion without `--yes` when not interactive, a schema that is not
//!   current, an invalid configuration or command line.
//! - 3: database unavailable: cannot connect (or the embedded PostgreSQL is not running), or a
//!   query failed.

mod audit;
mod connect;
mod groups;
mod import;
mod output;
mod prompt;
mod sessions;
mod settings;
mod usermgr;
mod users;

use std::process::ExitCode;

use clap::{ArgAction, Args, Subcommand};

use crate::accounts;
use crate::config::Settings;
use crate::domain::validate::Invalid;
use crate::sessions::Error as SessionError;
use crate::store::StoreError;
use crate::telemetry::cause_chain;

/// The admin subcommands, flattened into the top-level command line.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Manage users: add, list, info, modify, passwd, admin, groups, unlock, delete.
    User {
        #[command(subcommand)]
        cmd: users::UserCommand,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List or kill sessions.
    Sessions {
        #[command(subcommand)]
        cmd: sessions::SessionsCommand,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// List groups and their members.
    Groups {
        #[command(subcommand)]
        cmd: groups::GroupsCommand,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Read the audit trail of security events.
    Audit {
        #[command(subcommand)]
        cmd: audit::AuditCommand,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Show or change settings that running daemons pick up: the session TTL.
    Settings {
        #[command(subcommand)]
        cmd: settings::SettingsCommand,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Import the Python library's users and sessions (its public.users and public.sessions)
    /// in one transaction, with a report.
    Import {
        #[command(flatten)]
        args: import::ImportArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
    #[command(flatten)]
    Usermgr(usermgr::UsermgrCommand),
}

/// `--json` and `-v`, accepted by every admin command (before or after its subcommand).
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct OutputArgs {
    /// Print JSON: the result, or what was done.
    #[arg(long, global = true)]
    json: bool,
    /// Log to standard error: -v info, -vv debug (never a secret).
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
}

/// One command to run, whichever spelling named it.
enum Job {
    User(users::UserCommand),
    Sessions(sessions::SessionsCommand),
    Groups(groups::GroupsCommand),
    Audit(audit::AuditCommand),
    Settings(settings::SettingsCommand),
    Import(import::ImportArgs),
}

impl AdminCommand {
    fn into_job(self) -> (Job, OutputArgs) {
        match self {
            Self::User { cmd, out } => (Job::User(cmd), out),
            Self::Sessions { cmd, out } => (Job::Sessions(cmd), out),
            Self::Groups { cmd, out } => (Job::Groups(cmd), out),
            Self::Audit { cmd, out } => (Job::Audit(cmd), out),
            Self::Settings { cmd, out } => (Job::Settings(cmd), out),
            Self::Import { args, out } => (Job::Import(args), out),
            Self::Usermgr(cmd) => cmd.into_job(),
        }
    }
}

/// Runs one admin command with the daemon's configuration.
pub async fn run(cmd: AdminCommand, settings: Settings) -> ExitCode {
    let (job, out) = cmd.into_job();
    let _log = start_logging(out.verbose, &settings);
    let json = out.json;
    let result = match job {
        Job::User(cmd) => users::run(cmd, &settings, json).await,
        Job::Sessions(cmd) => sessions::run(cmd, &settings, json).await,
        Job::Groups(cmd) => groups::run(cmd, &settings, json).await,
        Job::Audit(cmd) => audit::run(cmd, &settings, json).await,
        Job::Settings(cmd) => settings::run(cmd, &settings, json).await,
        Job::Import(args) => import::run(args, &settings, json).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            tracing::debug!(error = %failure, "command failed");
            eprintln!("pgusers: {failure}");
            failure.exit_code()
        }
    }
}

/// Logging for `-v` (this crate at info) and `-vv` (at debug); silent without. Every other
/// crate stays at warnings: the database driver logs query parameters (hashes) at debug.
fn start_logging(verbose: u8, settings: &Settings) -> Option<crate::telemetry::LogControl> {
    let level = match verbose {
        0 => return None,
        1 => "warn,pgusers=info",
        _ => "warn,pgusers=debug",
    };
    let mut log = settings.log.clone();
    log.level = level.into();
    Some(crate::telemetry::init(&log))
}

/// Why a command failed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Exit 1.
    #[error("{0}")]
    NotFound(String),
    /// Exit 1.
    #[error("{0}")]
    Rejected(String),
    /// Exit 2.
    #[error("{0}")]
    BadInput(String),
    /// Exit 3.
    #[error("{0}")]
    Unavailable(String),
}

impl Failure {
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::NotFound(_) | Self::Rejected(_) => 1,
            Self::BadInput(_) => 2,
            Self::Unavailable(_) => 3,
        })
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Conflict(constraint) => Self::Rejected(constraint.to_string()),
            StoreError::Data(msg) => Self::Unavailable(format!("unexpected data: {msg}")),
            other => Self::Unavailable(cause_chain(&other)),
        }
    }
}

/// The session engine's errors as exit codes.
impl From<SessionError> for Failure {
    fn from(err: SessionError) -> Self {
        match err {
            SessionError::NotFound => Self::NotFound(err.to_string()),
            SessionError::Expired => Self::Rejected(err.to_string()),
            SessionError::Store(e) => e.into(),
            SessionError::Lookup(_) | SessionError::Stopping => {
                Self::Unavailable(cause_chain(&err))
            }
        }
    }
}

/// The account use cases' errors as exit codes: the one mapping of their failures for the
/// command line.
impl From<accounts::Error> for Failure {
    fn from(err: accounts::Error) -> Self {
        use accounts::Error;
        match err {
            Error::UserNotFound | Error::GroupNotFound => Self::NotFound(err.to_string()),
            Error::Invalid(invalid) => invalid.into(),
            Error::InvalidCredentials
            | Error::WrongOldPassword
            | Error::Throttled { .. }
            | Error::Hash(accounts::passwords::HashError::Busy) => Self::Rejected(err.to_string()),
            Error::Sessions(e) => e.into(),
            Error::Store(e) => e.into(),
            Error::Hash(_) | Error::Stopping => Self::Unavailable(cause_chain(&err)),
        }
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        StoreError::from(err).into()
    }
}

impl From<Invalid> for Failure {
    fn from(err: Invalid) -> Self {
        Self::BadInput(err.0)
    }
}

type Outcome = Result<(), Failure>;
