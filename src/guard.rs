//! Brute-force protection and the audit trail: failed logins counted per account and per
//! client address in the database (so every instance sees them), escalating locks, and the
//! record of security events.

use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::config::{AuditSettings, ThrottleSettings};
use crate::error::ApiError;
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

/// The throttle key of an account: its name without regard to case (whether or not it exists,
/// so a lock says nothing about existence).
pub fn account_key(username: &str) -> String {
    username.to_lowercase().replace('\0', "\u{fffd}")
}

fn seconds(d: std::time::Duration) -> Duration {
    Duration::milliseconds(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2))
}

fn retry_after(now: DateTime<Utc>, until: DateTime<Utc>) -> ApiError {
    let secs = ((until - now).num_milliseconds().max(0) + 999) / 1000;
    let secs = secs.max(1);
    ApiError::TooManyRequests {
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

    /// Refuses (429 with Retry-After) while the account or the address is locked.
    pub async fn admit(
        &self,
        db: &impl GenericClient,
        username: &str,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<(), ApiError> {
        let mut until = store::locked_until(db, ACCOUNT, &account_key(username), now).await?;
        if let Some(ip) = client {
            let by_address = store::locked_until(db, ADDRESS, &ip.to_string(), now).await?;
            until = until.max(by_address);
        }
        match until {
            Some(until) => Err(retry_after(now, until)),
            None => Ok(()),
        }
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

    /// Counts a failed login; returns the lock it caused, if any.
    pub async fn failed(
        &self,
        db: &impl GenericClient,
        username: &str,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, ApiError> {
        let window = self.throttle.window.as_secs_f64();
        let key = account_key(username);
        let failures = store::record_failure(db, ACCOUNT, &key, now, window).await?;
        let mut locked = None;
        if let Some(lock) = self.lock_for(failures, self.throttle.account_failures) {
            store::lock(db, ACCOUNT, &key, now + lock).await?;
            locked = Some(now + lock);
        }
        if let Some(ip) = client {
            let ip = ip.to_string();
            let failures = store::record_failure(db, ADDRESS, &ip, now, window).await?;
            if let Some(lock) = self.lock_for(failures, self.throttle.address_failures) {
                store::lock(db, ADDRESS, &ip, now + lock).await?;
                locked = locked.max(Some(now + lock));
            }
        }
        Ok(locked)
    }

    /// A successful login resets the account's counter.
    pub async fn succeeded(&self, db: &impl GenericClient, username: &str) -> Result<(), ApiError> {
        store::clear(db, ACCOUNT, &account_key(username)).await?;
        Ok(())
    }

    /// An administrator lifts the lock of an account; returns whether there was anything.
    pub async fn unlock(&self, db: &impl GenericClient, username: &str) -> Result<bool, ApiError> {
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

    /// The janitor's share: old audit events and stale throttle rows.
    pub async fn purge(
        &self,
        db: &impl GenericClient,
        now: DateTime<Utc>,
    ) -> Result<(u64, u64), ApiError> {
        let events = store::purge_events(db, now - seconds(self.audit.retention)).await?;
        let failures = store::purge_failures(db, now - seconds(self.throttle.window)).await?;
        Ok((events, failures))
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
}
