//! pgusers: a user-authentication and session daemon on PostgreSQL (library root).

pub mod accounts;
pub mod admin_cli;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod error;
pub mod http;
pub mod import;
pub mod sessions;
pub mod store;
pub mod telemetry;
