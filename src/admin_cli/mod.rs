//! Owns the admin command line (`pgusers user …`, `pgusers sessions …`): the original `usermgr`'s
//! abilities as subcommands of the one binary, run against the database directly with the
//! daemon's configuration.
//!
//! Commands (USER is a username, an email address, or `#<userid>`; names and emails ignore
//! letter case, the username is tried first and the email only when USER contains `@`):
//!
//! - `pgusers user add USERNAME --email EMAIL [--admin] [--extra-data JSON]`
//! - `pgusers user list [--json]`, `pgusers user info USER [--json]`
//! - `pgusers user passwd USER` (ends every session of the user)
//! - `pgusers user admin USER [--remove]`, `pgusers user delete USER [--yes]`
//! - `pgusers sessions list [--expired] [USER] [--json]`
//! - `pgusers sessions kill [--expired] (USER | --all)`
//!
//! Passwords are prompted twice without echo on a terminal; when standard input is not a
//! terminal, one line is read from it (for scripts). `user delete` asks for confirmation on a
//! terminal and refuses to run non-interactively without `--yes`.
//!
//! The database is the configured one; with none configured, the embedded daemon's cluster in
//! `database.embedded_dir` (role and database `pgusers`), which must be running. Migrations are
//! never applied here: a schema that is not current is refused (run `pgusers migrate`).
//!
//! Output is an aligned table, or with `--json` the API's objects: a user object for `user info`,
//! `{"users": [...]}` for `user list`, `{"sessions": [...]}` for `sessions list` (never a password
//! hash, never a session key). Errors go to standard error. Running daemons see the changes on
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
mod output;
mod prompt;
mod sessions;
mod users;

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Settings;
use crate::domain::validate::Invalid;
use crate::error::cause_chain;
use crate::store::StoreError;

/// The admin subcommands, flattened into the top-level command line.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Manage users: add, list, info, passwd, admin, delete.
    #[command(subcommand)]
    User(users::UserCommand),
    /// List or kill sessions.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
    /// Read the audit trail of security events.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

/// Runs one admin command with the daemon's configuration.
pub async fn run(cmd: AdminCommand, settings: Settings) -> ExitCode {
    let result = match cmd {
        AdminCommand::User(c) => users::run(c, &settings).await,
        AdminCommand::Sessions(c) => sessions::run(c, &settings).await,
        AdminCommand::Audit(c) => audit::run(c, &settings).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("pgusers: {failure}");
            failure.exit_code()
        }
    }
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
            StoreError::Conflict(msg) => Self::Rejected(msg),
            StoreError::Data(msg) => Self::Unavailable(format!("unexpected data: {msg}")),
            other => Self::Unavailable(cause_chain(&other)),
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
