//! The client's address: the peer, or — when the peer is a trusted proxy — the nearest
//! untrusted address in `X-Forwarded-For`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::HttpRequest;

use super::AppState;

/// The request as the origin of an account change, for the audit trail.
pub fn origin(req: &HttpRequest, state: &AppState) -> crate::accounts::Origin {
    crate::accounts::Origin::Api(client_addr(req, state))
}

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

/// The longest user agent kept with a session, in characters.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The client's `User-Agent`, as kept with a session: invalid UTF-8 and control characters
/// replaced, cut to `MAX_USER_AGENT_CHARS`; `None` when absent or blank.
pub fn user_agent(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(actix_web::http::header::USER_AGENT)?;
    let text: String = String::from_utf8_lossy(raw.as_bytes())
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_USER_AGENT_CHARS)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
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
