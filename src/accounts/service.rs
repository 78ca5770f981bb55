//! `UserActor` performs account mutations and evicts the affected sessions from the cache, so
//! the very next check sees a rename, an admin or group change, a password change or a deletion.

use actix::{Actor, Addr, Context, Handler, Message, ResponseFuture};
use serde_json::Value;

use super::{AccountCore, Error, Origin, Result};
use crate::domain::{validate, KeyDigest};
use crate::sessions::{ask, SessionHandle};
use crate::store::groups::{self as groups_store, GroupCount};
use crate::store::sessions::{self as sessions_store, SessionFilter};
use crate::store::users::{self as store, NewUser, UserChanges, UserRow};

pub struct UserActor {
    core: AccountCore,
}

impl Actor for UserActor {
    type Context = Context<Self>;
}

/// A new account as the HTTP layer hands it over (already validated).
#[derive(Message)]
#[rtype(result = "Result<i64>")]
pub struct NewAccount {
    pub username: String,
    pub email: String,
    pub password: String,
    pub admin: bool,
    pub extra_data: Option<Value>,
}

impl Handler<NewAccount> for UserActor {
    type Result = ResponseFuture<Result<i64>>;

    fn handle(&mut self, msg: NewAccount, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let hash = core.hasher.hash(msg.password).await?;
            let db = core.db().await?;
            let userid = store::insert(
                &db,
                &NewUser {
                    username: &msg.username,
                    email: &msg.email,
                    password_hash: &hash,
                    admin: msg.admin,
                    extra_data: msg.extra_data.as_ref(),
                },
            )
            .await?;
            Ok(userid)
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<Option<UserRow>>")]
struct Modify {
    userid: i64,
    username: Option<String>,
    email: Option<String>,
    extra_data: Option<Option<Value>>,
}

impl Handler<Modify> for UserActor {
    type Result = ResponseFuture<Result<Option<UserRow>>>;

    fn handle(&mut self, msg: Modify, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let db = core.db().await?;
            let changes = UserChanges {
                username: msg.username.as_deref(),
                email: msg.email.as_deref(),
                extra_data: msg.extra_data.as_ref().map(Option::as_ref),
            };
            let row = store::modify(&db, msg.userid, &changes).await?;
            core.cache.evict_user(msg.userid);
            Ok(row)
        })
    }
}

/// Deletes a user with every session of theirs; answers how many sessions ended, or `None`
/// when there is no such user.
#[derive(Message)]
#[rtype(result = "Result<Option<u64>>")]
struct Delete {
    userid: i64,
}

impl Handler<Delete> for UserActor {
    type Result = ResponseFuture<Result<Option<u64>>>;

    fn handle(&mut self, msg: Delete, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
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
            core.cache.evict_user(msg.userid);
            Ok(found.then_some(ended))
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<bool>")]
struct SetAdmin {
    userid: i64,
    admin: bool,
}

impl Handler<SetAdmin> for UserActor {
    type Result = ResponseFuture<Result<bool>>;

    fn handle(&mut self, msg: SetAdmin, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let db = core.db().await?;
            let found = store::set_admin(&db, msg.userid, msg.admin).await?;
            core.cache.evict_user(msg.userid);
            Ok(found)
        })
    }
}

/// Replaces a user's groups (checked, folded, sorted, deduplicated); answers the groups before,
/// or `None` when there is no such user.
#[derive(Message)]
#[rtype(result = "Result<Option<Vec<String>>>")]
struct SetGroups {
    userid: i64,
    groups: Vec<String>,
}

impl Handler<SetGroups> for UserActor {
    type Result = ResponseFuture<Result<Option<Vec<String>>>>;

    fn handle(&mut self, msg: SetGroups, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let mut db = core.db().await?;
            let tx = db.transaction().await?;
            let before = groups_store::replace(&tx, msg.userid, &msg.groups).await?;
            tx.commit().await?;
            core.cache.evict_user(msg.userid);
            Ok(before)
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

/// A password change: by an admin (no old password needed) or by the user (old one checked).
#[derive(Message)]
#[rtype(result = "Result<u64>")]
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

impl Handler<PasswordChange> for UserActor {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(&mut self, msg: PasswordChange, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
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
            core.cache.evict_user(msg.userid);
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
        let detail = serde_json::json!({ "locked_until": until });
        core.guard
            .record(&db, now, "lockout", userid, name, client, Some(detail))
            .await;
    }
    Err(Error::WrongOldPassword)
}

/// The way into accounts: reads go straight to the store, mutations through the actor.
#[derive(Clone)]
pub struct UserHandle {
    pub(super) core: AccountCore,
    addr: Addr<UserActor>,
    pub(super) sessions: SessionHandle,
}

impl UserHandle {
    /// Whether the actor behind this handle is running.
    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }

    pub(crate) fn start(core: AccountCore, sessions: SessionHandle) -> Self {
        let addr = UserActor { core: core.clone() }.start();
        Self {
            core,
            addr,
            sessions,
        }
    }

    pub async fn create(&self, account: NewAccount) -> Result<i64> {
        validate::username(&account.username)?;
        validate::email(&account.email)?;
        validate::new_password(&account.password, self.core.password_policy)?;
        ask(&self.addr, account).await
    }

    pub async fn find_by_id(&self, userid: i64) -> Result<UserRow> {
        let db = self.core.db().await?;
        store::find_by_id(&db, userid)
            .await?
            .ok_or(Error::UserNotFound)
    }

    pub async fn find_by_username(&self, username: &str) -> Result<UserRow> {
        let db = self.core.db().await?;
        store::find_by_username(&db, username)
            .await?
            .ok_or(Error::UserNotFound)
    }

    pub async fn find_by_email(&self, email: &str) -> Result<UserRow> {
        let db = self.core.db().await?;
        store::find_by_email(&db, email)
            .await?
            .ok_or(Error::UserNotFound)
    }

    pub async fn list(&self, after: i64, limit: i64) -> Result<Vec<UserRow>> {
        let db = self.core.db().await?;
        Ok(store::list(&db, after, limit).await?)
    }

    pub async fn modify(
        &self,
        userid: i64,
        username: Option<String>,
        email: Option<String>,
        extra_data: Option<Option<Value>>,
    ) -> Result<UserRow> {
        if let Some(name) = &username {
            validate::username(name)?;
        }
        if let Some(address) = &email {
            validate::email(address)?;
        }
        ask(
            &self.addr,
            Modify {
                userid,
                username,
                email,
                extra_data,
            },
        )
        .await?
        .ok_or(Error::UserNotFound)
    }

    /// Deletes the user with their sessions and records `user_deleted`; answers how many
    /// sessions ended.
    pub async fn delete(&self, userid: i64, origin: Origin) -> Result<u64> {
        let ended = ask(&self.addr, Delete { userid })
            .await?
            .ok_or(Error::UserNotFound)?;
        self.audit("user_deleted", Some(userid), origin, None).await;
        Ok(ended)
    }

    /// Sets or clears the admin flag and records `admin_changed`.
    pub async fn set_admin(&self, userid: i64, admin: bool, origin: Origin) -> Result<()> {
        found(ask(&self.addr, SetAdmin { userid, admin }).await?)?;
        let detail = serde_json::json!({ "admin": admin });
        self.audit("admin_changed", Some(userid), origin, Some(detail))
            .await;
        Ok(())
    }

    /// Validates the new password against the policy, checks the old one when given (throttled
    /// like a login), sets the hash, ends the user's other sessions and records
    /// `password_changed`.
    /// Answers how many sessions ended.
    pub async fn change_password(&self, change: PasswordChange) -> Result<u64> {
        validate::new_password(&change.new_password, self.core.password_policy)?;
        let (userid, origin) = (change.userid, change.origin);
        let by = if change.by_self { "self" } else { "admin" };
        let ended = ask(&self.addr, change).await?;
        let detail = serde_json::json!({ "by": by });
        self.audit("password_changed", Some(userid), origin, Some(detail))
            .await;
        Ok(ended)
    }

    /// A user's groups, sorted.
    pub async fn groups_of(&self, userid: i64) -> Result<Vec<String>> {
        let db = self.core.db().await?;
        Ok(groups_store::of_user(&db, userid).await?)
    }

    /// Replaces a user's groups with `groups` (names checked and folded; the answer is sorted
    /// and deduplicated); every cached session of the user is forgotten, here and, through the
    /// database's trigger, on every other instance.
    pub async fn set_groups(
        &self,
        userid: i64,
        groups: &[String],
        origin: Origin,
    ) -> Result<GroupChange> {
        let after = crate::domain::groups::set(groups)?;
        let before = ask(
            &self.addr,
            SetGroups {
                userid,
                groups: after.clone(),
            },
        )
        .await?
        .ok_or(Error::UserNotFound)?;
        let change = GroupChange { before, after };
        let detail = serde_json::json!({
            "groups": change.after, "added": change.added(), "removed": change.removed(),
        });
        self.audit("groups_changed", Some(userid), origin, Some(detail))
            .await;
        Ok(change)
    }

    /// Every group with its member count.
    pub async fn list_groups(&self) -> Result<Vec<GroupCount>> {
        let db = self.core.db().await?;
        Ok(groups_store::list(&db).await?)
    }

    /// A page of a group's members (`name` checked and folded); not found when the group has
    /// no member at all.
    pub async fn group_members(&self, name: &str, after: i64, limit: i64) -> Result<Vec<UserRow>> {
        let name = crate::domain::groups::name(name)?;
        let db = self.core.db().await?;
        let page = groups_store::members(&db, &name, after, limit).await?;
        if page.is_empty() && !groups_store::exists(&db, &name).await? {
            return Err(Error::GroupNotFound);
        }
        Ok(page)
    }

    /// Lifts a brute-force lock of the account and records `unlock`; true when it was throttled.
    pub async fn unlock(&self, userid: i64, origin: Origin) -> Result<bool> {
        let user = self.find_by_id(userid).await?;
        let db = self.core.db().await?;
        let was_locked = self.core.guard.unlock(&db, &user.username).await?;
        drop(db);
        let detail = serde_json::json!({ "was_throttled": was_locked });
        self.audit("unlock", Some(userid), origin, Some(detail))
            .await;
        Ok(was_locked)
    }

    /// Writes a security event to the audit trail; a failure is logged, never fatal.
    pub async fn audit(
        &self,
        kind: &str,
        userid: Option<i64>,
        origin: Origin,
        detail: Option<Value>,
    ) {
        let detail = origin.mark(detail);
        match self.core.db().await {
            Ok(db) => {
                let now = self.core.clock.now();
                self.core
                    .guard
                    .record(&db, now, kind, userid, None, origin.client(), detail)
                    .await
            }
            Err(e) => tracing::warn!(kind, error = %e, "could not write an audit event"),
        }
    }

    /// Password operations waiting for a hashing thread (a metric).
    pub fn hash_queue_depth(&self) -> usize {
        self.core.hasher.queue_depth()
    }
}

fn found(exists: bool) -> Result<()> {
    if exists {
        Ok(())
    } else {
        Err(Error::UserNotFound)
    }
}
