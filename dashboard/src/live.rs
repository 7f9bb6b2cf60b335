// SPDX-License-Identifier: Apache-2.0
//! What the lifecycle events tell, since the dashboard started: rates over a sliding window,
//! each task's timeline, the leader elections seen; and the events themselves, passed on to the
//! browsers (`/api/events`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use jetjobs::{CancellationToken, Event, Result, TaskState};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::api::AppState;

/// Seconds per bucket of the rate series.
pub(crate) const BUCKET_SECS: i64 = 10;
/// Buckets kept: ten minutes.
pub(crate) const BUCKETS: usize = 60;
/// The window the rates are averaged over.
pub(crate) const RATE_WINDOW_SECS: i64 = 60;
/// Tasks whose timelines are kept; the oldest is forgotten first.
const TIMELINE_TASKS: usize = 20_000;
/// Events kept per timeline.
const TIMELINE_EVENTS: usize = 50;
/// Leader elections kept.
const ELECTIONS: usize = 20;

/// What an event counts as, in the rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Enqueued = 0,
    Completed = 1,
    Failed = 2,
    Retried = 3,
}

impl Kind {
    pub(crate) const ALL: [Kind; 4] =
        [Kind::Enqueued, Kind::Completed, Kind::Failed, Kind::Retried];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Enqueued => "enqueued",
            Kind::Completed => "completed",
            Kind::Failed => "failed",
            Kind::Retried => "retried",
        }
    }

    fn of(state: TaskState) -> Option<Kind> {
        match state {
            TaskState::New | TaskState::Blocked => Some(Kind::Enqueued),
            TaskState::Complete => Some(Kind::Completed),
            TaskState::Expired
            | TaskState::Terminated
            | TaskState::Unreachable
            | TaskState::QueueError => Some(Kind::Failed),
            TaskState::Retry => Some(Kind::Retried),
            TaskState::Active | TaskState::Unknown => None,
        }
    }
}

/// Event counts per [`BUCKET_SECS`] bucket, oldest first.
#[derive(Default)]
struct Rates {
    buckets: VecDeque<(i64, [u64; 4])>,
}

impl Rates {
    fn record(&mut self, kind: Kind, now: i64) {
        let start = now - now.rem_euclid(BUCKET_SECS);
        match self.buckets.back_mut() {
            Some((at, counts)) if *at == start => counts[kind as usize] += 1,
            _ => {
                let mut counts = [0; 4];
                counts[kind as usize] = 1;
                self.buckets.push_back((start, counts));
            }
        }
        let oldest = start - BUCKET_SECS * (BUCKETS as i64 - 1);
        while self.buckets.front().is_some_and(|(at, _)| *at < oldest) {
            self.buckets.pop_front();
        }
    }

    /// Counts per bucket for the last [`BUCKETS`] buckets ending with `now`'s, per kind.
    fn series(&self, now: i64) -> [Vec<u64>; 4] {
        let current = now - now.rem_euclid(BUCKET_SECS);
        let first = current - BUCKET_SECS * (BUCKETS as i64 - 1);
        let mut out: [Vec<u64>; 4] = Default::default();
        for series in &mut out {
            series.resize(BUCKETS, 0);
        }
        for (at, counts) in &self.buckets {
            if *at < first || *at > current {
                continue;
            }
            let slot = ((at - first) / BUCKET_SECS) as usize;
            for (kind, n) in counts.iter().enumerate() {
                out[kind][slot] += n;
            }
        }
        out
    }

    /// Events per second over the last [`RATE_WINDOW_SECS`] (or since `since`, if later).
    fn per_second(&self, now: i64, since: i64) -> [f64; 4] {
        let current = now - now.rem_euclid(BUCKET_SECS);
        let window_start = (current - (RATE_WINDOW_SECS - BUCKET_SECS)).max(since);
        let covered = (now - window_start + 1).max(1) as f64;
        let mut sums = [0u64; 4];
        for (at, counts) in &self.buckets {
            if *at + BUCKET_SECS > window_start {
                for (kind, n) in counts.iter().enumerate() {
                    sums[kind] += n;
                }
            }
        }
        sums.map(|n| n as f64 / covered)
    }
}

/// One event of a task, as its page shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TimelineEvent {
    pub(crate) at: String,
    pub(crate) state: String,
    pub(crate) tries: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) last_error: String,
}

#[derive(Default)]
struct Timelines {
    by_task: HashMap<String, Vec<TimelineEvent>>,
    order: VecDeque<String>,
}

impl Timelines {
    fn record(&mut self, id: &str, event: TimelineEvent) {
        if let Some(events) = self.by_task.get_mut(id) {
            if events.len() == TIMELINE_EVENTS {
                events.remove(0);
            }
            events.push(event);
            return;
        }
        if self.order.len() == TIMELINE_TASKS
            && let Some(oldest) = self.order.pop_front()
        {
            self.by_task.remove(&oldest);
        }
        self.order.push_back(id.to_string());
        self.by_task.insert(id.to_string(), vec![event]);
    }
}

/// A leader election seen.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Election {
    pub(crate) name: String,
    pub(crate) component: String,
    pub(crate) at: String,
}

/// An event for the browsers: its SSE event name and JSON.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) name: &'static str,
    pub(crate) data: Arc<str>,
}

pub(crate) struct Live {
    started: DateTime<Utc>,
    rates: Mutex<Rates>,
    timelines: Mutex<Timelines>,
    elections: Mutex<VecDeque<Election>>,
    seen: AtomicU64,
    pub(crate) sender: broadcast::Sender<Message>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The rates as the overview reports them.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RateReport {
    pub(crate) window_secs: i64,
    pub(crate) bucket_secs: i64,
    /// Events per second over the window, by kind.
    pub(crate) per_second: HashMap<&'static str, f64>,
    /// Events per bucket, oldest first, by kind.
    pub(crate) series: HashMap<&'static str, Vec<u64>>,
    pub(crate) events_seen: u64,
    pub(crate) since: String,
}

impl Live {
    pub(crate) fn new() -> Self {
        Self {
            started: Utc::now(),
            rates: Mutex::default(),
            timelines: Mutex::default(),
            elections: Mutex::default(),
            seen: AtomicU64::new(0),
            sender: broadcast::channel(1024).0,
        }
    }

    pub(crate) fn started(&self) -> DateTime<Utc> {
        self.started
    }

    pub(crate) fn record(&self, event: &Event, now: DateTime<Utc>) {
        self.seen.fetch_add(1, Ordering::Relaxed);
        match event {
            Event::TaskState(e) => {
                if let Some(kind) = Kind::of(e.state) {
                    lock(&self.rates).record(kind, now.timestamp());
                }
                lock(&self.timelines).record(
                    &e.task_id,
                    TimelineEvent {
                        at: now.to_rfc3339(),
                        state: e.state.as_str().to_string(),
                        tries: e.tries,
                        last_error: e.last_error.clone(),
                    },
                );
            }
            Event::LeaderElected(e) => {
                let mut elections = lock(&self.elections);
                if elections.len() == ELECTIONS {
                    elections.pop_front();
                }
                elections.push_back(Election {
                    name: e.name.clone(),
                    component: e.component.clone(),
                    at: now.to_rfc3339(),
                });
            }
        }
        let (name, data) = match event {
            Event::TaskState(_) => ("task_state", event.to_json()),
            Event::LeaderElected(_) => ("leader_elected", event.to_json()),
        };
        if let Ok(data) = data {
            let data = String::from_utf8_lossy(&data).into_owned();
            // Nobody listening is fine.
            let _ = self.sender.send(Message {
                name,
                data: data.into(),
            });
        }
    }

    pub(crate) fn timeline(&self, id: &str) -> Vec<TimelineEvent> {
        lock(&self.timelines)
            .by_task
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn elections(&self) -> Vec<Election> {
        lock(&self.elections).iter().cloned().collect()
    }

    pub(crate) fn rates(&self, now: DateTime<Utc>) -> RateReport {
        let rates = lock(&self.rates);
        let per_second = rates.per_second(now.timestamp(), self.started.timestamp());
        let series = rates.series(now.timestamp());
        RateReport {
            window_secs: RATE_WINDOW_SECS,
            bucket_secs: BUCKET_SECS,
            per_second: Kind::ALL
                .iter()
                .map(|k| (k.name(), per_second[*k as usize]))
                .collect(),
            series: Kind::ALL
                .iter()
                .map(|k| (k.name(), series[*k as usize].clone()))
                .collect(),
            events_seen: self.seen.load(Ordering::Relaxed),
            since: self.started.to_rfc3339(),
        }
    }
}

/// Records every event until `stop` (or the subscription ends), waking the task index.
pub(crate) async fn follow_events(
    state: Arc<AppState>,
    mut events: BoxStream<'static, Result<Event>>,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = events.next() => next,
        };
        match next {
            Some(Ok(event)) => {
                state.live.record(&event, Utc::now());
                if matches!(event, Event::TaskState(_)) {
                    state.index.changed.notify_one();
                }
            }
            Some(Err(e)) => tracing::debug!(error = %e, "skipping an event"),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_slide_over_the_window() {
        let mut rates = Rates::default();
        let t0 = 1_000_000;
        for s in 0..60 {
            rates.record(Kind::Enqueued, t0 + s);
        }
        rates.record(Kind::Failed, t0 + 59);
        let per = rates.per_second(t0 + 59, 0);
        assert!((per[Kind::Enqueued as usize] - 1.0).abs() < 0.2, "{per:?}");
        let series = rates.series(t0 + 59);
        assert_eq!(series[Kind::Enqueued as usize].iter().sum::<u64>(), 60);
        assert_eq!(series[Kind::Failed as usize][BUCKETS - 1], 1);
        // Ten minutes later everything has slid out.
        rates.record(Kind::Completed, t0 + 59 + 600);
        assert_eq!(rates.buckets.len(), 1);
        let series = rates.series(t0 + 59 + 600);
        assert_eq!(series[Kind::Enqueued as usize].iter().sum::<u64>(), 0);
    }

    #[test]
    fn timelines_are_bounded() {
        let mut timelines = Timelines::default();
        let event = TimelineEvent {
            at: String::new(),
            state: "new".into(),
            tries: 0,
            last_error: String::new(),
        };
        for _ in 0..TIMELINE_EVENTS + 5 {
            timelines.record("a", event.clone());
        }
        assert_eq!(timelines.by_task["a"].len(), TIMELINE_EVENTS);
    }
}
