// SPDX-License-Identifier: Apache-2.0
//! `WorkerOptions` and `Worker`: the core's worker, consuming one or more queues under one
//! concurrency budget.

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::cancellation_token::CancellationToken;
use crate::client::Client;
use crate::error::{check, duration_ms, positive_count, promise};
use crate::mux::Mux;
use crate::priority::Priority;
use crate::queue_handle::QueueHandle;
use crate::retry::RetryPolicy;
use crate::signing::TaskVerifier;

/// `jetjobs::WorkerOptions`, filled in one setter at a time.
#[napi]
#[derive(Default)]
pub struct WorkerOptions {
    inner: jetjobs::WorkerOptions,
}

impl WorkerOptions {
    fn update(&mut self, f: impl FnOnce(jetjobs::WorkerOptions) -> jetjobs::WorkerOptions) {
        self.inner = f(std::mem::take(&mut self.inner));
    }
}

#[napi]
impl WorkerOptions {
    /// asyncjobs' defaults: concurrency 10, the 10-minute retry policy, nothing discarded.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Handlers at once over every queue of the worker: a whole number of at least 1; anything
    /// else is `InvalidOption`.
    #[napi]
    pub fn concurrency(&mut self, env: &Env, n: f64) -> napi::Result<()> {
        let n = check(env, positive_count("concurrency", n))?;
        self.update(|o| o.concurrency(n));
        Ok(())
    }

    #[napi]
    pub fn retry_policy(&mut self, policy: &RetryPolicy) {
        let policy = policy.inner.clone();
        self.update(|o| o.retry_policy(policy));
    }

    /// States to delete instead of store: `complete`, `expired`, `terminated`; any other name is
    /// `UnknownDiscardPolicy`.
    #[napi]
    pub fn discard_states(&mut self, env: &Env, states: Vec<String>) -> napi::Result<()> {
        let states = states
            .iter()
            .map(|s| jetjobs::TaskState::parse_discard(s))
            .collect::<jetjobs::Result<Vec<_>>>();
        let states = check(env, states)?;
        self.update(|o| o.discard_states(states));
        Ok(())
    }

    #[napi]
    pub fn shutdown_grace_ms(&mut self, env: &Env, ms: f64) -> napi::Result<()> {
        let d = check(env, duration_ms("shutdownGraceMs", ms))?;
        self.update(|o| o.shutdown_grace(d));
        Ok(())
    }

    /// How the worker shares its slots between its queues when more than one has tasks
    /// waiting; its queues are checked when the worker runs.
    #[napi]
    pub fn priority(&mut self, priority: &Priority) {
        let priority = priority.inner.clone();
        self.update(|o| o.priority(priority));
    }

    #[napi]
    pub fn verification_key(&mut self, verifier: &TaskVerifier) {
        let verifier = verifier.inner.clone();
        self.update(|o| o.verification_key(verifier));
    }

    #[napi]
    pub fn signatures_optional(&mut self) {
        self.update(|o| o.signatures_optional());
    }

    /// Runs a task scheduler campaigning as `name` alongside the queues while the worker runs.
    #[napi]
    pub fn task_scheduler(&mut self, name: String) {
        self.update(|o| o.task_scheduler(name));
    }

    /// The configured concurrency.
    #[napi(getter)]
    pub fn concurrency_limit(&self) -> u32 {
        u32::try_from(self.inner.concurrency_limit()).unwrap_or(u32::MAX)
    }
}

/// Runs JS handlers for tasks of one or more queues (`jetjobs::Worker`), for one `run`.
#[napi]
pub struct Worker {
    inner: Option<jetjobs::Worker>,
}

fn spent() -> jetjobs::Error {
    jetjobs::Error::new(
        jetjobs::ErrorKind::InvalidOption,
        "this Worker already ran or was closed",
    )
}

#[napi]
impl Worker {
    /// A worker of `client` with no queues yet.
    #[napi(constructor)]
    pub fn new(env: &Env, client: &Client, options: &WorkerOptions) -> napi::Result<Self> {
        let client = client.client(env)?;
        Ok(Self {
            inner: Some(jetjobs::Worker::new(&client, options.inner.clone())),
        })
    }

    /// Consume `queue`, routing its tasks with `mux` (which is spent by this call). Its
    /// `maxConcurrent` caps the worker's handlers of that queue, within the worker's concurrency.
    #[napi]
    pub fn consume(&mut self, env: &Env, queue: &QueueHandle, mux: &mut Mux) -> napi::Result<()> {
        let worker = check(env, self.inner.as_mut().ok_or_else(spent))?;
        let mux = mux.take()?;
        check(env, worker.consume(&queue.inner, mux).map(|_| ()))
    }

    /// Runs until `shutdown` is cancelled, then lets running handlers finish within the shutdown
    /// grace and hands the rest back to their queues. Cancelling `hardStop` ends the grace at
    /// once: running handlers are abandoned and their tasks handed back (state `retry`, the try
    /// not counted). The handlers are released when the returned promise settles.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn run<'env>(
        &mut self,
        env: &'env Env,
        shutdown: &CancellationToken,
        hard_stop: &CancellationToken,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let worker = check(env, self.inner.take().ok_or_else(spent))?;
        let (shutdown, hard_stop) = (shutdown.inner.clone(), hard_stop.inner.clone());
        promise(env, worker.run_with_hard_stop(shutdown, hard_stop), |()| ())
    }

    /// Releases the consumed muxes' handlers without running.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}
