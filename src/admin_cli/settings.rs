//! `pgusers settings session-ttl`: shows, sets or resets the session TTL that the API's
//! `PUT`/`DELETE /v1/settings/session_ttl` set, with the same limits; the database's trigger
//! announces the change to every running daemon.

use clap::Subcommand;
use serde_json::json;

use super::connect;
use super::{output, Failure, Outcome};
use crate::config::{duration, Settings, MAX_TTL_SECS};
use crate::store::settings as store;

#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    /// Show the session TTL, set it (DURATION: seconds, or e.g. 90m, 12h, 30d; 1 s to 10
    /// years) for every running daemon, or go back to the configured one with --reset.
    #[command(name = "session-ttl")]
    SessionTtl {
        /// The new TTL.
        #[arg(value_name = "DURATION", conflicts_with = "reset")]
        ttl: Option<String>,
        /// Drop the value set here or through the API: back to `session.ttl` of the configuration.
        #[arg(long)]
        reset: bool,
    },
}

pub(super) async fn run(cmd: SettingsCommand, settings: &Settings, json: bool) -> Outcome {
    let SettingsCommand::SessionTtl { ttl, reset } = cmd;
    let seconds = ttl.as_deref().map(parse_ttl).transpose()?;
    let db = connect::open(settings).await?;
    let verb = match (seconds, reset) {
        (Some(s), _) => {
            store::set_session_ttl(&db.client, s).await?;
            tracing::info!(seconds = s, "session TTL set");
            "session TTL is now"
        }
        (None, true) => {
            store::clear_session_ttl(&db.client).await?;
            tracing::info!("session TTL reset to the configured one");
            "session TTL is back to"
        }
        (None, false) => "session TTL:",
    };
    let configured = settings.session.ttl.as_secs();
    let (seconds, source) = match store::session_ttl(&db.client).await? {
        Some(s) => (u64::try_from(s).unwrap_or(0), "api"),
        None => (configured, "config"),
    };
    if json {
        return output::print_json(&json!({
            "session_ttl": { "seconds": seconds, "source": source },
        }));
    }
    let origin = if source == "api" {
        format!("set at run time; configured: {configured} s")
    } else {
        "as configured".into()
    };
    output::emit(&format!("{verb} {seconds} s ({origin})\n"));
    Ok(())
}

/// A TTL of 1 second to 10 years, as `PUT /v1/settings/session_ttl` accepts.
fn parse_ttl(text: &str) -> Result<i64, Failure> {
    let seconds = duration::parse(text).map_err(Failure::BadInput)?.as_secs();
    if !(1..=MAX_TTL_SECS).contains(&seconds) {
        return Err(Failure::BadInput(format!(
            "the session TTL must be between 1 second and {MAX_TTL_SECS} seconds (10 years), not '{text}'"
        )));
    }
    i64::try_from(seconds).map_err(|_| Failure::BadInput(format!("'{text}' is too long")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ttl_is_a_duration_from_one_second_to_ten_years() {
        assert!(matches!(parse_ttl("90m"), Ok(5400)));
        assert!(matches!(parse_ttl("1"), Ok(1)));
        assert!(matches!(parse_ttl("0"), Err(Failure::BadInput(_))));
        assert!(matches!(parse_ttl("500ms"), Err(Failure::BadInput(_))));
        assert!(matches!(parse_ttl("3651d"), Err(Failure::BadInput(_))));
        assert!(matches!(parse_ttl("soon"), Err(Failure::BadInput(_))));
    }
}
