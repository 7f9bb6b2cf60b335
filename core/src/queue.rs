// SPDX-License-Identifier: Apache-2.0
//! Queue settings: one JetStream work-queue stream `CHORIA_AJ_Q_<name>` with a `WORKERS` consumer.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::wire::is_valid_name;

/// asyncjobs' `DefaultJobRunTime`: how long a handler may run before the item is redelivered.
pub const DEFAULT_MAX_RUN_TIME: Duration = Duration::from_secs(3600);
/// asyncjobs' `DefaultQueueMaxConcurrent`.
pub const DEFAULT_MAX_CONCURRENT: i64 = 100;
/// Name of the queue used when none is configured.
pub const DEFAULT_QUEUE_NAME: &str = "DEFAULT";
/// Longest queue name: its stream name (`CHORIA_AJ_Q_<name>`) must stay a valid file name on the
/// server.
pub const MAX_QUEUE_NAME_LEN: usize = 200;

/// A work queue and the limits JetStream enforces on it.
///
/// Values are only used when the queue is created; after create or bind the server's configuration
/// is read back and is authoritative, as in asyncjobs.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let q = jetjobs::Queue::new("EMAIL").max_concurrent(20).max_tries(10).max_run_time(Duration::from_secs(60));
/// assert_eq!(q.max_concurrent, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// Queue name; the stream is `CHORIA_AJ_Q_<name>`.
    pub name: String,
    /// Items older than this are discarded; zero keeps them forever.
    #[serde(with = "crate::wire::nanos")]
    pub max_age: Duration,
    /// Most items held; -1 or 0 means unlimited.
    pub max_entries: i64,
    /// When full, discard the oldest item instead of refusing new ones.
    pub discard_old: bool,
    /// Deliveries per item (the consumer's `max_deliver`); -1 means unlimited.
    pub max_tries: i64,
    /// How long one handler run may take before the item is redelivered (the consumer's `ack_wait`).
    #[serde(rename = "max_runtime", with = "crate::wire::nanos")]
    pub max_run_time: Duration,
    /// Items in flight across every worker (the consumer's `max_ack_pending`).
    pub max_concurrent: i64,
    /// Only bind to an existing queue; fail with `QueueNotFound` if it does not exist.
    #[serde(skip)]
    pub no_create: bool,
    /// With ordering (jetjobs only), how many tasks of one order key may run at once across the
    /// fleet; 0 for a queue without ordering. See [`Queue::ordered`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub order_key_concurrency: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Queue {
    /// A queue with asyncjobs' defaults: unlimited tries, 1h run time, 100 concurrent.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_age: Duration::ZERO,
            max_entries: -1,
            discard_old: false,
            max_tries: -1,
            max_run_time: DEFAULT_MAX_RUN_TIME,
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            no_create: false,
            order_key_concurrency: 0,
        }
    }

    /// asyncjobs' implicit `DEFAULT` queue: 100 tries, 1 minute run time, 100 concurrent.
    pub fn default_queue() -> Self {
        Self {
            max_tries: 100,
            max_run_time: Duration::from_secs(60),
            ..Self::new(DEFAULT_QUEUE_NAME)
        }
    }

    /// Bind to an existing queue instead of creating it.
    pub fn bind(name: impl Into<String>) -> Self {
        Self {
            no_create: true,
            ..Self::new(name)
        }
    }

    /// See [`Queue::max_age`](field@Queue::max_age).
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }

    /// See [`Queue::max_entries`](field@Queue::max_entries).
    pub fn max_entries(mut self, n: i64) -> Self {
        self.max_entries = n;
        self
    }

    /// See [`Queue::discard_old`](field@Queue::discard_old).
    pub fn discard_old(mut self, yes: bool) -> Self {
        self.discard_old = yes;
        self
    }

    /// See [`Queue::max_tries`](field@Queue::max_tries).
    pub fn max_tries(mut self, n: i64) -> Self {
        self.max_tries = n;
        self
    }

    /// See [`Queue::max_run_time`](field@Queue::max_run_time).
    pub fn max_run_time(mut self, d: Duration) -> Self {
        self.max_run_time = d;
        self
    }

    /// See [`Queue::max_concurrent`](field@Queue::max_concurrent).
    pub fn max_concurrent(mut self, n: i64) -> Self {
        self.max_concurrent = n;
        self
    }

    /// Runs tasks that share an order key ([`Task::with_order_key`](crate::Task::with_order_key))
    /// one at a time in enqueue order across every worker (jetjobs only). A failure that will be
    /// retried holds back the later tasks of its key until it succeeds or ends for good; other
    /// keys proceed. Tasks without a key run as in any queue.
    ///
    /// ```
    /// let q = jetjobs::Queue::new("ORDERS").ordered();
    /// assert!(q.is_ordered());
    /// ```
    pub fn ordered(self) -> Self {
        let n = self.order_key_concurrency.max(1);
        self.order_key_concurrency(n)
    }

    /// Ordering with up to `n` tasks of one key running at once (they start in enqueue order);
    /// 0 turns ordering off. A failed task still holds back every later task of its key.
    pub fn order_key_concurrency(mut self, n: u32) -> Self {
        self.order_key_concurrency = n;
        self
    }

    /// Whether tasks with an order key run in order here.
    pub fn is_ordered(&self) -> bool {
        self.order_key_concurrency > 0
    }

    /// The JetStream stream holding this queue's items.
    pub fn stream_name(&self) -> String {
        crate::wire::names::queue_stream(&self.name)
    }

    /// The settings JetStream is given: zero limits stand for asyncjobs' defaults (1h run time,
    /// 100 concurrent, unlimited tries and entries). The one place those defaults are applied.
    pub(crate) fn with_defaults(&self) -> Queue {
        let mut q = self.clone();
        if q.max_run_time.is_zero() {
            q.max_run_time = DEFAULT_MAX_RUN_TIME;
        }
        if q.max_concurrent <= 0 {
            q.max_concurrent = DEFAULT_MAX_CONCURRENT;
        }
        if q.max_tries == 0 {
            q.max_tries = -1;
        }
        if q.max_entries <= 0 {
            q.max_entries = -1;
        }
        q
    }

    /// Fails with `InvalidQueueName` unless the name is usable as a stream and subject token.
    pub(crate) fn validate_name(name: &str) -> Result<()> {
        if !is_valid_name(name) {
            return Err(Error::new(
                ErrorKind::InvalidQueueName,
                format!("queue name {name:?} must match ^[a-zA-Z0-9_:-]+$"),
            ));
        }
        if name.len() > MAX_QUEUE_NAME_LEN {
            return Err(Error::new(
                ErrorKind::InvalidQueueName,
                format!(
                    "queue name is {} bytes long, the limit is {MAX_QUEUE_NAME_LEN}",
                    name.len()
                ),
            ));
        }
        Ok(())
    }

    /// The subject an item for `task_id` is published on.
    pub(crate) fn item_subject(&self, task_id: &str) -> String {
        crate::wire::names::item_subject(&self.name, task_id)
    }
}
