//! Admin commands (`pgusers user …`, `pgusers sessions …`) that talk to the database directly.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Settings;

/// The admin subcommands, flattened into the top-level command line.
#[derive(Subcommand, Debug)]
pub enum AdminCommand {}

/// Runs one admin command with the daemon's configuration.
pub async fn run(cmd: AdminCommand, _settings: Settings) -> ExitCode {
    match cmd {}
}
