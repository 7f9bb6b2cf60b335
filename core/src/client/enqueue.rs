// SPDX-License-Identifier: Apache-2.0
//! One enqueue in one round trip: a task's document and its work item are sent together and both
//! acknowledgements awaited, instead of the item waiting for the document's acknowledgement.
//!
//! The guarantees stay `enqueue`'s: the producer hears "stored" only once both writes are stored,
//! and a failed enqueue leaves nothing runnable behind. The item may be stored a moment before the
//! document (they are in different streams), so a worker that cannot find an item's task yet asks
//! again for a few seconds before it discards the item (`decide::missing_task_delay`); and an item
//! whose document was refused is removed here.

use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;

use crate::client::QueueHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::store::await_item;
use crate::task::Task;

/// How long a failed enqueue tries to take back its item: best effort, since a worker discards
/// an item without a task anyway, so an outage must not hold the caller longer.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(2);

/// A task of which at least one write was not stored: the outcome of each.
pub(super) struct Unstored {
    task: Task,
    saved: Result<()>,
    item: Result<u64>,
}

impl QueueHandle {
    /// Whether `task`'s two writes can be sent together: its item goes straight into the queue's
    /// stream. A delayed or ordered item lives elsewhere and keeps the ordered path.
    pub(super) fn writes_together(&self, task: &Task) -> bool {
        task.order_key.is_none() && task.due_later().is_none()
    }

    /// Stores a prepared task and its item with both writes in flight at once.
    pub(super) async fn store_together(&self, task: Task) -> Result<Task> {
        let storage = self.storage();
        let document = storage.send_task(&task).await?;
        let item = storage.send_item(self.settings(), &task, true).await;
        self.settle_together(task, document, item).await
    }

    /// Waits for both writes of one task sent with [`QueueHandle::store_together`]'s pattern and
    /// settles the outcome as `enqueue` would.
    pub(super) async fn settle_together(
        &self,
        task: Task,
        document: PublishAckFuture,
        item: Result<PublishAckFuture>,
    ) -> Result<Task> {
        match self.await_together(task, document, item).await {
            Ok(task) => Ok(task),
            Err(unsettled) => self.settle_unstored(unsettled).await,
        }
    }

    /// Waits for both acknowledgements: the stored task, or what went wrong for
    /// [`QueueHandle::settle_unstored`].
    pub(super) async fn await_together(
        &self,
        mut task: Task,
        document: PublishAckFuture,
        item: Result<PublishAckFuture>,
    ) -> std::result::Result<Task, Box<Unstored>> {
        let saved = self.storage().finish_save(&mut task, document).await;
        let item = match item {
            Ok(pending) => await_item(self.settings(), pending).await,
            Err(e) => Err(e),
        };
        match (saved, item) {
            (Ok(()), Ok(_)) => Ok(task),
            (saved, item) => Err(Box::new(Unstored { task, saved, item })),
        }
    }

    /// Settles a task whose document or item was not stored as `enqueue` would.
    pub(super) async fn settle_unstored(&self, unstored: Box<Unstored>) -> Result<Task> {
        let Unstored { task, saved, item } = *unstored;
        match saved {
            Ok(()) => self.settle_item(task, item.map(|_| ())).await,
            Err(e) if e.kind() == ErrorKind::TaskUpdateFailed => {
                // The id is stored already: this very task, stored by an attempt whose reply was
                // lost (its item is the one just sent, or a duplicate of it), or another task.
                match self.resume_enqueue(task).await {
                    Ok(stored) => self.settle_item(stored, item.map(|_| ())).await,
                    Err(e) => Err(self.withdraw_item(item, e).await),
                }
            }
            Err(e) => Err(self.withdraw_item(item, e).await),
        }
    }

    /// Removes the item stored for a task whose document was not stored, so that no worker runs
    /// another task of that id; returns `error`, the enqueue's outcome. A worker that took the
    /// item first finds no task (or a final one) and discards it.
    async fn withdraw_item(&self, item: Result<u64>, error: Error) -> Error {
        let Ok(sequence) = item else {
            return error;
        };
        let removed = tokio::time::timeout(
            WITHDRAW_TIMEOUT,
            self.storage().remove_item_at(self.name(), sequence),
        )
        .await
        .unwrap_or_else(|_| Err(Error::new(ErrorKind::Timeout, "removing a work item")));
        if let Err(e) = removed {
            tracing::warn!(queue = %self.name(), sequence, error = %e,
                "removing the work item of a failed enqueue failed; a worker will discard it");
        }
        error
    }
}
