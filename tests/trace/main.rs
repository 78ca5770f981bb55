//! A TRACE-level run that captures everything the process logs and finds no secret in it: alone in its binary, since it installs the process-wide tracing subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod secrets_in_logs;
