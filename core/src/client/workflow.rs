// SPDX-License-Identifier: Apache-2.0
//! Workflows on dependencies: a chain (each step runs after the previous one completed and gets
//! its result) and a chord (a group running in parallel, then a callback with all their results).
//! A failed member makes its dependants unreachable, as the dependency rules say.

use crate::client::QueueHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::task::Task;

impl QueueHandle {
    /// Enqueues `tasks` as a chain: each after the previous one completed, with its result in
    /// `dependency_results`. Returns the stored tasks, or the first error; the steps before it
    /// are enqueued (and the ones after it not).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(queue: jetjobs::QueueHandle) -> jetjobs::Result<()> {
    /// use jetjobs::Task;
    /// let steps = vec![Task::new("fetch", &"url")?, Task::new("parse", &())?, Task::new("store", &())?];
    /// let chain = queue.enqueue_chain(steps).await?;
    /// println!("last step: {}", chain[2].id);
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_chain(&self, tasks: impl IntoIterator<Item = Task>) -> Result<Vec<Task>> {
        let mut previous: Option<String> = None;
        let linked: Vec<Task> = tasks
            .into_iter()
            .map(|task| {
                let task = match previous.take() {
                    Some(parent) => task.depends_on([parent]).with_dependency_results(),
                    None => task,
                };
                previous = Some(task.id.clone());
                task
            })
            .collect();
        self.enqueue_many(linked).await.into_iter().collect()
    }

    /// Enqueues `group` to run in parallel and `callback` to run after all of them completed,
    /// with their results in `dependency_results`. Returns the stored group and callback, or the
    /// first error.
    pub async fn enqueue_chord(
        &self,
        group: impl IntoIterator<Item = Task>,
        callback: Task,
    ) -> Result<(Vec<Task>, Task)> {
        let mut tasks: Vec<Task> = group.into_iter().collect();
        let callback = callback
            .depends_on(tasks.iter().map(|t| t.id.clone()))
            .with_dependency_results();
        tasks.push(callback);
        let mut results = self.enqueue_many(tasks).await;
        let callback = results.pop().ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                "enqueue_many returned no result for the callback",
            )
        })?;
        let group = results.into_iter().collect::<Result<Vec<_>>>()?;
        Ok((group, callback?))
    }
}
