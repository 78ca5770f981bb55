//! The daemon's listening sockets: the ones systemd passes in (socket activation), else those of
//! `server.listen` (TCP or Unix, with `server.unix_socket_mode`), and the HTTPS ones of
//! `server.tls_listen` with their certificate ([`bind`]).
//!
//! Socket activation: the listening sockets systemd passes in (`LISTEN_FDS`/`LISTEN_PID`, see
//! `sd_listen_fds(3)`), taken once through the `listenfd` crate, no `unsafe`.
//!
//! The inherited descriptors (3, 4, …) are read and classified the first time either
//! function below is called; `listenfd` then removes `LISTEN_FDS`/`LISTEN_PID` from the
//! environment, so call this early in `main`, **before** starting the async runtime or any
//! other thread (removing environment variables races with threads reading them).
//! Descriptors are honoured only when `LISTEN_PID` equals our pid (or is unset: the
//! `systemfd` development convention that `listenfd` also accepts).
//!
//! Each descriptor is handed out at most once: [`inherited_tcp_listeners`] returns the TCP
//! (IPv4/IPv6) stream listeners, [`inherited_unix_listeners`] the Unix stream listeners.
//! An inherited descriptor that is neither (a datagram socket, a FIFO, …) makes both
//! functions return an error naming it, since the `.socket` unit and the daemon disagree.
//! `LISTEN_FDNAMES` is not interpreted. The listeners are returned in blocking mode as
//! created by systemd; the HTTP server is expected to switch them to non-blocking.

use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use listenfd::ListenFd;

use crate::config::{ListenAddr, Settings};
use crate::daemon::startup::{self, StartupError};
use crate::http::tls::ReloadableCert;

/// Every socket the daemon serves on, each with the address it is known by in logs (the bound
/// one: `127.0.0.1:41234` for port 0, `unix:/run/pgusers.sock`).
pub struct Bound {
    pub tcp: Vec<(String, TcpListener)>,
    pub unix: Vec<(String, UnixListener)>,
    /// The HTTPS listeners, served with `cert`.
    pub https: Vec<(String, TcpListener)>,
    pub cert: Option<Arc<ReloadableCert>>,
}

fn cannot_listen(addr: &str) -> impl FnOnce(io::Error) -> StartupError + '_ {
    move |source| StartupError::Listen {
        addr: addr.to_string(),
        source,
    }
}

/// The plain-HTTP listeners: the inherited ones when systemd passed any, else `server.listen`;
/// then the HTTPS ones of `server.tls_listen`, which need the certificate and key files.
pub fn bind(settings: &Settings, inherited: startup::Inherited) -> Result<Bound, StartupError> {
    let mut bound = Bound {
        tcp: Vec::new(),
        unix: Vec::new(),
        https: Vec::new(),
        cert: None,
    };
    if inherited.tcp.is_empty() && inherited.unix.is_empty() {
        for addr in &settings.server.listen {
            match addr {
                ListenAddr::Tcp(a) => bound.tcp.push(bind_tcp(a)?),
                ListenAddr::Unix(path) => {
                    let shown = format!("unix:{}", path.display());
                    if path.exists() {
                        let _ = std::fs::remove_file(path);
                    }
                    let listener = UnixListener::bind(path).map_err(cannot_listen(&shown))?;
                    let mode = std::fs::Permissions::from_mode(settings.server.unix_socket_mode);
                    std::fs::set_permissions(path, mode).map_err(cannot_listen(&shown))?;
                    bound.unix.push((shown, listener));
                }
            }
        }
    }
    for listener in inherited.tcp {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        bound.tcp.push((addr, listener));
    }
    for listener in inherited.unix {
        let addr = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
            .unwrap_or_else(|| "unix:".into());
        bound.unix.push((addr, listener));
    }
    if settings.server.tls_listen.is_empty() {
        return Ok(bound);
    }
    let (Some(cert), Some(key)) = (
        &settings.server.tls_cert_file,
        &settings.server.tls_key_file,
    ) else {
        return Err(StartupError::TlsWithoutCertificate);
    };
    bound.cert = Some(ReloadableCert::open(cert, key)?);
    for addr in &settings.server.tls_listen {
        bound.https.push(bind_tcp(addr)?);
    }
    Ok(bound)
}

/// A TCP listener on `addr`, with the address it actually got.
fn bind_tcp(addr: &str) -> Result<(String, TcpListener), StartupError> {
    let listener = TcpListener::bind(addr).map_err(cannot_listen(addr))?;
    let shown = listener
        .local_addr()
        .map(|l| l.to_string())
        .unwrap_or_else(|_| addr.to_string());
    Ok((shown, listener))
}

#[derive(Default)]
struct Descriptors {
    tcp: Vec<TcpListener>,
    unix: Vec<UnixListener>,
    /// The first descriptor that is neither a TCP nor a Unix stream socket.
    problem: Option<String>,
}

static INHERITED: OnceLock<Mutex<Descriptors>> = OnceLock::new();

fn inherited() -> MutexGuard<'static, Descriptors> {
    INHERITED
        .get_or_init(|| Mutex::new(classify(ListenFd::from_env())))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn classify(mut fds: ListenFd) -> Descriptors {
    let mut out = Descriptors::default();
    for idx in 0..fds.len() {
        // `take_*` validates the socket family and type and leaves the descriptor in place
        // when it does not match, so trying TCP first and then Unix is safe.
        match fds.take_tcp_listener(idx) {
            Ok(Some(l)) => {
                out.tcp.push(l);
                continue;
            }
            Ok(None) => continue,
            Err(_) => {}
        }
        match fds.take_unix_listener(idx) {
            Ok(Some(l)) => out.unix.push(l),
            Ok(None) => {}
            Err(e) => {
                if out.problem.is_none() {
                    out.problem = Some(format!(
                        "inherited socket #{idx} (LISTEN_FDS) is neither a TCP nor a Unix stream listener: {e}"
                    ));
                }
            }
        }
    }
    out
}

fn take<T>(pick: impl FnOnce(&mut Descriptors) -> Vec<T>) -> io::Result<Vec<T>> {
    let mut guard = inherited();
    if let Some(problem) = &guard.problem {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, problem.clone()));
    }
    Ok(pick(&mut guard))
}

/// The TCP listeners passed by the service manager (empty when not socket-activated).
/// A second call returns an empty list.
pub fn inherited_tcp_listeners() -> io::Result<Vec<TcpListener>> {
    take(|i| std::mem::take(&mut i.tcp))
}

/// The Unix stream listeners passed by the service manager (empty when not
/// socket-activated). A second call returns an empty list.
pub fn inherited_unix_listeners() -> io::Result<Vec<UnixListener>> {
    take(|i| std::mem::take(&mut i.unix))
}

/// The sockets systemd handed over (none outside socket activation).
pub fn take_inherited() -> std::io::Result<crate::daemon::startup::Inherited> {
    Ok(crate::daemon::startup::Inherited {
        tcp: inherited_tcp_listeners()?,
        unix: inherited_unix_listeners()?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    const CHILD_ENV: &str = "PGUSERS_SOCKET_ACTIVATION_PROBE";

    #[test]
    fn nothing_inherited_gives_empty_lists() {
        let i = classify(ListenFd::empty());
        assert!(i.tcp.is_empty() && i.unix.is_empty() && i.problem.is_none());
    }

    /// Runs in a child started by `systemd-socket-activate` (see the next test); a no-op
    /// in a normal test run.
    #[test]
    fn child_probe() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        let tcp = inherited_tcp_listeners().unwrap();
        let unix = inherited_unix_listeners().unwrap();
        let again =
            inherited_tcp_listeners().unwrap().len() + inherited_unix_listeners().unwrap().len();
        let tcp_addr = tcp.first().map(|l| l.local_addr().unwrap().to_string());
        let unix_addr = unix
            .first()
            .and_then(|l| l.local_addr().ok())
            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()));
        println!(
            "PROBE tcp={} unix={} again={} tcp_addr={:?} unix_addr={:?} listen_fds_left={}",
            tcp.len(),
            unix.len(),
            again,
            tcp_addr,
            unix_addr,
            std::env::var_os("LISTEN_FDS").is_some()
        );
    }

    #[test]
    fn takes_sockets_passed_by_systemd_socket_activate() {
        let tool = [
            "/usr/bin/systemd-socket-activate",
            "/bin/systemd-socket-activate",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
        let Some(tool) = tool else {
            println!("SKIP: systemd-socket-activate not installed");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("activate.sock");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let module = module_path!();
        let test_name = format!(
            "{}::child_probe",
            module.split_once("::").map_or(module, |(_, rest)| rest)
        );
        let mut child = Command::new(tool)
            .arg("-l")
            .arg(&sock)
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("--setenv={CHILD_ENV}=1"))
            .arg(std::env::current_exe().unwrap())
            .args(["--exact", &test_name, "--nocapture", "--test-threads=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // systemd-socket-activate execs the program on the first connection.
        let deadline = Instant::now() + Duration::from_secs(20);
        let _conn = loop {
            match std::os::unix::net::UnixStream::connect(&sock) {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("systemd-socket-activate did not listen on {sock:?}: {e}");
                }
            }
        };
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "child failed: {status}\n{out}");
        let expected = format!(
            "PROBE tcp=1 unix=1 again=0 tcp_addr=Some(\"127.0.0.1:{port}\") unix_addr=Some({:?}) listen_fds_left=false",
            sock.display().to_string()
        );
        assert!(out.contains(&expected), "expected {expected:?} in:\n{out}");
    }
}
