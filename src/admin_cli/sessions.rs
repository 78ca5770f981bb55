//! `pgusers sessions …`: list and kill sessions, of one user or of everyone.

use clap::{ArgGroup, Subcommand};
use serde::Serialize;
use serde_json::json;

use super::connect::resolve;
use super::connect::{self, Database};
use super::output::{self, SessionView};
use super::{Failure, Outcome};
use crate::accounts::Origin;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::store::sessions::{self as store, SessionFilter, SessionRow};

/// Sessions read per statement: a listing of any size never asks the database for all at once.
const PAGE: i64 = 1000;

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List sessions: of USER, or of every user.
    List {
        /// Only sessions that have expired (not yet purged).
        #[arg(short = 'x', long)]
        expired: bool,
        /// Username, email, or #USERID (default: every user).
        #[arg(value_name = "USER", conflicts_with = "all")]
        user: Option<String>,
        /// Every user's sessions (the default).
        #[arg(short, long)]
        all: bool,
    },
    /// End the sessions of USER, or of every user with --all; prints how many were killed.
    #[command(group(ArgGroup::new("whose").required(true).args(["user", "all"])))]
    Kill {
        /// Only sessions that have expired.
        #[arg(short = 'x', long)]
        expired: bool,
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: Option<String>,
        /// Every user's sessions.
        #[arg(short, long)]
        all: bool,
    },
}

pub(super) async fn run(cmd: SessionsCommand, settings: &Settings, json: bool) -> Outcome {
    let db = connect::open(settings).await?;
    match cmd {
        SessionsCommand::List { expired, user, .. } => {
            list(&db, user.as_deref(), expired, json).await
        }
        SessionsCommand::Kill { expired, user, .. } => {
            drop(db);
            kill(settings, user.as_deref(), expired, json).await
        }
    }
}

/// The user id a filter covers: USER's, or 0 for everyone.
async fn whose(db: &Database, user: Option<&str>) -> Result<i64, Failure> {
    match user {
        Some(spec) => Ok(resolve(&db.client, spec).await?.userid),
        None => Ok(0),
    }
}

#[derive(Serialize)]
struct SessionList<'a> {
    sessions: Vec<SessionView<'a>>,
}

async fn list(db: &Database, user: Option<&str>, expired_only: bool, json: bool) -> Outcome {
    let now = SystemClock.now();
    let filter = SessionFilter {
        userid: whose(db, user).await?,
        expired_only,
        now,
        except: None,
    };
    let mut sessions: Vec<SessionRow> = Vec::new();
    loop {
        let after = sessions.last().map_or(0, |s| s.session_id);
        let page = store::list(&db.client, &filter, after, PAGE).await?;
        let done = (page.len() as i64) < PAGE;
        sessions.extend(page);
        if done {
            break;
        }
    }
    if json {
        return output::print_json(&SessionList {
            sessions: sessions.iter().map(SessionView::from).collect(),
        });
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            let state = if s.expires_at <= now {
                "expired"
            } else {
                "active"
            };
            vec![
                s.session_id.to_string(),
                s.userid.to_string(),
                s.username.clone(),
                output::timestamp(s.created_at),
                output::timestamp(s.last_seen_at),
                output::timestamp(s.expires_at),
                state.into(),
            ]
        })
        .collect();
    output::emit(&output::table(
        &[
            "SESSION",
            "USERID",
            "USERNAME",
            "CREATED",
            "LAST_SEEN",
            "EXPIRES",
            "STATE",
        ],
        &rows,
    ));
    Ok(())
}

async fn kill(settings: &Settings, user: Option<&str>, expired_only: bool, json: bool) -> Outcome {
    let userid = whose(&connect::open(settings).await?, user).await?;
    // Through the session service: killed here, evicted in every running daemon, audited.
    let services = connect::services(settings).await?;
    let killed = services
        .sessions
        .kill_many(userid, expired_only, None)
        .await?;
    let detail = json!({ "killed": killed, "expired_only": expired_only });
    services
        .users
        .audit(
            "sessions_killed",
            (userid > 0).then_some(userid),
            Origin::Cli,
            Some(detail),
        )
        .await;
    tracing::info!(userid, expired_only, killed, "sessions killed");
    if json {
        return output::print_json(&json!({ "killed": killed }));
    }
    output::emit(&format!("killed {killed} session(s)\n"));
    Ok(())
}
