//! The `sessions` table: sessions known by the SHA-256 digest of their key.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Row;

use super::{GenericClient, StoreError, StoreResult};
use crate::domain::KeyDigest;

/// A session joined with the identity of its user, as a check needs it.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    pub session_id: i64,
    pub userid: i64,
    pub username: String,
    pub email: String,
    pub admin: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub max_expires_at: Option<DateTime<Utc>>,
    pub extra_data: Option<Value>,
    /// A "remember me" session: it slides by `session.remember_ttl`.
    pub remember: bool,
    /// The user's groups, sorted and joined by commas (empty when none).
    pub groups: String,
}

/// A session as listed to administrators and to its owner.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub session_id: i64,
    pub userid: i64,
    pub username: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub extra_data: Option<Value>,
    /// The client's address and user agent at login (absent for older sessions).
    pub client_addr: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub remember: bool,
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).map_err(StoreError::Db)
}

/// A new session's fields.
pub struct NewSession<'a> {
    pub digest: &'a KeyDigest,
    pub userid: i64,
    /// The password hash the login verified.
    pub verified_hash: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub max_expires_at: Option<DateTime<Utc>>,
    pub extra_data: Option<&'a Value>,
    pub remember: bool,
    pub client_addr: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// Creates a session only while the user still exists with the password hash the login
/// verified: the user row is locked, so a concurrent password change (which updates the hash
/// and deletes the sessions in one transaction) either sees this session and deletes it, or
/// commits first and this insert finds no row. `None` when there was none. The lock also
/// serializes one user's logins until their transactions end, so that `end_beyond_cap` in the
/// same transaction sees every other session of the user.
pub async fn insert(db: &impl GenericClient, s: &NewSession<'_>) -> StoreResult<Option<i64>> {
    const SQL: &str = "INSERT INTO sessions (key_digest, userid, created_at, last_seen_at, expires_at, max_expires_at, extra_data,
                                            remember, client_addr, user_agent)
                       SELECT $1, u.userid, $3, $3, $4, $5, $6, $8, $9, $10 FROM users u
                       WHERE u.userid = $2 AND u.password_hash = $7
                       FOR NO KEY UPDATE
                       RETURNING session_id";
    let stmt = db.prepare_cached(SQL).await?;
    let row = db
        .query_opt(
            &stmt,
            &[
                &s.digest.as_bytes(),
                &s.userid,
                &s.now,
                &s.expires_at,
                &s.max_expires_at,
                &s.extra_data,
                &s.verified_hash,
                &s.remember,
                &s.client_addr,
                &s.user_agent,
            ],
        )
        .await?;
    row.map(|r| get(&r, 0)).transpose()
}

/// The sessions with these digests, each joined with its user; digests without a session are
/// simply absent from the answer.
pub async fn lookup_many(
    db: &impl GenericClient,
    digests: &[KeyDigest],
) -> StoreResult<HashMap<KeyDigest, SessionIdentity>> {
    const SQL: &str = "SELECT s.key_digest, s.session_id, s.userid, u.username, u.email, u.admin,
                              s.created_at, s.expires_at, s.max_expires_at, s.extra_data, s.remember,
                              (SELECT string_agg(g.name, ',' ORDER BY g.name COLLATE \"C\")
                               FROM user_groups g WHERE g.userid = s.userid)
                       FROM sessions s JOIN users u ON u.userid = s.userid
                       WHERE s.key_digest = ANY($1)";
    let stmt = db.prepare_cached(SQL).await?;
    let keys: Vec<&[u8]> = digests.iter().map(KeyDigest::as_bytes).collect();
    let rows = db.query(&stmt, &[&keys]).await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let digest: &[u8] = get(&row, 0)?;
        let digest = KeyDigest(
            digest
                .try_into()
                .map_err(|_| StoreError::Data("a session key digest is not 32 bytes".into()))?,
        );
        found.insert(
            digest,
            SessionIdentity {
                session_id: get(&row, 1)?,
                userid: get(&row, 2)?,
                username: get(&row, 3)?,
                email: get(&row, 4)?,
                admin: get(&row, 5)?,
                created_at: get(&row, 6)?,
                expires_at: get(&row, 7)?,
                max_expires_at: get(&row, 8)?,
                extra_data: get(&row, 9)?,
                remember: get(&row, 10)?,
                groups: get::<Option<String>>(&row, 11)?.unwrap_or_default(),
            },
        );
    }
    Ok(found)
}

/// Ends the user's sessions beyond a cap: `new` (the session just created) and the `others`
/// newest of the rest stay, live sessions before expired ones, so the oldest end. Run in the
/// transaction of the `insert` that created `new` (its row lock makes the count exact).
/// Returns the digests of the ended sessions.
pub async fn end_beyond_cap(
    db: &impl GenericClient,
    userid: i64,
    new: i64,
    others: i64,
    now: DateTime<Utc>,
) -> StoreResult<Vec<KeyDigest>> {
    const SQL: &str = "DELETE FROM sessions WHERE session_id IN (
                           SELECT session_id FROM sessions WHERE userid = $1 AND session_id <> $2
                           ORDER BY expires_at > $4 DESC, created_at DESC, session_id DESC
                           OFFSET $3)
                       RETURNING key_digest";
    let stmt = db.prepare_cached(SQL).await?;
    let rows = db.query(&stmt, &[&userid, &new, &others, &now]).await?;
    digests_in(&rows)
}

/// The key digests in the first column of `rows`.
fn digests_in(rows: &[Row]) -> StoreResult<Vec<KeyDigest>> {
    rows.iter()
        .map(|r| {
            let bytes: Vec<u8> = get(r, 0)?;
            KeyDigest::from_slice(&bytes)
                .ok_or_else(|| StoreError::Data("key digest is not 32 bytes".into()))
        })
        .collect()
}

/// Writes many slid expiries in one statement; returns the digests of the sessions that still
/// exist (the others were deleted meanwhile).
pub async fn refresh_many(
    db: &impl GenericClient,
    digests: &[&[u8]],
    expires: &[DateTime<Utc>],
    seen: &[DateTime<Utc>],
) -> StoreResult<Vec<KeyDigest>> {
    // The rows are locked in key-digest order first (so two batches cannot deadlock each
    // other), and a row is only written by a refresh seen later than the one it holds: a late
    // batch (from a stalled flush or another instance) never moves an expiry backwards.
    const SQL: &str = "WITH v AS (
                           SELECT * FROM unnest($1::bytea[], $2::timestamptz[], $3::timestamptz[])
                               AS v(d, e, n)),
                       locked AS (
                           SELECT s.key_digest FROM sessions s JOIN v ON s.key_digest = v.d
                           ORDER BY s.key_digest FOR NO KEY UPDATE OF s),
                       written AS (
                           UPDATE sessions s SET expires_at = v.e, last_seen_at = v.n
                           FROM v, locked
                           WHERE s.key_digest = v.d AND locked.key_digest = v.d
                             AND s.last_seen_at <= v.n
                           RETURNING 1)
                       SELECT key_digest FROM locked";
    let stmt = db.prepare_cached(SQL).await?;
    let rows = db.query(&stmt, &[&digests, &expires, &seen]).await?;
    digests_in(&rows)
}

/// Deletes the session with this key; returns its owner when there was one.
pub async fn delete_by_digest(
    db: &impl GenericClient,
    digest: &KeyDigest,
) -> StoreResult<Option<i64>> {
    let stmt = db
        .prepare_cached("DELETE FROM sessions WHERE key_digest = $1 RETURNING userid")
        .await?;
    db.query_opt(&stmt, &[&digest.as_bytes()])
        .await?
        .map(|r| get(&r, 0))
        .transpose()
}

/// Deletes a session by its public id, when `owner` is given only if it is theirs; returns its
/// key digest when there was one.
pub async fn delete_by_id(
    db: &impl GenericClient,
    session_id: i64,
    owner: Option<i64>,
) -> StoreResult<Option<KeyDigest>> {
    let stmt = db
        .prepare_cached(
            "DELETE FROM sessions WHERE session_id = $1 AND ($2::bigint IS NULL OR userid = $2)
             RETURNING key_digest",
        )
        .await?;
    match db.query_opt(&stmt, &[&session_id, &owner]).await? {
        None => Ok(None),
        Some(row) => {
            let bytes: Vec<u8> = get(&row, 0)?;
            KeyDigest::from_slice(&bytes)
                .map(Some)
                .ok_or_else(|| StoreError::Data("key digest is not 32 bytes".into()))
        }
    }
}

/// Which sessions a listing or a kill covers.
#[derive(Debug, Clone, Copy)]
pub struct SessionFilter<'a> {
    /// 0 means every user.
    pub userid: i64,
    pub expired_only: bool,
    pub now: DateTime<Utc>,
    /// A session to leave out (the caller's own).
    pub except: Option<&'a KeyDigest>,
}

const FILTER: &str =
    "($1::bigint = 0 OR s.userid = $1) AND (NOT $2::boolean OR s.expires_at <= $3::timestamptz)
                      AND ($4::bytea IS NULL OR s.key_digest <> $4)";

/// A page of the sessions the filter covers: those with `session_id > after`, in session_id
/// order, at most `limit`.
pub async fn list(
    db: &impl GenericClient,
    f: &SessionFilter<'_>,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<SessionRow>> {
    let sql = format!(
        "SELECT s.session_id, s.userid, u.username, s.created_at, s.expires_at, s.last_seen_at, s.extra_data,
                s.client_addr, s.user_agent, s.remember
         FROM sessions s JOIN users u ON u.userid = s.userid
         WHERE {FILTER} AND s.session_id > $5 ORDER BY s.session_id LIMIT $6"
    );
    let stmt = db.prepare_cached(&sql).await?;
    let except = f.except.map(|d| d.as_bytes());
    let rows = db
        .query(
            &stmt,
            &[&f.userid, &f.expired_only, &f.now, &except, &after, &limit],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(SessionRow {
                session_id: get(row, 0)?,
                userid: get(row, 1)?,
                username: get(row, 2)?,
                created_at: get(row, 3)?,
                expires_at: get(row, 4)?,
                last_seen_at: get(row, 5)?,
                extra_data: get(row, 6)?,
                client_addr: get(row, 7)?,
                user_agent: get(row, 8)?,
                remember: get(row, 9)?,
            })
        })
        .collect()
}

/// How many of the user's sessions are live and how many expired (not yet purged) at `now`.
pub async fn count(
    db: &impl GenericClient,
    userid: i64,
    now: DateTime<Utc>,
) -> StoreResult<(i64, i64)> {
    const SQL: &str = "SELECT count(*) FILTER (WHERE expires_at > $2),
                              count(*) FILTER (WHERE expires_at <= $2)
                       FROM sessions WHERE userid = $1";
    let stmt = db.prepare_cached(SQL).await?;
    let row = db.query_one(&stmt, &[&userid, &now]).await?;
    Ok((get(&row, 0)?, get(&row, 1)?))
}

/// Deletes the sessions the filter covers; returns how many.
pub async fn kill(db: &impl GenericClient, f: &SessionFilter<'_>) -> StoreResult<u64> {
    let sql = format!("DELETE FROM sessions s WHERE {FILTER}");
    let stmt = db.prepare_cached(&sql).await?;
    let except = f.except.map(|d| d.as_bytes());
    Ok(db
        .execute(&stmt, &[&f.userid, &f.expired_only, &f.now, &except])
        .await?)
}

/// An arbitrary constant naming the janitor's advisory lock: one instance purges at a time.
const PURGE_LOCK: i64 = 0x7067_7573_6572_7302;

/// Takes the janitor's purge lock for this connection's session; false when another instance
/// holds it.
pub async fn try_lock_purge(db: &impl GenericClient) -> StoreResult<bool> {
    let row = db
        .query_one("SELECT pg_try_advisory_lock($1)", &[&PURGE_LOCK])
        .await?;
    row.try_get(0).map_err(StoreError::Db)
}

/// Releases the purge lock taken by [`try_lock_purge`] on this connection.
pub async fn unlock_purge(db: &impl GenericClient) -> StoreResult<()> {
    db.execute("SELECT pg_advisory_unlock($1)", &[&PURGE_LOCK])
        .await?;
    Ok(())
}

/// Deletes up to `batch` expired sessions, skipping rows other transactions hold, in a
/// transaction marked as the janitor's purge (`pgusers.purge`), the one delete the trigger does
/// not announce (migration 6).
pub async fn purge_expired_batch(
    db: &mut impl GenericClient,
    now: DateTime<Utc>,
    batch: i64,
) -> StoreResult<u64> {
    const SQL: &str = "DELETE FROM sessions WHERE session_id IN (
                           SELECT session_id FROM sessions WHERE expires_at <= $1
                           ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)";
    let tx = db.transaction().await?;
    tx.batch_execute("SET LOCAL pgusers.purge = 'on'").await?;
    let stmt = tx.prepare_cached(SQL).await?;
    let deleted = tx.execute(&stmt, &[&now, &batch]).await?;
    tx.commit().await?;
    Ok(deleted)
}
