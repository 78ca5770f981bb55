//! `pgusers import [--from CONNINFO] [--dry-run]`: reads the Python library's tables (from the
//! daemon's own database, schema `public`, or from `--from`) and writes what `crate::import`
//! decides into the daemon's tables in one transaction, printing the report.

use std::collections::HashSet;
use std::str::FromStr;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Transaction};

use super::{connect, Failure, Outcome};
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::import::{self, ExistingUser, LibrarySession, LibraryUser, Plan};
use crate::store::tls::{self, SslPolicy};
use crate::telemetry::cause_chain;

/// Rows per INSERT … SELECT FROM unnest(…) statement.
const BATCH: usize = 10_000;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The library's database as a libpq connection string or URL (default: the daemon's own).
    #[arg(long, value_name = "CONNINFO")]
    from: Option<String>,
    /// Print the whole report and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub(super) async fn run(args: ImportArgs, settings: &Settings, json: bool) -> Outcome {
    if settings.database.schema == "public" {
        return Err(Failure::BadInput(
            "database.schema is public, where the library's tables are: configure another schema"
                .into(),
        ));
    }
    let mut target = connect::open(settings).await?;
    let (library_users, library_sessions) = match &args.from {
        Some(conninfo) => {
            let (mut client, driver) = connect_from(conninfo).await?;
            let read = read_library(&mut client, "the --from database").await;
            driver.abort();
            read?
        }
        None => read_library(&mut target.client, "the daemon's database").await?,
    };

    let tx = target
        .client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()
        .await?;
    let existing = read_existing(&tx).await?;
    let present = present_digests(&tx, &library_sessions).await?;
    let plan = import::plan(
        library_users,
        library_sessions,
        &existing,
        &present,
        SystemClock.now(),
    );
    if !json {
        for line in plan.report_lines() {
            println!("{line}");
        }
    }
    if args.dry_run || plan.is_empty() {
        tx.rollback().await?;
    } else {
        write(&tx, &plan, settings).await?;
        tx.commit().await?;
    }
    tracing::info!(
        users = plan.users.len(),
        sessions = plan.sessions.len(),
        dry_run = args.dry_run,
        "import done"
    );
    if json {
        println!("{}", report_json(&plan, args.dry_run));
    } else {
        println!("{}", plan.summary(args.dry_run));
    }
    Ok(())
}

/// `--json`: the counts and every report line.
fn report_json(plan: &Plan, dry_run: bool) -> serde_json::Value {
    let r = &plan.report;
    serde_json::json!({
        "dry_run": dry_run,
        "changed": !dry_run && !plan.is_empty(),
        "library": {"users": r.library_users, "sessions": r.library_sessions},
        "imported": {"users": plan.users.len(), "sessions": plan.sessions.len()},
        "already_present": {"users": r.users_present, "sessions": r.sessions_present},
        "expired_sessions": r.sessions_expired,
        "left_out": r.left_out,
        "unusable_passwords": r.unusable_passwords,
        "kept_as_pickle": r.kept_as_pickle,
        "summary": plan.summary(dry_run),
    })
}

async fn connect_from(conninfo: &str) -> Result<(Client, tokio::task::JoinHandle<()>), Failure> {
    let cfg = tokio_postgres::Config::from_str(conninfo)
        .map_err(|e| Failure::BadInput(format!("--from is not a connection string or URL: {e}")))?;
    let tls =
        tls::connector(SslPolicy::Prefer, None).map_err(|e| Failure::BadInput(cause_chain(&e)))?;
    let (client, connection) = cfg.connect(tls).await.map_err(|e| {
        Failure::Unavailable(format!(
            "cannot connect to the --from database: {}",
            cause_chain(&e)
        ))
    })?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, driver))
}

/// Both library tables, read in one snapshot.
async fn read_library(
    client: &mut Client,
    place: &str,
) -> Result<(Vec<LibraryUser>, Vec<LibrarySession>), Failure> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let found: bool = tx
        .query_one(
            "SELECT count(*) = 2 FROM information_schema.columns
             WHERE table_schema = 'public'
               AND ((table_name = 'users' AND column_name = 'kpasswd')
                 OR (table_name = 'sessions' AND column_name = 'expiration'))",
            &[],
        )
        .await?
        .get(0);
    if !found {
        return Err(Failure::NotFound(format!(
            "{place} has no tables of the Python library (public.users with kpasswd, \
             public.sessions with expiration)"
        )));
    }
    let users = tx
        .query(
            "SELECT userid::bigint, username::text, email::text, salt::text, kpasswd::text,
                    admin, extra_data
             FROM public.users",
            &[],
        )
        .await?
        .iter()
        .map(|r| LibraryUser {
            userid: r.get(0),
            username: r.get(1),
            email: r.get(2),
            salt: r.get(3),
            kpasswd: r.get(4),
            admin: r.get(5),
            extra_data: r.get(6),
        })
        .collect();
    let sessions = tx
        .query(
            "SELECT userid::bigint, key::text, expiration::float8, extra_data FROM public.sessions",
            &[],
        )
        .await?
        .iter()
        .map(|r| LibrarySession {
            userid: r.get(0),
            key: r.get(1),
            expiration: r.get(2),
            extra_data: r.get(3),
        })
        .collect();
    tx.commit().await?;
    Ok((users, sessions))
}

async fn read_existing(tx: &Transaction<'_>) -> Result<Vec<ExistingUser>, Failure> {
    Ok(tx
        .query("SELECT userid, username, email FROM users", &[])
        .await?
        .iter()
        .map(|r| ExistingUser {
            userid: r.get(0),
            username: r.get(1),
            email: r.get(2),
        })
        .collect())
}

/// The digests of the library's keys that the daemon already holds.
async fn present_digests(
    tx: &Transaction<'_>,
    sessions: &[LibrarySession],
) -> Result<HashSet<[u8; 32]>, Failure> {
    let digests: Vec<Vec<u8>> = sessions
        .iter()
        .filter_map(|s| s.key.as_deref())
        .map(|k| crate::domain::KeyDigest::of(k).0.to_vec())
        .collect();
    let mut present = HashSet::new();
    for chunk in digests.chunks(BATCH) {
        let rows = tx
            .query(
                "SELECT key_digest FROM sessions WHERE key_digest = ANY($1)",
                &[&chunk],
            )
            .await?;
        for row in rows {
            let bytes: Vec<u8> = row.get(0);
            if let Ok(d) = <[u8; 32]>::try_from(bytes.as_slice()) {
                present.insert(d);
            }
        }
    }
    Ok(present)
}

fn progress(total: usize) -> ProgressBar {
    // Drawn on standard error only when it is a terminal (indicatif hides it otherwise).
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>8} [{bar:40}] {pos}/{len} rows ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn write(tx: &Transaction<'_>, plan: &Plan, settings: &Settings) -> Outcome {
    let bar = progress(plan.users.len() + plan.sessions.len());
    bar.set_message("users");
    for chunk in plan.users.chunks(BATCH) {
        let ids: Vec<i64> = chunk.iter().map(|u| u.userid).collect();
        let names: Vec<&str> = chunk.iter().map(|u| u.username.as_str()).collect();
        let emails: Vec<&str> = chunk.iter().map(|u| u.email.as_str()).collect();
        let hashes: Vec<&str> = chunk.iter().map(|u| u.password_hash.as_str()).collect();
        let admins: Vec<bool> = chunk.iter().map(|u| u.admin).collect();
        let extras: Vec<Option<&serde_json::Value>> =
            chunk.iter().map(|u| u.extra_data.as_ref()).collect();
        let skeletons: Vec<&str> = chunk.iter().map(|u| u.username_skeleton.as_str()).collect();
        let params: [&(dyn ToSql + Sync); 7] =
            [&ids, &names, &emails, &hashes, &admins, &extras, &skeletons];
        tx.execute(
            "INSERT INTO users (userid, username, email, password_hash, admin, extra_data,
                                username_skeleton)
             OVERRIDING SYSTEM VALUE
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],
                                  $5::boolean[], $6::jsonb[], $7::text[])",
            &params,
        )
        .await?;
        bar.inc(chunk.len() as u64);
    }
    if !plan.users.is_empty() {
        // The identity continues after the highest userid (never going back).
        tx.execute(
            "SELECT setval(s, greatest(coalesce(pg_sequence_last_value(s::regclass), 1),
                                       (SELECT max(userid) FROM users)))
             FROM pg_get_serial_sequence('users', 'userid') AS s",
            &[],
        )
        .await?;
    }
    bar.set_message("sessions");
    let now = SystemClock.now();
    let max_expires_at = settings
        .session
        .max_lifetime
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| now + d);
    for chunk in plan.sessions.chunks(BATCH) {
        let digests: Vec<&[u8]> = chunk.iter().map(|s| s.digest.as_bytes()).collect();
        let owners: Vec<i64> = chunk.iter().map(|s| s.userid).collect();
        let expiries: Vec<chrono::DateTime<chrono::Utc>> =
            chunk.iter().map(|s| s.expires_at).collect();
        let extras: Vec<Option<&serde_json::Value>> =
            chunk.iter().map(|s| s.extra_data.as_ref()).collect();
        let params: [&(dyn ToSql + Sync); 6] =
            [&digests, &owners, &now, &expiries, &max_expires_at, &extras];
        tx.execute(
            "INSERT INTO sessions (key_digest, userid, created_at, last_seen_at, expires_at,
                                   max_expires_at, extra_data)
             SELECT d, u, $3, $3, e, $5, x
             FROM unnest($1::bytea[], $2::bigint[], $4::timestamptz[], $6::jsonb[]) AS t(d, u, e, x)",
            &params,
        )
        .await?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}
