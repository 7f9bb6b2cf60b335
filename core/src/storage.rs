// SPDX-License-Identifier: Apache-2.0
//! The JetStream layout asyncjobs uses, and every read and write of it.
//!
//! Tasks live one-per-subject in `CHORIA_AJ_TASKS`; each save carries the expected last subject
//! sequence, which is the only mutual exclusion between workers. Work items live in per-queue
//! work-queue streams.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, ReplayPolicy, pull};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ErrorCode};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::events::TaskStateChangeEvent;
use crate::queue::Queue;
use crate::task::{Task, TaskState};
use crate::wire::is_valid_name;

pub(crate) const TASKS_STREAM: &str = "CHORIA_AJ_TASKS";
const TASKS_SUBJECTS: &str = "CHORIA_AJ.T.*";
const QUEUE_STREAM_PREFIX: &str = "CHORIA_AJ_Q_";
const CONSUMER_NAME: &str = "WORKERS";
const CONFIG_BUCKET: &str = "CHORIA_AJ_CONFIGURATION";
const ELECTIONS_BUCKET: &str = "CHORIA_AJ_ELECTIONS";

fn task_subject(id: &str) -> String {
    format!("CHORIA_AJ.T.{id}")
}

/// Where and how the streams are stored when jetjobs creates them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageSettings {
    pub(crate) memory: bool,
    pub(crate) replicas: usize,
    pub(crate) task_retention: Duration,
}

/// The work-queue message body: `{"kind":0,"job":"<task id>"}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProcessItem {
    pub(crate) kind: i64,
    pub(crate) job: String,
}

impl ProcessItem {
    /// Parses a delivered item; `None` for an empty or corrupt body (asyncjobs terminates those).
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(body)
            .ok()
            .filter(|i| !i.job.is_empty())
    }
}

/// A handle on the jetjobs streams of one NATS account.
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) nats: async_nats::Client,
    pub(crate) js: jetstream::Context,
    tasks: stream::Stream,
    settings: StorageSettings,
}

impl Storage {
    /// Loads or creates the tasks stream and the two KV buckets (created, never updated).
    pub(crate) async fn prepare(
        nats: async_nats::Client,
        settings: StorageSettings,
    ) -> Result<Self> {
        let js = jetstream::new(nats.clone());
        let tasks = js
            .get_or_create_stream(stream::Config {
                name: TASKS_STREAM.into(),
                subjects: vec![TASKS_SUBJECTS.into()],
                description: Some("Choria Async Jobs Tasks".into()),
                max_messages_per_subject: 1,
                max_age: settings.task_retention,
                storage: storage_type(settings.memory),
                num_replicas: settings.replicas,
                // Lets loads be served by any replica; asyncjobs' MSG.GET still works on it.
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::storage("preparing the tasks stream", e))?;
        let storage = Self {
            nats,
            js,
            tasks,
            settings,
        };
        storage
            .prepare_bucket(
                CONFIG_BUCKET,
                "Choria Async Jobs Configuration",
                Duration::ZERO,
            )
            .await?;
        storage
            .prepare_bucket(
                ELECTIONS_BUCKET,
                "Choria Async Jobs Leader Elections",
                Duration::from_secs(10),
            )
            .await?;
        Ok(storage)
    }

    async fn prepare_bucket(&self, bucket: &str, description: &str, ttl: Duration) -> Result<()> {
        if self.js.get_key_value(bucket).await.is_ok() {
            return Ok(());
        }
        self.js
            .create_key_value(jetstream::kv::Config {
                bucket: bucket.into(),
                description: description.into(),
                history: 1,
                max_age: ttl,
                storage: storage_type(self.settings.memory),
                num_replicas: self.settings.replicas,
                ..Default::default()
            })
            .await
            .map(|_| ())
            .map_err(|e| Error::storage(format!("preparing the {bucket} bucket"), e))
    }

    /// Creates or binds the queue's stream and `WORKERS` consumer, returning the server's settings.
    pub(crate) async fn prepare_queue(&self, wanted: &Queue) -> Result<(Queue, PullConsumer)> {
        self.open_queue(wanted)
            .await
            .map(|q| (q.settings, q.consumer))
    }

    /// Stream and consumer as the server returned them (their cached info is current), so callers
    /// need no further round trips to read settings or counts.
    async fn open_queue(&self, wanted: &Queue) -> Result<OpenQueue> {
        if !is_valid_name(&wanted.name) {
            return Err(Error::new(
                ErrorKind::InvalidQueueName,
                format!("queue name {:?} must match ^[a-zA-Z0-9_:-]+$", wanted.name),
            ));
        }
        let stream = if wanted.no_create {
            self.js
                .get_stream(wanted.stream_name())
                .await
                .map_err(|e| match e.kind() {
                    jetstream::context::GetStreamErrorKind::JetStream(j)
                        if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                    {
                        queue_not_found(&wanted.name)
                    }
                    _ => Error::storage("loading the queue stream", e),
                })?
        } else {
            self.js
                .get_or_create_stream(queue_stream_config(wanted, &self.settings))
                .await
                .map_err(|e| Error::storage("preparing the queue stream", e))?
        };
        let consumer: PullConsumer = if wanted.no_create {
            match stream.get_consumer(CONSUMER_NAME).await {
                Ok(consumer) => consumer,
                // Only on failure: ask again to tell a missing consumer from a storage error.
                Err(e) => {
                    return Err(match stream.consumer_info(CONSUMER_NAME).await {
                        Err(info)
                            if info.kind()
                                == jetstream::context::ConsumerInfoErrorKind::NotFound =>
                        {
                            Error::new(ErrorKind::QueueConsumerNotFound, "queue consumer not found")
                        }
                        _ => Error::storage("loading the queue consumer", e),
                    });
                }
            }
        } else {
            stream
                .get_or_create_consumer(CONSUMER_NAME, consumer_config(wanted))
                .await
                .map_err(|e| Error::storage("preparing the queue consumer", e))?
        };
        let stream_config = &stream.cached_info().config;
        let consumer_config = &consumer.cached_info().config;
        let settings = Queue {
            name: wanted.name.clone(),
            max_age: stream_config.max_age,
            max_entries: stream_config.max_messages,
            discard_old: stream_config.discard == DiscardPolicy::Old,
            max_tries: consumer_config.max_deliver,
            max_run_time: consumer_config.ack_wait,
            max_concurrent: consumer_config.max_ack_pending,
            no_create: wanted.no_create,
        };
        Ok(OpenQueue {
            settings,
            stream,
            consumer,
        })
    }

    /// Saves `task` if no one else saved it since this copy was read, then publishes its event.
    pub(crate) async fn save_task(&self, task: &mut Task) -> Result<()> {
        let publish = PublishMessage::build()
            .payload(task.to_json()?.into())
            .expected_last_subject_sequence(task.seq);
        let ack = async {
            self.js
                .send_publish(task_subject(&task.id), publish)
                .await?
                .await
        }
        .await
        .map_err(|e| match e.kind() {
            PublishErrorKind::WrongLastSequence => Error::with_source(
                ErrorKind::TaskUpdateFailed,
                format!("failed updating task state {}", task.state),
                e,
            ),
            _ => Error::storage(format!("saving task {}", task.id), e),
        })?;
        task.seq = ack.sequence;
        self.publish_event(task).await
    }

    /// Publishes the state-change event of `task` (fire and forget, as asyncjobs).
    pub(crate) async fn publish_event(&self, task: &Task) -> Result<()> {
        let event = TaskStateChangeEvent::for_task(task);
        let body = crate::wire::to_go_json(&event)?;
        self.nats
            .publish(event.subject(), body.into())
            .await
            .map_err(|e| Error::storage("publishing event", e))
    }

    /// Loads the latest stored copy of a task.
    pub(crate) async fn load_task(&self, id: &str) -> Result<Task> {
        let not_found = || Error::new(ErrorKind::TaskNotFound, format!("task not found: {id}"));
        if !is_valid_name(id) {
            return Err(not_found());
        }
        let message = if self.tasks.cached_info().config.allow_direct {
            self.tasks
                .direct_get_last_for_subject(task_subject(id))
                .await
                .map_err(|e| match e.kind() {
                    stream::DirectGetErrorKind::NotFound => not_found(),
                    _ => Error::storage(format!("loading task {id}"), e),
                })?
        } else {
            self.tasks
                .get_last_raw_message_by_subject(&task_subject(id))
                .await
                .map_err(|e| match e.kind() {
                    stream::LastRawMessageErrorKind::NoMessageFound => not_found(),
                    _ => Error::storage(format!("loading task {id}"), e),
                })?
        };
        let mut task = Task::from_json(&message.payload)?;
        task.seq = message.sequence;
        Ok(task)
    }

    /// Removes a task's stored document (its work item, if any, stays).
    pub(crate) async fn delete_task(&self, task: &Task) -> Result<()> {
        self.tasks
            .delete_message(task.seq)
            .await
            .map(|_| ())
            .map_err(|e| Error::storage(format!("deleting task {}", task.id), e))
    }

    /// Publishes the work item for `task`; deduplicated by task id except for retries.
    pub(crate) async fn publish_item(&self, queue: &Queue, task: &Task) -> Result<()> {
        let item = ProcessItem {
            kind: 0,
            job: task.id.clone(),
        };
        let body = crate::wire::to_go_json(&item)?;
        let mut publish = PublishMessage::build().payload(body.into());
        if task.state != TaskState::Retry {
            publish = publish.message_id(&task.id);
        }
        let ack = async {
            self.js
                .send_publish(queue.item_subject(&task.id), publish)
                .await?
                .await
        }
        .await
        .map_err(|e| match e.kind() {
            PublishErrorKind::StreamNotFound => queue_not_found(&queue.name),
            _ => Error::storage("publishing work item", e),
        })?;
        if ack.duplicate {
            return Err(Error::new(
                ErrorKind::DuplicateItem,
                "duplicate work queue item",
            ));
        }
        Ok(())
    }

    /// Names of every queue (streams named `CHORIA_AJ_Q_*`).
    pub(crate) async fn queue_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut stream_names = self.js.stream_names();
        while let Some(name) = stream_names.next().await {
            let name = name.map_err(|e| Error::storage("listing streams", e))?;
            if let Some(queue) = name.strip_prefix(QUEUE_STREAM_PREFIX) {
                names.push(queue.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The queue's server settings and its item counts.
    pub(crate) async fn queue_info(&self, name: &str) -> Result<QueueInfo> {
        let open = self.open_queue(&Queue::bind(name)).await?;
        let consumer = open.consumer.cached_info();
        Ok(QueueInfo {
            items: open.stream.cached_info().state.messages,
            in_flight: consumer.num_ack_pending as u64,
            waiting_pulls: consumer.num_waiting as u64,
            queue: open.settings,
        })
    }

    /// Removes every item from the queue.
    pub(crate) async fn purge_queue(&self, name: &str) -> Result<()> {
        let stream = self.existing_queue_stream(name).await?;
        stream
            .purge()
            .await
            .map(|_| ())
            .map_err(|e| Error::storage("purging queue", e))
    }

    /// Deletes the queue's stream and consumer.
    pub(crate) async fn delete_queue(&self, name: &str) -> Result<()> {
        self.existing_queue_stream(name).await?;
        self.js
            .delete_stream(format!("{QUEUE_STREAM_PREFIX}{name}"))
            .await
            .map(|_| ())
            .map_err(|e| Error::storage("deleting queue", e))
    }

    async fn existing_queue_stream(&self, name: &str) -> Result<stream::Stream> {
        self.js
            .get_stream(format!("{QUEUE_STREAM_PREFIX}{name}"))
            .await
            .map_err(|_| queue_not_found(name))
    }

    /// Up to `limit` stored tasks, oldest update first.
    pub(crate) async fn tasks(&self, limit: usize) -> Result<Vec<Task>> {
        let total = self.tasks_info().await?.tasks;
        let wanted = limit.min(total as usize);
        let mut out = Vec::with_capacity(wanted);
        if wanted == 0 {
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
        while out.len() < wanted {
            let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
            let Ok(Some(message)) = next else { break };
            let message = message.map_err(|e| Error::storage("listing tasks", e))?;
            let pending = message.info().map(|i| i.pending).unwrap_or(0);
            match Task::from_json(&message.payload) {
                Ok(mut task) => {
                    task.seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    out.push(task);
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

    /// Size of the tasks store.
    pub(crate) async fn tasks_info(&self) -> Result<TasksInfo> {
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

struct OpenQueue {
    settings: Queue,
    stream: stream::Stream,
    consumer: PullConsumer,
}

/// A queue's settings as the server holds them, and what is in it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo {
    /// Settings read from the server.
    pub queue: Queue,
    /// Items stored (waiting or in flight).
    pub items: u64,
    /// Items delivered to a worker and not yet acknowledged.
    pub in_flight: u64,
    /// Pull requests waiting for items.
    pub waiting_pulls: u64,
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

fn queue_not_found(name: &str) -> Error {
    Error::new(ErrorKind::QueueNotFound, format!("queue not found: {name}"))
}

fn storage_type(memory: bool) -> StorageType {
    if memory {
        StorageType::Memory
    } else {
        StorageType::File
    }
}

fn queue_stream_config(q: &Queue, settings: &StorageSettings) -> stream::Config {
    stream::Config {
        name: q.stream_name(),
        subjects: vec![format!("CHORIA_AJ.Q.{}.>", q.name)],
        description: Some("Choria Async Jobs Work Queue".into()),
        retention: RetentionPolicy::WorkQueue,
        max_messages_per_subject: 1,
        max_age: q.max_age,
        max_messages: if q.max_entries > 0 { q.max_entries } else { -1 },
        discard: if q.discard_old {
            DiscardPolicy::Old
        } else {
            DiscardPolicy::New
        },
        storage: storage_type(settings.memory),
        num_replicas: settings.replicas,
        ..Default::default()
    }
}

fn consumer_config(q: &Queue) -> pull::Config {
    pull::Config {
        durable_name: Some(CONSUMER_NAME.into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: if q.max_run_time.is_zero() {
            crate::queue::DEFAULT_MAX_RUN_TIME
        } else {
            q.max_run_time
        },
        max_ack_pending: if q.max_concurrent == 0 {
            crate::queue::DEFAULT_MAX_CONCURRENT
        } else {
            q.max_concurrent
        },
        max_deliver: if q.max_tries == 0 { -1 } else { q.max_tries },
        deliver_policy: DeliverPolicy::All,
        replay_policy: ReplayPolicy::Instant,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_items_parse_like_asyncjobs() {
        assert_eq!(
            ProcessItem::parse(br#"{"kind":0,"job":"abc"}"#).map(|i| i.job),
            Some("abc".into())
        );
        assert!(ProcessItem::parse(b"").is_none());
        assert!(ProcessItem::parse(b"not json").is_none());
        assert!(ProcessItem::parse(br#"{"kind":0,"job":""}"#).is_none());
    }

    #[test]
    fn queue_defaults_map_to_consumer_limits() {
        let c = consumer_config(&Queue::new("Q").max_tries(0).max_concurrent(0));
        assert_eq!(
            (c.max_deliver, c.max_ack_pending, c.ack_wait),
            (-1, 100, Duration::from_secs(3600))
        );
        let s = queue_stream_config(
            &Queue::new("Q"),
            &StorageSettings {
                memory: true,
                replicas: 1,
                task_retention: Duration::ZERO,
            },
        );
        assert_eq!(
            (s.max_messages, s.discard, s.storage),
            (-1, DiscardPolicy::New, StorageType::Memory)
        );
    }
}
