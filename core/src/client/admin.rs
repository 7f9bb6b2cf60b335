// SPDX-License-Identifier: Apache-2.0
//! Storage administration: list, inspect, create, purge and delete queues; list and delete tasks.

use crate::error::Result;
use crate::queue::Queue;
use crate::store::{QueueInfo, Storage, TasksInfo};
use crate::task::Task;

/// Lists, inspects and removes queues and tasks.
#[derive(Clone)]
pub struct StorageAdmin {
    storage: Storage,
}

impl StorageAdmin {
    pub(crate) fn new(storage: Storage) -> Self {
        Self { storage }
    }

    /// Names of all queues.
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        self.storage.queue_names().await
    }

    /// A queue's settings and item counts.
    pub async fn queue_info(&self, name: &str) -> Result<QueueInfo> {
        self.storage.queue_info(name).await
    }

    /// Creates a queue (or loads it if it exists) and returns the server's settings.
    pub async fn create_queue(&self, queue: &Queue) -> Result<Queue> {
        self.storage.open_queue(queue).await.map(|q| q.settings)
    }

    /// Removes every item from a queue.
    pub async fn purge_queue(&self, name: &str) -> Result<()> {
        self.storage.purge_queue(name).await
    }

    /// Deletes a queue.
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.storage.delete_queue(name).await
    }

    /// Up to `limit` tasks.
    pub async fn tasks(&self, limit: usize) -> Result<Vec<Task>> {
        self.storage.tasks(limit).await
    }

    /// Size of the tasks store.
    pub async fn tasks_info(&self) -> Result<TasksInfo> {
        self.storage.tasks_info().await
    }

    /// Deletes a task document (its work item, if any, is terminated when delivered).
    pub async fn delete_task(&self, id: &str) -> Result<()> {
        let task = self.storage.load_task(id).await?;
        self.storage.delete_task(&task).await
    }
}
