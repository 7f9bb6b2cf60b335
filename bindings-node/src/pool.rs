// SPDX-License-Identifier: Apache-2.0
//! `PoolNode`, `Ticker` and their records: the core's keyed pool of long-running jobs. Payloads
//! are `Buffer`s, durations and times milliseconds, generations JS numbers (exact up to
//! 2^53 - 1). A worker's handler is three JS functions (`start`, `stop`, optional `notify`) and a
//! schedule's producer one (`plan`); `lib/pool.ts` makes them out of the user's objects.
//!
//! The handler functions are strong threadsafe functions: a node hosting workers keeps the
//! process alive until the workers are removed, the node closes or the pool shuts down, as a
//! server socket would. A schedule's producer is held until the schedule ends or the node closes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use jetjobs::ErrorKind;
use napi::bindgen_prelude::{Buffer, FnArgs, Promise, PromiseRaw};
use napi::threadsafe_function::ThreadsafeFunction;
use napi::{Env, Status};
use napi_derive::napi;

use crate::client::Client;
use crate::error::{check, duration_ms, invalid_option, promise};

/// How a node takes part in a pool (`jetjobs::PoolOptions`); absent fields keep the core's
/// defaults.
#[napi(object, object_to_js = false)]
pub struct PoolOptions {
    /// A worker whose key is not refreshed for this long is dead (whole seconds, at least 1 s).
    pub worker_ttl_ms: Option<f64>,
    /// How long after a worker's key expired its jobs wait before another worker claims them.
    pub grace_ms: Option<f64>,
    /// How long `dispatchJob`, `stopJob` and `notifyWorker` wait for the worker.
    pub dispatch_timeout_ms: Option<f64>,
    /// How long `close` and `shutdown` wait for jobs to stop.
    pub shutdown_timeout_ms: Option<f64>,
    /// Only dispatch: host no workers.
    pub client_only: Option<bool>,
}

impl PoolOptions {
    fn into_options(self) -> jetjobs::Result<jetjobs::PoolOptions> {
        let mut options = jetjobs::PoolOptions::new();
        if let Some(ms) = self.worker_ttl_ms {
            options = options.worker_ttl(duration_ms("workerTtlMs", ms)?);
        }
        if let Some(ms) = self.grace_ms {
            options = options.grace(duration_ms("graceMs", ms)?);
        }
        if let Some(ms) = self.dispatch_timeout_ms {
            options = options.dispatch_timeout(duration_ms("dispatchTimeoutMs", ms)?);
        }
        if let Some(ms) = self.shutdown_timeout_ms {
            options = options.shutdown_timeout(duration_ms("shutdownTimeoutMs", ms)?);
        }
        if self.client_only == Some(true) {
            options = options.client_only();
        }
        Ok(options)
    }
}

fn epoch_ms(t: jetjobs::Timestamp) -> f64 {
    t.unix_nanos() as f64 / 1e6
}

/// A job handed to a worker's start handler (`jetjobs::PoolJob`).
#[napi(object, object_from_js = false)]
pub struct PoolJob {
    pub key: String,
    /// The payload given to `dispatchJob` (empty if none).
    pub payload: Buffer,
    /// Raised on every change of owner: a later start of the key has a higher generation.
    pub generation: f64,
    /// The worker starting it.
    pub worker: String,
    /// The node that dispatched it.
    pub node: String,
    /// When it was dispatched, in ms since the epoch.
    pub created_at_ms: f64,
}

impl From<jetjobs::PoolJob> for PoolJob {
    fn from(job: jetjobs::PoolJob) -> Self {
        Self {
            key: job.key,
            payload: Buffer::from(job.payload.to_vec()),
            generation: job.generation as f64,
            worker: job.worker,
            node: job.node,
            created_at_ms: epoch_ms(job.created_at),
        }
    }
}

/// A worker or a node as the pool lists it (`jetjobs::PoolMember`).
#[napi(object, object_from_js = false)]
pub struct PoolMember {
    pub id: String,
    /// The node it belongs to (a node's own id for a node).
    pub node: String,
    /// When it joined, in ms since the epoch.
    pub created_at_ms: f64,
}

impl From<jetjobs::PoolMember> for PoolMember {
    fn from(m: jetjobs::PoolMember) -> Self {
        Self {
            id: m.id,
            node: m.node,
            created_at_ms: epoch_ms(m.created_at),
        }
    }
}

fn members(list: Vec<jetjobs::PoolMember>) -> Vec<PoolMember> {
    list.into_iter().map(PoolMember::from).collect()
}

/// A job a plan starts.
#[napi(object, object_to_js = false)]
pub struct PlannedJob {
    pub key: String,
    pub payload: Option<Buffer>,
}

/// What a schedule's producer wants running (`jetjobs::JobPlan`).
#[napi(object, object_to_js = false)]
pub struct JobPlan {
    /// Jobs to start (a key already running counts as started).
    pub start: Option<Vec<PlannedJob>>,
    /// Keys to stop; ignored with `stopAll`.
    pub stop: Option<Vec<String>>,
    /// Stop every job this schedule started that is not in `start`.
    pub stop_all: Option<bool>,
}

impl From<JobPlan> for jetjobs::JobPlan {
    fn from(plan: JobPlan) -> Self {
        Self {
            start: plan
                .start
                .unwrap_or_default()
                .into_iter()
                .map(|j| {
                    let payload = j.payload.map(|b| Bytes::from(b.to_vec()));
                    (j.key, payload.unwrap_or_default())
                })
                .collect(),
            stop: plan.stop.unwrap_or_default(),
            stop_all: plan.stop_all.unwrap_or(false),
        }
    }
}

type StartFn = ThreadsafeFunction<PoolJob, Promise<()>, PoolJob, Status, false>;
type StopFn = ThreadsafeFunction<String, Promise<()>, String, Status, false>;
type NotifyFn = ThreadsafeFunction<
    FnArgs<(String, Buffer)>,
    Promise<()>,
    FnArgs<(String, Buffer)>,
    Status,
    false,
>;
type PlanFn = ThreadsafeFunction<(), Promise<Option<JobPlan>>, (), Status, false>;

/// A failed JS handler as a core error; only its message travels (to the dispatcher, the log).
fn handler_failed(e: napi::Error) -> jetjobs::Error {
    let message = if e.reason.is_empty() {
        format!("the JS handler failed: {}", e.status.as_ref())
    } else {
        e.reason
    };
    jetjobs::Error::new(ErrorKind::CallbackFailed, message)
}

/// Awaits one call of a JS function returning a promise.
async fn settle<T: napi::bindgen_prelude::FromNapiValue + 'static>(
    call: impl std::future::Future<Output = napi::Result<Promise<T>>>,
) -> jetjobs::Result<T> {
    // `call_async_catch`: a synchronous throw becomes an `Err`, never a fatal exception.
    call.await
        .map_err(handler_failed)?
        .await
        .map_err(handler_failed)
}

/// The JS `start` and `stop` functions of a worker's handler.
#[derive(Clone)]
struct JsJobs {
    start: Arc<StartFn>,
    stop: Arc<StopFn>,
}

impl jetjobs::JobHandler for JsJobs {
    fn start(&self, job: jetjobs::PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        let start = self.start.clone();
        Box::pin(async move { settle(start.call_async_catch(PoolJob::from(job))).await })
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        let stop = self.stop.clone();
        Box::pin(async move { settle(stop.call_async_catch(key)).await })
    }
}

/// A handler with a JS `notify` function too (without one, the core's default refuses
/// notifications).
struct JsNotifiedJobs {
    jobs: JsJobs,
    notify: Arc<NotifyFn>,
}

impl jetjobs::JobHandler for JsNotifiedJobs {
    fn start(&self, job: jetjobs::PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.jobs.start(job)
    }

    fn stop(&self, key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        self.jobs.stop(key)
    }

    fn notify(&self, key: String, payload: Bytes) -> BoxFuture<'static, jetjobs::Result<()>> {
        let notify = self.notify.clone();
        Box::pin(async move {
            let args = FnArgs::from((key, Buffer::from(payload.to_vec())));
            settle(notify.call_async_catch(args)).await
        })
    }
}

/// A schedule's JS `plan` function.
struct JsProducer(Arc<PlanFn>);

impl jetjobs::JobProducer for JsProducer {
    fn plan(&self) -> BoxFuture<'static, jetjobs::Result<Option<jetjobs::JobPlan>>> {
        let plan = self.0.clone();
        Box::pin(async move {
            let plan = settle(plan.call_async_catch(())).await?;
            Ok(plan.map(jetjobs::JobPlan::from))
        })
    }
}

/// This process's membership of one pool (`jetjobs::PoolNode`).
#[napi]
pub struct PoolNode {
    inner: jetjobs::PoolNode,
}

#[napi]
impl PoolNode {
    /// Joins pool `pool` (creating its bucket on first use).
    #[napi(ts_return_type = "Promise<PoolNode>")]
    pub fn join<'env>(
        env: &'env Env,
        client: &Client,
        pool: String,
        options: Option<PoolOptions>,
    ) -> napi::Result<PromiseRaw<'env, PoolNode>> {
        let client = client.client(env)?;
        let options = match options {
            Some(o) => check(env, o.into_options())?,
            None => jetjobs::PoolOptions::new(),
        };
        promise(
            env,
            async move { jetjobs::PoolNode::join(&client, &pool, options).await },
            |inner| PoolNode { inner },
        )
    }

    /// The pool name.
    #[napi(getter)]
    pub fn pool(&self) -> String {
        self.inner.pool().to_string()
    }

    /// This node's id.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }

    /// Adds a worker running the jobs routed to it with `start` and `stop` (and `notify`, if
    /// given); `InvalidOption` on a client-only node.
    #[napi(
        ts_args_type = "start: (job: PoolJob) => Promise<void>, stop: (key: string) => Promise<void>, notify?: ((key: string, payload: Buffer) => Promise<void>) | undefined | null",
        ts_return_type = "Promise<PoolMember>"
    )]
    pub fn add_worker<'env>(
        &self,
        env: &'env Env,
        start: StartFn,
        stop: StopFn,
        notify: Option<NotifyFn>,
    ) -> napi::Result<PromiseRaw<'env, PoolMember>> {
        let node = self.inner.clone();
        let jobs = JsJobs {
            start: Arc::new(start),
            stop: Arc::new(stop),
        };
        match notify {
            None => promise(
                env,
                async move { node.add_worker(jobs).await },
                PoolMember::from,
            ),
            Some(notify) => {
                let handler = JsNotifiedJobs {
                    jobs,
                    notify: Arc::new(notify),
                };
                promise(
                    env,
                    async move { node.add_worker(handler).await },
                    PoolMember::from,
                )
            }
        }
    }

    /// Removes worker `id` of this node, handing its jobs to the other workers first.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn remove_worker<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.inner.clone();
        promise(env, async move { node.remove_worker(&id).await }, |()| ())
    }

    /// Starts job `key` on the worker it hashes to; resolves once that worker started it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn dispatch_job<'env>(
        &self,
        env: &'env Env,
        key: String,
        payload: Buffer,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.inner.clone();
        let payload = Bytes::from(payload.to_vec());
        promise(
            env,
            async move { node.dispatch_job(&key, payload).await },
            |()| (),
        )
    }

    /// Stops job `key` wherever it runs and forgets it.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop_job<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.inner.clone();
        promise(env, async move { node.stop_job(&key).await }, |()| ())
    }

    /// Delivers `payload` to the notification handler of the worker running `key`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn notify_worker<'env>(
        &self,
        env: &'env Env,
        key: String,
        payload: Buffer,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.inner.clone();
        let payload = Bytes::from(payload.to_vec());
        promise(
            env,
            async move { node.notify_worker(&key, payload).await },
            |()| (),
        )
    }

    /// Keys of the jobs in the pool (not those being stopped), sorted.
    #[napi]
    pub fn job_keys(&self) -> Vec<String> {
        self.inner.job_keys()
    }

    /// The payload of job `key`: null if there is no such job, empty if it has none.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn job_payload<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<PromiseRaw<'env, Option<Buffer>>> {
        let node = self.inner.clone();
        promise(env, async move { node.job_payload(&key).await }, |p| {
            p.map(|b| Buffer::from(b.to_vec()))
        })
    }

    /// This node's workers.
    #[napi]
    pub fn workers(&self) -> Vec<PoolMember> {
        members(self.inner.workers())
    }

    /// Every live worker of the pool, oldest first (the order jobs hash over).
    #[napi]
    pub fn pool_workers(&self) -> Vec<PoolMember> {
        members(self.inner.pool_workers())
    }

    /// Every live node of the pool, client-only ones included, oldest first.
    #[napi]
    pub fn nodes(&self) -> Vec<PoolMember> {
        members(self.inner.nodes())
    }

    /// Which worker runs each job, by job key (`""` while a job has no worker).
    #[napi(ts_return_type = "Record<string, string>")]
    pub fn job_owners(&self) -> HashMap<String, String> {
        self.inner.job_owners()
    }

    /// Leaves the pool: this node's jobs are handed to the other workers.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.inner.clone();
        promise(env, async move { node.close().await }, |()| ())
    }

    /// Stops every job on every node and removes the pool.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn shutdown<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let node = self.inner.clone();
        promise(env, async move { node.shutdown().await }, |()| ())
    }

    /// True once this node closed (or the pool shut down).
    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// True once the pool shut down.
    #[napi(getter)]
    pub fn is_shutdown(&self) -> bool {
        self.inner.is_shutdown()
    }

    /// Opens the pool-wide ticker `name`: each tick reaches one of the nodes that opened it.
    #[napi(ts_return_type = "Promise<Ticker>")]
    pub fn new_ticker<'env>(
        &self,
        env: &'env Env,
        name: String,
        every_ms: f64,
    ) -> napi::Result<PromiseRaw<'env, Ticker>> {
        let every = check(env, duration_ms("everyMs", every_ms))?;
        let node = self.inner.clone();
        promise(
            env,
            async move { node.new_ticker(&name, every).await },
            |inner| Ticker {
                inner: Arc::new(inner),
            },
        )
    }

    /// Runs `plan()` now, then every `everyMs` on one of the nodes that scheduled `name`; its
    /// plan's jobs are started and the ones it drops stopped. A plan of null ends the schedule.
    #[napi(
        ts_args_type = "name: string, everyMs: number, plan: () => Promise<JobPlan | null>",
        ts_return_type = "Promise<void>"
    )]
    pub fn schedule<'env>(
        &self,
        env: &'env Env,
        name: String,
        every_ms: f64,
        plan: PlanFn,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let every = check(env, duration_ms("everyMs", every_ms))?;
        let node = self.inner.clone();
        let producer = JsProducer(Arc::new(plan));
        promise(
            env,
            async move { node.schedule(&name, every, producer).await },
            |()| (),
        )
    }
}

/// Ticks of a pool-wide ticker delivered to this node (`jetjobs::Ticker`).
#[napi]
pub struct Ticker {
    inner: Arc<jetjobs::Ticker>,
}

#[napi]
impl Ticker {
    /// The next tick delivered here, in ms since the epoch; null once the ticker stopped.
    #[napi(ts_return_type = "Promise<number | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<f64>>> {
        let ticker = self.inner.clone();
        promise(env, async move { Ok(ticker.next().await) }, |t| {
            t.map(epoch_ms)
        })
    }

    /// Stops the ticker on every node.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn stop<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let ticker = self.inner.clone();
        promise(env, async move { ticker.stop().await }, |()| ())
    }

    /// Stops this node's share of the ticker; the others keep ticking.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }
}

/// The index of the worker that owns `key` among `workers` live workers (sorted by creation).
#[napi]
pub fn pool_worker_index(env: &Env, key: String, workers: f64) -> napi::Result<u32> {
    let n = check(env, crate::error::integer("workers", workers))?;
    let n = check(
        env,
        usize::try_from(n)
            .map_err(|_| invalid_option(format!("workers must not be negative, got {n}"))),
    )?;
    Ok(u32::try_from(jetjobs::pool_worker_index(&key, n)).unwrap_or(u32::MAX))
}
