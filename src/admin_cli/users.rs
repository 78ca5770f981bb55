//! `pgusers user …`: add, list, info, modify, passwd, admin, groups, unlock, delete.

use clap::Subcommand;
use serde::Serialize;
use serde_json::{json, Value};

use super::connect::{self, resolve, Database};
use super::output::{self, UserView};
use super::{prompt, Failure, Outcome};
use crate::accounts::{self, Origin, PasswordChange};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::domain::validate;
use crate::store::sessions as sessions_store;
use crate::store::users::{self as store, UserRow};
use crate::store::GenericClient;

/// How many users one query of `user list` fetches.
const PAGE: i64 = 1000;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user. The password is prompted twice on a terminal, else read as one line from
    /// standard input.
    Add {
        username: String,
        #[arg(long)]
        email: String,
        /// Make the user an administrator.
        #[arg(short, long)]
        admin: bool,
        /// Data attached to the user (a JSON value).
        #[arg(long, value_name = "JSON")]
        extra_data: Option<String>,
    },
    /// List every user.
    List,
    /// Show one user.
    Info {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Rename a user, change the email, or replace the extra data (`null` clears it); checked as
    /// `PATCH /v1/users/{userid}` checks them.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)
        .args(["username", "email", "extra_data"])))]
    Modify {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        /// The new username.
        #[arg(long, value_name = "NEW")]
        username: Option<String>,
        /// The new email address.
        #[arg(long, value_name = "NEW")]
        email: Option<String>,
        /// The new extra data (a JSON value; `null` clears it).
        #[arg(long, value_name = "JSON")]
        extra_data: Option<String>,
    },
    /// Set a user's password (prompted twice, or one line of standard input) and end every
    /// session of the user.
    Passwd {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Grant administrator rights, or revoke them with --remove.
    Admin {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        /// Revoke instead of grant.
        #[arg(short, long)]
        remove: bool,
    },
    /// Show the user's groups, or replace them with --replace (comma-separated; '' clears them).
    Groups {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        /// The new set of groups, e.g. `billing,ops`.
        #[arg(long, value_name = "GROUPS")]
        replace: Option<String>,
    },
    /// Lift a brute-force lock of the user's account.
    Unlock {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
    },
    /// Delete a user and every session of the user (asks for confirmation unless --yes).
    Delete {
        /// Username, email, or #USERID.
        #[arg(value_name = "USER")]
        user: String,
        /// Do not ask; required when standard input is not a terminal.
        #[arg(long)]
        yes: bool,
    },
}

pub(super) async fn run(cmd: UserCommand, settings: &Settings, json: bool) -> Outcome {
    match cmd {
        UserCommand::Add {
            username,
            email,
            admin,
            extra_data,
        } => {
            let new = NewAccount::checked(username, email, admin, extra_data, settings)?;
            add(new, settings, json).await
        }
        UserCommand::List => list(&connect::open(settings).await?, json).await,
        UserCommand::Info { user } => info(&connect::open(settings).await?, &user, json).await,
        UserCommand::Modify {
            user,
            username,
            email,
            extra_data,
        } => {
            let change = Change::checked(username, email, extra_data, settings)?;
            modify(settings, &user, change, json).await
        }
        UserCommand::Passwd { user } => passwd(settings, &user, json).await,
        UserCommand::Admin { user, remove } => set_admin(settings, &user, !remove, json).await,
        UserCommand::Groups { user, replace } => {
            let set = replace
                .as_deref()
                .map(super::groups::parse_set)
                .transpose()?;
            super::groups::of_user(connect::open(settings).await?, &user, set, settings, json).await
        }
        UserCommand::Unlock { user } => unlock(settings, &user, json).await,
        UserCommand::Delete { user, yes } => {
            if !yes && !prompt::interactive() {
                return Err(Failure::BadInput(
                    "refusing to delete without confirmation: standard input is not a terminal; \
                     pass --yes"
                        .into(),
                ));
            }
            delete(settings, &user, yes, json).await
        }
    }
}

/// A new account whose fields passed the API's validation.
struct NewAccount {
    username: String,
    email: String,
    admin: bool,
    extra_data: Option<Value>,
}

impl NewAccount {
    fn checked(
        username: String,
        email: String,
        admin: bool,
        extra_data: Option<String>,
        settings: &Settings,
    ) -> Result<Self, Failure> {
        validate::username(&username)?;
        validate::email(&email)?;
        let extra_data = extra_data
            .map(|text| parse_extra_data(&text, settings.server.max_extra_data_bytes))
            .transpose()?
            .flatten();
        Ok(Self {
            username,
            email,
            admin,
            extra_data,
        })
    }
}

/// A change to an existing account whose fields passed the API's validation.
struct Change {
    username: Option<String>,
    email: Option<String>,
    /// `Some(None)` clears the extra data.
    extra_data: Option<Option<Value>>,
}

impl Change {
    fn checked(
        username: Option<String>,
        email: Option<String>,
        extra_data: Option<String>,
        settings: &Settings,
    ) -> Result<Self, Failure> {
        if let Some(name) = &username {
            validate::username(name)?;
        }
        if let Some(address) = &email {
            validate::email(address)?;
        }
        let extra_data = extra_data
            .map(|text| parse_extra_data(&text, settings.server.max_extra_data_bytes))
            .transpose()?;
        Ok(Self {
            username,
            email,
            extra_data,
        })
    }
}

/// `--extra-data`: any JSON value within the size limit; `null` means none.
fn parse_extra_data(text: &str, max_bytes: usize) -> Result<Option<Value>, Failure> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Failure::BadInput(format!("--extra-data is not valid JSON: {e}")))?;
    validate::extra_data(&value, max_bytes)?;
    Ok((!value.is_null()).then_some(value))
}

async fn add(new: NewAccount, settings: &Settings, json: bool) -> Outcome {
    let services = connect::services(settings).await?;
    let password = prompt::new_password(settings.password.policy()).await?;
    let userid = services
        .users
        .create(accounts::NewAccount {
            username: new.username.clone(),
            email: new.email,
            password,
            admin: new.admin,
            extra_data: new.extra_data,
        })
        .await?;
    tracing::info!(userid, "user created");
    if json {
        let user = services.users.find_by_id(userid).await?;
        return output::print_json(&UserView::from(&user));
    }
    output::emit(&format!(
        "created user '{}' (userid {userid})\n",
        new.username
    ));
    Ok(())
}

#[derive(Serialize)]
struct UserList<'a> {
    users: Vec<UserView<'a>>,
}

async fn all_users(db: &impl GenericClient) -> Result<Vec<UserRow>, Failure> {
    let mut users = Vec::new();
    loop {
        let after = users.last().map_or(0, |u: &UserRow| u.userid);
        let page = store::list(db, after, PAGE).await?;
        let done = (page.len() as i64) < PAGE;
        users.extend(page);
        if done {
            return Ok(users);
        }
    }
}

async fn list(db: &Database, json: bool) -> Outcome {
    let users = all_users(&db.client).await?;
    if json {
        return output::print_json(&UserList {
            users: users.iter().map(UserView::from).collect(),
        });
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.userid.to_string(),
                u.username.clone(),
                u.email.clone(),
                output::yes_no(u.admin),
                output::timestamp(u.created_at),
            ]
        })
        .collect();
    output::emit(&output::table(
        &["USERID", "USERNAME", "EMAIL", "ADMIN", "CREATED"],
        &rows,
    ));
    Ok(())
}

async fn info(db: &Database, spec: &str, json: bool) -> Outcome {
    let user = resolve(&db.client, spec).await?;
    if json {
        return output::print_json(&UserView::from(&user));
    }
    let (active, expired) = session_counts(&db.client, user.userid).await?;
    let rows = vec![
        vec!["userid".into(), user.userid.to_string()],
        vec!["username".into(), user.username.clone()],
        vec!["email".into(), user.email.clone()],
        vec!["admin".into(), output::yes_no(user.admin)],
        vec!["created_at".into(), output::timestamp(user.created_at)],
        vec!["extra_data".into(), output::extra(user.extra_data.as_ref())],
        vec![
            "sessions".into(),
            format!("{active} active, {expired} expired"),
        ],
    ];
    let text = output::table(&["FIELD", "VALUE"], &rows);
    // The field names speak for themselves: drop the header line.
    output::emit(text.split_once('\n').map_or("", |(_, rest)| rest));
    Ok(())
}

async fn modify(settings: &Settings, spec: &str, change: Change, json: bool) -> Outcome {
    let user = resolve(&connect::open(settings).await?.client, spec).await?;
    // The database's trigger tells running daemons to forget their cached copy.
    let updated = connect::services(settings)
        .await?
        .users
        .modify(
            user.userid,
            change.username.clone(),
            change.email.clone(),
            change.extra_data.clone(),
        )
        .await?;
    tracing::info!(userid = updated.userid, "user modified");
    if json {
        return output::print_json(&UserView::from(&updated));
    }
    let mut what = Vec::new();
    if updated.username != user.username {
        what.push(format!("renamed to '{}'", updated.username));
    }
    if updated.email != user.email {
        what.push(format!("email {}", updated.email));
    }
    if change.extra_data.is_some() {
        what.push(format!(
            "extra_data {}",
            output::extra(updated.extra_data.as_ref())
        ));
    }
    if what.is_empty() {
        what.push("nothing changed".into());
    }
    output::emit(&format!(
        "modified '{}' (userid {}): {}\n",
        user.username,
        user.userid,
        what.join(", ")
    ));
    Ok(())
}

async fn session_counts(db: &impl GenericClient, userid: i64) -> Result<(i64, i64), Failure> {
    Ok(sessions_store::count(db, userid, SystemClock.now()).await?)
}

async fn passwd(settings: &Settings, spec: &str, json: bool) -> Outcome {
    let user = resolve(&connect::open(settings).await?.client, spec).await?;
    let services = connect::services(settings).await?;
    let password = prompt::new_password(settings.password.policy()).await?;
    let ended = services
        .users
        .change_password(PasswordChange {
            userid: user.userid,
            new_password: password,
            old_password: None,
            keep: None,
            origin: Origin::Cli,
            by_self: false,
        })
        .await?;
    tracing::info!(userid = user.userid, ended, "password changed");
    if json {
        return output::print_json(&json!({
            "userid": user.userid, "username": user.username,
            "password_changed": true, "sessions_ended": ended,
        }));
    }
    output::emit(&format!(
        "changed the password of '{}'; ended {ended} session(s)\n",
        user.username
    ));
    Ok(())
}

async fn set_admin(settings: &Settings, spec: &str, admin: bool, json: bool) -> Outcome {
    let mut user = resolve(&connect::open(settings).await?.client, spec).await?;
    connect::services(settings)
        .await?
        .users
        .set_admin(user.userid, admin, Origin::Cli)
        .await?;
    tracing::info!(userid = user.userid, admin, "admin flag set");
    if json {
        user.admin = admin;
        return output::print_json(&UserView::from(&user));
    }
    let state = if admin {
        "is now an administrator"
    } else {
        "is no longer an administrator"
    };
    output::emit(&format!("'{}' {state}\n", user.username));
    Ok(())
}

async fn unlock(settings: &Settings, spec: &str, json: bool) -> Outcome {
    let user = resolve(&connect::open(settings).await?.client, spec).await?;
    let was_locked = connect::services(settings)
        .await?
        .users
        .unlock(user.userid, Origin::Cli)
        .await?;
    tracing::info!(userid = user.userid, was_locked, "account unlocked");
    if json {
        return output::print_json(&json!({
            "userid": user.userid, "username": user.username, "was_locked": was_locked,
        }));
    }
    let state = if was_locked {
        "unlocked"
    } else {
        "was not throttled"
    };
    output::emit(&format!("'{}' {state}\n", user.username));
    Ok(())
}

async fn delete(settings: &Settings, spec: &str, yes: bool, json: bool) -> Outcome {
    let user = resolve(&connect::open(settings).await?.client, spec).await?;
    let question = format!(
        "Delete user '{}' (userid {}, {}) and every session of the user?",
        user.username, user.userid, user.email
    );
    if !yes && !prompt::confirm(&question).await? {
        return Err(Failure::Rejected("not deleted".into()));
    }
    let ended = connect::services(settings)
        .await?
        .users
        .delete(user.userid, Origin::Cli)
        .await?;
    tracing::info!(userid = user.userid, ended, "user deleted");
    if json {
        return output::print_json(&json!({
            "userid": user.userid, "username": user.username,
            "deleted": true, "sessions_ended": ended,
        }));
    }
    output::emit(&format!(
        "deleted user '{}' (userid {}); ended {ended} session(s)\n",
        user.username, user.userid
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_data_must_be_json_within_the_limit() {
        assert!(matches!(
            parse_extra_data("{\"a\":1}", 100),
            Ok(Some(Value::Object(_)))
        ));
        assert!(matches!(parse_extra_data("null", 100), Ok(None)));
        assert!(matches!(
            parse_extra_data("{nope", 100),
            Err(Failure::BadInput(_))
        ));
        assert!(matches!(
            parse_extra_data(&format!("\"{}\"", "x".repeat(200)), 100),
            Err(Failure::BadInput(_))
        ));
    }
}
