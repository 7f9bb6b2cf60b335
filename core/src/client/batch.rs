// SPDX-License-Identifier: Apache-2.0
//! Batch enqueue: many tasks with pipelined writes, each with `enqueue`'s guarantees.
//!
//! Tasks are sent without waiting, at most a window ahead of the acknowledgements read. An
//! immediate task's document and work item go together, and their acknowledgements are settled as
//! `enqueue` settles one. Delayed and ordered tasks follow, a window at a time: each document is
//! stored first and its item sent after, in batch order, so the items of one order key are stored
//! in the order given; a unique task takes the one-task path in its place.

use crate::client::QueueHandle;
use crate::error::{ErrorKind, Result};
use crate::store::finish_item;
use crate::task::Task;

/// Most tasks whose writes are in flight at once: large enough to hide round trips, small enough
/// to bound memory and the server's pending acknowledgements.
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
        let storage = self.storage();
        // The sender runs at most a window ahead of the settler, which reads acknowledgements as
        // they come: the pipeline stays full, as with a fixed number of publishes in flight,
        // instead of draining at the end of each window.
        let (sent, mut to_settle) = tokio::sync::mpsc::channel(WINDOW);
        let send = async move {
            let (mut staged, mut refused) = (Vec::new(), Vec::new());
            for (place, task) in tasks.into_iter().enumerate() {
                match self.prepare(task) {
                    Ok(task) if task.unique.is_some() || !self.writes_together(&task) => {
                        staged.push((place, task));
                    }
                    Ok(task) => match storage.send_task(&task).await {
                        Ok(document) => {
                            let item = storage.send_item(self.settings(), &task, true).await;
                            // The settler outlives this loop: it ends only when `sent` is dropped.
                            let _ = sent.send((place, task, document, item)).await;
                        }
                        Err(e) => refused.push((place, Err(e))),
                    },
                    Err(e) => refused.push((place, Err(e))),
                }
            }
            (staged, refused)
        };
        // Tasks with a write not stored are settled concurrently after the others, since during
        // an outage each may need a further request (withdrawing its item, asking whether the
        // queue exists), and one after another those would add up to minutes.
        let settle = async {
            let (mut stored, mut unstored) = (Vec::new(), Vec::new());
            while let Some((place, task, document, item)) = to_settle.recv().await {
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
        let ((staged, mut done), settled) = futures::join!(send, settle);
        done.extend(settled);
        let mut staged = staged.into_iter().peekable();
        while staged.peek().is_some() {
            let window: Vec<(usize, Task)> = staged.by_ref().take(WINDOW).collect();
            done.extend(self.enqueue_staged(window).await);
        }
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
