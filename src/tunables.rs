//! Settings that may change while the daemon runs (API TTL override, SIGHUP reload), shared
//! lock-free between the HTTP workers and the actors.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Duration;

use crate::config::Settings;

/// Where the effective session TTL comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlSource {
    Config,
    Api,
}

impl TtlSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
        }
    }
}

#[derive(Debug)]
pub struct Tunables {
    config_ttl_secs: AtomicU64,
    api_ttl_secs: AtomicU64,
    api_ttl_set: AtomicBool,
    remember_ttl_secs: AtomicU64,
    /// 0 means no absolute lifetime.
    max_lifetime_secs: AtomicU64,
    refresh_interval_ms: AtomicU64,
    janitor_interval_ms: AtomicU64,
    /// 0 means no cap.
    max_sessions_per_user: AtomicU64,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Tunables {
    pub fn new(settings: &Settings) -> Self {
        let t = Self {
            config_ttl_secs: AtomicU64::new(0),
            api_ttl_secs: AtomicU64::new(0),
            api_ttl_set: AtomicBool::new(false),
            remember_ttl_secs: AtomicU64::new(0),
            max_lifetime_secs: AtomicU64::new(0),
            refresh_interval_ms: AtomicU64::new(0),
            janitor_interval_ms: AtomicU64::new(0),
            max_sessions_per_user: AtomicU64::new(0),
        };
        t.apply_config(settings);
        t
    }

    /// Takes the reloadable values from a (re)loaded configuration.
    pub fn apply_config(&self, settings: &Settings) {
        let s = &settings.session;
        self.config_ttl_secs
            .store(s.ttl.as_secs(), Ordering::Release);
        self.remember_ttl_secs
            .store(s.remember_ttl.as_secs(), Ordering::Release);
        self.max_lifetime_secs.store(
            s.max_lifetime.map(|d| d.as_secs()).unwrap_or(0),
            Ordering::Release,
        );
        self.refresh_interval_ms
            .store(ms(s.refresh_interval), Ordering::Release);
        self.janitor_interval_ms
            .store(ms(settings.janitor.interval), Ordering::Release);
        self.max_sessions_per_user
            .store(s.max_per_user, Ordering::Release);
    }

    pub fn set_api_ttl(&self, seconds: Option<u64>) {
        match seconds {
            Some(s) => {
                self.api_ttl_secs.store(s, Ordering::Release);
                self.api_ttl_set.store(true, Ordering::Release);
            }
            None => self.api_ttl_set.store(false, Ordering::Release),
        }
    }

    pub fn ttl_secs(&self) -> (u64, TtlSource) {
        if self.api_ttl_set.load(Ordering::Acquire) {
            (self.api_ttl_secs.load(Ordering::Acquire), TtlSource::Api)
        } else {
            (
                self.config_ttl_secs.load(Ordering::Acquire),
                TtlSource::Config,
            )
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::seconds(i64::try_from(self.ttl_secs().0).unwrap_or(i64::MAX / 1000))
    }

    /// The sliding TTL of a session: `session.remember_ttl` for a "remember me" session (the
    /// API override does not apply to it), else the effective `session.ttl`.
    pub fn ttl_for(&self, remember: bool) -> Duration {
        if remember {
            Duration::seconds(
                i64::try_from(self.remember_ttl_secs.load(Ordering::Acquire))
                    .unwrap_or(i64::MAX / 1000),
            )
        } else {
            self.ttl()
        }
    }

    pub fn max_lifetime(&self) -> Option<Duration> {
        match self.max_lifetime_secs.load(Ordering::Acquire) {
            0 => None,
            s => Some(Duration::seconds(
                i64::try_from(s).unwrap_or(i64::MAX / 1000),
            )),
        }
    }

    pub fn refresh_interval(&self) -> Duration {
        Duration::milliseconds(
            i64::try_from(self.refresh_interval_ms.load(Ordering::Acquire)).unwrap_or(i64::MAX),
        )
    }

    pub fn janitor_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.janitor_interval_ms.load(Ordering::Acquire))
    }

    /// The most sessions one user may hold, if capped.
    pub fn max_sessions_per_user(&self) -> Option<i64> {
        match self.max_sessions_per_user.load(Ordering::Acquire) {
            0 => None,
            n => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_user_session_cap_follows_a_reload_and_zero_means_none() {
        let mut settings = Settings::default();
        settings.session.max_per_user = 3;
        let t = Tunables::new(&settings);
        assert_eq!(t.max_sessions_per_user(), Some(3));
        settings.session.max_per_user = 0;
        t.apply_config(&settings);
        assert_eq!(t.max_sessions_per_user(), None);
    }
}
