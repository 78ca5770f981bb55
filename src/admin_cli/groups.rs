//! `pgusers user groups USER [--replace a,b]` and `pgusers groups list|members`: group memberships
//! from the command line, checked, stored and audited as `PUT /v1/users/{userid}/groups` does.

use clap::Subcommand;
use serde_json::json;

use super::connect::resolve;
use super::connect::{self, Database};
use super::output::{self, UserView};
use super::{Failure, Outcome};
use crate::config::Settings;
use crate::store::groups as store;
use crate::store::security::{self as audit_store, AuditEvent};

/// How many members one query of `groups members` fetches.
const PAGE: i64 = 1000;

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// List every group with its member count.
    List,
    /// List the members of a group.
    Members {
        /// The group's name (letter case is ignored).
        name: String,
    },
}

pub(super) async fn run(cmd: GroupsCommand, settings: &Settings, json: bool) -> Outcome {
    let db = connect::open(settings).await?;
    match cmd {
        GroupsCommand::List => list(&db, json).await,
        GroupsCommand::Members { name } => members(&db, &name, json).await,
    }
}

/// `--replace` as given: names separated by commas (an empty value clears every group).
pub(super) fn parse_set(text: &str) -> Result<Vec<String>, Failure> {
    let names: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    Ok(crate::domain::groups::set(&names)?)
}

/// `pgusers user groups USER [--replace a,b]`: shows the user's groups, or replaces them.
pub(super) async fn of_user(
    mut db: Database,
    spec: &str,
    set: Option<Vec<String>>,
    settings: &Settings,
    json: bool,
) -> Outcome {
    let user = resolve(&db.client, spec).await?;
    let groups = match set {
        None => store::of_user(&db.client, user.userid).await?,
        Some(after) => {
            let tx = db.client.transaction().await?;
            let before = store::replace(&tx, user.userid, &after)
                .await?
                .ok_or_else(|| Failure::NotFound(format!("no such user: {spec}")))?;
            let added: Vec<&String> = after.iter().filter(|g| !before.contains(g)).collect();
            let removed: Vec<&String> = before.iter().filter(|g| !after.contains(g)).collect();
            let event = AuditEvent {
                event_id: 0,
                at: chrono::Utc::now(),
                kind: "groups_changed".into(),
                userid: Some(user.userid),
                username: Some(user.username.clone()),
                client_addr: None,
                instance: settings.server.instance_name.clone(),
                detail: Some(json!({
                    "groups": after, "added": added, "removed": removed, "by": "cli",
                })),
            };
            audit_store::record_event(&tx, &event).await?;
            // The database's trigger tells running daemons to forget their cached copies.
            tx.commit().await?;
            tracing::info!(userid = user.userid, "groups set");
            after
        }
    };
    if json {
        return output::print_json(&json!({
            "userid": user.userid, "username": user.username, "groups": groups,
        }));
    }
    let shown = if groups.is_empty() {
        "(none)".to_string()
    } else {
        groups.join(",")
    };
    output::emit(&format!("{}: {shown}\n", user.username));
    Ok(())
}

async fn list(db: &Database, json: bool) -> Outcome {
    let groups = store::list(&db.client).await?;
    if json {
        let groups: Vec<_> = groups
            .iter()
            .map(|g| json!({ "name": g.name, "members": g.members }))
            .collect();
        return output::print_json(&json!({ "groups": groups }));
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| vec![g.name.clone(), g.members.to_string()])
        .collect();
    output::emit(&output::table(&["GROUP", "MEMBERS"], &rows));
    Ok(())
}

async fn members(db: &Database, name: &str, json: bool) -> Outcome {
    let name = crate::domain::groups::name(name)?;
    let mut users = Vec::new();
    loop {
        let after = users
            .last()
            .map_or(0, |u: &crate::store::users::UserRow| u.userid);
        let page = store::members(&db.client, &name, after, PAGE).await?;
        let done = (page.len() as i64) < PAGE;
        users.extend(page);
        if done {
            break;
        }
    }
    if users.is_empty() {
        return Err(Failure::NotFound(format!("no such group: {name}")));
    }
    if json {
        let views: Vec<UserView> = users.iter().map(UserView::from).collect();
        return output::print_json(&json!({ "users": views }));
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| vec![u.userid.to_string(), u.username.clone(), u.email.clone()])
        .collect();
    output::emit(&output::table(&["USERID", "USERNAME", "EMAIL"], &rows));
    Ok(())
}
