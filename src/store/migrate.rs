//! Schema migrations: the daemon's own PostgreSQL schema (created if missing, and a database of
//! the older layout moved into it), then numbered SQL files applied in order, each in a
//! transaction, all under an advisory lock so that daemons starting together apply each file once.

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
    Migration {
        version: 5,
        name: "0005_schema",
        sql: include_str!("../../migrations/0005_schema.sql"),
    },
    Migration {
        version: 6,
        name: "0006_announce_deletes",
        sql: include_str!("../../migrations/0006_announce_deletes.sql"),
    },
    Migration {
        version: 7,
        name: "0007_session_client",
        sql: include_str!("../../migrations/0007_session_client.sql"),
    },
    Migration {
        version: 8,
        name: "0008_groups",
        sql: include_str!("../../migrations/0008_groups.sql"),
    },
    Migration {
        version: 9,
        name: "0009_username_skeleton",
        sql: include_str!("../../migrations/0009_username_skeleton.sql"),
    },
];

/// The tables and functions of the layout before version 5, when they lived in `public`.
const OLD_LAYOUT_TABLES: &[&str] = &[
    "schema_migrations",
    "users",
    "sessions",
    "settings",
    "login_failures",
    "audit_events",
];
const OLD_LAYOUT_FUNCTIONS: &[&str] = &[
    "pgusers_notify_items",
    "pgusers_sessions_deleted",
    "pgusers_sessions_changed",
    "pgusers_users_changed",
    "pgusers_everything_changed",
    "pgusers_settings_changed",
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

/// Makes `schema` the connection's only schema, creates it if missing (moving the daemon's
/// tables of the older layout into it), and applies every pending migration there; returns the
/// names of the steps taken now. `schema` is a validated name (see `database.schema`).
/// Migrations (and waiting for another instance's) may take longer than the statement and lock
/// timeouts that bound requests: those are lifted for the run and reset afterwards.
pub async fn run(client: &mut Client, schema: &str) -> StoreResult<Vec<&'static str>> {
    client
        .execute("SELECT set_config('search_path', $1, false)", &[&schema])
        .await?;
    client
        .batch_execute("SET statement_timeout = 0; SET lock_timeout = 0")
        .await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = match adopt_schema(client, schema).await {
        Ok(moved) => apply_pending(client).await.map(|mut applied| {
            if moved {
                applied.insert(0, "moved the tables from public into the daemon's schema");
            }
            applied
        }),
        Err(e) => Err(e),
    };
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

/// Creates the schema if missing; a database of the older layout (the daemon's tables in
/// `public`) has them moved in, all in one transaction. True when something was moved.
async fn adopt_schema(client: &mut Client, schema: &str) -> StoreResult<bool> {
    let tx = client.transaction().await?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await?
        .try_get(0)
        .map_err(StoreError::Db)?;
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
            .await?;
    }
    let old_layout: bool = tx
        .query_one(
            "SELECT $1 <> 'public'
                AND to_regclass(format('%I.schema_migrations', $1::text)) IS NULL
                AND to_regclass('public.schema_migrations') IS NOT NULL
                AND EXISTS (SELECT 1 FROM information_schema.columns
                            WHERE table_schema = 'public' AND table_name = 'users'
                              AND column_name = 'password_hash')",
            &[&schema],
        )
        .await?
        .try_get(0)
        .map_err(StoreError::Db)?;
    if !old_layout {
        tx.commit().await?;
        return Ok(false);
    }
    let tables = OLD_LAYOUT_TABLES
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>();
    let functions = OLD_LAYOUT_FUNCTIONS
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>();
    let statements = tx
        .query(
            "SELECT format('ALTER TABLE public.%I SET SCHEMA %I', c.relname, $1::text)
             FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
               AND c.relname = ANY($2)
             UNION ALL
             SELECT format('ALTER FUNCTION public.%I(%s) SET SCHEMA %I',
                           p.proname, pg_get_function_identity_arguments(p.oid), $1::text)
             FROM pg_proc p
             WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY($3)",
            &[&schema, &tables, &functions],
        )
        .await?;
    for row in statements {
        let sql: String = row.try_get(0).map_err(StoreError::Db)?;
        tx.batch_execute(&sql).await?;
    }
    tx.commit().await?;
    Ok(true)
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
