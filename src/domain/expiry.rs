//! Expiry arithmetic: sliding TTL, the optional absolute lifetime, and when to write a refresh.

use chrono::{DateTime, Duration, Utc};

/// The expiry a session gets when it is created or checked at `now`.
pub fn slide(
    now: DateTime<Utc>,
    ttl: Duration,
    max_expires_at: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let sliding = now + ttl;
    match max_expires_at {
        Some(cap) if cap < sliding => cap,
        _ => sliding,
    }
}

/// The absolute end of a session created at `now`, when a maximum lifetime is configured.
pub fn absolute_end(now: DateTime<Utc>, max_lifetime: Option<Duration>) -> Option<DateTime<Utc>> {
    max_lifetime.map(|life| now + life)
}

/// How far the stored expiry may lag the true one: `refresh_interval`, but never more than half
/// the TTL, so that a session in use always has a stored expiry at least half a TTL ahead (other
/// instances, which read the stored one, accept it; the janitor leaves it alone), whatever
/// short TTL is configured or set through the API.
pub fn refresh_lag(refresh_interval: Duration, ttl: Duration) -> Duration {
    refresh_interval.min(ttl / 2)
}

/// Whether the stored expiry must be rewritten: it may lag the true one by at most
/// [`refresh_lag`]; a shorter expiry (after a TTL reduction) is always written.
pub fn needs_refresh(
    stored: DateTime<Utc>,
    wanted: DateTime<Utc>,
    refresh_interval: Duration,
    ttl: Duration,
) -> bool {
    wanted < stored || wanted - stored >= refresh_lag(refresh_interval, ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    #[test]
    fn sliding_adds_the_ttl_to_now() {
        assert_eq!(slide(t(0), Duration::seconds(60), None), t(60));
    }

    #[test]
    fn the_absolute_lifetime_caps_the_slide() {
        assert_eq!(slide(t(0), Duration::seconds(60), Some(t(30))), t(30));
        assert_eq!(slide(t(0), Duration::seconds(60), Some(t(90))), t(60));
    }

    #[test]
    fn refreshes_are_written_only_when_the_lag_reaches_the_interval() {
        let every = Duration::seconds(60);
        let ttl = Duration::hours(1);
        assert!(!needs_refresh(t(100), t(159), every, ttl));
        assert!(needs_refresh(t(100), t(160), every, ttl));
        assert!(
            needs_refresh(t(100), t(99), every, ttl),
            "a shorter expiry is always written"
        );
        assert!(!needs_refresh(t(100), t(100), every, ttl));
    }

    #[test]
    fn a_ttl_shorter_than_twice_the_interval_is_refreshed_every_half_ttl() {
        let every = Duration::seconds(60);
        let ttl = Duration::seconds(5);
        assert_eq!(refresh_lag(every, ttl), Duration::milliseconds(2500));
        assert!(!needs_refresh(t(100), t(102), every, ttl));
        assert!(needs_refresh(t(100), t(103), every, ttl));
        assert_eq!(
            refresh_lag(Duration::seconds(1), Duration::hours(1)),
            Duration::seconds(1)
        );
    }
}
