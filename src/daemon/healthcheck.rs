//! `pgusers healthcheck`: one HTTP/1.0 `GET /healthz` to the daemon, for container health checks
//! (no HTTP client library: the image runs it every few seconds).

use std::process::ExitCode;
use std::time::Duration;

use crate::config::{self, Settings};

/// Exit 0 when the daemon answers 200 at `url` (default: the first TCP listener).
pub fn probe(settings: &Settings, url: Option<String>) -> ExitCode {
    use std::io::{Read, Write};
    let target = url.unwrap_or_else(|| {
        let addr = settings
            .server
            .listen
            .iter()
            .find_map(|l| match l {
                config::ListenAddr::Tcp(a) => {
                    Some(a.replace("0.0.0.0", "127.0.0.1").replace("[::]", "[::1]"))
                }
                config::ListenAddr::Unix(_) => None,
            })
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        format!("http://{addr}/healthz")
    });
    let Some(rest) = target.strip_prefix("http://") else {
        eprintln!("healthcheck: only http:// URLs are supported");
        return ExitCode::from(2);
    };
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/healthz".into()));
    let attempt = || -> std::io::Result<bool> {
        use std::net::ToSocketAddrs;
        let addr = host
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut buf = [0u8; 16];
        let n = stream.read(&mut buf)?;
        Ok(buf[..n].starts_with(b"HTTP/1.1 200") || buf[..n].starts_with(b"HTTP/1.0 200"))
    };
    match attempt() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("healthcheck: {target} did not answer 200");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("healthcheck: {target}: {e}");
            ExitCode::from(1)
        }
    }
}
