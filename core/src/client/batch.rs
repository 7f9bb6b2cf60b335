// SPDX-License-Identifier: Apache-2.0
//! Batch enqueue: many tasks with pipelined writes, each with `enqueue`'s guarantees.
//!
//! A window of tasks is sent without waiting, each task's document and work item together, then
//! their acknowledgements are read in order and settled as `enqueue` settles one. A unique,
//! delayed or ordered task takes the one-task path in its place.

use async_nats::jetstream::context::PublishAckFuture;

use crate::client::QueueHandle;
use crate::error::Result;
use crate::task::Task;

/// Tasks whose writes are in flight at once: large enough to hide round trips, small enough to
/// bound memory and the server's pending acknowledgements.
const WINDOW: usize = 512;

/// How one task of a batch was sent.
enum Sending {
    /// Its document and item are on their way.
    Sent(Task, PublishAckFuture, Result<PublishAckFuture>),
    /// It takes the one-task path.
    Alone(Task),
    Failed(crate::error::Error),
}

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
        let mut sent = Vec::with_capacity(tasks.len());
        for task in tasks {
            sent.push(match self.prepare(task) {
                Ok(task) if task.unique.is_some() || !self.writes_together(&task) => {
                    Sending::Alone(task)
                }
                Ok(task) => match storage.send_task(&task).await {
                    Ok(document) => {
                        let item = storage.send_item(self.settings(), &task, true).await;
                        Sending::Sent(task, document, item)
                    }
                    Err(e) => Sending::Failed(e),
                },
                Err(e) => Sending::Failed(e),
            });
        }
        // Settled concurrently: during an outage each failed task may need a further request
        // (withdrawing its item, asking whether the queue exists), and one after another those
        // would add up to minutes for a window.
        futures::future::join_all(sent.into_iter().map(|sending| async move {
            match sending {
                Sending::Sent(task, document, item) => {
                    self.settle_together(task, document, item).await
                }
                Sending::Alone(task) => self.enqueue(task).await,
                Sending::Failed(e) => Err(e),
            }
        }))
        .await
    }
}
