//! The systemd notification protocol (`sd_notify(3)`): READY/RELOADING/STOPPING/STATUS/WATCHDOG datagrams to `$NOTIFY_SOCKET`, std only, no `unsafe`.
//!
//! [`Notifier::from_env`] reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` once.
//! When `NOTIFY_SOCKET` is unset (not started by systemd, `Type=simple`, a container …)
//! every method is a no-op, so callers never need to check.
//!
//! Supported socket addresses: an absolute filesystem path (`/run/systemd/notify`) and, on
//! Linux, an abstract socket written `@name` (through
//! `std::os::linux::net::SocketAddrExt`). Anything else (`vsock:…`, a relative path) is
//! reported as an error on each send and otherwise ignored.
//!
//! Limitation: `RELOADING=1` is sent without `MONOTONIC_USEC=`. Reading `CLOCK_MONOTONIC` as
//! an absolute value needs `clock_gettime`, i.e. `unsafe` (forbidden in this crate), and
//! `std::time::Instant` does not expose it. `sd_notify(3)` recommends the field so the manager
//! can tell which reload a `RELOADING=1` answers, which matters for `Type=notify-reload`
//! (systemd ≥ 253, where systemd sends the signal itself); the shipped unit uses
//! `Type=notify` with `ExecReload=kill -HUP`, where `RELOADING=1` … `READY=1` is enough.
//!
//! The environment variables are deliberately not removed (that would need
//! `std::env::remove_var` in a multi-threaded process). Child processes that could speak the
//! protocol themselves (e.g. an embedded `postgres`, built with systemd support on Debian)
//! must be spawned with `Command::env_remove("NOTIFY_SOCKET")` (and `WATCHDOG_*`,
//! `LISTEN_*`), or they would announce readiness on our behalf.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `NOTIFY_SOCKET` unset or empty: every call is a no-op.
    Disabled,
    /// An absolute filesystem path.
    Path(std::path::PathBuf),
    /// An abstract socket name (the value after the leading `@`).
    Abstract(Vec<u8>),
    /// A value this implementation cannot send to (kept for the error message).
    Unsupported(String),
}

/// Sends service state changes to the service manager. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Target,
    /// The full watchdog timeout, when the watchdog is enabled for this process.
    watchdog_timeout: Option<Duration>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::disabled()
    }
}

impl Notifier {
    /// A notifier that never sends anything.
    pub fn disabled() -> Self {
        Notifier {
            target: Target::Disabled,
            watchdog_timeout: None,
        }
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        Self::from_values(
            var("NOTIFY_SOCKET").as_deref(),
            var("WATCHDOG_USEC").as_deref(),
            var("WATCHDOG_PID").as_deref(),
            std::process::id(),
        )
    }

    /// Builds a notifier from explicit values (what `from_env` reads), for tests and for
    /// callers that obtained them elsewhere. `our_pid` is compared with `watchdog_pid`.
    pub fn from_values(
        notify_socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
        our_pid: u32,
    ) -> Self {
        let target = match notify_socket.map(str::trim) {
            None | Some("") => Target::Disabled,
            Some(p) if p.starts_with('/') => Target::Path(p.into()),
            Some(p) if p.starts_with('@') && p.len() > 1 => {
                Target::Abstract(p.as_bytes()[1..].to_vec())
            }
            Some(other) => Target::Unsupported(other.to_owned()),
        };
        let watchdog_for_us = match watchdog_pid.map(str::trim) {
            None | Some("") => true,
            Some(pid) => pid.parse::<u32>().ok() == Some(our_pid),
        };
        let watchdog_timeout = match (&target, watchdog_for_us) {
            (Target::Disabled, _) | (_, false) => None,
            _ => watchdog_usec
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&usec| usec > 0)
                .map(Duration::from_micros),
        };
        Notifier {
            target,
            watchdog_timeout,
        }
    }

    /// True when `NOTIFY_SOCKET` was set, i.e. notifications are actually sent.
    pub fn is_enabled(&self) -> bool {
        self.target != Target::Disabled
    }

    /// `READY=1`: start-up (or a reload) is complete. Send it only after migrations ran and
    /// every listener is bound.
    pub fn ready(&self) {
        self.notify("READY=1");
    }

    /// `RELOADING=1`: a configuration reload started; follow it with [`Notifier::ready`]
    /// (also when the new configuration was rejected and the old one is kept).
    pub fn reloading(&self) {
        self.notify("RELOADING=1");
    }

    /// `STOPPING=1`: graceful shutdown started.
    pub fn stopping(&self) {
        self.notify("STOPPING=1");
    }

    /// `STATUS=<text>`: a one-line human readable status shown by `systemctl status`.
    /// Newlines in `text` are replaced by spaces (they would end the field).
    pub fn status(&self, text: &str) {
        self.notify(&status_line(text));
    }

    /// `WATCHDOG=1`: keep-alive ping. Call it every [`Notifier::watchdog_interval`] while the
    /// daemon is healthy; harmless (a no-op for systemd) when the watchdog is disabled.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }

    /// `EXTEND_TIMEOUT_USEC=…`: asks for more time in the current start/reload/stop phase
    /// (e.g. before long migrations).
    pub fn extend_timeout(&self, by: Duration) {
        self.notify(&format!("EXTEND_TIMEOUT_USEC={}", by.as_micros()));
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, and only when the watchdog
    /// is enabled for this process (`WATCHDOG_PID` unset or equal to our pid) and
    /// `NOTIFY_SOCKET` is set. `None` means: do not run a watchdog task.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_timeout.map(|t| t / 2)
    }

    /// Sends one state string (several `KEY=VALUE` lines separated by `\n` are allowed,
    /// e.g. `"READY=1\nSTATUS=serving"`). `Ok(())` without sending when disabled.
    pub fn send(&self, state: &str) -> io::Result<()> {
        let addr = match &self.target {
            Target::Disabled => return Ok(()),
            Target::Path(p) => SocketAddr::from_pathname(p)?,
            Target::Abstract(name) => abstract_addr(name)?,
            Target::Unsupported(v) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("unsupported NOTIFY_SOCKET address {v:?}"),
                ))
            }
        };
        let sock = UnixDatagram::unbound()?;
        // Never block the caller (an async runtime thread) on a receiver that is not reading.
        sock.set_nonblocking(true)?;
        let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
        if sent != state.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write on NOTIFY_SOCKET",
            ));
        }
        Ok(())
    }

    /// Best-effort send: a failure is logged, never fatal.
    fn notify(&self, state: &str) {
        if let Err(e) = self.send(state) {
            tracing::warn!(error = %e, state = %first_key(state), "sd_notify failed");
        }
    }

    /// The path of the notification socket, when it is a filesystem path.
    pub fn socket_path(&self) -> Option<&Path> {
        match &self.target {
            Target::Path(p) => Some(p),
            _ => None,
        }
    }
}

fn status_line(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("STATUS={one_line}")
}

fn first_key(state: &str) -> &str {
    state.split(['=', '\n']).next().unwrap_or("")
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract NOTIFY_SOCKET addresses are only supported on Linux",
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn bound() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (dir, sock, path.to_str().unwrap().to_owned())
    }

    #[test]
    fn sends_the_sequence_to_a_path_socket() {
        let (_dir, sock, path) = bound();
        let n = Notifier::from_values(Some(&path), None, None, 1);
        assert!(n.is_enabled());
        n.status("migrating\nthe database");
        n.ready();
        n.watchdog();
        n.reloading();
        n.ready();
        n.extend_timeout(Duration::from_secs(2));
        n.stopping();
        n.send("READY=1\nSTATUS=x").unwrap();
        let got: Vec<String> = (0..8).map(|_| recv(&sock)).collect();
        assert_eq!(
            got,
            [
                "STATUS=migrating the database",
                "READY=1",
                "WATCHDOG=1",
                "RELOADING=1",
                "READY=1",
                "EXTEND_TIMEOUT_USEC=2000000",
                "STOPPING=1",
                "READY=1\nSTATUS=x",
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "pgusers-sd-notify-test-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier::from_values(Some(&format!("@{name}")), None, None, 1);
        n.ready();
        assert_eq!(recv(&sock), "READY=1");
    }

    #[test]
    fn disabled_when_unset_or_empty() {
        for v in [None, Some(""), Some("  ")] {
            let n = Notifier::from_values(v, Some("30000000"), None, 1);
            assert!(!n.is_enabled());
            assert_eq!(n.watchdog_interval(), None);
            n.ready();
            n.send("READY=1").unwrap();
        }
        assert!(!Notifier::disabled().is_enabled());
    }

    #[test]
    fn unsupported_address_is_an_error_not_a_panic() {
        let n = Notifier::from_values(Some("vsock:2:1234"), None, None, 1);
        assert!(n.is_enabled());
        assert_eq!(
            n.send("READY=1").unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
        n.ready(); // logged, not fatal
    }

    #[test]
    fn missing_listener_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody-here.sock");
        let n = Notifier::from_values(path.to_str(), None, None, 1);
        assert!(n.send("READY=1").is_err());
        n.ready(); // logged, not fatal
    }

    #[test]
    fn watchdog_interval_is_half_and_respects_pid() {
        let s = Some("/run/systemd/notify");
        let half = Some(Duration::from_secs(15));
        assert_eq!(
            Notifier::from_values(s, Some("30000000"), None, 42).watchdog_interval(),
            half
        );
        assert_eq!(
            Notifier::from_values(s, Some("30000000"), Some(""), 42).watchdog_interval(),
            half
        );
        assert_eq!(
            Notifier::from_values(s, Some("30000000"), Some("42"), 42).watchdog_interval(),
            half
        );
        assert_eq!(
            Notifier::from_values(s, Some("30000000"), Some("43"), 42).watchdog_interval(),
            None
        );
        assert_eq!(
            Notifier::from_values(s, Some("0"), None, 42).watchdog_interval(),
            None
        );
        assert_eq!(
            Notifier::from_values(s, Some("soon"), None, 42).watchdog_interval(),
            None
        );
        assert_eq!(
            Notifier::from_values(s, None, None, 42).watchdog_interval(),
            None
        );
        assert_eq!(
            Notifier::from_values(s, Some("1"), None, 42).watchdog_interval(),
            Some(Duration::from_nanos(500))
        );
    }
}
