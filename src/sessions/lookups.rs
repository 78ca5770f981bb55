//! Coalesced session lookups: concurrent cache misses share one `key_digest = ANY($1)` query, so
//! a burst of misses costs a few database round trips instead of one each.
//!
//! A miss queues its digest and, when fewer than `max_in_flight` batch tasks run, starts one. A
//! batch task takes up to `max_batch` queued digests, runs one query, answers each waiter and goes
//! on while digests are queued. A lone miss on a quiet daemon is therefore looked up at once (a
//! batch of one); under load the batches grow by themselves. The tasks are spawned, not run inside
//! a request, so a client that disconnects cannot strand the others' lookups.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use super::Error;
use crate::domain::KeyDigest;
use crate::store::sessions::{lookup_many, SessionIdentity};
use crate::store::StoreError;

type Reply = Result<Option<SessionIdentity>, Error>;

struct Waiting {
    digest: KeyDigest,
    reply: oneshot::Sender<Reply>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiting>,
    tasks: usize,
}

/// Session lookups by digest, batched across concurrent callers.
pub struct LookupBatcher {
    pool: Pool,
    queue: Mutex<Queue>,
    max_in_flight: usize,
    max_batch: usize,
}

/// The most digests one query asks for.
const MAX_BATCH: usize = 64;

impl LookupBatcher {
    /// Batches on a pool of `pool_size` connections: at most half of them (1 to 4) run lookups,
    /// so writes and logins keep connections of their own. Four concurrent batch queries kept
    /// a 2-core machine busiest in `bench/run` (2: 47–50k, 4: 50k, 8: 32–36k uncached checks/s).
    pub fn for_pool(pool: Pool, pool_size: usize) -> Self {
        Self::new(pool, (pool_size / 2).clamp(1, 4), MAX_BATCH)
    }

    /// Batches on `pool`, with at most `max_in_flight` queries at a time (at least one).
    pub fn new(pool: Pool, max_in_flight: usize, max_batch: usize) -> Self {
        Self {
            pool,
            queue: Mutex::new(Queue::default()),
            max_in_flight: max_in_flight.max(1),
            max_batch: max_batch.max(1),
        }
    }

    /// The session with this digest, joined with its user, or `None` when there is none.
    pub async fn lookup(self: &Arc<Self>, digest: KeyDigest) -> Reply {
        let (reply, answer) = oneshot::channel();
        let start_task = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.waiting.push(Waiting { digest, reply });
            let start = queue.tasks < self.max_in_flight;
            if start {
                queue.tasks += 1;
            }
            start
        };
        if start_task {
            let me = Arc::clone(self);
            tokio::spawn(async move { me.run_batches().await });
        }
        // The batch task went away without answering: the runtime is shutting down.
        answer.await.unwrap_or(Err(Error::Stopping))
    }

    /// Takes batches off the queue until it is empty.
    async fn run_batches(&self) {
        // Counts this task out even if a query panics, so the queue never stalls.
        let slot = TaskSlot(self);
        loop {
            let batch: Vec<Waiting> = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.waiting.is_empty() {
                    // Counted out here, under the lock that queued work sees.
                    queue.tasks -= 1;
                    std::mem::forget(slot);
                    return;
                }
                let take = queue.waiting.len().min(self.max_batch);
                queue.waiting.drain(..take).collect()
            };
            self.answer(batch).await;
        }
    }

    async fn answer(&self, batch: Vec<Waiting>) {
        // Waiters whose request went away need no answer, nor a lookup.
        let batch: Vec<Waiting> = batch.into_iter().filter(|w| !w.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        let digests: Vec<KeyDigest> = batch.iter().map(|w| w.digest).collect();
        match self.query(&digests).await {
            Ok(found) => {
                // Two waiters may ask for the same key: each gets its own copy.
                for w in batch {
                    let _ = w.reply.send(Ok(found.get(&w.digest).cloned()));
                }
            }
            Err(err) => {
                let shared = Arc::new(err);
                for w in batch {
                    let _ = w.reply.send(Err(Error::Lookup(shared.clone())));
                }
            }
        }
    }

    async fn query(
        &self,
        digests: &[KeyDigest],
    ) -> Result<HashMap<KeyDigest, SessionIdentity>, StoreError> {
        let db = self.pool.get().await.map_err(StoreError::from)?;
        lookup_many(&db, digests).await
    }
}

/// Gives a batch task's slot back when the task ends abnormally (a panic in a query).
struct TaskSlot<'a>(&'a LookupBatcher);

impl Drop for TaskSlot<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.queue.lock().unwrap_or_else(|p| p.into_inner());
        queue.tasks -= 1;
    }
}
