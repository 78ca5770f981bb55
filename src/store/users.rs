//! The `users` table: accounts, their password hashes and admin flags, and the confusable
//! skeleton of each username under a unique index (so no name may look like another).

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;

use super::{GenericClient, StoreError, StoreResult};
use crate::domain::validate::username_skeleton;

/// An account as stored, including the password hash (which never leaves the server).
#[derive(Debug, Clone)]
pub struct UserRow {
    pub userid: i64,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub extra_data: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub password_hash: String,
}

const COLUMNS: &str = "userid, username, email, admin, extra_data, created_at, password_hash";
/// `COLUMNS` of a query where the users table is `u`.
pub(super) const COLUMNS_OF_U: &str =
    "u.userid, u.username, u.email, u.admin, u.extra_data, u.created_at, u.password_hash";

pub(super) fn from_row(row: &Row) -> StoreResult<UserRow> {
    Ok(UserRow {
        userid: row.try_get(0).map_err(StoreError::Db)?,
        username: row.try_get(1).map_err(StoreError::Db)?,
        email: row.try_get(2).map_err(StoreError::Db)?,
        admin: row.try_get(3).map_err(StoreError::Db)?,
        extra_data: row.try_get(4).map_err(StoreError::Db)?,
        created_at: row.try_get(5).map_err(StoreError::Db)?,
        password_hash: row.try_get(6).map_err(StoreError::Db)?,
    })
}

/// A new account's fields.
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub admin: bool,
    pub extra_data: Option<&'a Value>,
}

pub async fn insert(db: &impl GenericClient, user: &NewUser<'_>) -> StoreResult<i64> {
    const SQL: &str =
        "INSERT INTO users (username, email, password_hash, admin, extra_data, username_skeleton)
                       VALUES ($1, $2, $3, $4, $5, $6) RETURNING userid";
    let stmt = db.prepare_cached(SQL).await?;
    let row = db
        .query_one(
            &stmt,
            &[
                &user.username,
                &user.email,
                &user.password_hash,
                &user.admin,
                &user.extra_data,
                &username_skeleton(user.username),
            ],
        )
        .await?;
    row.try_get(0).map_err(StoreError::Db)
}

async fn find_one(
    db: &impl GenericClient,
    sql: &str,
    param: &(dyn tokio_postgres::types::ToSql + Sync),
) -> StoreResult<Option<UserRow>> {
    let stmt = db.prepare_cached(sql).await?;
    db.query_opt(&stmt, &[param])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn find_by_id(db: &impl GenericClient, userid: i64) -> StoreResult<Option<UserRow>> {
    find_one(
        db,
        &format!("SELECT {COLUMNS} FROM users WHERE userid = $1"),
        &userid,
    )
    .await
}

/// Looks a user up by name, ignoring letter case.
pub async fn find_by_username(
    db: &impl GenericClient,
    username: &str,
) -> StoreResult<Option<UserRow>> {
    // No account can have a NUL in its name (PostgreSQL text cannot hold one).
    if username.contains('\0') {
        return Ok(None);
    }
    find_one(
        db,
        &format!("SELECT {COLUMNS} FROM users WHERE lower(username) = lower($1)"),
        &username,
    )
    .await
}

/// Looks a user up by email, ignoring letter case.
pub async fn find_by_email(db: &impl GenericClient, email: &str) -> StoreResult<Option<UserRow>> {
    if email.contains('\0') {
        return Ok(None);
    }
    find_one(
        db,
        &format!("SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1)"),
        &email,
    )
    .await
}

/// Users with `userid > after`, in userid order, at most `limit`.
pub async fn list(db: &impl GenericClient, after: i64, limit: i64) -> StoreResult<Vec<UserRow>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE userid > $1 ORDER BY userid LIMIT $2");
    let stmt = db.prepare_cached(&sql).await?;
    db.query(&stmt, &[&after, &limit])
        .await?
        .iter()
        .map(from_row)
        .collect()
}

/// The fields a modification may change; `extra_data: Some(None)` clears it.
pub struct UserChanges<'a> {
    pub username: Option<&'a str>,
    pub email: Option<&'a str>,
    pub extra_data: Option<Option<&'a Value>>,
}

pub async fn modify(
    db: &impl GenericClient,
    userid: i64,
    changes: &UserChanges<'_>,
) -> StoreResult<Option<UserRow>> {
    let sql = format!(
        "UPDATE users SET username = COALESCE($2, username), email = COALESCE($3, email),
                extra_data = CASE WHEN $4 THEN $5 ELSE extra_data END,
                username_skeleton = CASE WHEN $2::text IS NULL THEN username_skeleton ELSE $6 END
         WHERE userid = $1 RETURNING {COLUMNS}"
    );
    let stmt = db.prepare_cached(&sql).await?;
    let set_extra = changes.extra_data.is_some();
    let extra = changes.extra_data.flatten();
    let skeleton = changes.username.map(username_skeleton);
    db.query_opt(
        &stmt,
        &[
            &userid,
            &changes.username,
            &changes.email,
            &set_extra,
            &extra,
            &skeleton,
        ],
    )
    .await?
    .as_ref()
    .map(from_row)
    .transpose()
}

/// Deletes a user (and, by cascade, their sessions); false when there was no such user.
pub async fn delete(db: &impl GenericClient, userid: i64) -> StoreResult<bool> {
    let stmt = db
        .prepare_cached("DELETE FROM users WHERE userid = $1")
        .await?;
    Ok(db.execute(&stmt, &[&userid]).await? == 1)
}

pub async fn set_password_hash(
    db: &impl GenericClient,
    userid: i64,
    hash: &str,
) -> StoreResult<bool> {
    let stmt = db
        .prepare_cached("UPDATE users SET password_hash = $2 WHERE userid = $1")
        .await?;
    Ok(db.execute(&stmt, &[&userid, &hash]).await? == 1)
}

pub async fn set_admin(db: &impl GenericClient, userid: i64, admin: bool) -> StoreResult<bool> {
    let stmt = db
        .prepare_cached("UPDATE users SET admin = $2 WHERE userid = $1")
        .await?;
    Ok(db.execute(&stmt, &[&userid, &admin]).await? == 1)
}

/// Replaces a password hash only if it is still `old` (a rehash that lost a race does nothing).
pub async fn replace_password_hash(
    db: &impl GenericClient,
    userid: i64,
    old: &str,
    new: &str,
) -> StoreResult<bool> {
    let stmt = db
        .prepare_cached(
            "UPDATE users SET password_hash = $3 WHERE userid = $1 AND password_hash = $2",
        )
        .await?;
    Ok(db.execute(&stmt, &[&userid, &old, &new]).await? == 1)
}

/// Whether any password hash imported from the Python library is still stored.
pub async fn any_legacy_hash(db: &impl GenericClient) -> StoreResult<bool> {
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM users WHERE password_hash LIKE '$pbkdf2-sha512$%')",
            &[],
        )
        .await?;
    row.try_get(0).map_err(StoreError::Db)
}

/// A user whose name looks like another user's (the same skeleton), written before the rule
/// existed: it keeps working, without a skeleton, until one of the two is renamed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookAlike {
    pub userid: i64,
    pub username: String,
    pub like_userid: i64,
    pub like_username: String,
}

/// Rows per statement when filling skeletons.
const FILL_BATCH: i64 = 5000;

/// Gives every user without a skeleton (rows from before migration 9, or renamed by an older
/// binary) the skeleton of its name, batch by batch; returns those left without one because
/// another user already holds it. Run outside a transaction: a batch that collides is retried
/// row by row.
pub async fn fill_skeletons(db: &impl GenericClient) -> StoreResult<Vec<LookAlike>> {
    let select = db
        .prepare_cached(
            "SELECT userid, username FROM users WHERE username_skeleton IS NULL AND userid > $1
             ORDER BY userid LIMIT $2",
        )
        .await?;
    let update_many = db
        .prepare_cached(
            "UPDATE users u SET username_skeleton = v.skeleton
             FROM unnest($1::bigint[], $2::text[]) AS v(userid, skeleton)
             WHERE u.userid = v.userid AND u.username_skeleton IS NULL",
        )
        .await?;
    let update_one = db
        .prepare_cached(
            "UPDATE users SET username_skeleton = $2 WHERE userid = $1 AND username_skeleton IS NULL",
        )
        .await?;
    let holder = db
        .prepare_cached("SELECT userid, username FROM users WHERE username_skeleton = $1")
        .await?;
    let mut look_alikes = Vec::new();
    let mut after = 0i64;
    loop {
        let rows = db.query(&select, &[&after, &FILL_BATCH]).await?;
        let Some(last) = rows.last() else {
            return Ok(look_alikes);
        };
        after = last.try_get(0).map_err(StoreError::Db)?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut names = Vec::with_capacity(rows.len());
        for row in &rows {
            ids.push(row.try_get::<_, i64>(0).map_err(StoreError::Db)?);
            names.push(row.try_get::<_, String>(1).map_err(StoreError::Db)?);
        }
        let skeletons: Vec<String> = names.iter().map(|n| username_skeleton(n)).collect();
        match db.execute(&update_many, &[&ids, &skeletons]).await {
            Ok(_) => continue,
            Err(e) => match StoreError::from(e) {
                StoreError::Conflict(_) => {}
                other => return Err(other),
            },
        }
        for ((userid, username), skeleton) in ids.into_iter().zip(names).zip(skeletons) {
            let Err(e) = db.execute(&update_one, &[&userid, &skeleton]).await else {
                continue;
            };
            match StoreError::from(e) {
                StoreError::Conflict(_) => {}
                other => return Err(other),
            }
            // The holder may have been renamed meanwhile: then the next start fills this row.
            if let Some(other) = db.query_opt(&holder, &[&skeleton]).await? {
                look_alikes.push(LookAlike {
                    userid,
                    username,
                    like_userid: other.try_get(0).map_err(StoreError::Db)?,
                    like_username: other.try_get(1).map_err(StoreError::Db)?,
                });
            }
        }
    }
}
