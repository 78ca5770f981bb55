//! The listener that turns PostgreSQL `NOTIFY pgusers_invalidate` (sent by triggers on every
//! write, whoever the writer) into cache evictions and setting reloads; while it is not
//! connected, the cache is not trusted.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio::sync::{mpsc, watch, Notify};
use tokio_postgres::AsyncMessage;

use crate::domain::KeyDigest;
use crate::sessions::cache::SessionCache;
use crate::sessions::SessionHandle;

pub const CHANNEL: &str = "pgusers_invalidate";
const PING_EVERY: Duration = Duration::from_secs(2);
/// How often the session TTL is re-read even without a notification (one lost in a reconnect
/// or to an error is caught up with by then).
const TTL_REREAD_EVERY: Duration = Duration::from_secs(60);

/// One thing a notification asks us to forget or re-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Key(KeyDigest),
    User(i64),
    All,
    Ttl,
}

/// Parses `k:<hex>,u:<id>,*,ttl`; an item it does not understand means "forget everything".
pub fn parse_payload(payload: &str) -> Vec<Item> {
    payload
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if item == "ttl" {
                return Item::Ttl;
            }
            if let Some(hex) = item.strip_prefix("k:") {
                if let Some(d) = hex::decode(hex)
                    .ok()
                    .and_then(|b| KeyDigest::from_slice(&b))
                {
                    return Item::Key(d);
                }
            }
            if let Some(id) = item.strip_prefix("u:").and_then(|i| i.parse().ok()) {
                return Item::User(id);
            }
            Item::All
        })
        .collect()
}

/// The listener's state: whether it is subscribed now, and how many times it has subscribed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subscription {
    pub listening: bool,
    pub count: u64,
}

/// Follows the listener's state.
#[derive(Clone)]
pub struct ListenerStatus(watch::Receiver<Subscription>);

impl ListenerStatus {
    pub fn current(&self) -> Subscription {
        *self.0.borrow()
    }

    pub fn is_listening(&self) -> bool {
        self.current().listening
    }

    /// Waits until the state satisfies `wanted`, at most `timeout`; returns whether it did.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        wanted: impl FnMut(&Subscription) -> bool,
    ) -> bool {
        tokio::time::timeout(timeout, self.0.wait_for(wanted))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the listener is subscribed, at most `timeout`; returns whether it is.
    pub async fn wait_listening(&mut self, timeout: Duration) -> bool {
        self.wait_for(timeout, |s| s.listening).await
    }
}

/// Starts the listener task on the current actix/tokio runtime.
pub fn spawn(
    tls: crate::store::tls::PgTls,
    mut config: tokio_postgres::Config,
    cache: Arc<SessionCache>,
    sessions: SessionHandle,
) -> ListenerStatus {
    config.application_name("pgusers-listener");
    let (status_tx, status_rx) = watch::channel(Subscription::default());
    actix::spawn(async move {
        let ttl_stale = Notify::new();
        tokio::select! {
            () = keep_listening(&config, tls, &cache, &status_tx, &ttl_stale) => {}
            () = reload_ttl(&sessions, &ttl_stale) => {}
        }
    });
    ListenerStatus(status_rx)
}

/// Listens, and reconnects with a growing backoff, until nobody follows the status any more.
async fn keep_listening(
    config: &tokio_postgres::Config,
    tls: crate::store::tls::PgTls,
    cache: &SessionCache,
    status_tx: &watch::Sender<Subscription>,
    ttl_stale: &Notify,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match listen_once(config, tls.clone(), cache, status_tx, ttl_stale).await {
            Ok(()) => backoff = Duration::from_millis(50),
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::cause_chain(e.as_ref()), "invalidation listener: cannot connect; the cache is bypassed")
            }
        }
        cache.set_trusted(false);
        status_tx.send_modify(|s| s.listening = false);
        if status_tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Re-reads the session TTL when asked (a `ttl` notification, a new subscription) and every
/// [`TTL_REREAD_EVERY`] as a safety net, retrying until it succeeds. It runs beside the
/// listener, never in its way: key and user revocations are applied while a re-read waits for a
/// pool connection, and a TTL change is not lost to a busy pool, only delayed.
async fn reload_ttl(sessions: &SessionHandle, stale: &Notify) {
    loop {
        let _ = tokio::time::timeout(TTL_REREAD_EVERY, stale.notified()).await;
        let mut backoff = Duration::from_millis(100);
        while let Err(e) = sessions.load_ttl().await {
            tracing::warn!(error = %crate::telemetry::cause_chain(&e), "cannot re-read the session TTL; will retry");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// One connection's life: subscribe, trust the cache, apply notifications until it breaks.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: crate::store::tls::PgTls,
    cache: &SessionCache,
    status: &watch::Sender<Subscription>,
    ttl_stale: &Notify,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // Connecting and subscribing get the connection's own timeout (a frozen database must not
    // keep the listener, and so the cache's trust, waiting for ever).
    let handshake = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(Duration::from_secs(5));
    let (client, mut connection) = tokio::time::timeout(handshake, config.connect(tls))
        .await
        .map_err(|_| "timed out connecting")??;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let driver = actix::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::cause_chain(&e), "invalidation listener: connection lost");
                    break;
                }
            }
        }
    });
    tokio::time::timeout(
        handshake,
        client.batch_execute(&format!("LISTEN {CHANNEL}")),
    )
    .await
    .map_err(|_| "timed out subscribing")??;
    // Anything cached before now may have missed a notification: start afresh.
    cache.set_trusted(true);
    ttl_stale.notify_one();
    status.send_modify(|s| {
        s.listening = true;
        s.count += 1;
    });
    tracing::info!("invalidation listener: subscribed; the cache is trusted");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            payload = rx.recv() => match payload {
                Some(payload) => apply(&payload, cache, ttl_stale),
                None => break,
            },
            _ = ping.tick() => {
                // Finds a connection that died silently (no FIN, no RST).
                let alive = tokio::time::timeout(PING_EVERY, client.simple_query("")).await;
                if !matches!(alive, Ok(Ok(_))) {
                    tracing::warn!("invalidation listener: the connection stopped answering");
                    break;
                }
            }
        }
    }
    cache.set_trusted(false);
    status.send_modify(|s| s.listening = false);
    driver.abort();
    Ok(())
}

/// Applies one notification at once; a TTL change is handed to [`reload_ttl`].
fn apply(payload: &str, cache: &SessionCache, ttl_stale: &Notify) {
    crate::telemetry::metrics::METRICS.invalidation();
    for item in parse_payload(payload) {
        match item {
            Item::Key(digest) => cache.evict_key(&digest),
            Item::User(userid) => cache.evict_user(userid),
            Item::All => cache.clear(),
            Item::Ttl => ttl_stale.notify_one(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_keys_users_everything_and_the_ttl() {
        let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let items = parse_payload(&format!("k:{hex},u:42,*,ttl"));
        assert_eq!(
            items,
            vec![
                Item::Key(KeyDigest::of("abc")),
                Item::User(42),
                Item::All,
                Item::Ttl
            ]
        );
    }

    #[test]
    fn anything_unreadable_forgets_everything() {
        assert_eq!(parse_payload("k:zz"), vec![Item::All]);
        assert_eq!(parse_payload("u:x"), vec![Item::All]);
        assert_eq!(parse_payload("future-item"), vec![Item::All]);
        assert!(parse_payload("").is_empty());
    }
}
