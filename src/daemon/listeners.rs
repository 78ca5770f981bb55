//! Socket activation: the listening sockets systemd passes in (`LISTEN_FDS`/`LISTEN_PID`, see `sd_listen_fds(3)`), taken once through the `listenfd` crate, no `unsafe`.
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
use std::os::unix::net::UnixListener;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use listenfd::ListenFd;

#[derive(Default)]
struct Inherited {
    tcp: Vec<TcpListener>,
    unix: Vec<UnixListener>,
    /// The first descriptor that is neither a TCP nor a Unix stream socket.
    problem: Option<String>,
}

static INHERITED: OnceLock<Mutex<Inherited>> = OnceLock::new();

fn inherited() -> MutexGuard<'static, Inherited> {
    INHERITED
        .get_or_init(|| Mutex::new(classify(ListenFd::from_env())))
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn classify(mut fds: ListenFd) -> Inherited {
    let mut out = Inherited::default();
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

fn take<T>(pick: impl FnOnce(&mut Inherited) -> Vec<T>) -> io::Result<Vec<T>> {
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
