//! Expiry refreshes waiting to be written: a check that slides a session's expiry far enough
//! sends it to the session actor, whose state this queue is, instead of writing on the request
//! path; the actor writes the whole queue in one statement a few times a second (and on
//! shutdown), through [`write`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use crate::domain::KeyDigest;
use crate::store::{sessions as store, StoreError};

/// A slid expiry to store, and when the session was last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRefresh {
    pub expires_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
}

/// Pending refreshes by key digest; a later refresh of the same session replaces an earlier one.
#[derive(Default)]
pub struct RefreshQueue {
    pending: HashMap<KeyDigest, PendingRefresh>,
}

impl RefreshQueue {
    pub fn push(&mut self, digest: KeyDigest, refresh: PendingRefresh) {
        self.pending
            .entry(digest)
            .and_modify(|p| {
                if refresh.seen_at >= p.seen_at {
                    *p = refresh;
                }
            })
            .or_insert(refresh);
    }

    /// Takes everything pending.
    pub fn take(&mut self) -> Vec<(KeyDigest, PendingRefresh)> {
        self.pending.drain().collect()
    }

    /// Puts back refreshes that could not be written (a newer one for the same key wins).
    pub fn put_back(&mut self, refreshes: Vec<(KeyDigest, PendingRefresh)>) {
        for (digest, refresh) in refreshes {
            self.push(digest, refresh);
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// How many times a batch is tried when it loses a deadlock or serialization conflict.
pub const WRITE_TRIES: usize = 3;

/// Writes a batch of refreshes in one statement, rows in key-digest order (so batches of
/// several instances cannot deadlock each other), trying again at once when it loses a deadlock
/// or serialization conflict to another transaction (up to [`WRITE_TRIES`] in all); returns the
/// digests of the sessions that still exist.
pub async fn write(
    pool: &Pool,
    batch: &mut [(KeyDigest, PendingRefresh)],
) -> Result<Vec<KeyDigest>, StoreError> {
    batch.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let digests: Vec<&[u8]> = batch.iter().map(|(d, _)| d.as_bytes()).collect();
    let expires: Vec<DateTime<Utc>> = batch.iter().map(|(_, p)| p.expires_at).collect();
    let seen: Vec<DateTime<Utc>> = batch.iter().map(|(_, p)| p.seen_at).collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let db = pool.get().await?;
        match store::refresh_many(&db, &digests, &expires, &seen).await {
            Err(e) if e.is_transient_conflict() && attempt < WRITE_TRIES => {
                tracing::info!(
                    error = %crate::telemetry::cause_chain(&e),
                    attempt,
                    "expiry refreshes lost a lock conflict; retrying"
                );
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn the_latest_refresh_of_a_session_wins_and_take_empties_the_queue() {
        let mut q = RefreshQueue::default();
        let d = KeyDigest::of("k");
        let t = Utc::now();
        q.push(
            d,
            PendingRefresh {
                expires_at: t + Duration::seconds(10),
                seen_at: t,
            },
        );
        q.push(
            d,
            PendingRefresh {
                expires_at: t + Duration::seconds(20),
                seen_at: t + Duration::seconds(1),
            },
        );
        q.put_back(vec![(
            d,
            PendingRefresh {
                expires_at: t,
                seen_at: t - Duration::seconds(1),
            },
        )]);
        let taken = q.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.expires_at, t + Duration::seconds(20));
        assert!(q.is_empty());
    }
}
