// SPDX-License-Identifier: Apache-2.0
//! `ScheduledTask`, `ScheduleWatch` and `TaskScheduler`: the core's scheduled tasks and its
//! leader-elected scheduler; `lib/scheduler.ts` adds `Date`s, async iteration and `AbortSignal`s.
//! The `Client` methods that store schedules are in `client.rs`.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use napi::Env;
use napi::bindgen_prelude::{Buffer, Either, PromiseRaw};
use napi_derive::napi;
use tokio::sync::Mutex;

use crate::cancellation_token::CancellationToken;
use crate::client::Client;
use crate::error::{check, invalid_option, promise, to_ms};
use crate::task::TaskSpec;

/// A task created on a cron schedule by the elected scheduler (asyncjobs' `ScheduledTask`).
#[napi]
pub struct ScheduledTask {
    pub(crate) inner: jetjobs::ScheduledTask,
}

impl From<jetjobs::ScheduledTask> for ScheduledTask {
    fn from(inner: jetjobs::ScheduledTask) -> Self {
        Self { inner }
    }
}

#[napi]
impl ScheduledTask {
    /// A schedule `name` creating tasks like `task` (its type, payload and max tries; its deadline,
    /// if set, as an offset from each firing, rounded to seconds) on `queue` at each time
    /// `schedule` gives. Throws `InvalidScheduleName`, `InvalidSchedule`, `InvalidQueueName`, or
    /// `ScheduleDeadlineTooShort` for a deadline under 30 s.
    #[napi(constructor)]
    pub fn new(
        env: &Env,
        name: String,
        schedule: String,
        queue: String,
        task: TaskSpec,
    ) -> napi::Result<Self> {
        let task = check(env, task.into_task())?;
        check(
            env,
            jetjobs::ScheduledTask::new(&name, &schedule, &queue, &task),
        )
        .map(Self::from)
    }

    /// Parses a stored schedule document (the JSON asyncjobs writes).
    #[napi(factory)]
    pub fn from_json(env: &Env, document: Either<String, Buffer>) -> napi::Result<ScheduledTask> {
        let bytes: &[u8] = match &document {
            Either::A(text) => text.as_bytes(),
            Either::B(buffer) => buffer,
        };
        check(env, jetjobs::ScheduledTask::from_json(bytes)).map(Self::from)
    }

    /// The document exactly as asyncjobs stores it.
    #[napi]
    pub fn to_json(&self, env: &Env) -> napi::Result<String> {
        let bytes = check(env, self.inner.to_json())?;
        check(
            env,
            String::from_utf8(bytes).map_err(|_| invalid_option("schedule document is not UTF-8")),
        )
    }

    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// The cron specification.
    #[napi(getter)]
    pub fn schedule(&self) -> String {
        self.inner.schedule.clone()
    }

    #[napi(getter)]
    pub fn queue(&self) -> String {
        self.inner.queue.clone()
    }

    #[napi(getter)]
    pub fn task_type(&self) -> String {
        self.inner.task_type.clone()
    }

    /// The created tasks' payload bytes; null when there are none.
    #[napi(getter)]
    pub fn payload_bytes(&self) -> Option<Buffer> {
        self.inner
            .payload
            .as_ref()
            .map(|b| Buffer::from(b.to_vec()))
    }

    /// The created tasks' payload parsed as JSON (null when there is none), converted as task
    /// payloads are. Not JSON: `InvalidPayload`.
    #[napi(getter, ts_return_type = "unknown")]
    pub fn payload(&self, env: &Env) -> napi::Result<serde_json::Value> {
        let Some(bytes) = &self.inner.payload else {
            return Ok(serde_json::Value::Null);
        };
        let value = serde_json::from_slice(bytes).map_err(|e| {
            jetjobs::Error::with_source(
                jetjobs::ErrorKind::InvalidPayload,
                "the schedule's payload is not JSON",
                e,
            )
        });
        check(env, value)
    }

    /// Each created task's deadline from its creation, in ms; null for none.
    #[napi(getter)]
    pub fn deadline_ms(&self) -> Option<f64> {
        (!self.inner.deadline.is_zero()).then(|| to_ms(self.inner.deadline))
    }

    /// Each created task's max tries (0: the engine's default).
    #[napi(getter)]
    pub fn max_tries(&self) -> i64 {
        self.inner.max_tries
    }

    /// When the schedule was created (RFC 3339, exact).
    #[napi(getter)]
    pub fn created_at(&self) -> String {
        self.inner.created_at.to_string()
    }
}

/// A change to the schedules: `stored` (created or replaced; `schedule` is set) or `removed`.
#[napi(object, object_from_js = false)]
pub struct ScheduleChange {
    #[napi(ts_type = "'stored' | 'removed'")]
    pub kind: String,
    pub name: String,
    pub schedule: Option<ScheduledTask>,
}

impl From<jetjobs::ScheduleChange> for ScheduleChange {
    fn from(change: jetjobs::ScheduleChange) -> Self {
        match change {
            jetjobs::ScheduleChange::Stored(schedule) => Self {
                kind: "stored".into(),
                name: schedule.name.clone(),
                schedule: Some(ScheduledTask::from(schedule)),
            },
            jetjobs::ScheduleChange::Removed(name) => Self {
                kind: "removed".into(),
                name,
                schedule: None,
            },
        }
    }
}

type Changes = BoxStream<'static, jetjobs::Result<jetjobs::ScheduleChange>>;

/// Every schedule as it is, then each change, pulled one per `next()`.
#[napi]
pub struct ScheduleWatch {
    stream: Arc<Mutex<Option<Changes>>>,
    closed: jetjobs::CancellationToken,
}

impl From<Changes> for ScheduleWatch {
    fn from(stream: Changes) -> Self {
        Self {
            stream: Arc::new(Mutex::new(Some(stream))),
            closed: jetjobs::CancellationToken::new(),
        }
    }
}

#[napi]
impl ScheduleWatch {
    /// The next change, or null once the watch is closed.
    #[napi(ts_return_type = "Promise<ScheduleChange | null>")]
    pub fn next<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Option<ScheduleChange>>> {
        let (stream, closed) = (self.stream.clone(), self.closed.clone());
        let next = async move {
            let mut guard = stream.lock().await;
            let Some(changes) = guard.as_mut() else {
                return Ok(None);
            };
            let next = tokio::select! {
                biased;
                _ = closed.cancelled() => None,
                next = changes.next() => next,
            };
            if next.is_none() {
                *guard = None;
            }
            next.transpose()
        };
        promise(env, next, |change| change.map(ScheduleChange::from))
    }

    /// Ends the watch; a pending and every later `next()` resolve to null.
    #[napi]
    pub fn close(&self) {
        self.closed.cancel();
        if let Ok(mut guard) = self.stream.try_lock() {
            *guard = None;
        }
    }
}

/// Creates tasks from the schedules while elected leader of every scheduler sharing the server
/// (Go asyncjobs' `TaskScheduler`s included); the others stand by.
#[napi]
pub struct TaskScheduler {
    inner: jetjobs::TaskScheduler,
    name: String,
}

#[napi]
impl TaskScheduler {
    /// A scheduler of `client`'s schedules, campaigning as `name` (unique per instance: the
    /// leader-elected event carries it). An empty name is `InvalidOption`.
    #[napi(constructor)]
    pub fn new(env: &Env, client: &Client, name: String) -> napi::Result<Self> {
        let client = client.client(env)?;
        let inner = check(env, jetjobs::TaskScheduler::new(&client, &name))?;
        Ok(Self { inner, name })
    }

    #[napi(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// True while this instance is the announced leader (the one creating tasks).
    #[napi(getter)]
    pub fn is_leader(&self) -> bool {
        self.inner.is_leader()
    }

    /// Campaigns and keeps the schedules' timers until `shutdown` is cancelled.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn run<'env>(
        &self,
        env: &'env Env,
        shutdown: &CancellationToken,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let (scheduler, shutdown) = (self.inner.clone(), shutdown.inner.clone());
        promise(env, async move { scheduler.run(shutdown).await }, |()| ())
    }
}
