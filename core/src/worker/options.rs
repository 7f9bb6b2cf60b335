// SPDX-License-Identifier: Apache-2.0
//! How a [`Worker`](crate::Worker) runs handlers: its concurrency budget, retries, discards,
//! verification, shutdown grace and admission.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetryPolicy;
use crate::signing::TaskVerifier;
use crate::task::TaskState;
use crate::worker::admission::Admission;
use crate::worker::priority::Priority;

/// asyncjobs' default client concurrency.
pub const DEFAULT_CONCURRENCY: usize = 10;
/// How long a stopping worker waits for running handlers by default.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Settings of a [`Worker`](crate::Worker).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let options = jetjobs::WorkerOptions::new()
///     .concurrency(50)
///     .retry_policy(jetjobs::RetryPolicy::named("1m")?)
///     .shutdown_grace(Duration::from_secs(10));
/// assert_eq!(options.concurrency_limit(), 50);
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Clone)]
pub struct WorkerOptions {
    pub(crate) concurrency: usize,
    pub(crate) retry_policy: RetryPolicy,
    pub(crate) discard: HashSet<TaskState>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) verifier: Option<TaskVerifier>,
    pub(crate) signatures_optional: bool,
    /// None admits every task at once, without a call per task.
    pub(crate) admission: Option<Arc<dyn Admission>>,
    /// None shares slots between queues first come first served.
    pub(crate) priority: Option<Priority>,
    /// The name of a task scheduler to run alongside the queues, if any.
    pub(crate) task_scheduler: Option<String>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: DEFAULT_CONCURRENCY,
            retry_policy: RetryPolicy::default(),
            discard: HashSet::new(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            verifier: None,
            signatures_optional: false,
            admission: None,
            priority: None,
            task_scheduler: None,
        }
    }
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("concurrency", &self.concurrency)
            .field("retry_policy", &self.retry_policy)
            .field("discard", &self.discard)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("verifies", &self.verifier.is_some())
            .field("signatures_optional", &self.signatures_optional)
            .field("priority", &self.priority)
            .field("task_scheduler", &self.task_scheduler)
            .finish_non_exhaustive()
    }
}

impl WorkerOptions {
    /// asyncjobs' defaults: concurrency 10, the 10-minute retry policy, nothing discarded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handlers this worker runs at once, over all its queues (the process-wide budget).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// The configured concurrency.
    pub fn concurrency_limit(&self) -> usize {
        self.concurrency
    }

    /// The backoff between tries.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry_policy = policy;
        self
    }

    /// Delete tasks instead of storing these final states (`complete`, `expired`, `terminated`).
    pub fn discard_states(mut self, states: impl IntoIterator<Item = TaskState>) -> Self {
        self.discard.extend(states);
        self
    }

    /// How long a stopping worker waits for running handlers before releasing their tasks.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Verifies every task before running it; failures are terminated.
    pub fn verification_key(mut self, verifier: TaskVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// Accept unsigned tasks even with a verification key (signed ones must still verify).
    pub fn signatures_optional(mut self) -> Self {
        self.signatures_optional = true;
        self
    }

    /// The admission step every task passes before it starts; see [`Admission`].
    pub fn admission(mut self, admission: Arc<dyn Admission>) -> Self {
        self.admission = Some(admission);
        self
    }

    /// How the handler slots are shared between queues that all have tasks waiting; see
    /// [`Priority`]. The worker then pulls items ahead (one more per queue than the queue can run
    /// at once) that wait for a slot, kept alive meanwhile, so a freed slot never waits on a round
    /// trip to the server.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Also run a [`TaskScheduler`](crate::TaskScheduler) campaigning as `name` while the
    /// worker runs: the elected one of all schedulers (Go ones included) creates the scheduled
    /// tasks.
    pub fn task_scheduler(mut self, name: impl Into<String>) -> Self {
        self.task_scheduler = Some(name.into());
        self
    }

    /// Fails with `InvalidOption` or `UnknownDiscardPolicy` for settings a worker cannot run with
    /// ([`Worker::run`](crate::Worker::run) checks this too).
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "concurrency must be at least 1",
            ));
        }
        if let Some(bad) = self.discard.iter().find(|s| {
            !matches!(
                s,
                TaskState::Complete | TaskState::Expired | TaskState::Terminated
            )
        }) {
            return Err(Error::new(
                ErrorKind::UnknownDiscardPolicy,
                format!(
                    "only states completed, expired or terminated can be discarded, not {bad:?}"
                ),
            ));
        }
        Ok(())
    }
}
