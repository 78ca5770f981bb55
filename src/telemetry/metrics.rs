//! Process-wide metrics in Prometheus text format: requests per route and status with latency
//! histograms, session-check outcomes, cache, logins, password hashing, janitor, pool and
//! database errors, the build, and the standard `process_*` metrics (read from /proc through
//! `procfs` at scrape time). Counters are plain atomics so recording costs next to nothing.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

/// Upper bounds (seconds) of the latency buckets.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A cumulative-bucket latency histogram.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// How a session check ended.
#[derive(Debug, Clone, Copy)]
pub enum CheckOutcome {
    Valid,
    NotFound,
    Expired,
    Unavailable,
}

/// The latency histograms of one route, by status.
type ByStatus = Vec<(u16, Arc<Histogram>)>;

#[derive(Default)]
pub struct Metrics {
    /// route → status → latency.
    requests: RwLock<HashMap<String, ByStatus>>,
    checks: [AtomicU64; 4],
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub logins_ok: AtomicU64,
    pub logins_failed: AtomicU64,
    pub hash_seconds: Histogram,
    pub janitor_runs: AtomicU64,
    pub janitor_purged: AtomicU64,
    pub db_errors: AtomicU64,
    pub db_unavailable: AtomicU64,
    pub invalidations: AtomicU64,
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Live values read when rendering (gauges owned elsewhere).
pub struct Gauges {
    pub cache_entries: u64,
    pub cache_bytes: u64,
    pub hash_queue_depth: usize,
    pub pool_size: usize,
    pub pool_available: usize,
    pub pool_waiting: usize,
    pub listener_up: bool,
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn check(&self, outcome: CheckOutcome) {
        inc(&self.checks[outcome as usize]);
    }

    pub fn cache(&self, hit: bool) {
        inc(if hit {
            &self.cache_hits
        } else {
            &self.cache_misses
        });
    }

    pub fn login(&self, ok: bool) {
        inc(if ok {
            &self.logins_ok
        } else {
            &self.logins_failed
        });
    }

    pub fn janitor_run(&self, purged: u64) {
        inc(&self.janitor_runs);
        self.janitor_purged.fetch_add(purged, Ordering::Relaxed);
    }

    pub fn db_error(&self, unavailable: bool) {
        inc(if unavailable {
            &self.db_unavailable
        } else {
            &self.db_errors
        });
    }

    pub fn invalidation(&self) {
        inc(&self.invalidations);
    }

    /// Records one request's latency under its route and status.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let found = self.requests.read().ok().and_then(|routes| {
            routes.get(route).and_then(|by_status| {
                by_status
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map(|(_, h)| h.clone())
            })
        });
        let histogram = match found {
            Some(h) => h,
            None => {
                let Ok(mut routes) = self.requests.write() else {
                    return;
                };
                let by_status = routes.entry(route.to_string()).or_default();
                match by_status.iter().find(|(s, _)| *s == status) {
                    Some((_, h)) => h.clone(),
                    None => {
                        let h = Arc::new(Histogram::default());
                        by_status.push((status, h.clone()));
                        h
                    }
                }
            }
        };
        histogram.observe(elapsed);
    }

    /// Requests recorded for a route and status (tests).
    pub fn requests_seen(&self, route: &str, status: u16) -> u64 {
        self.requests
            .read()
            .ok()
            .and_then(|r| {
                r.get(route)
                    .and_then(|v| v.iter().find(|(s, _)| *s == status).map(|(_, h)| h.count()))
            })
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(8192);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        out.push_str(
            "# HELP pgusers_http_request_duration_seconds HTTP requests by route and status.\n",
        );
        out.push_str("# TYPE pgusers_http_request_duration_seconds histogram\n");
        if let Ok(routes) = self.requests.read() {
            let mut names: Vec<_> = routes.keys().collect();
            names.sort();
            for route in names {
                for (status, h) in &routes[route] {
                    let labels = format!("route=\"{route}\",status=\"{status}\"");
                    h.render(&mut out, "pgusers_http_request_duration_seconds", &labels);
                }
            }
        }
        out.push_str("# HELP pgusers_session_checks_total Session checks by outcome.\n# TYPE pgusers_session_checks_total counter\n");
        for (i, outcome) in ["valid", "not_found", "expired", "unavailable"]
            .iter()
            .enumerate()
        {
            let _ = writeln!(
                out,
                "pgusers_session_checks_total{{outcome=\"{outcome}\"}} {}",
                self.checks[i].load(Ordering::Relaxed)
            );
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            &mut out,
            "pgusers_cache_hits_total",
            "Session checks answered from the cache.",
            load(&self.cache_hits),
        );
        counter(
            &mut out,
            "pgusers_cache_misses_total",
            "Session checks that read the database.",
            load(&self.cache_misses),
        );
        gauge(
            &mut out,
            "pgusers_cache_entries",
            "Sessions in the cache.",
            gauges.cache_entries,
        );
        gauge(
            &mut out,
            "pgusers_cache_bytes",
            "Estimated bytes of the cached sessions, as counted against session.cache_max_bytes.",
            gauges.cache_bytes,
        );
        out.push_str(
            "# HELP pgusers_logins_total Logins by result.\n# TYPE pgusers_logins_total counter\n",
        );
        let _ = writeln!(
            out,
            "pgusers_logins_total{{result=\"success\"}} {}",
            load(&self.logins_ok)
        );
        let _ = writeln!(
            out,
            "pgusers_logins_total{{result=\"failure\"}} {}",
            load(&self.logins_failed)
        );
        gauge(
            &mut out,
            "pgusers_password_hash_queue_depth",
            "Password operations waiting for a hashing thread.",
            gauges.hash_queue_depth as u64,
        );
        out.push_str("# HELP pgusers_password_hash_seconds Time of one argon2 hash or verification.\n# TYPE pgusers_password_hash_seconds histogram\n");
        self.hash_seconds
            .render(&mut out, "pgusers_password_hash_seconds", "");
        counter(
            &mut out,
            "pgusers_janitor_runs_total",
            "Janitor purge runs.",
            load(&self.janitor_runs),
        );
        counter(
            &mut out,
            "pgusers_janitor_purged_total",
            "Expired sessions purged.",
            load(&self.janitor_purged),
        );
        gauge(
            &mut out,
            "pgusers_db_pool_size",
            "Connections in the pool.",
            gauges.pool_size as u64,
        );
        gauge(
            &mut out,
            "pgusers_db_pool_available",
            "Idle connections in the pool.",
            gauges.pool_available as u64,
        );
        gauge(
            &mut out,
            "pgusers_db_pool_waiting",
            "Requests waiting for a connection.",
            gauges.pool_waiting as u64,
        );
        out.push_str("# HELP pgusers_db_errors_total Requests and background runs that failed on the database, by kind.\n# TYPE pgusers_db_errors_total counter\n");
        let _ = writeln!(
            out,
            "pgusers_db_errors_total{{kind=\"unavailable\"}} {}",
            load(&self.db_unavailable)
        );
        let _ = writeln!(
            out,
            "pgusers_db_errors_total{{kind=\"other\"}} {}",
            load(&self.db_errors)
        );
        counter(
            &mut out,
            "pgusers_invalidations_total",
            "Cache invalidation notifications applied.",
            load(&self.invalidations),
        );
        gauge(
            &mut out,
            "pgusers_invalidation_listener_up",
            "1 while the invalidation listener is subscribed.",
            u64::from(gauges.listener_up),
        );
        let _ = writeln!(
            out,
            "# HELP pgusers_build_info The running build; the value is always 1.\n\
             # TYPE pgusers_build_info gauge\n\
             pgusers_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        render_process(&mut out);
        out
    }
}

/// The process metrics every Prometheus client library exports, under their standard names.
/// A value /proc does not give (e.g. under a restrictive sandbox) is left out, not faked.
fn render_process(out: &mut String) {
    use procfs::process::{LimitValue, Process};
    use procfs::WithCurrentSystemInfo;

    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    let Ok(me) = Process::myself() else {
        return;
    };
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        metric(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            (stat.utime + stat.stime) as f64 / ticks,
        );
        metric(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            stat.rss_bytes().get() as f64,
        );
        metric(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            stat.vsize as f64,
        );
        if let Ok(boot) = procfs::boot_time_secs() {
            metric(
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                boot as f64 + stat.starttime as f64 / ticks,
            );
        }
    }
    if let Ok(open) = me.fd_count() {
        metric(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            open as f64,
        );
    }
    if let Ok(limits) = me.limits() {
        if let LimitValue::Value(max) = limits.max_open_files.soft_limit {
            metric(
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0001\"} 1"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 2"), "{out}");
    }

    #[test]
    fn requests_are_counted_per_route_and_status() {
        let m = Metrics::default();
        m.request("/v1/auth", 200, Duration::from_micros(10));
        m.request("/v1/auth", 200, Duration::from_micros(10));
        m.request("/v1/auth", 401, Duration::from_micros(10));
        assert_eq!(m.requests_seen("/v1/auth", 200), 2);
        assert_eq!(m.requests_seen("/v1/auth", 401), 1);
    }
}
