//! The `login_failures` table (brute-force throttling shared by every instance) and the
//! `audit_events` table (security events). Throttle keys are folded by PostgreSQL's `lower()`,
//! the function the account lookup and its unique index use, so every spelling that finds an
//! account shares its bucket.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{GenericClient, StoreError, StoreResult};

/// When the throttle row `(scope, key)` is locked until, if it is locked at `now`.
pub async fn locked_until(
    db: &impl GenericClient,
    scope: &str,
    key: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<DateTime<Utc>>> {
    let stmt = db
        .prepare_cached("SELECT locked_until FROM login_failures WHERE scope = $1 AND key = lower($2) AND locked_until > $3")
        .await?;
    match db.query_opt(&stmt, &[&scope, &key, &now]).await? {
        Some(row) => row.try_get(0).map_err(StoreError::Db),
        None => Ok(None),
    }
}

/// Reserves one login attempt on `(scope, key)` before any password is hashed, in one
/// statement: the row counts attempts in flight and failed ones in the current window (starting
/// over when the last one is older than `window_secs`). Returns the attempt's number in the
/// window, or `None` when the row is locked or its attempts are used up (in flight included).
pub async fn reserve(
    db: &impl GenericClient,
    scope: &str,
    key: &str,
    now: DateTime<Utc>,
    window_secs: f64,
    threshold: i32,
) -> StoreResult<Option<i32>> {
    const SQL: &str = "INSERT INTO login_failures AS f (scope, key, failures, first_failure_at, last_failure_at)
                       VALUES ($1, lower($2), 1, $3, $3)
                       ON CONFLICT (scope, key) DO UPDATE SET
                         failures = CASE WHEN f.last_failure_at < $3 - make_interval(secs => $4) THEN 1 ELSE f.failures + 1 END,
                         first_failure_at = CASE WHEN f.last_failure_at < $3 - make_interval(secs => $4) THEN $3 ELSE f.first_failure_at END,
                         allowed = CASE WHEN f.last_failure_at < $3 - make_interval(secs => $4) THEN NULL ELSE f.allowed END,
                         last_failure_at = $3
                       WHERE (f.locked_until IS NULL OR f.locked_until <= $3)
                         AND (f.last_failure_at < $3 - make_interval(secs => $4) OR f.failures < COALESCE(f.allowed, $5))
                       RETURNING failures";
    let stmt = db.prepare_cached(SQL).await?;
    match db
        .query_opt(&stmt, &[&scope, &key, &now, &window_secs, &threshold])
        .await?
    {
        Some(row) => row.try_get(0).map(Some).map_err(StoreError::Db),
        None => Ok(None),
    }
}

/// Locks `(scope, key)` until `until` (never shortening a longer lock) after its attempt number
/// `attempt` failed; the row then admits one attempt more than it has seen.
pub async fn lock(
    db: &impl GenericClient,
    scope: &str,
    key: &str,
    until: DateTime<Utc>,
    attempt: i32,
) -> StoreResult<()> {
    let stmt = db
        .prepare_cached(
            "UPDATE login_failures SET locked_until = GREATEST(locked_until, $3),
                                       allowed = GREATEST(failures, $4) + 1
             WHERE scope = $1 AND key = lower($2)",
        )
        .await?;
    db.execute(&stmt, &[&scope, &key, &until, &attempt]).await?;
    Ok(())
}

/// Gives back attempts: after a success the `attempts` oldest ones (those counted before the
/// success began), never the ones made since; one when no password was checked. A row given back
/// every attempt forgets its allowance after a lock too.
pub async fn release(
    db: &impl GenericClient,
    scope: &str,
    key: &str,
    attempts: i32,
) -> StoreResult<()> {
    let stmt = db
        .prepare_cached(
            "UPDATE login_failures SET failures = GREATEST(failures - $3, 0),
                                       allowed = CASE WHEN failures > $3 THEN allowed END
             WHERE scope = $1 AND key = lower($2)",
        )
        .await?;
    db.execute(&stmt, &[&scope, &key, &attempts]).await?;
    Ok(())
}

/// Forgets the failures of `(scope, key)`; returns whether there were any (or a lock). A row
/// whose attempts were all given back by successes counts as none.
pub async fn clear(db: &impl GenericClient, scope: &str, key: &str) -> StoreResult<bool> {
    let stmt = db
        .prepare_cached(
            "WITH cleared AS (DELETE FROM login_failures WHERE scope = $1 AND key = lower($2)
                              RETURNING failures, locked_until)
             SELECT COALESCE(bool_or(failures > 0 OR locked_until > now()), false) FROM cleared",
        )
        .await?;
    db.query_one(&stmt, &[&scope, &key])
        .await?
        .try_get(0)
        .map_err(StoreError::Db)
}

/// Runs `sql` (a `DELETE` of at most `$2` rows older than `$1`) until a batch comes back short,
/// yielding between batches so that no single statement holds millions of rows (after a
/// retention change or a long janitor outage); returns how many rows it deleted.
async fn purge_in_batches(
    db: &impl GenericClient,
    sql: &str,
    before: DateTime<Utc>,
    batch: i64,
) -> StoreResult<u64> {
    let stmt = db.prepare_cached(sql).await?;
    let mut total = 0;
    loop {
        let deleted = db.execute(&stmt, &[&before, &batch]).await?;
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Deletes throttle rows whose last failure is older than `before` and that are not locked,
/// `batch` rows per statement, skipping rows a login holds.
pub async fn purge_failures(
    db: &impl GenericClient,
    before: DateTime<Utc>,
    batch: i64,
) -> StoreResult<u64> {
    const SQL: &str = "DELETE FROM login_failures WHERE (scope, key) IN (
                           SELECT scope, key FROM login_failures
                           WHERE last_failure_at < $1 AND (locked_until IS NULL OR locked_until < $1)
                           LIMIT $2 FOR UPDATE SKIP LOCKED)";
    purge_in_batches(db, SQL, before, batch).await
}

/// One security event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event_id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub userid: Option<i64>,
    pub username: Option<String>,
    pub client_addr: Option<String>,
    pub instance: String,
    pub detail: Option<Value>,
}

pub async fn record_event(db: &impl GenericClient, e: &AuditEvent) -> StoreResult<()> {
    const SQL: &str =
        "INSERT INTO audit_events (at, kind, userid, username, client_addr, instance, detail)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let stmt = db.prepare_cached(SQL).await?;
    db.execute(
        &stmt,
        &[
            &e.at,
            &e.kind,
            &e.userid,
            &e.username,
            &e.client_addr,
            &e.instance,
            &e.detail,
        ],
    )
    .await?;
    Ok(())
}

/// Events with `event_id > after` (of one user when `userid` is given), oldest first.
pub async fn list_events(
    db: &impl GenericClient,
    after: i64,
    limit: i64,
    userid: Option<i64>,
) -> StoreResult<Vec<AuditEvent>> {
    const SQL: &str = "SELECT event_id, at, kind, userid, username, client_addr, instance, detail FROM audit_events
                       WHERE event_id > $1 AND ($3::bigint IS NULL OR userid = $3) ORDER BY event_id LIMIT $2";
    let stmt = db.prepare_cached(SQL).await?;
    let rows = db.query(&stmt, &[&after, &limit, &userid]).await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEvent {
                event_id: r.try_get(0).map_err(StoreError::Db)?,
                at: r.try_get(1).map_err(StoreError::Db)?,
                kind: r.try_get(2).map_err(StoreError::Db)?,
                userid: r.try_get(3).map_err(StoreError::Db)?,
                username: r.try_get(4).map_err(StoreError::Db)?,
                client_addr: r.try_get(5).map_err(StoreError::Db)?,
                instance: r.try_get(6).map_err(StoreError::Db)?,
                detail: r.try_get(7).map_err(StoreError::Db)?,
            })
        })
        .collect()
}

/// Deletes the events older than `before`, oldest first, `batch` rows per statement.
pub async fn purge_events(
    db: &impl GenericClient,
    before: DateTime<Utc>,
    batch: i64,
) -> StoreResult<u64> {
    const SQL: &str = "DELETE FROM audit_events WHERE event_id IN (
                           SELECT event_id FROM audit_events WHERE at < $1
                           ORDER BY at LIMIT $2 FOR UPDATE SKIP LOCKED)";
    purge_in_batches(db, SQL, before, batch).await
}
