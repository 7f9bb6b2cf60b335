// SPDX-License-Identifier: Apache-2.0
//! Queue settings in and out: `jetjobs::Queue`, `QueueInfo` and `TasksInfo` as plain JS objects.
//! Durations are milliseconds, JS's unit; unset options keep the core's defaults.

use napi_derive::napi;

use crate::error::{duration_ms, integer, invalid_option, to_ms};

/// Options of `jetjobs::Queue`; only used when the queue is created.
#[napi(object, object_to_js = false)]
pub struct QueueOptions {
    pub name: String,
    /// Bind to an existing queue instead of creating it (`Queue::bind`).
    pub bind: Option<bool>,
    pub max_age_ms: Option<f64>,
    /// Whole numbers only (NaN, infinities and fractions are `InvalidOption`), as for the other counts.
    pub max_entries: Option<f64>,
    pub discard_old: Option<bool>,
    pub max_tries: Option<f64>,
    pub max_run_time_ms: Option<f64>,
    pub max_concurrent: Option<f64>,
    /// Run tasks sharing an order key one at a time in enqueue order (`Queue::ordered`).
    pub ordered: Option<bool>,
    /// How many tasks of one order key may run at once; 0 turns ordering off.
    pub order_key_concurrency: Option<f64>,
}

impl QueueOptions {
    pub(crate) fn into_queue(self) -> jetjobs::Result<jetjobs::Queue> {
        let mut q = if self.bind == Some(true) {
            jetjobs::Queue::bind(self.name)
        } else {
            jetjobs::Queue::new(self.name)
        };
        if let Some(ms) = self.max_age_ms {
            q = q.max_age(duration_ms("maxAgeMs", ms)?);
        }
        if let Some(n) = self.max_entries {
            q = q.max_entries(integer("maxEntries", n)?);
        }
        if let Some(yes) = self.discard_old {
            q = q.discard_old(yes);
        }
        if let Some(n) = self.max_tries {
            q = q.max_tries(integer("maxTries", n)?);
        }
        if let Some(ms) = self.max_run_time_ms {
            q = q.max_run_time(duration_ms("maxRunTimeMs", ms)?);
        }
        if let Some(n) = self.max_concurrent {
            q = q.max_concurrent(integer("maxConcurrent", n)?);
        }
        if let Some(n) = self.order_key_concurrency {
            let count = u32::try_from(integer("orderKeyConcurrency", n)?).map_err(|_| {
                invalid_option(format!(
                    "orderKeyConcurrency must be 0 to {}, got {n}",
                    u32::MAX
                ))
            })?;
            q = q.order_key_concurrency(count);
        }
        if self.ordered == Some(true) {
            q = q.ordered();
        }
        Ok(q)
    }
}

/// A queue's settings as the server holds them.
#[napi(object, object_from_js = false)]
pub struct QueueSettings {
    pub name: String,
    /// The JetStream stream holding its items.
    pub stream: String,
    pub max_age_ms: f64,
    pub max_entries: i64,
    pub discard_old: bool,
    pub max_tries: i64,
    pub max_run_time_ms: f64,
    pub max_concurrent: i64,
    /// How many tasks of one order key may run at once; 0 for a queue without ordering.
    pub order_key_concurrency: u32,
}

impl From<&jetjobs::Queue> for QueueSettings {
    fn from(q: &jetjobs::Queue) -> Self {
        Self {
            name: q.name.clone(),
            stream: q.stream_name(),
            max_age_ms: to_ms(q.max_age),
            max_entries: q.max_entries,
            discard_old: q.discard_old,
            max_tries: q.max_tries,
            max_run_time_ms: to_ms(q.max_run_time),
            max_concurrent: q.max_concurrent,
            order_key_concurrency: q.order_key_concurrency,
        }
    }
}

/// A queue's settings and item counts.
#[napi(object, object_from_js = false)]
pub struct QueueInfo {
    pub queue: QueueSettings,
    /// Items stored (waiting or in flight).
    pub items: f64,
    /// Items delivered to a worker and not yet acknowledged.
    pub in_flight: f64,
    /// Pull requests waiting for items.
    pub waiting_pulls: f64,
}

impl From<jetjobs::QueueInfo> for QueueInfo {
    fn from(i: jetjobs::QueueInfo) -> Self {
        Self {
            queue: QueueSettings::from(&i.queue),
            items: i.items as f64,
            in_flight: i.in_flight as f64,
            waiting_pulls: i.waiting_pulls as f64,
        }
    }
}

/// Size of the tasks store.
#[napi(object, object_from_js = false)]
pub struct TasksInfo {
    pub tasks: f64,
    pub bytes: f64,
    pub memory: bool,
    pub replicas: u32,
}

impl From<jetjobs::TasksInfo> for TasksInfo {
    fn from(i: jetjobs::TasksInfo) -> Self {
        Self {
            tasks: i.tasks as f64,
            bytes: i.bytes as f64,
            memory: i.memory,
            replicas: u32::try_from(i.replicas).unwrap_or(u32::MAX),
        }
    }
}
