//! `pgusers user groups USER [--replace a,b]` and `pgusers groups list|members`: group memberships
//! from the command line, checked, stored and audited as `PUT /v1/users/{userid}/groups` does.

use clap::Subcommand;
use serde_json::json;

use super::connect::resolve;
use super::connect::{self, Database};
use super::output::{self, UserView};
use super::{Failure, Outcome};
use crate::accounts::Origin;
use crate::config::Settings;
use crate::store::groups as store;

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
    db: Database,
    spec: &str,
    set: Option<Vec<String>>,
    settings: &Settings,
    json: bool,
) -> Outcome {
    let user = resolve(&db.client, spec).await?;
    let groups = match set {
        None => store::of_user(&db.client, user.userid).await?,
        Some(after) => {
            drop(db);
            // Through the account service: checked, audited, evicted in every running daemon.
            let change = connect::services(settings)
                .await?
                .users
                .set_groups(user.userid, &after, Origin::Cli)
                .await?;
            tracing::info!(userid = user.userid, "groups set");
            change.after
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
