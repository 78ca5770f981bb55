//! `UserHandle`, the way into accounts for both faces: reads go straight to the store, every
//! mutation goes to the [`UserActor`], which owns it from validation to the audit event.

use actix::{Actor, Addr};
use serde_json::Value;

use super::actor::{
    self, ChangePassword, Create, Delete, GroupChange, Modify, NewAccount, PasswordChange,
    SetAdmin, SetGroups, Unlock, UserActor,
};
use super::{AccountCore, Error, Origin, Result};
use crate::sessions::{ask, SessionHandle};
use crate::store::groups::{self as groups_store, GroupCount};
use crate::store::users::{self as store, UserRow};

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

    /// Creates an account (username, email and password checked); answers its userid.
    pub async fn create(&self, account: NewAccount) -> Result<i64> {
        ask(&self.addr, Create(account)).await
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

    /// Changes what is given of a user's name, email and extra data (checked); answers the
    /// user as changed.
    pub async fn modify(
        &self,
        userid: i64,
        username: Option<String>,
        email: Option<String>,
        extra_data: Option<Option<Value>>,
    ) -> Result<UserRow> {
        let change = Modify {
            userid,
            username,
            email,
            extra_data,
        };
        ask(&self.addr, change).await
    }

    /// Deletes the user with their sessions and records `user_deleted`; answers how many
    /// sessions ended.
    pub async fn delete(&self, userid: i64, origin: Origin) -> Result<u64> {
        ask(&self.addr, Delete { userid, origin }).await
    }

    /// Sets or clears the admin flag and records `admin_changed`.
    pub async fn set_admin(&self, userid: i64, admin: bool, origin: Origin) -> Result<()> {
        let change = SetAdmin {
            userid,
            admin,
            origin,
        };
        ask(&self.addr, change).await
    }

    /// Validates the new password against the policy, checks the old one when given (throttled
    /// like a login), sets the hash, ends the user's other sessions and records
    /// `password_changed`. Answers how many sessions ended.
    pub async fn change_password(&self, change: PasswordChange) -> Result<u64> {
        ask(&self.addr, ChangePassword(change)).await
    }

    /// A user's groups, sorted.
    pub async fn groups_of(&self, userid: i64) -> Result<Vec<String>> {
        let db = self.core.db().await?;
        Ok(groups_store::of_user(&db, userid).await?)
    }

    /// Replaces a user's groups with `groups` (names checked and folded; the answer is sorted
    /// and deduplicated) and records `groups_changed`.
    pub async fn set_groups(
        &self,
        userid: i64,
        groups: &[String],
        origin: Origin,
    ) -> Result<GroupChange> {
        let change = SetGroups {
            userid,
            groups: groups.to_vec(),
            origin,
        };
        ask(&self.addr, change).await
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
        ask(&self.addr, Unlock { userid, origin }).await
    }

    /// Writes a security event to the audit trail (for events the faces observe themselves,
    /// such as session kills); a failure is logged, never fatal.
    pub async fn audit(
        &self,
        kind: &str,
        userid: Option<i64>,
        origin: Origin,
        detail: Option<Value>,
    ) {
        actor::record(&self.core, kind, userid, origin, detail).await
    }

    /// Password operations waiting for a hashing thread (a metric).
    pub fn hash_queue_depth(&self) -> usize {
        self.core.hasher.queue_depth()
    }
}
