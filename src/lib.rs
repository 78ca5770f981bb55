//! pgusers: a user-authentication and session daemon on PostgreSQL.
//!
//! The modules are the rooms of the architecture (README, "How it works"); each imports only the
//! rooms below it:
//!
//! - [`http`] and [`admin_cli`]: two faces, the HTTP API and the command line, over the same
//!   services ([`accounts::Services`]).
//! - [`accounts`]: logins, account changes, the brute-force throttle, the audit trail, hashing.
//! - [`sessions`]: the session engine: checks from a moka cache, creation and kills written
//!   through, expiry refreshes written behind, invalidation from every instance, the janitor.
//! - [`store`]: PostgreSQL (statements, migrations, TLS, the embedded cluster).
//! - [`domain`] (keys, expiry, validation), [`config`] (settings and live settings),
//!   [`telemetry`] (logs, metrics), [`clock`]: below everything.
//! - [`daemon`]: the process (startup, serve loop, signals, systemd, listeners), and [`cli`]:
//!   argument parsing and dispatch, at the top.

pub mod accounts;
pub mod admin_cli;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod http;
pub mod import;
pub mod sessions;
pub mod store;
pub mod telemetry;
