// SPDX-License-Identifier: Apache-2.0
//! The latest documents of many tasks in one request: a direct get with `multi_last` (ADR-31,
//! nats-server 2.11+), answered by one message per stored task and an end-of-batch status.
//!
//! It is an optimisation only: a task it does not return (missing, corrupt, a server without the
//! feature, a timeout) is loaded on its own by the caller, with the usual errors.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::StatusCode;
use futures::StreamExt as _;

use crate::error::{Error, Result};
use crate::store::Storage;
use crate::task::{Task, validate_id};
use crate::wire::names::{TASK_SUBJECT_PREFIX, TASKS_STREAM, task_subject};

/// How long the whole batch may take before the rest is loaded one by one.
const BATCH_TIMEOUT: Duration = Duration::from_secs(2);
/// The most subjects one request asks for; more than a pull ever delivers.
pub(crate) const MAX_BATCH_LOAD: usize = 256;

impl Storage {
    /// Whether [`Storage::load_tasks`] can be asked: the tasks stream answers direct gets and the
    /// server knows `multi_last`.
    pub(crate) fn loads_tasks_in_batches(&self) -> bool {
        let info = self.nats.server_info();
        let version: Vec<u32> = info
            .version
            .split(['.', '-'])
            .take(2)
            .map(|part| part.parse().unwrap_or(0))
            .collect();
        self.tasks.cached_info().config.allow_direct && version.as_slice() >= [2, 11].as_slice()
    }

    /// The latest stored documents of `ids` (at most [`MAX_BATCH_LOAD`]), by id; ids without a
    /// readable document are left out.
    pub(crate) async fn load_tasks(&self, ids: &[String]) -> Result<HashMap<String, Task>> {
        self.ensure_open()?;
        let subjects: Vec<String> = ids
            .iter()
            .filter(|id| validate_id(id).is_ok())
            .take(MAX_BATCH_LOAD)
            .map(|id| task_subject(id))
            .collect();
        let mut found = HashMap::with_capacity(subjects.len());
        if subjects.is_empty() {
            return Ok(found);
        }
        let request = serde_json::json!({"multi_last": subjects, "batch": subjects.len()});
        let inbox = self.nats.new_inbox();
        let mut replies = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| Error::storage("loading tasks", e))?;
        self.nats
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{TASKS_STREAM}"),
                inbox,
                request.to_string().into(),
            )
            .await
            .map_err(|e| Error::storage("loading tasks", e))?;
        let deadline = tokio::time::Instant::now() + BATCH_TIMEOUT;
        // One reply per stored task plus the end-of-batch status: bounded by the count asked.
        for _ in 0..=subjects.len() {
            let Ok(Some(reply)) = tokio::time::timeout_at(deadline, replies.next()).await else {
                break;
            };
            if reply.status.is_some_and(|s| s != StatusCode::OK) {
                break;
            }
            let Some(headers) = &reply.headers else {
                continue;
            };
            let id = headers
                .get("Nats-Subject")
                .and_then(|s| s.as_str().strip_prefix(TASK_SUBJECT_PREFIX));
            let seq = headers
                .get("Nats-Sequence")
                .and_then(|s| s.as_str().parse::<u64>().ok());
            let (Some(id), Some(seq)) = (id, seq) else {
                continue;
            };
            if let Ok(mut task) = Task::from_json(&reply.payload) {
                task.seq = seq;
                found.insert(id.to_string(), task);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StorageSettings;
    use crate::task::TaskState;

    #[tokio::test]
    async fn loads_the_latest_document_of_each_task_asked_for_and_leaves_out_the_rest() {
        let server = crate::DevServer::start().expect("nats-server (make setup)");
        let nats = async_nats::connect(server.url()).await.expect("connect");
        let settings = StorageSettings {
            memory: false,
            replicas: 1,
            task_retention: Duration::ZERO,
        };
        let storage = Storage::prepare(nats, settings).await.expect("storage");
        assert!(
            storage.loads_tasks_in_batches(),
            "the pinned server has multi_last"
        );

        let mut ids = Vec::new();
        for n in 0..MAX_BATCH_LOAD + 10 {
            let mut task = Task::new("batch", &n).expect("task");
            storage.save_task(&mut task).await.expect("saved");
            if n == 3 {
                task.state = TaskState::Active;
                task.tries = 1;
                storage.save_task(&mut task).await.expect("saved again");
            }
            ids.push(task.id);
        }
        let mut asked = vec!["no-such-task".to_string(), "not a valid id".to_string()];
        asked.extend(ids.iter().cloned());

        let found = storage.load_tasks(&asked).await.expect("loaded");
        // The first MAX_BATCH_LOAD valid ids are asked for; the missing one is left out.
        assert_eq!(found.len(), MAX_BATCH_LOAD - 1);
        assert!(!found.contains_key("no-such-task"));
        for id in &ids[..MAX_BATCH_LOAD - 1] {
            let task = &found[id];
            assert_eq!(&task.id, id);
            assert_eq!(task.seq, storage.load_task(id).await.expect("one").seq);
        }
        assert_eq!(
            found[&ids[3]].state,
            TaskState::Active,
            "the later save wins"
        );
        assert!(storage.load_tasks(&[]).await.expect("none").is_empty());
    }
}
