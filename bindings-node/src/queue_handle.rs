// SPDX-License-Identifier: Apache-2.0
//! `QueueHandle`: one open queue of a client (`jetjobs::QueueHandle`), method for method.

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::client::wait_timeout;
use crate::error::{ErrorCode, check, promise};
use crate::queue::{QueueInfo, QueueSettings};
use crate::settler::Settler;
use crate::task::{Task, TaskSpec};

/// One open queue: enqueue to it, load and retry its tasks, read its counts, purge it.
#[napi]
pub struct QueueHandle {
    pub(crate) inner: jetjobs::QueueHandle,
}

impl From<jetjobs::QueueHandle> for QueueHandle {
    fn from(inner: jetjobs::QueueHandle) -> Self {
        Self { inner }
    }
}

#[napi]
impl QueueHandle {
    /// The queue's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name().to_owned()
    }

    /// The queue's settings as the server holds them.
    #[napi(getter)]
    pub fn settings(&self) -> QueueSettings {
        QueueSettings::from(self.inner.settings())
    }

    /// Stores the task and its work item on this queue; the outcome goes to `settler` as that of
    /// call `id` (`lib/settler.ts`) rather than to a promise of its own. Throws only for a spec
    /// that makes no task.
    #[napi]
    pub fn enqueue_settled(
        &self,
        env: &Env,
        spec: TaskSpec,
        settler: &Settler,
        id: u32,
    ) -> napi::Result<()> {
        let queue = self.inner.clone();
        let task = check(env, spec.into_task())?;
        let settler = settler.shared.clone();
        napi::bindgen_prelude::spawn(async move { settler.settle(id, queue.enqueue(task).await) });
        Ok(())
    }

    /// Stores many tasks with pipelined writes; resolves to one outcome per task, in order (a
    /// failure of one does not stop the others).
    #[napi(ts_return_type = "Promise<Array<EnqueueOutcome>>")]
    pub fn enqueue_many<'env>(
        &self,
        env: &'env Env,
        specs: Vec<TaskSpec>,
    ) -> napi::Result<PromiseRaw<'env, Vec<EnqueueOutcome>>> {
        let queue = self.inner.clone();
        // A spec that does not make a task keeps its place, with its error.
        let made: Vec<jetjobs::Result<jetjobs::Task>> =
            specs.into_iter().map(TaskSpec::into_task).collect();
        promise(
            env,
            async move {
                let valid: Vec<jetjobs::Task> = made
                    .iter()
                    .filter_map(|t| t.as_ref().ok().cloned())
                    .collect();
                let mut stored = queue.enqueue_many(valid).await.into_iter();
                let outcomes = made
                    .into_iter()
                    .map(|made| match made {
                        Ok(_) => stored.next().unwrap_or_else(|| {
                            Err(jetjobs::Error::new(
                                jetjobs::ErrorKind::Storage,
                                "enqueue_many returned fewer results than tasks",
                            ))
                        }),
                        Err(e) => Err(e),
                    })
                    .collect::<Vec<_>>();
                Ok(outcomes)
            },
            |outcomes| outcomes.into_iter().map(EnqueueOutcome::from).collect(),
        )
    }

    /// Enqueues the task, then waits until it is final, as `Client.waitFor`.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn enqueue_and_wait<'env>(
        &self,
        env: &'env Env,
        spec: TaskSpec,
        timeout_ms: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let queue = self.inner.clone();
        let task = check(env, spec.into_task())?;
        let timeout = check(env, wait_timeout(timeout_ms))?;
        promise(
            env,
            async move { queue.enqueue_and_wait(task, timeout).await },
            Task::from,
        )
    }

    /// Enqueues the tasks as a chain: each after the previous one completed, with its result in
    /// `dependencyResults`. Resolves to the stored tasks; rejects with the first error.
    #[napi(ts_return_type = "Promise<Array<Task>>")]
    pub fn enqueue_chain<'env>(
        &self,
        env: &'env Env,
        specs: Vec<TaskSpec>,
    ) -> napi::Result<PromiseRaw<'env, Vec<Task>>> {
        let queue = self.inner.clone();
        let tasks: Vec<jetjobs::Task> =
            check(env, specs.into_iter().map(TaskSpec::into_task).collect())?;
        promise(
            env,
            async move { queue.enqueue_chain(tasks).await },
            |stored| stored.into_iter().map(Task::from).collect(),
        )
    }

    /// Enqueues `group` to run in parallel and `callback` after all of them completed, with
    /// their results in `dependencyResults`.
    #[napi(ts_return_type = "Promise<Chord>")]
    pub fn enqueue_chord<'env>(
        &self,
        env: &'env Env,
        group: Vec<TaskSpec>,
        callback: TaskSpec,
    ) -> napi::Result<PromiseRaw<'env, Chord>> {
        let queue = self.inner.clone();
        let group: Vec<jetjobs::Task> =
            check(env, group.into_iter().map(TaskSpec::into_task).collect())?;
        let callback = check(env, callback.into_task())?;
        promise(
            env,
            async move { queue.enqueue_chord(group, callback).await },
            |(group, callback)| Chord {
                group: group.into_iter().map(Task::from).collect(),
                callback: Task::from(callback),
            },
        )
    }

    /// Loads a task, verifying its signature when a verification key is configured.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn load_task<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let queue = self.inner.clone();
        promise(env, async move { queue.load_task(&id).await }, Task::from)
    }

    /// Enqueues a stored task again on this queue, in state `retry` with its tries reset.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn retry_task<'env>(
        &self,
        env: &'env Env,
        id: String,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let queue = self.inner.clone();
        promise(env, async move { queue.retry_task(&id).await }, Task::from)
    }

    /// The queue's settings and item counts, read now.
    #[napi(ts_return_type = "Promise<QueueInfo>")]
    pub fn info<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, QueueInfo>> {
        let queue = self.inner.clone();
        promise(env, async move { queue.info().await }, QueueInfo::from)
    }

    /// Removes every work item of the queue (the task documents stay).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn purge<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let queue = self.inner.clone();
        promise(env, async move { queue.purge().await }, |()| ())
    }
}

/// One task's outcome in `enqueueMany`: the stored task, or why it was not stored.
#[napi(object, object_from_js = false)]
pub struct EnqueueOutcome {
    /// The stored task.
    pub task: Option<Task>,
    /// The error's code when the task was not stored.
    pub code: Option<ErrorCode>,
    /// The error's message when the task was not stored.
    pub message: Option<String>,
    /// The text of the error's source, if it has one (the JS error's `cause`).
    pub cause: Option<String>,
}

impl From<jetjobs::Result<jetjobs::Task>> for EnqueueOutcome {
    fn from(result: jetjobs::Result<jetjobs::Task>) -> Self {
        match result {
            Ok(task) => Self {
                task: Some(Task::from(task)),
                code: None,
                message: None,
                cause: None,
            },
            Err(e) => Self {
                task: None,
                code: Some(ErrorCode::from(e.kind())),
                message: Some(e.to_string()),
                cause: std::error::Error::source(&e).map(ToString::to_string),
            },
        }
    }
}

/// A chord as stored: its group and its callback.
#[napi(object, object_from_js = false)]
pub struct Chord {
    /// The tasks that run in parallel.
    pub group: Vec<Task>,
    /// The task that runs after all of them completed.
    pub callback: Task,
}
