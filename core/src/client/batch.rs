// SPDX-License-Identifier: Apache-2.0
//! Batch enqueue: many tasks with pipelined writes, each with `enqueue`'s guarantees.
//!
//! A window of documents is sent without waiting, then their acknowledgements are read; then the
//! same for their work items. A task whose write meets a problem falls back to the one-task path,
//! so repeats, `queue_error` records and typed errors are exactly `enqueue`'s.

use async_nats::jetstream::context::PublishAckFuture;

use crate::client::QueueHandle;
use crate::error::{ErrorKind, Result};
use crate::store::finish_item;
use crate::task::Task;

/// Tasks whose writes are in flight at once: large enough to hide round trips, small enough to
/// bound memory and the server's pending acknowledgements.
const WINDOW: usize = 1024;

/// How the document of one task of a batch was sent.
enum Sending {
    Sent(Task, PublishAckFuture),
    Unique(Task),
    Failed(crate::error::Error),
}

/// Where one task of a batch is.
enum Step {
    /// Its document is stored; the item is next.
    Saved(Task),
    /// Its item is on its way.
    Publishing(Task, Result<PublishAckFuture>),
    /// Finished, stored or failed.
    Done(Result<Task>),
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
            sent.push(if task.unique.is_some() {
                // Its key is claimed between its two writes: the one-task path.
                Sending::Unique(task)
            } else {
                match self.prepare(task) {
                    Ok(task) => match storage.send_task(&task).await {
                        Ok(pending) => Sending::Sent(task, pending),
                        Err(e) => Sending::Failed(e),
                    },
                    Err(e) => Sending::Failed(e),
                }
            });
        }
        let mut saved = Vec::with_capacity(sent.len());
        for sending in sent {
            saved.push(match sending {
                Sending::Sent(mut task, pending) => {
                    match storage.finish_save(&mut task, pending).await {
                        Ok(()) => Step::Saved(task),
                        // The id is stored already: a repeat of this task, or another's id.
                        Err(e) if e.kind() == ErrorKind::TaskUpdateFailed => {
                            Step::Done(self.store_and_publish(task, true).await)
                        }
                        Err(e) => Step::Done(Err(e)),
                    }
                }
                Sending::Unique(task) => Step::Done(self.enqueue(task).await),
                Sending::Failed(e) => Step::Done(Err(e)),
            });
        }
        let mut publishing = Vec::with_capacity(saved.len());
        for step in saved {
            publishing.push(match step {
                Step::Saved(task) => {
                    let pending = storage.send_item(self.settings(), &task, true).await;
                    Step::Publishing(task, pending)
                }
                done => done,
            });
        }
        let mut out = Vec::with_capacity(publishing.len());
        for step in publishing {
            out.push(match step {
                Step::Publishing(task, pending) => {
                    let published = match pending {
                        Ok(pending) => finish_item(self.settings(), pending).await,
                        Err(e) => Err(e),
                    };
                    self.settle_item(task, published).await
                }
                // Every saved task was moved on to publishing above; this keeps the match whole.
                Step::Saved(task) => self
                    .storage()
                    .publish_item(self.settings(), &task, true)
                    .await
                    .map(|()| task),
                Step::Done(result) => result,
            });
        }
        out
    }
}
