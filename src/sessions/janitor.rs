//! `JanitorActor` purges expired sessions, old audit events and stale throttle rows every
//! `janitor.interval`, in bounded batches, off the request path; it logs its start, its work and
//! its stop.

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message,
    ResponseActFuture, WrapFuture,
};

use super::{ask, Result, SessionCore};
use crate::store::security as security_store;
use crate::store::sessions as store;
use crate::store::StoreError;
use crate::telemetry::metrics::METRICS;

/// How long audit events and failed-login rows are kept (`audit.retention`, `throttle.window`).
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub audit_events: std::time::Duration,
    pub login_failures: std::time::Duration,
}

impl Retention {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            audit_events: settings.audit.retention,
            login_failures: settings.throttle.window,
        }
    }
}

fn before(
    now: chrono::DateTime<chrono::Utc>,
    age: std::time::Duration,
) -> chrono::DateTime<chrono::Utc> {
    now - chrono::Duration::milliseconds(i64::try_from(age.as_millis()).unwrap_or(i64::MAX / 2))
}

pub struct JanitorActor {
    core: SessionCore,
    batch: i64,
    retention: Retention,
    next_run: Option<actix::SpawnHandle>,
}

/// Deletes expired sessions batch by batch until none is left; returns how many (0 when
/// another instance holds the purge lock). A session is purged only once it has been expired
/// for a whole refresh interval, since its stored expiry may lag the true one by that much.
async fn purge(core: SessionCore, batch: i64, retention: Retention) -> Result<u64> {
    let mut db = core.db().await?;
    if !store::try_lock_purge(&db).await? {
        tracing::debug!("janitor: another instance is purging");
        return Ok(0);
    }
    let cutoff = core.clock.now() - core.tunables.refresh_interval();
    let mut total = 0;
    let result = loop {
        match store::purge_expired_batch(&mut db, cutoff, batch).await {
            Ok(deleted) => {
                total += deleted;
                if deleted < u64::try_from(batch).unwrap_or(0) {
                    break Ok(total);
                }
                if total % (batch.unsigned_abs() * 100) == 0 {
                    tracing::info!(purged = total, "janitor: purge in progress");
                }
                // Let session checks have the database between batches.
                tokio::task::yield_now().await;
            }
            Err(e) => break Err(e.into()),
        }
    };
    let now = core.clock.now();
    let old_rows = async {
        let events =
            security_store::purge_events(&db, before(now, retention.audit_events), batch).await?;
        let failures =
            security_store::purge_failures(&db, before(now, retention.login_failures), batch)
                .await?;
        Ok::<_, StoreError>((events, failures))
    };
    match old_rows.await {
        Ok((0, 0)) => {}
        Ok((events, failures)) => {
            tracing::info!(
                events,
                failures,
                "janitor: purged old audit events and login failures"
            )
        }
        Err(e) => {
            METRICS.db_error(matches!(e, StoreError::Unavailable(_)));
            let error = crate::telemetry::cause_chain(&e);
            tracing::warn!(%error, "janitor: could not purge audit events")
        }
    }
    if let Err(e) = store::unlock_purge(&db).await {
        // The lock goes with the connection's session at the latest.
        tracing::debug!(error = %crate::telemetry::cause_chain(&e), "janitor: could not release the purge lock");
    }
    METRICS.janitor_run(total);
    result
}

impl JanitorActor {
    fn schedule(&mut self, ctx: &mut Context<Self>) {
        if let Some(pending) = self.next_run.take() {
            ctx.cancel_future(pending);
        }
        self.next_run = Some(
            ctx.run_later(self.core.tunables.janitor_interval(), |actor, ctx| {
                let work = purge(actor.core.clone(), actor.batch, actor.retention)
                    .into_actor(actor)
                    .map(|result, actor, ctx| {
                        match result {
                            Ok(0) => tracing::debug!("janitor: nothing to purge"),
                            Ok(n) => tracing::info!(purged = n, "janitor: purged expired sessions"),
                            Err(e) => {
                                METRICS.db_error(e.is_unavailable());
                                let error = crate::telemetry::cause_chain(&e);
                                tracing::warn!(%error, "janitor: purge failed; will retry")
                            }
                        }
                        actor.schedule(ctx);
                    });
                ctx.spawn(work);
            }),
        );
    }
}

impl Actor for JanitorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        tracing::info!(interval = ?self.core.tunables.janitor_interval(), batch = self.batch, "janitor started");
        self.schedule(ctx);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::info!("janitor stopped");
    }
}

#[derive(Message)]
#[rtype(result = "Result<u64>")]
struct RunNow;

impl Handler<RunNow> for JanitorActor {
    type Result = ResponseActFuture<Self, Result<u64>>;

    fn handle(&mut self, _: RunNow, _: &mut Context<Self>) -> Self::Result {
        Box::pin(purge(self.core.clone(), self.batch, self.retention).into_actor(self))
    }
}

/// Re-arms the timer with the current interval (after a reload changed it).
#[derive(Message)]
#[rtype(result = "Result<()>")]
struct Reschedule;

impl Handler<Reschedule> for JanitorActor {
    type Result = Result<()>;

    fn handle(&mut self, _: Reschedule, ctx: &mut Context<Self>) -> Self::Result {
        self.schedule(ctx);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "Result<()>")]
struct Stop;

impl Handler<Stop> for JanitorActor {
    type Result = Result<()>;

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        Ok(())
    }
}

/// Runs the janitor on demand and stops it on shutdown.
#[derive(Clone)]
pub struct JanitorHandle {
    addr: actix::Addr<JanitorActor>,
}

impl JanitorHandle {
    /// Whether the actor behind this handle is running.
    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }

    pub(crate) fn start(core: SessionCore, batch: i64, retention: Retention) -> Self {
        Self {
            addr: JanitorActor {
                core,
                batch,
                retention,
                next_run: None,
            }
            .start(),
        }
    }

    /// Purges now (tests and operators); returns the number of sessions deleted.
    pub async fn run_now(&self) -> Result<u64> {
        ask(&self.addr, RunNow).await
    }

    /// Applies a changed `janitor.interval` now rather than after the pending wait.
    pub async fn reschedule(&self) {
        let _ = ask(&self.addr, Reschedule).await;
    }

    pub async fn stop(&self) {
        let _ = ask(&self.addr, Stop).await;
    }
}
