//! `JanitorActor` purges expired sessions every `janitor.interval`, in bounded batches, off the
//! request path; it logs its start, its work and its stop.

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message,
    ResponseActFuture, WrapFuture,
};

use super::{ask, Core};
use crate::error::ApiError;
use crate::store::sessions as store;

pub struct JanitorActor {
    core: Core,
    batch: i64,
}

/// Deletes expired sessions batch by batch until none is left; returns how many.
async fn purge(core: Core, batch: i64) -> Result<u64, ApiError> {
    let now = core.clock.now();
    let mut total = 0;
    loop {
        let db = core.db().await?;
        let deleted = store::purge_expired_batch(&db, now, batch).await?;
        drop(db);
        total += deleted;
        if deleted < u64::try_from(batch).unwrap_or(0) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

impl JanitorActor {
    fn schedule(&self, ctx: &mut Context<Self>) {
        ctx.run_later(self.core.tunables.janitor_interval(), |actor, ctx| {
            let work = purge(actor.core.clone(), actor.batch)
                .into_actor(actor)
                .map(|result, actor, ctx| {
                    match result {
                        Ok(0) => tracing::debug!("janitor: nothing to purge"),
                        Ok(n) => tracing::info!(purged = n, "janitor: purged expired sessions"),
                        Err(e) => tracing::warn!(error = %e, "janitor: purge failed; will retry"),
                    }
                    actor.schedule(ctx);
                });
            ctx.spawn(work);
        });
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
#[rtype(result = "Result<u64, ApiError>")]
struct RunNow;

impl Handler<RunNow> for JanitorActor {
    type Result = ResponseActFuture<Self, Result<u64, ApiError>>;

    fn handle(&mut self, _: RunNow, _: &mut Context<Self>) -> Self::Result {
        Box::pin(purge(self.core.clone(), self.batch).into_actor(self))
    }
}

#[derive(Message)]
#[rtype(result = "Result<(), ApiError>")]
struct Stop;

impl Handler<Stop> for JanitorActor {
    type Result = Result<(), ApiError>;

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
    pub(super) fn start(core: Core, batch: i64) -> Self {
        Self {
            addr: JanitorActor { core, batch }.start(),
        }
    }

    /// Purges now (tests and operators); returns the number of sessions deleted.
    pub async fn run_now(&self) -> Result<u64, ApiError> {
        ask(&self.addr, RunNow).await
    }

    pub async fn stop(&self) {
        let _ = ask(&self.addr, Stop).await;
    }
}
