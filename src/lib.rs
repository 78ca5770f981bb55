//! pgusers: a user-authentication and session daemon on PostgreSQL (library root).

pub mod actors;
pub mod admin_cli;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod embedded;
pub mod error;
pub mod guard;
pub mod http;
pub mod https;
pub mod import;
pub mod invalidation;
pub mod lookups;
pub mod metrics;
pub mod ops;
pub mod passwords;
pub mod refresh_queue;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tunables;
