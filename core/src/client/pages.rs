// SPDX-License-Identifier: Apache-2.0
//! Paged reads of the tasks store, for listings that must stay fast over a large store.

use crate::client::{Client, TaskFilter};
use crate::error::Result;
use crate::task::Task;

impl Client {
    /// One page of stored tasks: up to `limit` tasks that `filter` selects among the documents
    /// stored after stream sequence `after_seq` of `CHORIA_AJ_TASKS` (0: from the start), oldest
    /// update first, each with its stream sequence; and the sequence of the last document read,
    /// to pass as `after_seq` for the next page (it equals `after_seq` when nothing was left).
    /// Fewer than `limit` tasks means the end of the store was reached.
    ///
    /// A page reads only its own documents (plus the ones `filter` skips), however many tasks are
    /// stored. A task saved again moves to a later sequence, so reading on from the last
    /// sequence seen also returns every task changed since (each task keeps only its latest
    /// document); deleted and expired tasks are simply absent.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// let filter = jetjobs::TaskFilter::new();
    /// let mut after = 0;
    /// loop {
    ///     let (tasks, last) = client.tasks_page(after, 1000, &filter).await?;
    ///     for (seq, task) in &tasks {
    ///         println!("{seq} {} {}", task.id, task.state);
    ///     }
    ///     if tasks.len() < 1000 {
    ///         break;
    ///     }
    ///     after = last;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn tasks_page(
        &self,
        after_seq: u64,
        limit: usize,
        filter: &TaskFilter,
    ) -> Result<(Vec<(u64, Task)>, u64)> {
        self.storage()
            .tasks_page(after_seq, limit, |task| filter.matches(task))
            .await
    }
}
