//! The `settings` table: values changed at run time through the API (the session TTL).

use super::{GenericClient, StoreError, StoreResult};

pub const SESSION_TTL: &str = "session_ttl";

/// The stored TTL override in seconds, if any.
pub async fn session_ttl(db: &impl GenericClient) -> StoreResult<Option<i64>> {
    let stmt = db
        .prepare_cached("SELECT (value #>> '{}')::bigint FROM settings WHERE name = $1")
        .await?;
    match db.query_opt(&stmt, &[&SESSION_TTL]).await? {
        None => Ok(None),
        Some(row) => row.try_get(0).map_err(StoreError::Db),
    }
}

pub async fn set_session_ttl(db: &impl GenericClient, seconds: i64) -> StoreResult<()> {
    const SQL: &str =
        "INSERT INTO settings (name, value, updated_at) VALUES ($1, to_jsonb($2::bigint), now())
                       ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = now()";
    let stmt = db.prepare_cached(SQL).await?;
    db.execute(&stmt, &[&SESSION_TTL, &seconds]).await?;
    Ok(())
}

pub async fn clear_session_ttl(db: &impl GenericClient) -> StoreResult<()> {
    let stmt = db
        .prepare_cached("DELETE FROM settings WHERE name = $1")
        .await?;
    db.execute(&stmt, &[&SESSION_TTL]).await?;
    Ok(())
}
