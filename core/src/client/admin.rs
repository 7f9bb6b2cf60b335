// SPDX-License-Identifier: Apache-2.0
//! Storage administration: list, inspect, create, configure, purge and delete queues; list
//! (optionally filtered), delete and purge tasks.

use std::time::Duration;

use crate::error::Result;
use crate::queue::Queue;
use crate::store::{QueueInfo, Storage, TasksInfo};
use crate::task::{Task, TaskState};

/// Which stored tasks [`StorageAdmin::find_tasks`] returns; every filter given must match, and
/// no filter selects every task.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use jetjobs::{Task, TaskFilter, TaskState};
/// let filter = TaskFilter::new()
///     .states([TaskState::New, TaskState::Retry])
///     .task_type("email:send")
///     .older_than(Duration::from_secs(3600));
/// let task = Task::new("email:send", &"hi")?;
/// assert!(!filter.matches(&task)); // created just now
/// assert!(TaskFilter::new().task_type("email:send").matches(&task));
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskFilter {
    states: Vec<TaskState>,
    task_type: Option<String>,
    queue: Option<String>,
    older_than: Option<Duration>,
}

impl TaskFilter {
    /// Every task.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only tasks in one of these states (none given: any state).
    pub fn states(mut self, states: impl IntoIterator<Item = TaskState>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// Only tasks of this type.
    pub fn task_type(mut self, task_type: impl Into<String>) -> Self {
        self.task_type = Some(task_type.into());
        self
    }

    /// Only tasks of this queue.
    pub fn queue(mut self, name: impl Into<String>) -> Self {
        self.queue = Some(name.into());
        self
    }

    /// Only tasks created at least this long ago.
    pub fn older_than(mut self, age: Duration) -> Self {
        self.older_than = Some(age);
        self
    }

    /// Whether no filter is set, so every task matches.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `task` passes every filter.
    pub fn matches(&self, task: &Task) -> bool {
        (self.states.is_empty() || self.states.contains(&task.state))
            && self.task_type.as_ref().is_none_or(|t| &task.task_type == t)
            && self.queue.as_ref().is_none_or(|q| &task.queue == q)
            && self
                .older_than
                .is_none_or(|age| task.created.elapsed() >= age)
    }
}

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

    /// Changes an existing queue's limits to `queue`'s (the server's settings are read back):
    /// max age, max entries, discard policy, max tries, max run time and max concurrent, as
    /// `ajc queue configure` does. Ordering, storage and replicas are left as they are.
    /// `QueueNotFound` if it does not exist; `InvalidOption` for a non-zero max age under 2
    /// minutes, a max run time under 1 second or max concurrent over 10 000.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// let admin = client.admin();
    /// let current = admin.queue_info("EMAIL").await?.queue;
    /// let info = admin.configure_queue(&current.max_concurrent(5)).await?;
    /// assert_eq!(info.queue.max_concurrent, 5);
    /// # Ok(()) }
    /// ```
    pub async fn configure_queue(&self, queue: &Queue) -> Result<QueueInfo> {
        self.storage.configure_queue(queue).await
    }

    /// Deletes a queue.
    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.storage.delete_queue(name).await
    }

    /// Up to `limit` tasks.
    pub async fn tasks(&self, limit: usize) -> Result<Vec<Task>> {
        self.storage.tasks(limit).await
    }

    /// Up to `limit` tasks that `filter` selects, oldest update first; the whole store is read
    /// if fewer match.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// let failed = jetjobs::TaskFilter::new().states([jetjobs::TaskState::Expired]).queue("EMAIL");
    /// for task in client.admin().find_tasks(&failed, 100).await? {
    ///     println!("{} {}", task.id, task.last_err);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn find_tasks(&self, filter: &TaskFilter, limit: usize) -> Result<Vec<Task>> {
        self.storage
            .tasks_matching(limit, |task| filter.matches(task))
            .await
    }

    /// Removes every task document, as `ajc task purge` does (work items stay in their queues
    /// and are terminated when delivered); returns how many were removed.
    pub async fn purge_tasks(&self) -> Result<u64> {
        self.storage.purge_tasks().await
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Timestamp;

    fn task(task_type: &str, queue: &str, state: TaskState, age: Duration) -> Task {
        let mut task = Task::new(task_type, &()).expect("task");
        task.queue = queue.to_string();
        task.state = state;
        task.created =
            Timestamp::from(chrono::Utc::now() - chrono::Duration::from_std(age).expect("age"));
        task
    }

    #[test]
    fn every_given_filter_must_match() {
        let hour = Duration::from_secs(3600);
        let old_failed = task("a", "Q", TaskState::Expired, 2 * hour);
        let new_done = task("b", "R", TaskState::Complete, Duration::ZERO);
        assert!(TaskFilter::new().is_empty());
        assert!(TaskFilter::new().matches(&old_failed) && TaskFilter::new().matches(&new_done));
        let f = TaskFilter::new().states([TaskState::Expired, TaskState::Terminated]);
        assert!(f.matches(&old_failed) && !f.matches(&new_done));
        let f = TaskFilter::new().queue("R").task_type("b");
        assert!(!f.matches(&old_failed) && f.matches(&new_done));
        let f = TaskFilter::new().older_than(hour);
        assert!(!f.is_empty() && f.matches(&old_failed) && !f.matches(&new_done));
        let f = TaskFilter::new().older_than(hour).queue("R");
        assert!(!f.matches(&old_failed) && !f.matches(&new_done));
    }
}
