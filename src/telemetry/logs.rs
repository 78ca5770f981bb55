//! Logging: `tracing` to stderr, human-readable on a terminal and JSON otherwise, with a level
//! that can be changed while running (SIGHUP), and the fixed lines operators match on (refused
//! logins, for fail2ban). The database driver is capped at `info` unless the level names it: at
//! `debug` it logs statement parameters (hashes, emails, extra data).

use std::io::IsTerminal;
use std::net::IpAddr;

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::LogSettings;

/// Changes the log filter of the running process.
#[derive(Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
}

/// Why a new log level could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LevelError {
    #[error("not a valid log filter")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("the log filter cannot be replaced")]
    Reload(#[from] reload::Error),
}

impl LogControl {
    pub fn set_level(&self, level: &str) -> Result<(), LevelError> {
        let filter = filter_for(level)?;
        match &self.handle {
            Some(h) => Ok(h.reload(filter)?),
            None => Ok(()),
        }
    }
}

/// The filter for a `log.level` value: as written, except that a level above `info` does not
/// reach the database driver's statement logs unless the value names `tokio_postgres` itself.
fn filter_for(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let filter = EnvFilter::try_new(level)?;
    let verbose = filter
        .max_level_hint()
        .is_some_and(|hint| hint > LevelFilter::INFO);
    if verbose && !level.contains("tokio_postgres") {
        Ok(filter.add_directive("tokio_postgres=info".parse()?))
    } else {
        Ok(filter)
    }
}

/// Installs the global subscriber (once; later calls return a no-op control).
pub fn init(settings: &LogSettings) -> LogControl {
    let filter = filter_for(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let json = match settings.format.as_str() {
        "json" => true,
        "human" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(DemoteClientErrors);
    // actix-http's own lines about a client's malformed HTTP are not written as they are (the
    // layer above repeats them at DEBUG): the writer is chosen per event's metadata.
    let writer = std::io::stderr.with_filter(|meta: &Metadata<'_>| !is_client_protocol_error(meta));
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry
            // Colours only on a terminal: escape codes in a file or the journal would break
            // every pattern matched against the log (fail2ban).
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(writer),
            )
            .try_init()
    };
    LogControl {
        handle: installed.ok().map(|_| handle),
    }
}

/// Where actix-http logs what goes wrong on a connection, at ERROR: mostly a client's malformed
/// request ("stream error: invalid Header provided", "uri too long", "message head is too
/// large"), which any client can cause at will.
const HTTP_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// The target under which those lines are repeated at DEBUG.
pub const CLIENT_TARGET: &str = "pgusers::client";

fn is_client_protocol_error(meta: &Metadata<'_>) -> bool {
    meta.target() == HTTP_DISPATCHER && meta.is_event()
}

/// Repeats actix-http's connection-error lines at DEBUG (target `pgusers::client`), so a client
/// cannot fill the error log, and the lines are still there when debugging.
struct DemoteClientErrors;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for DemoteClientErrors {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if is_client_protocol_error(event.metadata()) {
            let mut message = Message(String::new());
            event.record(&mut message);
            tracing::debug!(target: CLIENT_TARGET, error = %message.0, "client protocol error");
        }
    }
}

/// The target of the refused-login lines (`log.level` can single it out: `pgusers::login=warn`).
pub const LOGIN_TARGET: &str = "pgusers::login";

/// Why a login was refused, as the log line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// Wrong password or unknown user (401).
    Failed,
    /// The account or the client address is locked by the throttle (429).
    Throttled,
}

/// The client address as the refused-login line shows it: `-` when unknown (a Unix-socket peer
/// without a forwarded address).
struct Client(Option<IpAddr>);

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            // A v4-mapped v6 peer is shown as the v4 address fail2ban bans.
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.fmt(f),
                None => v6.fmt(f),
            },
            Some(v4) => v4.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Logs one refused login at WARN, in the fixed shape fail2ban's filter
/// (`examples/fail2ban/filter.d/pgusers.conf`) matches:
///
/// ```text
/// 2026-01-01T00:00:00.000000Z  WARN request{request_id=…}: pgusers::login: login failed client=203.0.113.7 username="bob"
/// {"timestamp":"…","level":"WARN","message":"login failed","client":"203.0.113.7","username":"bob",…}
/// ```
///
/// The username is written as a quoted, escaped string in both formats (Rust string escapes in
/// the human format, JSON escapes in JSON), so a CR, LF or quote in it cannot start a new line
/// or end the field early. The password is never passed here.
pub fn login_refused(refusal: LoginRefusal, client: Option<IpAddr>, username: &str) {
    let client = Client(client);
    match refusal {
        LoginRefusal::Failed => {
            tracing::warn!(target: LOGIN_TARGET, client = %client, username, "login failed")
        }
        LoginRefusal::Throttled => {
            tracing::warn!(target: LOGIN_TARGET, client = %client, username, "login throttled")
        }
    }
}

/// The full cause chain of an error, for the log (never for a client): each cause's message,
/// joined with ": ".
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    use std::fmt::Write as _;
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let _ = write!(out, ": {cause}");
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn logged_at(level: &str) -> String {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let subscriber = tracing_subscriber::registry()
            .with(filter_for(level).unwrap())
            .with(fmt::layer().with_writer(move || SinkWriter(sink.clone())));
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(target: "tokio_postgres::query", "executing statement with parameters");
            tracing::debug!(target: "pgusers::store", "a debug line of the daemon");
        });
        let text = String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
        text
    }

    struct SinkWriter(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for SinkWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn debug_logging_leaves_out_the_drivers_statement_parameters_unless_asked_for() {
        let debug = logged_at("debug");
        assert!(debug.contains("a debug line of the daemon"), "{debug}");
        assert!(!debug.contains("with parameters"), "{debug}");
        let asked = logged_at("debug,tokio_postgres=debug");
        assert!(asked.contains("with parameters"), "{asked}");
        assert!(logged_at("info").is_empty());
    }
}
