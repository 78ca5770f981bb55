//! Brute-force protection and the audit trail: failed logins counted per account and per
//! client address in the database (so every instance sees them), escalating locks, and the
//! record of security events.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use super::{Error, Result};
use crate::config::{AuditSettings, ThrottleSettings};
use crate::store::security::{self as store, AuditEvent};
use crate::store::GenericClient;

const ACCOUNT: &str = "account";
const ADDRESS: &str = "address";

/// The throttle's settings and this instance's name for the audit trail.
#[derive(Debug, Clone)]
pub struct Guard {
    throttle: ThrottleSettings,
    pub audit: AuditSettings,
    pub instance: String,
}

/// The throttle key of an account: its name, whether or not it exists (so a lock says nothing
/// about existence); the store folds its case with PostgreSQL's `lower()`, like the lookup.
pub fn account_key(username: &str) -> String {
    username.replace('\0', "\u{fffd}")
}

/// The throttle key of a client address: IPv4 addresses whole, IPv6 addresses by their /64
/// (what one customer line or host usually gets, so rotating through it does not help).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

fn threshold(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// A login attempt reserved on the throttle, to settle once the password is checked.
#[derive(Debug, Clone)]
pub struct Attempt {
    key: String,
    account: i32,
    address: Option<(String, i32)>,
}

fn seconds(d: std::time::Duration) -> Duration {
    Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
}

fn retry_after(now: DateTime<Utc>, until: DateTime<Utc>) -> Error {
    let secs = ((until - now).num_milliseconds().max(0) + 999) / 1000;
    let secs = secs.max(1);
    Error::Throttled {
        retry_after_secs: u64::try_from(secs).unwrap_or(1),
    }
}

impl Guard {
    pub fn new(throttle: ThrottleSettings, audit: AuditSettings, instance: String) -> Self {
        Self {
            throttle,
            audit,
            instance,
        }
    }

    /// Reserves a login attempt for the account and the client address before any hashing, in
    /// one transaction (account row first, then address row, so concurrent reservations never
    /// deadlock). Refuses (429 with Retry-After) while the account is locked or has no attempt
    /// left, attempts in flight included: N parallel guesses on any number of instances get at
    /// most the configured number of verifications. An address over its limit is refused too,
    /// except for the first attempt at an account with no attempt in the window.
    pub async fn reserve(
        &self,
        db: &mut deadpool_postgres::Object,
        username: &str,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Attempt> {
        let window = self.throttle.window.as_secs_f64();
        let key = account_key(username);
        let address = client.map(address_key);
        let tx = db.transaction().await?;
        let account_threshold = threshold(self.throttle.account_failures);
        let Some(account) =
            store::reserve(&tx, ACCOUNT, &key, now, window, account_threshold).await?
        else {
            drop(tx);
            return Err(self.refusal(db, &key, address.as_deref(), now).await);
        };
        let address = match address {
            Some(ip) => {
                let address_threshold = threshold(self.throttle.address_failures);
                match store::reserve(&tx, ADDRESS, &ip, now, window, address_threshold).await? {
                    Some(n) => Some((ip, n)),
                    // An address over its limit still gets one attempt at an account nobody
                    // has tried in the window: behind a proxy that is not trusted, every client
                    // shares one address, and the limit must not become a lock on everyone.
                    None if account == 1 => None,
                    None => {
                        drop(tx);
                        return Err(self.refusal(db, &key, Some(&ip), now).await);
                    }
                }
            }
            None => None,
        };
        tx.commit().await?;
        Ok(Attempt {
            key,
            account,
            address,
        })
    }

    /// The 429 for a refused reservation: Retry-After until the longer lock ends, or one second
    /// when the attempts left are all in flight.
    async fn refusal(
        &self,
        db: &impl GenericClient,
        key: &str,
        address: Option<&str>,
        now: DateTime<Utc>,
    ) -> Error {
        let mut until = store::locked_until(db, ACCOUNT, key, now)
            .await
            .ok()
            .flatten();
        if let Some(ip) = address {
            let by_address = store::locked_until(db, ADDRESS, ip, now)
                .await
                .ok()
                .flatten();
            until = until.max(by_address);
        }
        retry_after(now, until.unwrap_or(now))
    }

    /// The lock a failure count earns: `base_lock` at the threshold, doubling after.
    fn lock_for(&self, failures: i32, threshold: u32) -> Option<Duration> {
        let over = i64::from(failures) - i64::from(threshold);
        if over < 0 {
            return None;
        }
        let base = seconds(self.throttle.base_lock);
        let factor = 1i64
            .checked_shl(u32::try_from(over.min(30)).unwrap_or(30))
            .unwrap_or(i64::MAX);
        let lock = base
            .checked_mul(i32::try_from(factor).unwrap_or(i32::MAX))
            .unwrap_or(Duration::MAX);
        Some(lock.min(seconds(self.throttle.max_lock)))
    }

    /// Settles a reserved attempt whose password was wrong (it stays counted); returns the
    /// lock it caused, if any.
    pub async fn failed(
        &self,
        db: &impl GenericClient,
        attempt: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let mut locked = None;
        if let Some(lock) = self.lock_for(attempt.account, self.throttle.account_failures) {
            store::lock(db, ACCOUNT, &attempt.key, now + lock, attempt.account).await?;
            locked = Some(now + lock);
        }
        if let Some((ip, n)) = &attempt.address {
            if let Some(lock) = self.lock_for(*n, self.throttle.address_failures) {
                store::lock(db, ADDRESS, ip, now + lock, *n).await?;
                locked = locked.max(Some(now + lock));
            }
        }
        Ok(locked)
    }

    /// Settles a reserved attempt whose password was right: the account's attempts counted
    /// before this one began are forgotten (never those made since, which may still be in
    /// flight), and the address gets its attempt back.
    pub async fn succeeded(&self, db: &impl GenericClient, attempt: &Attempt) -> Result<()> {
        store::release(db, ACCOUNT, &attempt.key, attempt.account).await?;
        if let Some((ip, _)) = &attempt.address {
            store::release(db, ADDRESS, ip, 1).await?;
        }
        Ok(())
    }

    /// Gives a reserved attempt back when no password was checked (the hashing queue was full).
    pub async fn cancel(&self, db: &impl GenericClient, attempt: &Attempt) -> Result<()> {
        store::release(db, ACCOUNT, &attempt.key, 1).await?;
        if let Some((ip, _)) = &attempt.address {
            store::release(db, ADDRESS, ip, 1).await?;
        }
        Ok(())
    }

    /// An administrator lifts the lock of an account; returns whether there was anything.
    pub async fn unlock(&self, db: &impl GenericClient, username: &str) -> Result<bool> {
        Ok(store::clear(db, ACCOUNT, &account_key(username)).await?)
    }

    /// Writes a security event; a failure to write is logged, never fatal.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        db: &impl GenericClient,
        now: DateTime<Utc>,
        kind: &str,
        userid: Option<i64>,
        username: Option<&str>,
        client: Option<IpAddr>,
        detail: Option<Value>,
    ) {
        let event = AuditEvent {
            event_id: 0,
            at: now,
            kind: kind.to_string(),
            userid,
            username: username.map(|u| u.replace('\0', "\u{fffd}")),
            client_addr: client.map(|c| c.to_string()),
            instance: self.instance.clone(),
            detail,
        };
        if let Err(e) = store::record_event(db, &event).await {
            tracing::warn!(error = %e, kind, "could not write an audit event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn locks_start_at_the_threshold_double_and_are_capped() {
        let s = Settings::default();
        let g = Guard::new(s.throttle.clone(), s.audit.clone(), "t".into());
        assert_eq!(g.lock_for(4, 5), None);
        assert_eq!(g.lock_for(5, 5), Some(Duration::seconds(30)));
        assert_eq!(g.lock_for(6, 5), Some(Duration::seconds(60)));
        assert_eq!(g.lock_for(7, 5), Some(Duration::seconds(120)));
        assert_eq!(g.lock_for(60, 5), Some(Duration::minutes(15)));
    }

    #[test]
    fn ipv6_clients_are_throttled_per_64_and_ipv4_per_address() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(address_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7"
        );
    }
}
