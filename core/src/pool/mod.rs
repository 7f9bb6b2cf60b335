// SPDX-License-Identifier: Apache-2.0
//! A keyed pool of long-running jobs (goa pulse's `pool`, seed 003) on NATS only: nodes join a
//! named pool and host workers; `dispatch_job(key, payload)` starts a job on the one worker the
//! key hashes to; jobs move when workers join or leave, and a dead worker's jobs start elsewhere.
//!
//! The design, and why two owners of one key cannot happen:
//! - Every job is a record in the pool's KV bucket whose `owner` names the one worker that may
//!   run it. Only compare-and-swap writes change `owner`, each raising `generation` (a fencing
//!   token handed to the start handler).
//! - A worker starts a job only after reading a record that names it; a handover is written only
//!   after the old owner has stopped the job.
//! - Liveness is a per-key TTL on each worker's key, expired by the server (no clock skew between
//!   hosts). A worker that cannot refresh its key within 70 % of the TTL stops its jobs itself,
//!   before the server expires the key and another worker may claim them.
//!
//! The layout is in [`records`] and `docs/pool-wire.md`.

mod hash;
mod host;
mod inspect;
mod node;
pub(crate) mod records;
mod schedule;
mod ticker;
mod view;

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::error::Result;
use crate::wire::Timestamp;

pub use hash::pool_worker_index;
pub use inspect::{PoolJobInfo, PoolSnapshot, inspect_pool};
pub use node::PoolNode;
pub use records::MAX_JOB_KEY_LEN;
pub use ticker::Ticker;

/// How a node takes part in a pool.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let options = jetjobs::PoolOptions::new().worker_ttl(Duration::from_secs(5)).grace(Duration::ZERO);
/// assert_eq!(options.get_worker_ttl(), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PoolOptions {
    worker_ttl: Duration,
    grace: Duration,
    dispatch_timeout: Duration,
    shutdown_timeout: Duration,
    client_only: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            worker_ttl: Duration::from_secs(10),
            grace: Duration::from_secs(2),
            dispatch_timeout: Duration::from_secs(40),
            shutdown_timeout: Duration::from_secs(120),
            client_only: false,
        }
    }
}

impl PoolOptions {
    /// pulse's defaults: worker TTL 10 s, dispatch timeout 40 s, shutdown timeout 2 min; a dead
    /// worker's jobs wait a 2 s grace before another worker claims them.
    pub fn new() -> Self {
        Self::default()
    }

    /// A worker whose key is not refreshed for this long is dead (whole seconds, at least 1 s).
    pub fn worker_ttl(mut self, ttl: Duration) -> Self {
        self.worker_ttl = ttl;
        self
    }

    /// The worker TTL.
    pub fn get_worker_ttl(&self) -> Duration {
        self.worker_ttl
    }

    /// How long after a worker's key expired its jobs wait before another worker claims them.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long `dispatch_job`, `stop_job` and `notify_worker` wait for the worker.
    pub fn dispatch_timeout(mut self, timeout: Duration) -> Self {
        self.dispatch_timeout = timeout;
        self
    }

    /// How long `close` and `shutdown` wait for jobs to stop.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Only dispatch: host no workers (pulse's `WithClientOnly`).
    pub fn client_only(mut self) -> Self {
        self.client_only = true;
        self
    }

    fn validate(&self) -> Result<()> {
        let ttl = self.worker_ttl;
        if ttl < Duration::from_secs(1) || ttl.subsec_nanos() != 0 {
            return Err(crate::Error::new(
                crate::ErrorKind::InvalidOption,
                format!("a pool's worker TTL is whole seconds, at least 1 s, not {ttl:?}"),
            ));
        }
        Ok(())
    }
}

/// A job handed to a worker's start handler.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolJob {
    /// The job key.
    pub key: String,
    /// The payload given to `dispatch_job`.
    pub payload: Bytes,
    /// Raised on every change of owner: a fencing token (a later start of the key has a higher
    /// generation).
    pub generation: u64,
    /// The worker starting it.
    pub worker: String,
    /// The node that dispatched it.
    pub node: String,
    /// When it was dispatched.
    pub created_at: Timestamp,
}

/// Starts and stops the jobs of one worker. Start and stop are control calls: start the work
/// (e.g. spawn a task) and return. A start may be repeated for a key after a crash elsewhere, so
/// both should be idempotent.
pub trait JobHandler: Send + Sync + 'static {
    /// Starts `job`; an error refuses it (`dispatch_job` reports `JobStartFailed`).
    fn start(&self, job: PoolJob) -> BoxFuture<'static, Result<()>>;
    /// Stops the job `key`.
    fn stop(&self, key: String) -> BoxFuture<'static, Result<()>>;
    /// Delivers a notification for the running job `key`; the default refuses it.
    fn notify(&self, key: String, _payload: Bytes) -> BoxFuture<'static, Result<()>> {
        Box::pin(async move {
            Err(crate::Error::new(
                crate::ErrorKind::InvalidOption,
                format!("the worker running {key} has no notification handler"),
            ))
        })
    }
}

/// A worker or a node as the pool lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolMember {
    /// Its id.
    pub id: String,
    /// The node it belongs to (a node's own id for a node).
    pub node: String,
    /// When it joined.
    pub created_at: Timestamp,
}

/// What a schedule's producer wants running (pulse's `JobPlan`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPlan {
    /// Jobs to start (a key already running counts as started).
    pub start: Vec<(String, Bytes)>,
    /// Keys to stop; ignored with `stop_all`.
    pub stop: Vec<String>,
    /// Stop every job this schedule started that is not in `start`.
    pub stop_all: bool,
}

/// Computes a schedule's plan; one node per period calls it. `Ok(None)` ends the schedule on
/// every node (pulse's `ErrScheduleStop`).
pub trait JobProducer: Send + Sync + 'static {
    /// The plan for now.
    fn plan(&self) -> BoxFuture<'static, Result<Option<JobPlan>>>;
}
