//! Settings that may change while the daemon runs (API TTL override, SIGHUP reload), shared
//! lock-free between the HTTP workers and the actors as one snapshot (`arc-swap`).

use arc_swap::ArcSwap;
use chrono::Duration;

use crate::config::Settings;

/// The keys a SIGHUP applies: those `Live` holds, and `log.level` (the daemon's log filter).
pub const RELOADABLE: &[&str] = &[
    "session.ttl",
    "session.remember_ttl",
    "session.max_lifetime",
    "session.refresh_interval",
    "session.max_per_user",
    "janitor.interval",
    "log.level",
];

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

/// The live values, replaced as a whole so that a reader never sees half of a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Live {
    config_ttl: std::time::Duration,
    /// The TTL set through the API; it beats the configured one.
    api_ttl: Option<std::time::Duration>,
    remember_ttl: std::time::Duration,
    max_lifetime: Option<std::time::Duration>,
    refresh_interval: std::time::Duration,
    janitor_interval: std::time::Duration,
    max_sessions_per_user: Option<u64>,
}

impl Live {
    /// The reloadable values of `settings`, with the API's TTL as it is.
    fn of(settings: &Settings, api_ttl: Option<std::time::Duration>) -> Self {
        let s = &settings.session;
        Live {
            config_ttl: whole_secs(s.ttl),
            api_ttl,
            remember_ttl: whole_secs(s.remember_ttl),
            max_lifetime: s.max_lifetime.map(whole_secs).filter(|d| !d.is_zero()),
            refresh_interval: s.refresh_interval,
            janitor_interval: settings.janitor.interval,
            max_sessions_per_user: Some(s.max_per_user).filter(|&n| n > 0),
        }
    }
}

#[derive(Debug)]
pub struct Tunables(ArcSwap<Live>);

/// A chrono duration of `d`, saturating (chrono's limit is far beyond any setting).
fn chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

/// Session lifetimes count in whole seconds (as the database and the API do).
fn whole_secs(d: std::time::Duration) -> std::time::Duration {
    std::time::Duration::from_secs(d.as_secs())
}

impl Tunables {
    pub fn new(settings: &Settings) -> Self {
        Self(ArcSwap::from_pointee(Live::of(settings, None)))
    }

    /// Takes the reloadable values from a (re)loaded configuration.
    pub fn apply_config(&self, settings: &Settings) {
        self.0.rcu(|live| Live::of(settings, live.api_ttl));
    }

    pub fn set_api_ttl(&self, seconds: Option<u64>) {
        let api_ttl = seconds.map(std::time::Duration::from_secs);
        self.0.rcu(|live| Live {
            api_ttl,
            ..Live::clone(live)
        });
    }

    pub fn ttl_secs(&self) -> (u64, TtlSource) {
        let live = self.0.load();
        match live.api_ttl {
            Some(ttl) => (ttl.as_secs(), TtlSource::Api),
            None => (live.config_ttl.as_secs(), TtlSource::Config),
        }
    }

    pub fn ttl(&self) -> Duration {
        let live = self.0.load();
        chrono(live.api_ttl.unwrap_or(live.config_ttl))
    }

    /// The sliding TTL of a session: `session.remember_ttl` for a "remember me" session (the
    /// API override does not apply to it), else the effective `session.ttl`.
    pub fn ttl_for(&self, remember: bool) -> Duration {
        if remember {
            chrono(self.0.load().remember_ttl)
        } else {
            self.ttl()
        }
    }

    pub fn max_lifetime(&self) -> Option<Duration> {
        self.0.load().max_lifetime.map(chrono)
    }

    pub fn refresh_interval(&self) -> Duration {
        chrono(self.0.load().refresh_interval)
    }

    pub fn janitor_interval(&self) -> std::time::Duration {
        self.0.load().janitor_interval
    }

    /// The most sessions one user may hold, if capped.
    pub fn max_sessions_per_user(&self) -> Option<i64> {
        self.0
            .load()
            .max_sessions_per_user
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
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

    #[test]
    fn the_api_ttl_beats_the_configured_one_across_reloads_until_cleared() {
        let mut settings = Settings::default();
        settings.session.ttl = std::time::Duration::from_millis(100_900);
        let t = Tunables::new(&settings);
        assert_eq!(t.ttl_secs(), (100, TtlSource::Config));
        t.set_api_ttl(Some(300));
        settings.session.ttl = std::time::Duration::from_secs(200);
        settings.session.max_lifetime = Some(std::time::Duration::from_secs(3600));
        t.apply_config(&settings);
        assert_eq!(t.ttl_secs(), (300, TtlSource::Api));
        assert_eq!(t.ttl(), Duration::seconds(300));
        assert_eq!(
            t.ttl_for(true),
            Duration::from_std(settings.session.remember_ttl).unwrap_or_default()
        );
        assert_eq!(t.max_lifetime(), Some(Duration::seconds(3600)));
        t.set_api_ttl(None);
        assert_eq!(t.ttl_secs(), (200, TtlSource::Config));
    }
}
