// SPDX-License-Identifier: Apache-2.0
//! Dead letters: tasks that ended without completing (`terminated`, `expired`, `unreachable`),
//! listed with filters, replayed (enqueued again on their own queue) and purged.

use std::collections::HashMap;
use std::time::Duration;

use crate::client::{Client, QueueHandle, StorageAdmin};
use crate::error::Result;
use crate::queue::Queue;
use crate::task::{Task, TaskState};

/// Which dead letters to list or purge; every filter given must match.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let filter = jetjobs::DeadLetterFilter::new()
///     .queue("EMAIL")
///     .error_contains("timeout")
///     .older_than(Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterFilter {
    queue: Option<String>,
    task_type: Option<String>,
    error_contains: Option<String>,
    older_than: Option<Duration>,
    states: Vec<TaskState>,
}

impl DeadLetterFilter {
    /// Every terminated, expired and unreachable task.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only tasks of this queue.
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = Some(name.into());
        self
    }

    /// Only tasks of this type.
    pub fn task_type(mut self, task_type: impl Into<String>) -> Self {
        self.task_type = Some(task_type.into());
        self
    }

    /// Only tasks whose last error contains this text.
    pub fn error_contains(mut self, text: impl Into<String>) -> Self {
        self.error_contains = Some(text.into());
        self
    }

    /// Only tasks that ended at least this long ago.
    pub fn older_than(mut self, age: Duration) -> Self {
        self.older_than = Some(age);
        self
    }

    /// Only tasks in these states (each `terminated`, `expired` or `unreachable`).
    pub fn states(mut self, states: impl IntoIterator<Item = TaskState>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// Whether `task` is a dead letter this filter selects.
    pub fn matches(&self, task: &Task) -> bool {
        let dead = matches!(
            task.state,
            TaskState::Terminated | TaskState::Expired | TaskState::Unreachable
        );
        dead && (self.states.is_empty() || self.states.contains(&task.state))
            && self.queue.as_ref().is_none_or(|q| &task.queue == q)
            && self.task_type.as_ref().is_none_or(|t| &task.task_type == t)
            && self
                .error_contains
                .as_ref()
                .is_none_or(|text| task.last_err.contains(text.as_str()))
            && self
                .older_than
                .is_none_or(|age| task.tried.unwrap_or(task.created).elapsed() >= age)
    }
}

impl StorageAdmin {
    /// The dead letters `filter` selects, oldest update first, scanning up to `limit` stored
    /// tasks.
    pub async fn dead_letters(&self, filter: &DeadLetterFilter, limit: usize) -> Result<Vec<Task>> {
        let mut tasks = self.tasks(limit).await?;
        tasks.retain(|t| filter.matches(t));
        Ok(tasks)
    }

    /// Deletes the documents of the dead letters `filter` selects (scanning up to `limit`
    /// stored tasks); returns how many.
    pub async fn purge_dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: usize,
    ) -> Result<usize> {
        let dead = self.dead_letters(filter, limit).await?;
        for task in &dead {
            self.delete_task(&task.id).await?;
        }
        Ok(dead.len())
    }
}

impl Client {
    /// Enqueues dead letters again, each on its own queue, as [`QueueHandle::retry_task`] does
    /// (state `retry`, tries reset). Returns one result per id, in order; `progress` is called
    /// after each with the number done, the total and that task's result.
    pub async fn replay(
        &self,
        ids: &[String],
        mut progress: impl FnMut(usize, usize, &Result<Task>),
    ) -> Vec<Result<Task>> {
        let mut queues: HashMap<String, QueueHandle> = HashMap::new();
        let mut out = Vec::with_capacity(ids.len());
        for (done, id) in ids.iter().enumerate() {
            let result = self.replay_one(id, &mut queues).await;
            progress(done + 1, ids.len(), &result);
            out.push(result);
        }
        out
    }

    async fn replay_one(
        &self,
        id: &str,
        queues: &mut HashMap<String, QueueHandle>,
    ) -> Result<Task> {
        let task = self.load_task(id).await?;
        let queue = match queues.get(&task.queue) {
            Some(queue) => queue.clone(),
            None => {
                let queue = self.open_queue(Queue::bind(&task.queue)).await?;
                queues.insert(task.queue.clone(), queue.clone());
                queue
            }
        };
        queue.retry_task(id).await
    }
}
