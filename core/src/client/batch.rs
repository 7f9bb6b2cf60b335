// SPDX-License-Identifier: Apache-2.0
//! Batch enqueue: many tasks with pipelined writes, each with `enqueue`'s guarantees.
//!
//! A window of tasks is sent without waiting. An immediate task's document and work item go
//! together, and their acknowledgements are settled as `enqueue` settles one. A delayed or ordered
//! task's document is stored first and its item sent after, in batch order, so the items of one
//! order key are stored in the order given; a unique task takes the one-task path in its place.

use crate::client::QueueHandle;
use crate::error::{ErrorKind, Result};
use crate::store::finish_item;
use crate::task::Task;

/// Tasks whose writes are in flight at once: large enough to hide round trips, small enough to
/// bound memory and the server's pending acknowledgements.
const WINDOW: usize = 512;

/// One task's result, by its place in the window.
type Placed = (usize, Result<Task>);

impl QueueHandle {
    /// Enqueues `tasks` with pipelined writes; returns one result per task, in order. Each task
    /// gets [`QueueHandle::enqueue`]'s guarantees: acknowledged only once its document and work
    /// item are stored, a typed error otherwise (a failure of one does not stop the others).
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(queue: jetjobs::QueueHandle) -> jetjobs::Result<()> {
    /// let tasks = (0..1000).map(|i| jetjobs::Task::new("resize", &i)).collect::<Result<Vec<_>, _>>()?;
    /// for stored in queue.enqueue_many(tasks).await {
    ///     println!("{}", stored?.id);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_many(&self, tasks: impl IntoIterator<Item = Task>) -> Vec<Result<Task>> {
        let tasks: Vec<Task> = tasks.into_iter().collect();
        #[cfg(feature = "opentelemetry")]
        {
            use tracing::Instrument as _;
            let span = crate::trace::otel::enqueue_span(self.name(), tasks.len());
            return self.enqueue_all(tasks).instrument(span).await;
        }
        #[cfg(not(feature = "opentelemetry"))]
        self.enqueue_all(tasks).await
    }

    async fn enqueue_all(&self, tasks: Vec<Task>) -> Vec<Result<Task>> {
        let mut tasks = tasks.into_iter().peekable();
        let mut out = Vec::with_capacity(tasks.size_hint().0);
        while tasks.peek().is_some() {
            let window: Vec<Task> = tasks.by_ref().take(WINDOW).collect();
            out.extend(self.enqueue_window(window).await);
        }
        out
    }

    async fn enqueue_window(&self, tasks: Vec<Task>) -> Vec<Result<Task>> {
        let storage = self.storage();
        let (mut together, mut staged, mut done) = (Vec::new(), Vec::new(), Vec::new());
        for (place, task) in tasks.into_iter().enumerate() {
            match self.prepare(task) {
                Ok(task) if task.unique.is_some() || !self.writes_together(&task) => {
                    staged.push((place, task));
                }
                Ok(task) => match storage.send_task(&task).await {
                    Ok(document) => {
                        let item = storage.send_item(self.settings(), &task, true).await;
                        together.push((place, task, document, item));
                    }
                    Err(e) => done.push((place, Err(e))),
                },
                Err(e) => done.push((place, Err(e))),
            }
        }
        // Acknowledgements are read in order; tasks with a write not stored are settled
        // concurrently after, since during an outage each may need a further request
        // (withdrawing its item, asking whether the queue exists), and one after another those
        // would add up to minutes for a window.
        let settled = async {
            let mut stored = Vec::with_capacity(together.len());
            let mut unstored = Vec::new();
            for (place, task, document, item) in together {
                match self.await_together(task, document, item).await {
                    Ok(task) => stored.push((place, Ok(task))),
                    Err(failed) => unstored.push((place, failed)),
                }
            }
            stored.extend(
                futures::future::join_all(unstored.into_iter().map(|(place, failed)| async move {
                    (place, self.settle_unstored(failed).await)
                }))
                .await,
            );
            stored
        };
        let (settled, staged) = futures::join!(settled, self.enqueue_staged(staged));
        done.extend(settled);
        done.extend(staged);
        done.sort_by_key(|(place, _)| *place);
        done.into_iter().map(|(_, result)| result).collect()
    }

    /// Delayed, ordered and unique tasks: documents first, then the items of those stored, each
    /// step in batch order.
    async fn enqueue_staged(&self, tasks: Vec<(usize, Task)>) -> Vec<Placed> {
        let storage = self.storage();
        let mut sent = Vec::with_capacity(tasks.len());
        for (place, task) in tasks {
            let document = match task.unique {
                Some(_) => None,
                None => Some(storage.send_task(&task).await),
            };
            sent.push((place, task, document));
        }
        let (mut saved, mut out) = (Vec::new(), Vec::with_capacity(sent.len()));
        for (place, mut task, document) in sent {
            let result = match document {
                // Its key is claimed between its two writes: the one-task path.
                None => self.enqueue(task).await,
                Some(Err(e)) => Err(e),
                Some(Ok(pending)) => match storage.finish_save(&mut task, pending).await {
                    Ok(()) => {
                        saved.push((place, task));
                        continue;
                    }
                    // The id is stored already: a repeat of this task, or another's id.
                    Err(e) if e.kind() == ErrorKind::TaskUpdateFailed => {
                        self.store_and_publish(task, true).await
                    }
                    Err(e) => Err(e),
                },
            };
            out.push((place, result));
        }
        let mut publishing = Vec::with_capacity(saved.len());
        for (place, task) in saved {
            let pending = storage.send_item(self.settings(), &task, true).await;
            publishing.push((place, task, pending));
        }
        for (place, task, pending) in publishing {
            let published = match pending {
                Ok(pending) => finish_item(self.settings(), pending).await,
                Err(e) => Err(e),
            };
            out.push((place, self.settle_item(task, published).await));
        }
        out
    }
}
