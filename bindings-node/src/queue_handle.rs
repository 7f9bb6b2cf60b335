// SPDX-License-Identifier: Apache-2.0
//! `QueueHandle`: one open queue of a client (`jetjobs::QueueHandle`), method for method.

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::error::{check, promise};
use crate::queue::{QueueInfo, QueueSettings};
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

    /// Stores the task and its work item on this queue; resolves to the stored task.
    #[napi(ts_return_type = "Promise<Task>")]
    pub fn enqueue<'env>(
        &self,
        env: &'env Env,
        spec: TaskSpec,
    ) -> napi::Result<PromiseRaw<'env, Task>> {
        let queue = self.inner.clone();
        let task = check(env, spec.into_task())?;
        promise(env, async move { queue.enqueue(task).await }, Task::from)
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
