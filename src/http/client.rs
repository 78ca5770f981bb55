//! The client's address: the peer, or — when the peer is a trusted proxy — the nearest
//! untrusted address in `X-Forwarded-For`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::HttpRequest;

use super::AppState;

pub fn client_addr(req: &HttpRequest, state: &AppState) -> Option<IpAddr> {
    let trusted = &state.settings.forward_auth.trusted_proxies;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|r| r.contains(*ip));
    let peer = req.peer_addr().map(|a| a.ip());
    if let Some(peer) = peer {
        if !is_trusted(&peer) {
            if req.headers().contains_key("x-forwarded-for") {
                warn_untrusted_proxy(peer);
            }
            return Some(peer);
        }
    }
    // The peer is a trusted proxy (or a Unix socket on this host): walk X-Forwarded-For from
    // the right, skipping our own proxies.
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .copied()
        .or(forwarded.first().copied())
        .or(peer)
}

static WARNED: AtomicBool = AtomicBool::new(false);

/// Says once that a peer sending `X-Forwarded-For` is not trusted: if it is this daemon's own
/// proxy, every client shares its address for throttling and the audit trail.
fn warn_untrusted_proxy(peer: IpAddr) {
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            "a request carrying X-Forwarded-For came from a peer that is not in forward_auth.trusted_proxies; \
             if it is your reverse proxy, add it there, or every client shares its address"
        );
    }
}
