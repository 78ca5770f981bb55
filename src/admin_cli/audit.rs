//! `pgusers audit list`: the audit trail of security events, as a table or JSON.

use clap::Subcommand;
use serde_json::json;

use super::connect;
use super::connect::resolve;
use super::output::{self, timestamp};
use super::Outcome;
use crate::config::Settings;
use crate::store::security as store;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// List security events, oldest first, at most --limit of them.
    List {
        /// Only the events of this user (username, email, or #USERID).
        #[arg(value_name = "USER")]
        user: Option<String>,
        /// How many events at most.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

pub(super) async fn run(cmd: AuditCommand, settings: &Settings, json: bool) -> Outcome {
    let AuditCommand::List { user, limit } = cmd;
    let db = connect::open(settings).await?;
    let userid = match &user {
        Some(spec) => Some(resolve(&db.client, spec).await?.userid),
        None => None,
    };
    let events = store::list_events(&db.client, 0, limit.clamp(1, 100_000), userid).await?;
    if json {
        let list: Vec<_> = events
            .iter()
            .map(|e| {
                json!({
                    "event_id": e.event_id, "at": e.at, "kind": e.kind, "userid": e.userid,
                    "username": e.username, "client_addr": e.client_addr, "instance": e.instance,
                    "detail": e.detail,
                })
            })
            .collect();
        return output::print_json(&json!({ "events": list }));
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.event_id.to_string(),
                timestamp(e.at),
                e.kind.clone(),
                e.userid.map(|u| u.to_string()).unwrap_or_default(),
                e.username.clone().unwrap_or_default(),
                e.client_addr.clone().unwrap_or_default(),
                e.instance.clone(),
            ]
        })
        .collect();
    output::emit(&output::table(
        &[
            "ID", "AT", "KIND", "USERID", "USERNAME", "CLIENT", "INSTANCE",
        ],
        &rows,
    ));
    Ok(())
}
