//! The session cookie as the daemon sets it: a browser-session cookie, or for a "remember me"
//! session a persistent one whose `Max-Age` follows the sliding expiry; and the cookie that
//! removes it.
//!
//! Built by hand rather than with actix-web's `cookies` feature: that brings `cookie` 0.16 next
//! to the 0.18 already in the lock (through reqwest), and a `Cookie` (0.18's, read) writes its
//! attributes in its own order (`HttpOnly; SameSite=Lax; Secure; Path=/; …`), not the one
//! clients and the tests below have seen (`Path=/; HttpOnly; SameSite=Lax; Max-Age=…; Secure`).

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::config::SessionSettings;
use crate::sessions::cache::CachedSession;

/// How long the browser keeps the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Until the browser closes (no `Max-Age`).
    BrowserSession,
    /// Until the session's expiry: `Max-Age` in seconds, at least 1.
    Until {
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    },
    /// Removed at once (`Max-Age=0`, empty value).
    Removed,
}

impl Lifetime {
    /// A persistent cookie for a remembered session, else a browser-session one.
    pub fn of(remember: bool, now: DateTime<Utc>, expires_at: DateTime<Utc>) -> Self {
        if remember {
            Self::Until { now, expires_at }
        } else {
            Self::BrowserSession
        }
    }
}

/// A `Set-Cookie` value for the session cookie holding `key` (ignored for `Removed`).
pub fn set_cookie(s: &SessionSettings, key: &str, lifetime: Lifetime) -> String {
    let value = if lifetime == Lifetime::Removed {
        ""
    } else {
        key
    };
    let mut cookie = format!("{}={value}; Path=/; HttpOnly; SameSite=Lax", s.cookie_name);
    match lifetime {
        Lifetime::BrowserSession => {}
        Lifetime::Until { now, expires_at } => {
            // Rounded up: a session that expires in 0.4 s still has its cookie for 1 s.
            let ms = (expires_at - now).num_milliseconds();
            let secs = (ms.saturating_add(999) / 1000).max(1);
            cookie.push_str(&format!("; Max-Age={secs}"));
        }
        Lifetime::Removed => cookie.push_str("; Max-Age=0"),
    }
    if s.cookie_secure {
        cookie.push_str("; Secure");
    }
    if let Some(domain) = &s.cookie_domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    cookie
}

/// A `Set-Cookie` value that removes the session cookie.
pub fn clearing_cookie(s: &SessionSettings) -> String {
    set_cookie(s, "", Lifetime::Removed)
}

/// The re-issued persistent cookie of a remembered session whose check just wrote its slid
/// expiry through (about once per `session.refresh_interval`, not on every request), so the
/// browser keeps the cookie as long as the session lives; `None` otherwise.
pub fn refreshed(
    s: &SessionSettings,
    key: &str,
    session: &CachedSession,
    clock: &dyn Clock,
) -> Option<String> {
    (session.remember && session.expiry_just_written()).then(|| {
        set_cookie(
            s,
            key,
            Lifetime::Until {
                now: clock.now(),
                expires_at: session.expires_at(),
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn settings() -> SessionSettings {
        let mut s = Settings::default().session;
        s.cookie_secure = true;
        s
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
    }

    #[test]
    fn a_browser_session_cookie_has_no_max_age() {
        let c = set_cookie(&settings(), "K", Lifetime::of(false, t(0), t(60)));
        assert_eq!(
            c,
            "pgusers_session=K; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn a_remembered_cookie_lives_until_the_session_expires() {
        let c = set_cookie(&settings(), "K", Lifetime::of(true, t(0), t(90)));
        assert_eq!(
            c,
            "pgusers_session=K; Path=/; HttpOnly; SameSite=Lax; Max-Age=90; Secure"
        );
    }

    #[test]
    fn the_clearing_cookie_is_empty_and_expired_with_the_same_scope() {
        let mut s = settings();
        s.cookie_domain = Some("example.com".into());
        assert_eq!(
            clearing_cookie(&s),
            "pgusers_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure; Domain=example.com"
        );
    }
}
