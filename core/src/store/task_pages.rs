// SPDX-License-Identifier: Apache-2.0
//! One page of the tasks store, read from a stream sequence on.
//!
//! [`Storage::tasks_matching`] reads the store from its first message; a page here starts after a
//! given sequence of `CHORIA_AJ_TASKS` (an ordered consumer with
//! `DeliverPolicy::ByStartSequence`) and stops once it holds `limit` tasks or reaches the end, so
//! its cost is the page's own messages however many tasks are stored. Tools that list a large
//! store (the dashboard keeps its index current this way) read it page by page, and a tail of
//! the store is a page after the last sequence seen: since each task keeps only its latest
//! document, every save of a task shows up there again.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures::StreamExt as _;

use crate::error::{Error, Result};
use crate::store::Storage;
use crate::task::Task;

/// How long a page waits for the server's next message before it ends early.
const PAGE_WAIT: Duration = Duration::from_secs(5);

impl Storage {
    /// Up to `limit` stored tasks that `keep` accepts, among the documents stored after stream
    /// sequence `after_seq`, in stream order (oldest update first), each with its sequence; and
    /// the sequence of the last document read (`after_seq` when none was), from which the next
    /// page goes on. Fewer than `limit` tasks means the end of the store was reached.
    pub(crate) async fn tasks_page(
        &self,
        after_seq: u64,
        limit: usize,
        mut keep: impl FnMut(&Task) -> bool,
    ) -> Result<(Vec<(u64, Task)>, u64)> {
        self.ensure_open()?;
        let mut out = Vec::new();
        let mut cursor = after_seq;
        if limit == 0 {
            return Ok((out, cursor));
        }
        let state = self
            .tasks
            .get_info()
            .await
            .map_err(|e| Error::storage("reading the tasks stream", e))?
            .state;
        if state.messages == 0 || state.last_sequence <= after_seq {
            return Ok((out, cursor));
        }
        let consumer = self
            .tasks
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: after_seq.saturating_add(1).max(state.first_sequence),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| Error::storage("reading a page of tasks", e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Error::storage("reading a page of tasks", e))?;
        while out.len() < limit {
            let Ok(Some(message)) = tokio::time::timeout(PAGE_WAIT, messages.next()).await else {
                break;
            };
            let message = message.map_err(|e| Error::storage("reading a page of tasks", e))?;
            let (seq, pending) = message
                .info()
                .map(|i| (i.stream_sequence, i.pending))
                .unwrap_or((cursor, 0));
            cursor = cursor.max(seq);
            match Task::from_json(&message.payload) {
                Ok(mut task) => {
                    task.seq = seq;
                    if keep(&task) {
                        out.push((seq, task));
                    }
                }
                Err(e) => {
                    tracing::warn!(subject = %message.subject, error = %e, "skipping corrupt task")
                }
            }
            if pending == 0 {
                break;
            }
        }
        Ok((out, cursor))
    }
}
