//! Schema migrations: numbered SQL files applied in order, each in a transaction, under an
//! advisory lock so that daemons starting together apply each file once.

use tokio_postgres::Client;

use super::{StoreError, StoreResult};

/// A migration compiled into the binary from `migrations/`.
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_invalidation",
        sql: include_str!("../../migrations/0002_invalidation.sql"),
    },
    Migration {
        version: 3,
        name: "0003_security",
        sql: include_str!("../../migrations/0003_security.sql"),
    },
    Migration {
        version: 4,
        name: "0004_login_attempts",
        sql: include_str!("../../migrations/0004_login_attempts.sql"),
    },
];

/// The schema version this binary expects.
pub fn latest_version() -> i32 {
    MIGRATIONS.last().map(|m| m.version).unwrap_or(0)
}

/// An arbitrary constant identifying pgusers' migration lock.
const LOCK_KEY: i64 = 0x7067_7573_6572_7301;

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now())";

/// Applies every pending migration; returns the names of those applied now.
/// Migrations (and waiting for another instance's) may take longer than the statement and lock
/// timeouts that bound requests: those are lifted for the run and reset afterwards.
pub async fn run(client: &mut Client) -> StoreResult<Vec<&'static str>> {
    client
        .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
        .await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply_pending(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    client
        .batch_execute("RESET statement_timeout; RESET lock_timeout")
        .await?;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply_pending(client: &mut Client) -> StoreResult<Vec<&'static str>> {
    client.batch_execute(CREATE_VERSION_TABLE).await?;
    let current = current_version(client).await?.unwrap_or(0);
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await?;
        tx.commit().await?;
        applied.push(migration.name);
    }
    Ok(applied)
}

/// The highest applied version, or `None` when the version table does not exist yet.
pub async fn current_version(client: &Client) -> StoreResult<Option<i32>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .try_get(0)
        .map_err(StoreError::Db)?;
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?;
    row.try_get(0).map_err(StoreError::Db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_in_migrations_is_compiled_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".sql"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let names: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.name))
            .collect();
        assert_eq!(files, names);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(m.name.starts_with(&format!("{:04}_", m.version)));
        }
    }
}
