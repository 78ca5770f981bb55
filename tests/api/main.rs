//! The API tests: the real daemon in-process (startup::build on port 0) over a real PostgreSQL, one template database cloned per test, a movable clock; one binary, one link.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod forward_auth;
mod groups;
mod https;
mod metrics;
mod multi_instance;
mod openapi;
mod outage;
mod schema;
mod security;
mod sessions_api;
mod sessions_page;
mod stalled_database;
mod tls;
mod users_api;
mod write_behind;
