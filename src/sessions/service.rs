//! `SessionActor` writes session creations, refreshes and kills through to PostgreSQL and keeps
//! the cache in step; `SessionHandle` answers checks, from the cache when it can.

use std::sync::Arc;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    ResponseFuture, WrapFuture,
};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{ask, Error, Result, SessionCore};
use crate::config::live::TtlSource;
use crate::domain::expiry::{absolute_end, needs_refresh, slide};
use crate::domain::{KeyDigest, SessionKey};
use crate::sessions::cache::CachedSession;
use crate::sessions::refresh::{self, PendingRefresh, RefreshQueue};
use crate::store::sessions::{
    self as store, NewSession, SessionFilter, SessionIdentity, SessionRow,
};
use crate::store::settings as settings_store;
use crate::telemetry::metrics::{CheckOutcome, METRICS};

/// Owns the session write path: creations (written through to PostgreSQL, then cached), kills,
/// and the pending expiry refreshes with their flush.
pub struct SessionActor {
    core: SessionCore,
    /// The expiry refreshes that checks sent and that are not written yet.
    pending: RefreshQueue,
    /// Held while a flush of expiry refreshes runs: one at a time, never piling up on a slow
    /// database; a periodic tick skips while it is held, an explicit flush waits for it.
    flight: Arc<tokio::sync::Mutex<()>>,
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(FLUSH_EVERY, |actor, ctx| {
            if actor.pending.is_empty() {
                return;
            }
            let Ok(flying) = actor.flight.clone().try_lock_owned() else {
                return;
            };
            let batch = actor.pending.take();
            let work = write_refreshes(actor.core.clone(), batch)
                .into_actor(actor)
                .map(move |result, actor: &mut SessionActor, _| {
                    drop(flying);
                    if let Err((e, batch)) = result {
                        actor.pending.put_back(batch);
                        METRICS.db_error(e.is_unavailable());
                        tracing::warn!(
                            error = %crate::telemetry::cause_chain(&e),
                            "could not write expiry refreshes; will retry"
                        );
                    }
                });
            ctx.spawn(work);
        });
    }
}

/// A slid expiry for the actor to write behind.
#[derive(Message)]
#[rtype(result = "()")]
struct Refresh(KeyDigest, PendingRefresh);

impl Handler<Refresh> for SessionActor {
    type Result = ();

    fn handle(&mut self, Refresh(digest, refresh): Refresh, _: &mut Context<Self>) {
        self.pending.push(digest, refresh);
    }
}

/// A session to open for a user whose password was just verified.
pub struct OpenSession {
    pub userid: i64,
    /// The password hash the login verified: the session is only created while the account
    /// still has it (a password change or a deletion in between means no session).
    pub verified_hash: String,
    pub extra_data: Option<Value>,
    /// "Remember me": the session slides by `session.remember_ttl`.
    pub remember: bool,
    /// The client's address and user agent as recorded at login.
    pub client: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

#[derive(Message)]
#[rtype(result = "Result<Option<(SessionKey, DateTime<Utc>)>>")]
struct Create(OpenSession);

impl Handler<Create> for SessionActor {
    type Result = ResponseFuture<Result<Option<(SessionKey, DateTime<Utc>)>>>;

    fn handle(&mut self, Create(msg): Create, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let key = SessionKey::generate();
            let now = core.clock.now();
            let max_expires_at = absolute_end(now, core.tunables.max_lifetime());
            let expires_at = slide(now, core.tunables.ttl_for(msg.remember), max_expires_at);
            // The insert and the end of the sessions beyond the per-user cap commit together;
            // the ended sessions are announced to other instances by the delete trigger.
            let mut db = core.db().await?;
            let tx = db.transaction().await?;
            let created = store::insert(
                &tx,
                &NewSession {
                    digest: &key.digest(),
                    userid: msg.userid,
                    verified_hash: &msg.verified_hash,
                    now,
                    expires_at,
                    max_expires_at,
                    extra_data: msg.extra_data.as_ref(),
                    remember: msg.remember,
                    client_addr: msg.client,
                    user_agent: msg.user_agent.as_deref(),
                },
            )
            .await?;
            let Some(session_id) = created else {
                return Ok(None);
            };
            let ended = match core.tunables.max_sessions_per_user() {
                Some(cap) => {
                    store::end_beyond_cap(&tx, msg.userid, session_id, cap - 1, now).await?
                }
                None => Vec::new(),
            };
            tx.commit().await?;
            for digest in &ended {
                core.cache.evict_key(digest);
            }
            Ok(Some((key, expires_at)))
        })
    }
}

/// How often pending expiry refreshes are written.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Writes a batch of expiry refreshes in one statement (see [`refresh::write`]); sessions that
/// no longer exist are evicted; on failure the batch comes back to be put back in the queue.
async fn write_refreshes(
    core: SessionCore,
    mut batch: Vec<(KeyDigest, PendingRefresh)>,
) -> std::result::Result<usize, (Error, Vec<(KeyDigest, PendingRefresh)>)> {
    if batch.is_empty() {
        return Ok(0);
    }
    match refresh::write(&core.pool, &mut batch).await {
        Ok(found) => {
            let found: std::collections::HashSet<KeyDigest> = found.into_iter().collect();
            for (digest, _) in &batch {
                if !found.contains(digest) {
                    core.cache.evict_key(digest);
                }
            }
            Ok(batch.len())
        }
        Err(e) => Err((e.into(), batch)),
    }
}

#[derive(Message)]
#[rtype(result = "Result<usize>")]
struct Flush;

impl Handler<Flush> for SessionActor {
    type Result = ResponseActFuture<Self, Result<usize>>;

    /// Waits for a periodic flush already running (shutdown must not close the pool under
    /// it), then writes what is left.
    fn handle(&mut self, _: Flush, _: &mut Context<Self>) -> Self::Result {
        let flight = self.flight.clone();
        let work = async move { flight.lock_owned().await }
            .into_actor(self)
            .then(|flying, actor: &mut SessionActor, _| {
                let batch = actor.pending.take();
                write_refreshes(actor.core.clone(), batch)
                    .into_actor(actor)
                    .map(move |result, actor: &mut SessionActor, _| {
                        drop(flying);
                        result.map_err(|(e, batch)| {
                            actor.pending.put_back(batch);
                            e
                        })
                    })
            });
        Box::pin(work)
    }
}

/// Kill one session by key (logout) or by public id (of any user, or only of `owner`).
#[derive(Message)]
#[rtype(result = "Result<bool>")]
enum KillOne {
    ByKey(KeyDigest),
    ById { id: i64, owner: Option<i64> },
}

impl Handler<KillOne> for SessionActor {
    type Result = ResponseFuture<Result<bool>>;

    fn handle(&mut self, msg: KillOne, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let db = core.db().await?;
            let digest = match msg {
                KillOne::ByKey(digest) => {
                    store::delete_by_digest(&db, &digest).await?.map(|_| digest)
                }
                KillOne::ById { id, owner } => store::delete_by_id(&db, id, owner).await?,
            };
            if let Some(digest) = &digest {
                core.cache.evict_key(digest);
            }
            Ok(digest.is_some())
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<u64>")]
struct KillMany {
    userid: i64,
    expired_only: bool,
    except: Option<KeyDigest>,
}

impl Handler<KillMany> for SessionActor {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(&mut self, msg: KillMany, _: &mut Context<Self>) -> Self::Result {
        let core = self.core.clone();
        Box::pin(async move {
            let db = core.db().await?;
            let filter = SessionFilter {
                userid: msg.userid,
                expired_only: msg.expired_only,
                now: core.clock.now(),
                except: msg.except.as_ref(),
            };
            let killed = store::kill(&db, &filter).await?;
            if killed > 0 {
                if msg.userid == 0 {
                    core.cache.clear();
                } else {
                    core.cache.evict_user(msg.userid);
                }
            }
            Ok(killed)
        })
    }
}

/// The way into sessions: checks (cache first), logins, logouts, kills, and the TTL setting.
#[derive(Clone)]
pub struct SessionHandle {
    core: SessionCore,
    addr: Addr<SessionActor>,
}

impl SessionHandle {
    /// Whether the actor behind this handle is running.
    pub fn is_alive(&self) -> bool {
        self.addr.connected()
    }

    pub(crate) fn start(core: SessionCore) -> Self {
        let addr = SessionActor {
            core: core.clone(),
            pending: RefreshQueue::default(),
            flight: Arc::default(),
        }
        .start();
        Self { core, addr }
    }

    /// Validates a presented key and slides its expiry. Answers from the cache when it can;
    /// a cached "expired" is confirmed with the database (another instance may have slid it).
    pub async fn check(&self, key: &str) -> Result<Arc<CachedSession>> {
        let digest = KeyDigest::of_presented(key).ok_or(Error::NotFound)?;
        self.check_digest(digest).await
    }

    pub async fn check_digest(&self, digest: KeyDigest) -> Result<Arc<CachedSession>> {
        let outcome = self.check_uncounted(digest).await;
        METRICS.check(match &outcome {
            Ok(_) => CheckOutcome::Valid,
            Err(Error::NotFound) => CheckOutcome::NotFound,
            Err(Error::Expired) => CheckOutcome::Expired,
            Err(_) => CheckOutcome::Unavailable,
        });
        outcome
    }

    async fn check_uncounted(&self, digest: KeyDigest) -> Result<Arc<CachedSession>> {
        let now = self.core.clock.now();
        let cached = self.core.cache.get(&digest);
        METRICS.cache(cached.is_some());
        if let Some(entry) = cached {
            if now < entry.expires_at() {
                let ttl = self.core.tunables.ttl_for(entry.remember);
                let wanted = slide(now, ttl, entry.max_expires_at());
                entry.set_expires_at(wanted);
                if needs_refresh(
                    entry.stored_expires_at(),
                    wanted,
                    self.core.tunables.refresh_interval(),
                    ttl,
                ) {
                    // Written behind, in a batch, within FLUSH_EVERY: no database work here.
                    entry.set_stored_expires_at(wanted);
                    self.addr.do_send(Refresh(
                        digest,
                        PendingRefresh {
                            expires_at: wanted,
                            seen_at: now,
                        },
                    ));
                }
                return Ok(entry);
            }
        }
        self.check_in_database(digest, now).await
    }

    async fn check_in_database(
        &self,
        digest: KeyDigest,
        now: DateTime<Utc>,
    ) -> Result<Arc<CachedSession>> {
        let epoch = self.core.cache.epoch(&digest);
        let found = self.core.lookups.lookup(digest).await?;
        let Some(session) = found else {
            self.core.cache.evict_key(&digest);
            return Err(Error::NotFound);
        };
        if now >= session.expires_at {
            return Err(Error::Expired);
        }
        let ttl = self.core.tunables.ttl_for(session.remember);
        let wanted = slide(now, ttl, session.max_expires_at);
        let mut stored = session.expires_at;
        if needs_refresh(stored, wanted, self.core.tunables.refresh_interval(), ttl) {
            self.addr.do_send(Refresh(
                digest,
                PendingRefresh {
                    expires_at: wanted,
                    seen_at: now,
                },
            ));
            stored = wanted;
        }
        Ok(self.remember(digest, &session, stored, wanted, epoch))
    }

    fn remember(
        &self,
        digest: KeyDigest,
        s: &SessionIdentity,
        stored: DateTime<Utc>,
        expires: DateTime<Utc>,
        epoch: u64,
    ) -> Arc<CachedSession> {
        self.core
            .cache
            .insert(digest, s, stored, expires, epoch)
            .unwrap_or_else(|| Arc::new(CachedSession::detached(s, stored, expires)))
    }

    /// Opens a session for a user whose password was just verified: written to PostgreSQL and
    /// then into this instance's cache, so the first check is a hit. `None` when the account no
    /// longer has the verified hash (changed or deleted in between).
    pub async fn open(&self, request: OpenSession) -> Result<Option<(SessionKey, DateTime<Utc>)>> {
        let created = ask(&self.addr, Create(request)).await?;
        if let Some((key, _)) = &created {
            // Through the miss path, with its guard against a fill racing an eviction.
            let now = self.core.clock.now();
            if let Err(e) = self.check_in_database(key.digest(), now).await {
                tracing::debug!(error = %crate::telemetry::cause_chain(&e), "a new session was not cached");
            }
        }
        Ok(created)
    }

    /// Writes the pending expiry refreshes now (shutdown, tests); returns how many.
    pub async fn flush(&self) -> Result<usize> {
        ask(&self.addr, Flush).await
    }

    /// Ends the session with this key; false when there was none.
    pub async fn logout(&self, key: &str) -> Result<bool> {
        let Some(digest) = KeyDigest::of_presented(key) else {
            return Ok(false);
        };
        ask(&self.addr, KillOne::ByKey(digest)).await
    }

    pub async fn kill_by_id(&self, session_id: i64) -> Result<bool> {
        ask(
            &self.addr,
            KillOne::ById {
                id: session_id,
                owner: None,
            },
        )
        .await
    }

    /// Ends one of `userid`'s own sessions by its public id; false when they have no such one.
    pub async fn kill_own(&self, userid: i64, session_id: i64) -> Result<bool> {
        ask(
            &self.addr,
            KillOne::ById {
                id: session_id,
                owner: Some(userid),
            },
        )
        .await
    }

    /// Kills the sessions of `userid` (0 = everyone), optionally only expired ones, sparing `except`.
    pub async fn kill_many(
        &self,
        userid: i64,
        expired_only: bool,
        except: Option<KeyDigest>,
    ) -> Result<u64> {
        ask(
            &self.addr,
            KillMany {
                userid,
                expired_only,
                except,
            },
        )
        .await
    }

    /// A page of the sessions of `userid` (0 = everyone), optionally only expired ones: those
    /// with a session_id above `after`, in session_id order, at most `limit`.
    pub async fn list(
        &self,
        userid: i64,
        expired_only: bool,
        after: i64,
        limit: i64,
    ) -> Result<Vec<SessionRow>> {
        let db = self.core.db().await?;
        let filter = SessionFilter {
            userid,
            expired_only,
            now: self.core.clock.now(),
            except: None,
        };
        Ok(store::list(&db, &filter, after, limit).await?)
    }

    /// How many sessions the user has, live or expired but not yet purged.
    pub async fn count(&self, userid: i64) -> Result<i64> {
        let db = self.core.db().await?;
        let (live, expired) = store::count(&db, userid, self.core.clock.now()).await?;
        Ok(live + expired)
    }

    /// The effective TTL in seconds and where it comes from.
    pub fn ttl(&self) -> (u64, TtlSource) {
        self.core.tunables.ttl_secs()
    }

    /// Sets (or with `None` clears) the API override of the TTL, stored for every instance.
    pub async fn set_ttl(&self, seconds: Option<u64>) -> Result<()> {
        let db = self.core.db().await?;
        match seconds {
            Some(s) => {
                settings_store::set_session_ttl(&db, i64::try_from(s).unwrap_or(i64::MAX)).await?
            }
            None => settings_store::clear_session_ttl(&db).await?,
        }
        self.core.tunables.set_api_ttl(seconds);
        Ok(())
    }

    /// Reads the stored TTL override into the tunables (at start).
    pub async fn load_ttl(&self) -> Result<()> {
        let db = self.core.db().await?;
        let stored = settings_store::session_ttl(&db).await?;
        self.core
            .tunables
            .set_api_ttl(stored.and_then(|s| u64::try_from(s).ok()));
        Ok(())
    }
}
