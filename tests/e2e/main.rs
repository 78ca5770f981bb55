//! The end-to-end tests: the built binary as users run it (serve, the admin commands, the README's commands), real reverse proxies, headless Chromium, the Python library and client, fail2ban, systemd and container files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;
#[path = "../support_proxy/mod.rs"]
mod support_proxy;

mod admin_cli;
mod browser;
mod check_config;
mod container;
mod daemon_process;
mod embedded;
mod fail2ban;
mod import;
mod logging;
mod proxies;
mod python_client;
mod readme;
mod serve_binary;
mod systemd_units;
mod takeover;
