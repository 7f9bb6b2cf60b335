// SPDX-License-Identifier: Apache-2.0
//! `jetjobs::supervisor` for JS: workers and jobs (`SupervisedWorker`, `SupervisedJob`) made from
//! JS functions or with the core's combinators (`repeat`, `retry`, `distributedRepeat`), run
//! together (`supervisorRunAllWorkers`, `supervisorRunAllJobs`) or as a named group
//! (`SupervisedWorkerGroup`). The `supervisor` namespace of `lib/supervisor.ts` wraps them.
//!
//! A JS worker or job is `(token) => Promise<void>`, called once per run with a token that is
//! cancelled when the run should stop and, at the latest, when the run ends (`lib/` makes it an
//! `AbortSignal`). A value it throws travels through the core inside the error
//! (`error::thrown`) and comes back out of the run as the very same value.

use std::sync::Arc;

use jetjobs::supervisor;
use napi::bindgen_prelude::{ClassInstance, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use crate::cancellation_token::CancellationToken;
use crate::client::Client;
use crate::error::{check, duration_ms, integer, invalid_option, promise, thrown, to_ms};
use crate::retry::RetryPolicy;

/// One run of a JS worker or job: `(token) => Promise<void>`. Weak: a worker kept in a variable
/// does not hold the process open; a run in progress does, through the pending promise of the
/// call running it.
type RunFn =
    ThreadsafeFunction<CancellationToken, Promise<()>, CancellationToken, Status, false, true>;

const FAILED: &str = "a JS worker or job failed";

/// Calls the JS function once with a child of `cancel` that is cancelled when the call ends, so
/// that whatever waits on it in JS is settled with the run.
async fn run_js(f: Arc<RunFn>, cancel: jetjobs::CancellationToken) -> jetjobs::Result<()> {
    let run = cancel.child_token();
    let _ended = run.clone().drop_guard();
    // `call_async_catch`: a synchronous throw becomes an `Err`, never a fatal exception.
    let pending = f
        .call_async_catch(CancellationToken { inner: run })
        .await
        .map_err(|e| thrown(FAILED, e))?;
    pending.await.map_err(|e| thrown(FAILED, e))
}

/// A service that runs until its token is cancelled (`jetjobs::supervisor::Worker`).
#[napi]
pub struct SupervisedWorker {
    pub(crate) inner: supervisor::Worker,
}

#[napi]
impl SupervisedWorker {
    /// A worker whose every run calls `run(token)`.
    #[napi(
        factory,
        ts_args_type = "run: (token: CancellationToken) => Promise<void>"
    )]
    pub fn from_function(run: RunFn) -> Self {
        let run = Arc::new(run);
        Self {
            inner: supervisor::Worker::new(move |cancel| run_js(run.clone(), cancel)),
        }
    }

    /// Runs `job` every `everyMs` (start to start), first at once with `startImmediately`; a job
    /// error ends the worker.
    #[napi(factory)]
    pub fn repeat(
        env: &Env,
        every_ms: f64,
        job: &SupervisedJob,
        start_immediately: bool,
    ) -> napi::Result<Self> {
        let every = check(env, duration_ms("everyMs", every_ms))?;
        Ok(Self {
            inner: supervisor::repeat(every, job.inner.clone(), start_immediately),
        })
    }

    /// Runs `worker` again whenever it returns, after `backoff` when it failed; never fails.
    #[napi(factory)]
    pub fn retry(worker: &SupervisedWorker, backoff: &RetryPolicy) -> Self {
        Self {
            inner: supervisor::retry(worker.inner.clone(), backoff.inner.clone()),
        }
    }

    /// Runs `job` at most once per `everyMs` (whole seconds) across every process using `name`.
    #[napi(ts_return_type = "Promise<SupervisedWorker>")]
    pub fn distributed_repeat<'env>(
        env: &'env Env,
        client: &Client,
        name: String,
        every_ms: f64,
        job: &SupervisedJob,
    ) -> napi::Result<PromiseRaw<'env, SupervisedWorker>> {
        let client = client.client(env)?;
        let every = check(env, duration_ms("everyMs", every_ms))?;
        let job = job.inner.clone();
        promise(
            env,
            async move { supervisor::distributed_repeat(&client, &name, every, job).await },
            |inner| SupervisedWorker { inner },
        )
    }
}

/// Work that runs once (`jetjobs::supervisor::Job`).
#[napi]
pub struct SupervisedJob {
    pub(crate) inner: supervisor::Job,
}

#[napi]
impl SupervisedJob {
    /// A job whose every run calls `run(token)`.
    #[napi(
        factory,
        ts_args_type = "run: (token: CancellationToken) => Promise<void>"
    )]
    pub fn from_function(run: RunFn) -> Self {
        let run = Arc::new(run);
        Self {
            inner: supervisor::Job::new(move |cancel| run_js(run.clone(), cancel)),
        }
    }

    /// Runs `job` until it succeeds, waiting `backoff` after each failure; cancelled first, it
    /// fails with `Closed`.
    #[napi(factory)]
    pub fn retry(job: &SupervisedJob, backoff: &RetryPolicy) -> Self {
        Self {
            inner: supervisor::retry_job(job.inner.clone(), backoff.inner.clone()),
        }
    }
}

/// One named worker's health in a `SupervisedWorkerGroup`.
#[napi(object, object_from_js = false)]
pub struct WorkerHealth {
    pub name: String,
    #[napi(ts_type = "'starting' | 'ok' | 'failing'")]
    pub health: String,
}

/// Named workers run together, each optionally restarted with backoff, each with a health
/// (`jetjobs::supervisor::WorkerGroup`).
#[napi]
#[derive(Default)]
pub struct SupervisedWorkerGroup {
    inner: supervisor::WorkerGroup,
}

#[napi]
impl SupervisedWorkerGroup {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a worker that ends the group when it returns.
    #[napi]
    pub fn add(&mut self, name: String, worker: &SupervisedWorker) {
        self.inner.add(&name, worker.inner.clone());
    }

    /// Adds a worker restarted after `backoff` whenever it fails.
    #[napi]
    pub fn add_with_retry(
        &mut self,
        name: String,
        worker: &SupervisedWorker,
        backoff: &RetryPolicy,
    ) {
        self.inner
            .add_with_retry(&name, worker.inner.clone(), backoff.inner.clone());
    }

    /// Every worker's health, in the order they were added.
    #[napi]
    pub fn health(&self) -> Vec<WorkerHealth> {
        self.inner
            .health()
            .into_iter()
            .map(|(name, health)| WorkerHealth {
                name,
                health: health.as_str().to_string(),
            })
            .collect()
    }

    /// Runs every worker until `cancel` fires or one without retry returns.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn run<'env>(
        &self,
        env: &'env Env,
        cancel: &CancellationToken,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let (group, cancel) = (self.inner.clone(), cancel.inner.clone());
        promise(env, async move { group.run(&cancel).await }, |()| ())
    }
}

/// Runs every worker until all have returned; the first to return stops the others.
#[napi(
    ts_args_type = "cancel: CancellationToken, workers: Array<SupervisedWorker>",
    ts_return_type = "Promise<void>"
)]
pub fn supervisor_run_all_workers<'env>(
    env: &'env Env,
    cancel: &CancellationToken,
    workers: Vec<ClassInstance<'env, SupervisedWorker>>,
) -> napi::Result<PromiseRaw<'env, ()>> {
    let workers = workers.iter().map(|w| w.inner.clone()).collect();
    let cancel = cancel.inner.clone();
    promise(
        env,
        async move { supervisor::run_all_workers(&cancel, workers).await },
        |()| (),
    )
}

/// Runs every job and waits for all of them.
#[napi(
    ts_args_type = "cancel: CancellationToken, jobs: Array<SupervisedJob>",
    ts_return_type = "Promise<void>"
)]
pub fn supervisor_run_all_jobs<'env>(
    env: &'env Env,
    cancel: &CancellationToken,
    jobs: Vec<ClassInstance<'env, SupervisedJob>>,
) -> napi::Result<PromiseRaw<'env, ()>> {
    let jobs = jobs.iter().map(|j| j.inner.clone()).collect();
    let cancel = cancel.inner.clone();
    promise(
        env,
        async move { supervisor::run_all_jobs(&cancel, jobs).await },
        |()| (),
    )
}

/// Sleeps `ms` unless `cancel` fires first: true if the whole time passed.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn supervisor_wait<'env>(
    env: &'env Env,
    cancel: &CancellationToken,
    ms: f64,
) -> napi::Result<PromiseRaw<'env, bool>> {
    let d = check(env, duration_ms("ms", ms))?;
    let cancel = cancel.inner.clone();
    promise(
        env,
        async move { Ok(supervisor::wait(&cancel, d).await) },
        |passed| passed,
    )
}

/// runutil's `Backoff.Duration`: 0 for attempt 0, then `policy`'s delay, in ms. `attempt` is a
/// whole number of at least 0 (`InvalidOption` otherwise); beyond 2^32 - 1 it counts as that.
#[napi]
pub fn supervisor_backoff_delay_ms(
    env: &Env,
    policy: &RetryPolicy,
    attempt: f64,
) -> napi::Result<f64> {
    let attempt = check(
        env,
        integer("attempt", attempt).and_then(|n| {
            u64::try_from(n)
                .map_err(|_| invalid_option(format!("attempt must not be negative, got {n}")))
        }),
    )?;
    let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
    Ok(to_ms(supervisor::backoff_delay(&policy.inner, attempt)))
}

/// The supervisor's constants.
#[napi(object, object_from_js = false)]
pub struct SupervisorConstants {
    /// The least time `retry` waits before restarting a worker.
    pub min_restart_delay_ms: f64,
    /// A named worker running this long without returning is healthy.
    pub healthy_after_ms: f64,
    /// The KV bucket of `distributedRepeat`'s period claims.
    pub repeat_bucket: String,
}

#[napi]
pub fn supervisor_constants() -> SupervisorConstants {
    SupervisorConstants {
        min_restart_delay_ms: to_ms(supervisor::MIN_RESTART_DELAY),
        healthy_after_ms: to_ms(supervisor::HEALTHY_AFTER),
        repeat_bucket: supervisor::REPEAT_BUCKET.into(),
    }
}
