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

/// Whether the stored expiry must be rewritten: it may lag the true one by at most
/// `refresh_interval`; a shorter expiry (after a TTL reduction) is always written.
pub fn needs_refresh(
    stored: DateTime<Utc>,
    wanted: DateTime<Utc>,
    refresh_interval: Duration,
) -> bool {
    wanted < stored || wanted - stored >= refresh_interval
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
        assert!(!needs_refresh(t(100), t(159), every));
        assert!(needs_refresh(t(100), t(160), every));
        assert!(
            needs_refresh(t(100), t(99), every),
            "a shorter expiry is always written"
        );
        assert!(!needs_refresh(t(100), t(100), every));
    }
}
