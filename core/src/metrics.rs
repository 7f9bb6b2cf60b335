// SPDX-License-Identifier: Apache-2.0
//! Prometheus metrics: every `choria_asyncjobs_*` family with asyncjobs' name, type, labels and
//! meaning, plus jetjobs' handler-duration histogram and admission waits. Like Go's default
//! registry they are process-wide: [`render_metrics`] gives the text exposition format for a
//! server of your own, and [`ClientOptions::prometheus_port`](crate::ClientOptions::prometheus_port)
//! makes workers and schedulers serve it on `http://0.0.0.0:<port>/metrics`, as asyncjobs'
//! `PrometheusListenPort` does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// A summary without quantiles, as asyncjobs': `_sum` and `_count`.
    Summary,
    Histogram,
}

/// One metric family.
#[derive(Debug)]
pub(crate) struct Metric {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
}

macro_rules! metrics {
    ($($id:ident: $kind:ident $name:literal [$($label:literal),*] $help:literal;)+) => {
        $(pub(crate) const $id: Metric = Metric {
            name: $name,
            help: $help,
            kind: Kind::$kind,
            labels: &[$($label),*],
        };)+
        const ALL: &[Metric] = &[$($id),+];
    };
}

metrics! {
    ENQUEUED: Counter "choria_asyncjobs_queue_enqueue_count" ["queue"] "The number of jobs that were enqueued";
    ENQUEUE_ERRORS: Counter "choria_asyncjobs_queue_enqueue_error_count" ["queue"] "The number of jobs that failed to enqueue";
    CORRUPT_ITEMS: Counter "choria_asyncjobs_queue_item_corrupt_error_count" ["queue"] "The number of corrupt items received from the work queue";
    TASK_NOT_FOUND: Counter "choria_asyncjobs_queue_task_not_found_error_count" ["queue"] "The number of work items whose task could not be loaded";
    PAST_DEADLINE: Counter "choria_asyncjobs_queue_task_past_deadline_count" ["queue"] "The number of tasks that expired past their deadline";
    PAST_MAX_TRIES: Counter "choria_asyncjobs_queue_task_past_max_tries_count" ["queue"] "The number of tasks that expired having reached their maximum tries";
    POLLS: Counter "choria_asyncjobs_queue_poll_total" ["queue"] "The number of times a queue was polled for work";
    POLL_ERRORS: Counter "choria_asyncjobs_queue_poll_error_total" ["queue"] "The number of failed polls of a queue";
    TASK_UPDATES: Counter "choria_asyncjobs_task_update_total" ["state"] "The number of task state updates saved";
    TASK_UPDATE_ERRORS: Counter "choria_asyncjobs_task_update_error_total" [] "The number of task state updates that failed";
    DEPENDENCIES_FAILED: Counter "choria_asyncjobs_task_dependencies_failed" [] "The number of tasks whose dependencies failed";
    HANDLERS_BUSY: Gauge "choria_asyncjobs_handler_busy_count" [] "The number of handlers running";
    HANDLER_ERRORS: Counter "choria_asyncjobs_handler_error_total" ["queue", "type"] "The number of handler runs that returned an error";
    HANDLER_RUNTIME: Summary "choria_asyncjobs_handler_runtime" ["queue", "type"] "The time handlers took to run, in seconds";
    SCHEDULER_PAUSED: Gauge "choria_asyncjobs_task_scheduler_paused" [] "1 while this task scheduler is not the leader";
    SCHEDULES: Gauge "choria_asyncjobs_task_scheduler_schedules_total" [] "The number of schedules this task scheduler knows";
    SCHEDULED: Counter "choria_asyncjobs_task_scheduler_scheduled_count" ["type", "queue"] "The number of tasks the scheduler enqueued";
    SCHEDULE_ERRORS: Counter "choria_asyncjobs_task_scheduler_schedule_error_count" ["type", "queue"] "The number of scheduled tasks that failed to enqueue";
    CAMPAIGNS: Counter "choria_asyncjobs_election_campaigns" ["election", "identity", "state"] "The number of campaigns of an election candidate";
    LEADER: Gauge "choria_asyncjobs_election_leader" ["election", "identity"] "1 while the candidate is the leader";
    CAMPAIGN_INTERVAL: Gauge "choria_asyncjobs_election_interval_seconds" ["election", "identity"] "The interval between campaigns";
    HANDLER_DURATION: Histogram "jetjobs_handler_duration_seconds" ["queue", "type"] "How long handler runs took (jetjobs)";
    ADMISSION_WAITS: Counter "jetjobs_admission_wait_total" ["queue", "type"] "The number of times admission made a task wait (jetjobs)";
    SUPERVISED_HEALTH: Gauge "jetjobs_supervised_worker_health" ["worker", "state"] "1 for the current health state of a supervised worker, 0 for the others (jetjobs)";
}

/// Upper bounds of [`HANDLER_DURATION`]'s buckets, in seconds (Prometheus' defaults, wider).
const BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Clone, Default)]
struct Series {
    value: f64,
    sum: f64,
    count: u64,
    buckets: [u64; BUCKETS.len()],
}

/// A family's series, found by a hash of their label values so that an update allocates nothing
/// once its series exists (the worker updates several per task).
type Family = HashMap<u64, Vec<(Vec<String>, Series)>, BuildHasherDefault<PreHashed>>;
type Families = BTreeMap<&'static str, Family>;

static REGISTRY: LazyLock<Mutex<Families>> = LazyLock::new(Mutex::default);

/// FNV-1a over the label values, each ended by a byte no UTF-8 text holds: a few short strings
/// per update, for which SipHash's setup cost more than the hashing.
fn labels_hash(labels: &[&str]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for label in labels {
        for byte in label.bytes().chain([0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// The keys of a [`Family`] are hashes already: used as they are.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn with_series(metric: &Metric, labels: &[&str], update: impl FnOnce(&mut Series)) {
    debug_assert_eq!(metric.labels.len(), labels.len(), "{}", metric.name);
    let mut families = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let same = |values: &[String]| values.iter().map(String::as_str).eq(labels.iter().copied());
    let bucket = families
        .entry(metric.name)
        .or_default()
        .entry(labels_hash(labels))
        .or_default();
    let index = match bucket.iter().position(|(values, _)| same(values)) {
        Some(index) => index,
        None => {
            let values = labels.iter().map(|l| l.to_string()).collect();
            bucket.push((values, Series::default()));
            bucket.len() - 1
        }
    };
    update(&mut bucket[index].1);
}

/// Adds one to a counter.
pub(crate) fn inc(metric: &Metric, labels: &[&str]) {
    add(metric, labels, 1.0);
}

/// Adds `delta` to a counter or gauge.
pub(crate) fn add(metric: &Metric, labels: &[&str], delta: f64) {
    with_series(metric, labels, |s| s.value += delta);
}

/// Sets a gauge.
pub(crate) fn set(metric: &Metric, labels: &[&str], value: f64) {
    with_series(metric, labels, |s| s.value = value);
}

/// Records a duration in a summary or histogram.
pub(crate) fn observe(metric: &Metric, labels: &[&str], took: Duration) {
    let seconds = took.as_secs_f64();
    with_series(metric, labels, |s| {
        s.sum += seconds;
        s.count += 1;
        for (bound, n) in BUCKETS.iter().zip(s.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
    });
}

/// Every metric of this process in Prometheus' text exposition format (version 0.0.4).
///
/// # Examples
/// ```
/// let text = jetjobs::render_metrics();
/// assert!(text.contains("# TYPE choria_asyncjobs_handler_busy_count gauge"));
/// ```
pub fn render_metrics() -> String {
    let families = REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut out = String::new();
    for metric in ALL {
        let kind = match metric.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(out, "# TYPE {} {kind}", metric.name);
        let mut series: Vec<_> = families
            .get(metric.name)
            .into_iter()
            .flat_map(HashMap::values)
            .flatten()
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        // Families without labels exist from the start, as Go's do.
        if series.is_empty() && metric.labels.is_empty() {
            render_series(&mut out, metric, &[], &Series::default());
        }
        for (values, s) in series {
            render_series(&mut out, metric, values, s);
        }
    }
    out
}

fn render_series(out: &mut String, metric: &Metric, values: &[String], s: &Series) {
    let labels = label_text(metric.labels, values, None);
    match metric.kind {
        Kind::Counter | Kind::Gauge => {
            let _ = writeln!(out, "{}{labels} {}", metric.name, number(s.value));
        }
        Kind::Summary => {
            let _ = writeln!(out, "{}_sum{labels} {}", metric.name, number(s.sum));
            let _ = writeln!(out, "{}_count{labels} {}", metric.name, s.count);
        }
        Kind::Histogram => {
            for (bound, n) in BUCKETS.iter().zip(s.buckets.iter()) {
                let le = label_text(metric.labels, values, Some(&number(*bound)));
                let _ = writeln!(out, "{}_bucket{le} {n}", metric.name);
            }
            let le = label_text(metric.labels, values, Some("+Inf"));
            let _ = writeln!(out, "{}_bucket{le} {}", metric.name, s.count);
            let _ = writeln!(out, "{}_sum{labels} {}", metric.name, number(s.sum));
            let _ = writeln!(out, "{}_count{labels} {}", metric.name, s.count);
        }
    }
}

fn label_text(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

static SERVED_PORTS: LazyLock<Mutex<HashSet<u16>>> = LazyLock::new(Mutex::default);

/// Serves [`render_metrics`] on `0.0.0.0:port` for the rest of the process (once per port, however
/// many workers and schedulers ask).
pub(crate) async fn serve(port: u16) -> Result<()> {
    if !SERVED_PORTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(port)
    {
        return Ok(());
    }
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port)).await {
        Ok(listener) => listener,
        Err(e) => {
            SERVED_PORTS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&port);
            return Err(Error::with_source(
                ErrorKind::Io,
                format!("serving metrics on port {port}"),
                e,
            ));
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                // The request itself does not matter: every path answers with the metrics.
                let mut request = [0u8; 1024];
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await;
                let body = render_metrics();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format() {
        inc(&POLLS, &["RENDER_TEST"]);
        inc(&POLLS, &["RENDER_TEST"]);
        observe(
            &HANDLER_DURATION,
            &["RENDER_TEST", "a\"b"],
            Duration::from_millis(20),
        );
        let text = render_metrics();
        assert!(text.contains("# TYPE choria_asyncjobs_queue_poll_total counter\n"));
        assert!(text.contains("choria_asyncjobs_queue_poll_total{queue=\"RENDER_TEST\"} 2\n"));
        assert!(
            text.contains("choria_asyncjobs_task_update_error_total "),
            "label-less families exist from the start"
        );
        assert!(text.contains(
            "jetjobs_handler_duration_seconds_bucket{queue=\"RENDER_TEST\",type=\"a\\\"b\",le=\"0.01\"} 0\n"
        ));
        assert!(text.contains(
            "jetjobs_handler_duration_seconds_bucket{queue=\"RENDER_TEST\",type=\"a\\\"b\",le=\"0.025\"} 1\n"
        ));
        assert!(text.contains(
            "jetjobs_handler_duration_seconds_count{queue=\"RENDER_TEST\",type=\"a\\\"b\"} 1\n"
        ));
    }
}
