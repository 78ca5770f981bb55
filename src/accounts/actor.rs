//! `UserActor` owns every account mutation from start to end: it validates the input, writes it,
//! evicts the user's cached sessions (so the very next check sees a rename, an admin or group
//! change, a password change or a deletion) and records the audit event. Both faces reach it
//! through [`super::UserHandle`]; its messages never leave this file.

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use serde_json::{json, Value};

use super::{AccountCore, Error, Origin, Result};
use crate::domain::{groups, validate, KeyDigest};
use crate::store::groups as groups_store;
use crate::store::sessions::{self as sessions_store, SessionFilter};
use crate::store::users::{self as store, NewUser, UserChanges, UserRow};

pub struct UserActor {
    pub(super) core: AccountCore,
}

impl Actor for UserActor {
    type Context = Context<Self>;
}

/// Runs one mutation as a future of the actor, on its own copy of what accounts share.
fn run<T, F>(core: &AccountCore, work: impl FnOnce(AccountCore) -> F) -> ResponseFuture<Result<T>>
where
    F: std::future::Future<Output = Result<T>> + 'static,
{
    Box::pin(work(core.clone()))
}

/// Writes a security event to the audit trail; a failure is logged, never fatal.
pub(super) async fn record(
    core: &AccountCore,
    kind: &str,
    userid: Option<i64>,
    origin: Origin,
    detail: Option<Value>,
) {
    let detail = origin.mark(detail);
    match core.db().await {
        Ok(db) => {
            let now = core.clock.now();
            core.guard
                .record(&db, now, kind, userid, None, origin.client(), detail)
                .await
        }
        Err(e) => {
            let error = crate::telemetry::cause_chain(&e);
            tracing::warn!(kind, %error, "could not write an audit event")
        }
    }
}

/// A new account, as a face hands it over (checked here).
pub struct NewAccount {
    pub username: String,
    pub email: String,
    pub password: String,
    pub admin: bool,
    pub extra_data: Option<Value>,
}

#[derive(Message)]
#[rtype(result = "Result<i64>")]
pub(super) struct Create(pub NewAccount);

impl Handler<Create> for UserActor {
    type Result = ResponseFuture<Result<i64>>;

    fn handle(&mut self, Create(account): Create, _: &mut Context<Self>) -> Self::Result {
        run(&self.core, |core| async move {
            validate::username(&account.username)?;
            validate::email(&account.email)?;
            validate::new_password(&account.password, core.password_policy)?;
            let hash = core.hasher.hash(account.password).await?;
            let db = core.db().await?;
            let userid = store::insert(
                &db,
                &NewUser {
                    username: &account.username,
                    email: &account.email,
                    password_hash: &hash,
                    admin: account.admin,
                    extra_data: account.extra_data.as_ref(),
                },
            )
            .await?;
            Ok(userid)
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<UserRow>")]
pub(super) struct Modify {
    pub userid: i64,
    pub username: Option<String>,
    pub email: Option<String>,
    pub extra_data: Option<Option<Value>>,
}

impl Handler<Modify> for UserActor {
    type Result = ResponseFuture<Result<UserRow>>;

    fn handle(&mut self, msg: Modify, _: &mut Context<Self>) -> Self::Result {
        run(&self.core, |core| async move {
            if let Some(name) = &msg.username {
                validate::username(name)?;
            }
            if let Some(address) = &msg.email {
                validate::email(address)?;
            }
            let db = core.db().await?;
            let changes = UserChanges {
                username: msg.username.as_deref(),
                email: msg.email.as_deref(),
                extra_data: msg.extra_data.as_ref().map(Option::as_ref),
            };
            let row = store::modify(&db, msg.userid, &changes).await?;
            core.cache.evict_user(msg.userid);
            row.ok_or(Error::UserNotFound)
        })
    }
}

/// Deletes a user with every session of theirs and records `user_deleted`; answers how many
/// sessions ended.
#[derive(Message)]
#[rtype(result = "Result<u64>")]
pub(super) struct Delete {
    pub userid: i64,
    pub origin: Origin,
}

impl Handler<Delete> for UserActor {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(&mut self, msg: Delete, _: &mut Context<Self>) -> Self::Result {
        run(&self.core, |core| async move {
            let mut db = core.db().await?;
            let tx = db.transaction().await?;
            let filter = SessionFilter {
                userid: msg.userid,
                expired_only: false,
                now: core.clock.now(),
                except: None,
            };
            let ended = sessions_store::kill(&tx, &filter).await?;
            let found = store::delete(&tx, msg.userid).await?;
            tx.commit().await?;
            drop(db);
            core.cache.evict_user(msg.userid);
            if !found {
                return Err(Error::UserNotFound);
            }
            record(&core, "user_deleted", Some(msg.userid), msg.origin, None).await;
            Ok(ended)
        })
    }
}

/// Sets or clears the admin flag and records `admin_changed`.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub(super) struct SetAdmin {
    pub userid: i64,
    pub admin: bool,
    pub origin: Origin,
}

impl Handler<SetAdmin> for UserActor {
    type Result = ResponseFuture<Result<()>>;

    fn handle(&mut self, msg: SetAdmin, _: &mut Context<Self>) -> Self::Result {
        run(&self.core, |core| async move {
            let db = core.db().await?;
            let found = store::set_admin(&db, msg.userid, msg.admin).await?;
            drop(db);
            core.cache.evict_user(msg.userid);
            if !found {
                return Err(Error::UserNotFound);
            }
            let detail = json!({ "admin": msg.admin });
            record(
                &core,
                "admin_changed",
                Some(msg.userid),
                msg.origin,
                Some(detail),
            )
            .await;
            Ok(())
        })
    }
}

/// A group change as done: the user's groups before and after.
pub struct GroupChange {
    pub before: Vec<String>,
    pub after: Vec<String>,
}

impl GroupChange {
    pub fn added(&self) -> Vec<&String> {
        self.after
            .iter()
            .filter(|g| !self.before.contains(g))
            .collect()
    }

    pub fn removed(&self) -> Vec<&String> {
        self.before
            .iter()
            .filter(|g| !self.after.contains(g))
            .collect()
    }
}

/// Replaces a user's groups (names checked and folded, then sorted and deduplicated) and records
/// `groups_changed`; every cached session of the user is forgotten, here and, through the
/// database's trigger, on every other instance.
#[derive(Message)]
#[rtype(result = "Result<GroupChange>")]
pub(super) struct SetGroups {
    pub userid: i64,
    pub groups: Vec<String>,
    pub origin: Origin,
}

impl Handler<SetGroups> for UserActor {
    type Result = ResponseFuture<Result<GroupChange>>;

    fn handle(&mut self, msg: SetGroups, _: &mut Context<Self>) -> Self::Result {
        run(&self.core, |core| async move {
            let after = groups::set(&msg.groups)?;
            let mut db = core.db().await?;
            let tx = db.transaction().await?;
            let before = groups_store::replace(&tx, msg.userid, &after).await?;
            tx.commit().await?;
            drop(db);
            core.cache.evict_user(msg.userid);
            let change = GroupChange {
                before: before.ok_or(Error::UserNotFound)?,
                after,
            };
            let detail = json!({
                "groups": change.after, "added": change.added(), "removed": change.removed(),
            });
            record(
                &core,
                "groups_changed",
                Some(msg.userid),
                msg.origin,
                Some(detail),
            )
            .await;
            Ok(change)
        })
    }
}

/// A password change: by an admin (no old password needed) or by the user (old one checked).
pub struct PasswordChange {
    pub userid: i64,
    pub new_password: String,
    pub old_password: Option<String>,
    /// The session that asked for the change, kept alive when it belongs to the same user.
    pub keep: Option<KeyDigest>,
    /// Who asks: the client's address is throttled and audited with old-password checks.
    pub origin: Origin,
    /// The user changes their own password (else an administrator does), for the audit trail.
    pub by_self: bool,
}

/// Checks the new password against the policy and the old one when given (throttled like a
/// login), sets the hash, ends the user's other sessions and records `password_changed`;
/// answers how many sessions ended.
#[derive(Message)]
#[rtype(result = "Result<u64>")]
pub(super) struct ChangePassword(pub PasswordChange);

impl Handler<ChangePassword> for UserActor {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(
        &mut self,
        ChangePassword(msg): ChangePassword,
        _: &mut Context<Self>,
    ) -> Self::Result {
        run(&self.core, |core| async move {
            validate::new_password(&msg.new_password, core.password_policy)?;
            let user = {
                let db = core.db().await?;
                store::find_by_id(&db, msg.userid).await?
            };
            let Some(user) = user else {
                return Err(Error::UserNotFound);
            };
            if let Some(old) = msg.old_password {
                check_old_password(&core, &user, old, msg.origin.client()).await?;
            }
            let hash = core.hasher.hash(msg.new_password).await?;
            let mut db = core.db().await?;
            let tx = db.transaction().await?;
            if !store::set_password_hash(&tx, msg.userid, &hash).await? {
                return Err(Error::UserNotFound);
            }
            let filter = SessionFilter {
                userid: msg.userid,
                expired_only: false,
                now: core.clock.now(),
                except: msg.keep.as_ref(),
            };
            let ended = sessions_store::kill(&tx, &filter).await?;
            tx.commit().await?;
            drop(db);
            core.cache.evict_user(msg.userid);
            let detail = json!({ "by": if msg.by_self { "self" } else { "admin" } });
            record(
                &core,
                "password_changed",
                Some(msg.userid),
                msg.origin,
                Some(detail),
            )
            .await;
            Ok(ended)
        })
    }
}

/// Checks a user's old password like a login: an attempt reserved on the throttle (account and
/// address) before hashing, failures counted, locked and audited.
async fn check_old_password(
    core: &AccountCore,
    user: &UserRow,
    old: String,
    client: Option<std::net::IpAddr>,
) -> Result<()> {
    let now = core.clock.now();
    let attempt = {
        let mut db = core.db().await?;
        core.guard
            .reserve(&mut db, &user.username, client, now)
            .await?
    };
    let ok = match core
        .hasher
        .verify(old, Some(user.password_hash.clone()))
        .await
    {
        Ok(ok) => ok,
        Err(e) => {
            core.guard.cancel(&core.db().await?, &attempt).await?;
            return Err(e.into());
        }
    };
    let db = core.db().await?;
    if ok {
        core.guard.succeeded(&db, &attempt).await?;
        return Ok(());
    }
    let locked = core.guard.failed(&db, &attempt, now).await?;
    let (userid, name) = (Some(user.userid), Some(user.username.as_str()));
    core.guard
        .record(
            &db,
            now,
            "password_change_failure",
            userid,
            name,
            client,
            None,
        )
        .await;
    if let Some(until) = locked {
        let detail = json!({ "locked_until": until });
        core.guard
            .record(&db, now, "lockout", userid, name, client, Some(detail))
            .await;
    }
    Err(Error::WrongOldPassword)
}

/// Lifts a brute-force lock of the account and records `unlock`; answers whether it was
/// throttled.
#[derive(Message)]
#[rtype(result = "Result<bool>")]
pub(super) struct Unlock {
    pub userid: i64,
    pub origin: Origin,
}

impl Handler<Unlock> for UserActor {
    type Result = ResponseFuture<Result<bool>>;

    fn handle(&mut self, msg: Unlock, _: &mut Context<Self>) -> Self::Result {
        run(&self.core, |core| async move {
            let db = core.db().await?;
            let user = store::find_by_id(&db, msg.userid)
                .await?
                .ok_or(Error::UserNotFound)?;
            let was_locked = core.guard.unlock(&db, &user.username).await?;
            drop(db);
            let detail = json!({ "was_throttled": was_locked });
            record(&core, "unlock", Some(msg.userid), msg.origin, Some(detail)).await;
            Ok(was_locked)
        })
    }
}
