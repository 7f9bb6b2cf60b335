// SPDX-License-Identifier: Apache-2.0
//! Administration of the tasks store: list stored tasks (all, or those a filter keeps), read its
//! size, purge it.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use async_nats::jetstream::stream::StorageType;
use futures::StreamExt as _;

use crate::error::{Error, Result};
use crate::store::Storage;
use crate::task::Task;

impl Storage {
    /// Up to `limit` stored tasks, oldest update first.
    pub(crate) async fn tasks(&self, limit: usize) -> Result<Vec<Task>> {
        self.tasks_matching(limit, |_| true).await
    }

    /// Up to `limit` stored tasks that `keep` accepts, oldest update first. Tasks are read one
    /// at a time and only the kept ones are held, so a filter over a large store stays small.
    pub(crate) async fn tasks_matching(
        &self,
        limit: usize,
        mut keep: impl FnMut(&Task) -> bool,
    ) -> Result<Vec<Task>> {
        let total = self.tasks_info().await?.tasks;
        let mut out = Vec::with_capacity(limit.min(total as usize).min(1024));
        if limit == 0 || total == 0 {
            return Ok(out);
        }
        let consumer = self
            .tasks
            .create_consumer(pull::OrderedConfig {
                deliver_policy: DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::storage("listing tasks", e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| Error::storage("listing tasks", e))?;
        while out.len() < limit {
            let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
            let Ok(Some(message)) = next else { break };
            let message = message.map_err(|e| Error::storage("listing tasks", e))?;
            let pending = message.info().map(|i| i.pending).unwrap_or(0);
            match Task::from_json(&message.payload) {
                Ok(mut task) => {
                    task.seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    if keep(&task) {
                        out.push(task);
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
        Ok(out)
    }

    /// Removes every task document (asyncjobs' `ajc task purge`); work items stay. Returns how
    /// many documents were removed.
    pub(crate) async fn purge_tasks(&self) -> Result<u64> {
        self.ensure_open()?;
        self.tasks
            .purge()
            .await
            .map(|purged| purged.purged)
            .map_err(|e| Error::storage("purging the tasks stream", e))
    }

    /// Size of the tasks store.
    pub(crate) async fn tasks_info(&self) -> Result<TasksInfo> {
        self.ensure_open()?;
        let info = self
            .tasks
            .get_info()
            .await
            .map_err(|e| Error::storage("reading the tasks stream", e))?;
        Ok(TasksInfo {
            tasks: info.state.messages,
            bytes: info.state.bytes,
            memory: info.config.storage == StorageType::Memory,
            replicas: info.config.num_replicas,
        })
    }
}

/// Size of the tasks store.
#[derive(Debug, Clone, PartialEq)]
pub struct TasksInfo {
    /// Stored task documents.
    pub tasks: u64,
    /// Bytes used.
    pub bytes: u64,
    /// Memory rather than file storage.
    pub memory: bool,
    /// Replicas.
    pub replicas: usize,
}
