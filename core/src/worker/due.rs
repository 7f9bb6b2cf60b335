// SPDX-License-Identifier: Apache-2.0
//! Moves a queue's delayed work items into the queue's stream once the server says they are due
//! (see `store::delayed`). Every worker of the queue runs one; their shared durable consumer hands
//! each due item to one of them, and the move is deduplicated by task id, so a crash mid-move
//! stores one item.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, Result};
use crate::queue::Queue;
use crate::store::{ProcessItem, Storage};
use crate::worker::delivery::Delivery;
use crate::worker::outage::storage_retry;

/// How long one pull for due items waits before it is renewed.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Most due items moved per pull.
const MAX_BATCH: usize = 256;
/// Due items being moved at once.
const MOVES_IN_FLIGHT: usize = 64;
/// How soon a failed move is tried again.
const MOVE_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct DueMover {
    pub(crate) storage: Storage,
    pub(crate) queue: Queue,
}

impl DueMover {
    /// Runs until `shutdown`. A server without message schedules (before 2.12) cannot hold
    /// delayed items at all; the mover then logs that once and stops, leaving the worker running.
    pub(crate) async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let this = Arc::new(self);
        this.run_shared(shutdown).await
    }

    async fn run_shared(self: &Arc<Self>, shutdown: CancellationToken) -> Result<()> {
        let mut failures = 0u32;
        let consumer = loop {
            match self.storage.due_items(&self.queue.name).await {
                Ok(consumer) => break consumer,
                Err(e) if e.kind() == ErrorKind::Closed => return Ok(()),
                Err(e) if failures >= 3 => {
                    tracing::warn!(queue = %self.queue.name, error = %e, "delayed tasks of this queue will not be moved when due");
                    return Ok(());
                }
                Err(e) => {
                    failures += 1;
                    tracing::debug!(queue = %self.queue.name, error = %e, "preparing the due-items consumer failed");
                    if self.pause(failures, &shutdown).await {
                        return Ok(());
                    }
                }
            }
        };
        failures = 0;
        while !shutdown.is_cancelled() {
            let batch = consumer
                .batch()
                .max_messages(MAX_BATCH)
                .expires(PULL_EXPIRES)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(queue = %self.queue.name, error = %e, "pulling due items failed");
                    if self.pause(failures, &shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            failures = 0;
            // Moves are pipelined: each waits only for the server's acknowledgement of its own.
            let mut moving = FuturesUnordered::new();
            loop {
                tokio::select! {
                    next = batch.next(), if moving.len() < MOVES_IN_FLIGHT => match next {
                        Some(Ok(message)) => moving.push(self.clone().move_item(message)),
                        Some(Err(e)) => {
                            tracing::debug!(queue = %self.queue.name, error = %e, "due-items pull ended");
                            break;
                        }
                        None => break,
                    },
                    Some(()) = moving.next(), if !moving.is_empty() => {}
                    _ = shutdown.cancelled() => break,
                }
            }
            while moving.next().await.is_some() {}
        }
        Ok(())
    }

    async fn move_item(self: Arc<Self>, message: async_nats::jetstream::Message) {
        let delivery = Delivery::new(&self.storage.nats, &message);
        let Some(item) = ProcessItem::parse(&message.payload) else {
            tracing::warn!(subject = %message.subject, "terminating corrupt due item");
            return delivery.term().await;
        };
        let moved = self
            .storage
            .publish_due_item(&self.queue, &item.job, delivery.trace_context.as_ref())
            .await;
        match moved {
            Ok(()) => delivery.ack().await,
            Err(e) if e.kind() == ErrorKind::QueueNotFound => {
                tracing::warn!(task = %item.job, queue = %self.queue.name, "dropping a due item of a deleted queue");
                delivery.term().await
            }
            Err(e) => {
                tracing::warn!(task = %item.job, error = %e, "moving a due item failed; retrying");
                delivery.nak(MOVE_RETRY).await
            }
        }
    }

    /// Waits before trying again; true if the worker is stopping.
    async fn pause(&self, failures: u32, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(storage_retry().delay(failures)) => false,
            _ = shutdown.cancelled() => true,
        }
    }
}
