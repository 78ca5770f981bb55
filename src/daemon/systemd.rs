//! The systemd notification protocol (`sd_notify(3)`) through the `sd-notify` crate: READY, RELOADING (with `MONOTONIC_USEC`), STOPPING, STATUS and WATCHDOG to `$NOTIFY_SOCKET`.
//!
//! [`Notifier::from_env`] reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` once.
//! When `NOTIFY_SOCKET` is unset or empty (not started by systemd, `Type=simple`, a
//! container …) every method is a no-op, so callers never need to check. A failed send is
//! logged, never fatal.
//!
//! The crate connects to the socket as a filesystem path (`/run/systemd/notify`); an abstract
//! address written `@name` (some container managers use one) is sent to here, with std's
//! `SocketAddrExt`, as the crate would format it.
//!
//! The environment variables are deliberately not removed (that would need
//! `std::env::remove_var` in a multi-threaded process). Child processes that could speak the
//! protocol themselves (e.g. an embedded `postgres`, built with systemd support on Debian)
//! must be spawned with `Command::env_remove("NOTIFY_SOCKET")` (and `WATCHDOG_*`,
//! `LISTEN_*`), or they would announce readiness on our behalf.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends service state changes to the service manager. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// `NOTIFY_SOCKET`, when set and not empty.
    socket: Option<String>,
    /// Half the watchdog timeout, when the watchdog is enabled for this process.
    watchdog_interval: Option<Duration>,
}

impl Notifier {
    /// A notifier that never sends anything.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.trim().is_empty());
        let watchdog_interval = socket
            .as_ref()
            .and(sd_notify::watchdog_enabled())
            .filter(|timeout| !timeout.is_zero())
            .map(|timeout| timeout / 2);
        Notifier {
            socket,
            watchdog_interval,
        }
    }

    /// True when `NOTIFY_SOCKET` was set, i.e. notifications are actually sent.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// `READY=1`: start-up (or a reload) is complete. Send it only after migrations ran and
    /// every listener is bound.
    pub fn ready(&self) {
        self.notify(&[NotifyState::Ready]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (so the manager can tell which reload the next
    /// `READY=1` answers): a configuration reload started; follow it with
    /// [`Notifier::ready`] (also when the new configuration was rejected and the old one is
    /// kept).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.notify(&[NotifyState::Reloading, now]),
            Err(_) => self.notify(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1`: graceful shutdown started.
    pub fn stopping(&self) {
        self.notify(&[NotifyState::Stopping]);
    }

    /// `STATUS=<text>`: a one-line human readable status shown by `systemctl status`.
    /// Newlines in `text` are replaced by spaces (they would end the field).
    pub fn status(&self, text: &str) {
        self.notify(&[NotifyState::Status(&one_line(text))]);
    }

    /// `WATCHDOG=1`: keep-alive ping. Call it every [`Notifier::watchdog_interval`] while the
    /// daemon is healthy.
    pub fn watchdog(&self) {
        self.notify(&[NotifyState::Watchdog]);
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, and only when the watchdog
    /// is enabled for this process (`WATCHDOG_PID` unset or equal to our pid) and
    /// `NOTIFY_SOCKET` is set. `None` means: do not run a watchdog task.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_interval
    }

    fn notify(&self, states: &[NotifyState<'_>]) {
        let Some(socket) = &self.socket else {
            return;
        };
        let sent = match socket.strip_prefix('@') {
            Some(name) => send_abstract(name, states),
            None => sd_notify::notify(states),
        };
        if let Err(e) = sent {
            let first = states.first().map(ToString::to_string).unwrap_or_default();
            let state = first.split('=').next().unwrap_or_default();
            tracing::warn!(error = %e, state, "sd_notify failed");
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Sends `states` as `sd_notify::notify` formats them, to the abstract socket `name`.
#[cfg(target_os = "linux")]
fn send_abstract(name: &str, states: &[NotifyState<'_>]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let sent = UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    if sent == message.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "short write on NOTIFY_SOCKET",
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_name: &str, _states: &[NotifyState<'_>]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract NOTIFY_SOCKET addresses are only supported on Linux",
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_status_stays_on_one_line() {
        assert_eq!(
            one_line("migrating\nthe\r\ndatabase"),
            "migrating the  database"
        );
    }

    #[test]
    fn a_disabled_notifier_sends_nothing_and_runs_no_watchdog() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        assert_eq!(n.watchdog_interval(), None);
        n.ready();
        n.reloading();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_abstract_socket_gets_the_reload_with_its_monotonic_time() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let name = format!(
            "pgusers-sd-notify-test-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = Notifier {
            socket: Some(format!("@{name}")),
            watchdog_interval: None,
        };
        n.reloading();
        n.status("a\nb");
        let recv = || {
            let mut buf = [0u8; 4096];
            let n = sock.recv(&mut buf).unwrap();
            String::from_utf8(buf[..n].to_vec()).unwrap()
        };
        let got = recv();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], "RELOADING=1", "{got:?}");
        let usec: u64 = lines[1]
            .strip_prefix("MONOTONIC_USEC=")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{got:?}"));
        assert!(usec > 0);
        assert_eq!(recv(), "STATUS=a b\n");
    }
}
