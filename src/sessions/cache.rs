//! The in-memory cache of hot sessions: bounded in count and in bytes, trusted for at most
//! `cache_max_age`, and invalidated by key, by user or wholesale from any source (this daemon's
//! actors today, other instances' notifications later) without racing the loads that fill it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::domain::keys::BuildDigestHasher;
use crate::domain::KeyDigest;
use crate::store::sessions::SessionIdentity;

/// A cached session with the identity of its user. The expiry slides in place.
#[derive(Debug)]
pub struct CachedSession {
    pub session_id: i64,
    pub userid: i64,
    /// The username followed by the email, in one allocation (one fewer memory access per
    /// check, and less memory per cached session, than two strings).
    identity: Box<str>,
    username_len: u32,
    pub admin: bool,
    /// A "remember me" session (slides by `session.remember_ttl`, persistent cookie).
    pub remember: bool,
    /// The user's groups, sorted and joined by commas (as the forward-auth header carries them).
    pub groups: Box<str>,
    /// The session's extra data, kept as its JSON text (smaller than a parsed value).
    pub extra_data: Option<Box<RawValue>>,
    /// The absolute end of the session in milliseconds since the epoch; 0 when there is none.
    max_expires_at_ms: i64,
    /// The true expiry (milliseconds since the epoch), slid by every check.
    expires_at_ms: AtomicI64,
    /// The expiry last written to the database.
    stored_expires_at_ms: AtomicI64,
    user_generation: u32,
    user_evictions_seen: u32,
}

fn to_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl CachedSession {
    fn build(
        s: &SessionIdentity,
        stored: DateTime<Utc>,
        expires: DateTime<Utc>,
        user_generation: u32,
        user_evictions_seen: u32,
    ) -> Self {
        let mut identity = String::with_capacity(s.username.len() + s.email.len());
        identity.push_str(&s.username);
        identity.push_str(&s.email);
        Self {
            session_id: s.session_id,
            userid: s.userid,
            identity: identity.into_boxed_str(),
            // Usernames are at most a few hundred bytes (validated on the way in).
            username_len: u32::try_from(s.username.len()).unwrap_or(u32::MAX),
            admin: s.admin,
            remember: s.remember,
            groups: s.groups.as_str().into(),
            extra_data: s
                .extra_data
                .as_ref()
                .and_then(|v| serde_json::value::to_raw_value(v).ok()),
            max_expires_at_ms: s.max_expires_at.map(to_ms).unwrap_or(0),
            expires_at_ms: AtomicI64::new(to_ms(expires)),
            stored_expires_at_ms: AtomicI64::new(to_ms(stored)),
            user_generation,
            user_evictions_seen,
        }
    }

    /// A session answer that is not kept in the cache (caching disabled or raced).
    pub fn detached(s: &SessionIdentity, stored: DateTime<Utc>, expires: DateTime<Utc>) -> Self {
        Self::build(s, stored, expires, 0, 0)
    }

    pub fn username(&self) -> &str {
        self.identity
            .get(..self.username_len as usize)
            .unwrap_or(&self.identity)
    }

    pub fn email(&self) -> &str {
        self.identity
            .get(self.username_len as usize..)
            .unwrap_or_default()
    }

    pub fn max_expires_at(&self) -> Option<DateTime<Utc>> {
        (self.max_expires_at_ms != 0).then(|| from_ms(self.max_expires_at_ms))
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        from_ms(self.expires_at_ms.load(Ordering::Acquire))
    }

    pub fn stored_expires_at(&self) -> DateTime<Utc> {
        from_ms(self.stored_expires_at_ms.load(Ordering::Acquire))
    }

    pub fn set_expires_at(&self, at: DateTime<Utc>) {
        self.expires_at_ms.store(to_ms(at), Ordering::Release);
    }

    pub fn set_stored_expires_at(&self, at: DateTime<Utc>) {
        self.stored_expires_at_ms
            .store(to_ms(at), Ordering::Release);
    }

    /// The approximate bytes this session takes in the cache: the fixed part, its username,
    /// email, groups and extra data, and the cache's own bookkeeping for an entry.
    pub fn size(&self) -> u64 {
        let extra = self.extra_data.as_ref().map_or(0, |r| r.get().len());
        let text = self.identity.len() + self.groups.len();
        (ENTRY_OVERHEAD + std::mem::size_of::<Self>() + text + extra) as u64
    }

    /// Whether the last check wrote the expiry through: a check that queues a refresh sets
    /// the stored and the true expiry to the same instant, and between writes the true one runs
    /// ahead. So this holds about once per refresh lag (`session.refresh_interval`, or half the
    /// session's TTL when that is shorter) of a busy session.
    pub fn expiry_just_written(&self) -> bool {
        self.stored_expires_at_ms.load(Ordering::Acquire)
            >= self.expires_at_ms.load(Ordering::Acquire)
    }
}

/// What one cached entry costs beyond the `CachedSession` and its text: the key digest, the
/// `Arc` around the session, and moka's per-entry bookkeeping (hash-table slot, entry info,
/// access- and write-order deque nodes, frequency sketch), rounded up from a measurement:
/// 200,000 sessions with 100 bytes of extra data took 633 bytes each (estimate: 644), see
/// `cache::tests::the_size_estimate_covers_what_an_entry_really_costs`.
const ENTRY_OVERHEAD: usize = 450;

/// Shards of the per-key invalidation epoch.
const KEY_SHARDS: usize = 256;

/// Hot sessions by key digest. All methods are cheap and thread-safe.
pub struct SessionCache {
    entries: Option<moka::sync::Cache<KeyDigest, Arc<CachedSession>, BuildDigestHasher>>,
    /// Bumped by every invalidation of a user or of everything, so a load that raced one
    /// discards its result.
    epoch: AtomicU64,
    /// Bumped by the eviction of one key, per shard of the key space (its digest's first
    /// byte): an eviction (a flood of unknown keys evicts each) disturbs only the loads of
    /// keys in its own shard, not every fill in flight.
    key_epochs: Box<[AtomicU64]>,
    /// Bumped by every per-user invalidation; lets hits skip the generation lookup.
    user_evictions: AtomicU64,
    user_generations: RwLock<HashMap<i64, u64>>,
    /// False while invalidations may have been missed (the listener is down): the cache is
    /// then neither read nor filled.
    trusted: AtomicBool,
}

impl SessionCache {
    /// A cache of at most `capacity` sessions (0 disables caching) taking at most `max_bytes`
    /// (as estimated by `CachedSession::size`), each trusted for `max_age`.
    ///
    /// Both bounds are one moka weight: each entry weighs its size, but at least
    /// `max_bytes / capacity`, and the weights may add up to `max_bytes`. So the sizes add up
    /// to at most `max_bytes`, and there are at most `capacity` entries.
    pub fn new(capacity: u64, max_bytes: u64, max_age: Duration) -> Self {
        let entries = (capacity > 0).then(|| {
            let least = max_bytes.div_ceil(capacity).max(1);
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |_, s: &Arc<CachedSession>| {
                    u32::try_from(s.size().max(least)).unwrap_or(u32::MAX)
                })
                .time_to_live(max_age)
                .build_with_hasher(BuildDigestHasher::default())
        });
        Self {
            entries,
            epoch: AtomicU64::new(0),
            key_epochs: (0..KEY_SHARDS).map(|_| AtomicU64::new(0)).collect(),
            user_evictions: AtomicU64::new(0),
            user_generations: RwLock::new(HashMap::new()),
            // Nothing is trusted before the invalidation listener has subscribed.
            trusted: AtomicBool::new(false),
        }
    }

    /// Stops (false) or resumes (true) trusting the cache; both forget everything cached.
    pub fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::SeqCst);
        self.clear();
    }

    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
    }

    fn generation_of(&self, userid: i64) -> u64 {
        self.user_generations
            .read()
            .map(|g| g.get(&userid).copied().unwrap_or(0))
            .unwrap_or(u64::MAX)
    }

    /// The cached session for this key, unless it was invalidated.
    pub fn get(&self, digest: &KeyDigest) -> Option<Arc<CachedSession>> {
        if !self.trusted.load(Ordering::Acquire) {
            return None;
        }
        let entry = self.entries.as_ref()?.get(digest)?;
        if entry.user_evictions_seen != self.user_evictions.load(Ordering::Acquire) as u32
            && entry.user_generation != self.generation_of(entry.userid) as u32
        {
            return None;
        }
        Some(entry)
    }

    /// The invalidation epoch of this key, to pass to `insert` after loading it from the
    /// database: it moves with every invalidation that could make the load stale.
    pub fn epoch(&self, digest: &KeyDigest) -> u64 {
        self.epoch
            .load(Ordering::SeqCst)
            .wrapping_add(self.key_shard(digest).load(Ordering::SeqCst))
    }

    fn key_shard(&self, digest: &KeyDigest) -> &AtomicU64 {
        let first = digest.as_bytes().first().copied().unwrap_or(0);
        &self.key_epochs[usize::from(first) % KEY_SHARDS]
    }

    /// Caches a session loaded from the database when `epoch_before_load` was current; if an
    /// invalidation happened since, the entry is dropped again (the load may be stale).
    pub fn insert(
        &self,
        digest: KeyDigest,
        s: &SessionIdentity,
        stored_expires_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        epoch_before_load: u64,
    ) -> Option<Arc<CachedSession>> {
        let cache = self.entries.as_ref()?;
        if !self.trusted.load(Ordering::SeqCst) {
            return None;
        }
        let user_evictions_seen = self.user_evictions.load(Ordering::SeqCst) as u32;
        let entry = Arc::new(CachedSession::build(
            s,
            stored_expires_at,
            expires_at,
            self.generation_of(s.userid) as u32,
            user_evictions_seen,
        ));
        cache.insert(digest, entry.clone());
        if self.epoch(&digest) != epoch_before_load {
            cache.invalidate(&digest);
            return None;
        }
        Some(entry)
    }

    /// Forgets one session (killed or logged out).
    pub fn evict_key(&self, digest: &KeyDigest) {
        self.key_shard(digest).fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.entries {
            cache.invalidate(digest);
        }
    }

    /// Forgets every session of a user (renamed, deleted, admin flag or password changed).
    pub fn evict_user(&self, userid: i64) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut generations) = self.user_generations.write() {
            *generations.entry(userid).or_insert(0) += 1;
        }
        self.user_evictions.fetch_add(1, Ordering::SeqCst);
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some(cache) = &self.entries {
            cache.invalidate_all();
        }
        // Every entry is gone, so the per-user generations can start over.
        if let Ok(mut generations) = self.user_generations.write() {
            generations.clear();
        }
        self.user_evictions.fetch_add(1, Ordering::SeqCst);
    }

    /// Sessions currently cached. moka counts insertions and removals in its maintenance
    /// tasks, so those are run first: the count is true right after a fill (it costs a little
    /// work per call, fine for a metrics scrape, not for the request path).
    pub fn len(&self) -> u64 {
        self.entries
            .as_ref()
            .map(|c| {
                c.run_pending_tasks();
                c.entry_count()
            })
            .unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes charged against the budget by the sessions currently cached (like `len`, it
    /// runs moka's pending maintenance first: for metrics scrapes, not the request path).
    pub fn weighted_size(&self) -> u64 {
        self.entries
            .as_ref()
            .map(|c| {
                c.run_pending_tasks();
                c.weighted_size()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(userid: i64) -> SessionIdentity {
        SessionIdentity {
            session_id: 1,
            userid,
            username: "u".into(),
            email: "u@x".into(),
            admin: false,
            created_at: Utc::now(),
            expires_at: Utc::now(),
            max_expires_at: None,
            extra_data: None,
            remember: false,
            groups: String::new(),
        }
    }

    fn cache() -> SessionCache {
        let c = SessionCache::new(100, 1 << 20, Duration::from_secs(30));
        c.set_trusted(true);
        c
    }

    #[test]
    fn username_and_email_come_back_apart() {
        let mut s = identity(7);
        s.username = "zoë".into();
        s.email = "zoë@example.org".into();
        let now = Utc::now();
        let cached = CachedSession::detached(&s, now, now);
        assert_eq!(cached.username(), "zoë");
        assert_eq!(cached.email(), "zoë@example.org");
    }

    #[test]
    fn an_inserted_session_is_found_until_evicted() {
        let c = cache();
        let d = KeyDigest::of("k");
        let now = Utc::now();
        c.insert(d, &identity(7), now, now, c.epoch(&d));
        assert!(c.get(&d).is_some());
        c.evict_key(&d);
        assert!(c.get(&d).is_none());
    }

    #[test]
    fn evicting_a_user_hides_only_their_sessions() {
        let c = cache();
        let (a, b) = (KeyDigest::of("a"), KeyDigest::of("b"));
        let now = Utc::now();
        c.insert(a, &identity(1), now, now, c.epoch(&a));
        c.insert(b, &identity(2), now, now, c.epoch(&b));
        c.evict_user(1);
        assert!(c.get(&a).is_none());
        assert!(c.get(&b).is_some());
        c.insert(a, &identity(1), now, now, c.epoch(&a));
        assert!(
            c.get(&a).is_some(),
            "a fresh load after the eviction is trusted"
        );
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_kept() {
        let c = cache();
        let d = KeyDigest::of("k");
        let before = c.epoch(&d);
        c.evict_user(99);
        let now = Utc::now();
        assert!(c.insert(d, &identity(7), now, now, before).is_none());
        assert!(c.get(&d).is_none());
    }

    #[test]
    fn evicting_unknown_keys_does_not_drop_another_keys_fill_in_flight() {
        let c = cache();
        let d = KeyDigest::of("fresh");
        let before = c.epoch(&d);
        // A flood of random keys, each evicted as unknown, while `d` is being loaded.
        for i in 0..1000 {
            let bogus = KeyDigest::of(&format!("bogus-{i}"));
            if bogus.as_bytes()[0] != d.as_bytes()[0] {
                c.evict_key(&bogus);
            }
        }
        let now = Utc::now();
        assert!(c.insert(d, &identity(7), now, now, before).is_some());
        assert!(c.get(&d).is_some(), "the fresh session is cached");
    }

    #[test]
    fn evicting_a_key_drops_its_own_fill_in_flight() {
        let c = cache();
        let d = KeyDigest::of("k");
        let before = c.epoch(&d);
        c.evict_key(&d);
        let now = Utc::now();
        assert!(c.insert(d, &identity(7), now, now, before).is_none());
        assert!(c.get(&d).is_none());
    }

    #[test]
    fn a_new_cache_is_not_trusted_before_the_listener_subscribes() {
        let c = SessionCache::new(100, 1 << 20, Duration::from_secs(30));
        let d = KeyDigest::of("k");
        let now = Utc::now();
        assert!(!c.is_trusted());
        assert!(c.insert(d, &identity(7), now, now, c.epoch(&d)).is_none());
        assert!(c.get(&d).is_none());
    }

    #[test]
    fn an_untrusted_cache_is_neither_read_nor_filled() {
        let c = cache();
        let d = KeyDigest::of("k");
        let now = Utc::now();
        c.insert(d, &identity(7), now, now, c.epoch(&d));
        c.set_trusted(false);
        assert!(c.get(&d).is_none());
        assert!(c.insert(d, &identity(7), now, now, c.epoch(&d)).is_none());
        c.set_trusted(true);
        assert!(c.get(&d).is_none(), "nothing from before is trusted again");
        c.insert(d, &identity(7), now, now, c.epoch(&d));
        assert!(c.get(&d).is_some());
    }

    #[test]
    fn clearing_forgets_everything_and_a_zero_capacity_caches_nothing() {
        let c = cache();
        let d = KeyDigest::of("k");
        let now = Utc::now();
        c.insert(d, &identity(7), now, now, c.epoch(&d));
        c.clear();
        assert!(c.get(&d).is_none());
        let off = SessionCache::new(0, 1 << 20, Duration::from_secs(30));
        off.insert(d, &identity(7), now, now, off.epoch(&d));
        assert!(off.get(&d).is_none());
    }

    #[test]
    fn a_sessions_groups_count_in_its_size() {
        let now = Utc::now();
        let plain = CachedSession::detached(&identity(7), now, now);
        let mut s = identity(7);
        s.groups = "billing,ops".into();
        let grouped = CachedSession::detached(&s, now, now);
        assert_eq!(grouped.size(), plain.size() + 11);
    }

    fn with_extra_data(userid: i64, bytes: usize) -> SessionIdentity {
        let mut s = identity(userid);
        s.extra_data = Some(serde_json::Value::String("x".repeat(bytes)));
        s
    }

    #[test]
    fn sessions_with_big_extra_data_stay_within_the_byte_budget() {
        let budget = 1 << 20;
        let c = SessionCache::new(1_000_000, budget, Duration::from_secs(30));
        c.set_trusted(true);
        let now = Utc::now();
        for i in 0..500 {
            let d = KeyDigest::of(&format!("k{i}"));
            c.insert(d, &with_extra_data(i, 16 * 1024), now, now, c.epoch(&d));
        }
        let (bytes, entries) = (c.weighted_size(), c.len());
        assert!(bytes <= budget, "{bytes} bytes cached, budget {budget}");
        assert!(
            entries > 0 && entries < 64,
            "{entries} sessions of 16 KiB cached in 1 MiB"
        );
        assert!(
            bytes >= entries * 16 * 1024,
            "each is charged its extra data"
        );
    }

    #[test]
    fn the_entry_count_still_bounds_a_cache_of_small_sessions() {
        let c = SessionCache::new(10, 1 << 20, Duration::from_secs(30));
        c.set_trusted(true);
        let now = Utc::now();
        for i in 0..100 {
            let d = KeyDigest::of(&format!("k{i}"));
            c.insert(d, &identity(i), now, now, c.epoch(&d));
        }
        assert!(c.len() <= 10, "{} sessions cached", c.len());
        assert!(c.weighted_size() <= 1 << 20);
    }

    /// Resident memory of this process, from /proc.
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// A measurement, run alone so that no other test allocates meanwhile:
    /// `cargo test --lib the_size_estimate -- --ignored --test-threads=1 --nocapture`.
    #[test]
    #[ignore = "measures process memory: run alone"]
    fn the_size_estimate_covers_what_an_entry_really_costs() {
        const N: i64 = 200_000;
        let c = SessionCache::new(u64::MAX / 2, u64::MAX / 2, Duration::from_secs(3600));
        c.set_trusted(true);
        let now = Utc::now();
        let digests: Vec<KeyDigest> = (0..N).map(|i| KeyDigest::of(&format!("k{i}"))).collect();
        let sessions: Vec<SessionIdentity> = (0..N).map(|i| with_extra_data(i, 100)).collect();
        let before = resident_bytes();
        for (d, s) in digests.iter().zip(&sessions) {
            c.insert(*d, s, now, now, c.epoch(d));
        }
        assert_eq!(c.len(), N as u64);
        let measured = (resident_bytes() - before) / N as u64;
        let estimated = c.weighted_size() / N as u64;
        println!("per session: {measured} bytes measured, {estimated} estimated");
        assert!(estimated >= measured, "{estimated} < {measured}");
    }
}
