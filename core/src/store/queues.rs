// SPDX-License-Identifier: Apache-2.0
//! Work queues: one work-queue stream per queue with a shared `WORKERS` pull consumer, and the
//! items (`{"kind":0,"job":"<task id>"}`) published to it.

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, ReplayPolicy, pull};
use async_nats::jetstream::context::{
    GetStreamErrorKind, PublishAckFuture, PublishError, PublishErrorKind,
};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy};
use async_nats::jetstream::{self, ErrorCode};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::metrics;
use crate::queue::Queue;
use crate::store::{OrderedItems, Storage, StorageSettings, storage_type};
use crate::task::Task;
use crate::wire::names::{QUEUE_CONSUMER, QUEUE_STREAM_PREFIX, queue_stream, queue_subjects};

/// The work-queue message body: `{"kind":0,"job":"<task id>"}`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProcessItem {
    /// Missing reads as 0 (a task item), as Go's encoding/json leaves it.
    #[serde(default)]
    pub(crate) kind: i64,
    pub(crate) job: String,
}

impl ProcessItem {
    /// Parses a delivered item; `None` for an empty or corrupt body (asyncjobs terminates those).
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        // serde would also read `[0,"id"]` into the struct; Go's encoding/json reads only an object.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        serde_json::from_slice::<Self>(body)
            .ok()
            .filter(|i| !i.job.is_empty())
    }
}

impl Storage {
    /// Creates or binds the queue's stream and `WORKERS` consumer. Stream and consumer are as the
    /// server returned them (their cached info is current), so callers need no further round trips
    /// to read settings or counts.
    pub(crate) async fn open_queue(&self, wanted: &Queue) -> Result<OpenQueue> {
        self.ensure_open()?;
        Queue::validate_name(&wanted.name)?;
        let stream = if wanted.no_create {
            self.existing_queue_stream(&wanted.name).await?
        } else {
            self.js
                .get_or_create_stream(queue_stream_config(wanted, &self.settings))
                .await
                .map_err(|e| Error::storage("preparing the queue stream", e))?
        };
        let consumer: PullConsumer = if wanted.no_create {
            match stream.get_consumer(QUEUE_CONSUMER).await {
                Ok(consumer) => consumer,
                // Only on failure: ask again to tell a missing consumer from a storage error.
                Err(e) => {
                    return Err(match stream.consumer_info(QUEUE_CONSUMER).await {
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
                .get_or_create_consumer(QUEUE_CONSUMER, consumer_config(wanted))
                .await
                .map_err(|e| Error::storage("preparing the queue consumer", e))?
        };
        let ordered = self.open_ordered(wanted).await?;
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
            order_key_concurrency: ordered.as_ref().map_or(0, |o| o.per_key),
        };
        Ok(OpenQueue {
            settings,
            stream,
            consumer,
            ordered,
        })
    }

    /// Publishes the work item for `task`, deduplicated by task id when `dedupe` is set: a
    /// repeated enqueue of one task then stores one item. Retries replace the old item instead.
    pub(crate) async fn publish_item(
        &self,
        queue: &Queue,
        task: &Task,
        dedupe: bool,
    ) -> Result<()> {
        let pending = self.send_item(queue, task, dedupe).await?;
        finish_item(queue, pending).await
    }

    /// Sends the work item without waiting for the server; see [`finish_item`].
    pub(crate) async fn send_item(
        &self,
        queue: &Queue,
        task: &Task,
        dedupe: bool,
    ) -> Result<PublishAckFuture> {
        self.ensure_open()?;
        if let Some(run_at) = task.due_later() {
            return self.send_delayed_item(queue, task, run_at, dedupe).await;
        }
        if let Some(order_key) = &task.order_key {
            return self.send_ordered_item(queue, task, order_key, dedupe).await;
        }
        self.js
            .send_publish(queue.item_subject(&task.id), item_message(task, dedupe)?)
            .await
            .map_err(|e| item_error(queue, e))
    }

    /// Moves a due item of `task_id` into the queue's stream, deduplicated by task id so that
    /// moving it again after a lost acknowledgement stores one item.
    pub(crate) async fn publish_due_item(
        &self,
        queue: &Queue,
        task_id: &str,
        trace_context: Option<&crate::trace::TraceContext>,
    ) -> Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(context) = trace_context {
            context.add_to(&mut headers);
        }
        let publish = PublishMessage::build()
            .payload(item_body(task_id)?.into())
            .headers(headers)
            .message_id(task_id);
        let pending = self
            .js
            .send_publish(queue.item_subject(task_id), publish)
            .await
            .map_err(|e| item_error(queue, e))?;
        match finish_item(queue, pending).await {
            Err(e) if e.kind() == ErrorKind::DuplicateItem => Ok(()),
            other => other,
        }
    }

    /// Whether the queue holds an item for `task_id` (waiting or in flight).
    pub(crate) async fn item_exists(&self, queue: &Queue, task_id: &str) -> Result<bool> {
        let stream = self.existing_queue_stream(&queue.name).await?;
        match stream
            .get_last_raw_message_by_subject(&queue.item_subject(task_id))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(e) => Err(Error::storage("looking up a work item", e)),
        }
    }

    /// Removes the waiting item of `task_id`, if there is one, so that no worker (a Go one
    /// included) takes it.
    pub(crate) async fn remove_item(&self, queue: &str, task_id: &str) -> Result<()> {
        let stream = self.existing_queue_stream(queue).await?;
        let subject = crate::wire::names::item_subject(queue, task_id);
        let message = match stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => message,
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => return Ok(()),
            Err(e) => return Err(Error::storage("looking up a work item", e)),
        };
        stream
            .delete_message(message.sequence)
            .await
            .map(|_| ())
            .map_err(|e| Error::storage("removing a work item", e))
    }

    /// Removes the item stored at `sequence` in the queue's stream, unless a worker took it.
    pub(crate) async fn remove_item_at(&self, queue: &str, sequence: u64) -> Result<()> {
        let stream = self.existing_queue_stream(queue).await?;
        match stream.delete_message(sequence).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(e.kind(), stream::DeleteMessageErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::NO_MESSAGE_FOUND) =>
            {
                Ok(())
            }
            Err(e) => Err(Error::storage("removing a work item", e)),
        }
    }

    /// Names of every queue (streams named `CHORIA_AJ_Q_*`).
    pub(crate) async fn queue_names(&self) -> Result<Vec<String>> {
        self.ensure_open()?;
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
        let ordered_items = match &open.ordered {
            Some(ordered) => ordered.stream.cached_info().state.messages,
            None => 0,
        };
        Ok(QueueInfo {
            items: open.stream.cached_info().state.messages + ordered_items,
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
            .map_err(|e| Error::storage("purging queue", e))?;
        if let Some(ordered) = self.open_ordered(&Queue::bind(name)).await? {
            ordered
                .stream
                .purge()
                .await
                .map_err(|e| Error::storage("purging ordered items", e))?;
        }
        Ok(())
    }

    /// Changes an existing queue's limits to `wanted`'s (asyncjobs' `ajc queue configure`): the
    /// stream's max age, max entries and discard policy, the `WORKERS` consumer's max tries, max
    /// run time and max concurrent. Ordering, storage and replicas stay as they are. As `ajc`, a
    /// non-zero max age is at least 2 minutes (JetStream's duplicate window), a max run time at
    /// least 1 second and max concurrent at most 10 000 (`InvalidOption`).
    pub(crate) async fn configure_queue(&self, wanted: &Queue) -> Result<QueueInfo> {
        check_configurable(wanted)?;
        let stream = self.existing_queue_stream(&wanted.name).await?;
        let q = wanted.with_defaults();
        let mut config = stream.cached_info().config.clone();
        config.max_age = q.max_age;
        config.max_messages = q.max_entries;
        config.discard = if q.discard_old {
            DiscardPolicy::Old
        } else {
            DiscardPolicy::New
        };
        self.js
            .update_stream(config)
            .await
            .map_err(|e| Error::storage(format!("configuring queue {}", q.name), e))?;
        let mut consumer = stream
            .consumer_info(QUEUE_CONSUMER)
            .await
            .map_err(|e| Error::storage(format!("configuring queue {}", q.name), e))?
            .config;
        consumer.max_deliver = q.max_tries;
        consumer.ack_wait = q.max_run_time;
        consumer.max_ack_pending = q.max_concurrent;
        stream
            .update_consumer(consumer)
            .await
            .map_err(|e| Error::storage(format!("configuring queue {}", q.name), e))?;
        self.queue_info(&q.name).await
    }

    /// Deletes the queue's stream and consumer.
    pub(crate) async fn delete_queue(&self, name: &str) -> Result<()> {
        self.existing_queue_stream(name).await?;
        if self.open_ordered(&Queue::bind(name)).await?.is_some() {
            self.js
                .delete_stream(crate::wire::names::ordered_stream(name))
                .await
                .map_err(|e| Error::storage("deleting ordered items", e))?;
        }
        self.js
            .delete_stream(queue_stream(name))
            .await
            .map(|_| ())
            .map_err(|e| Error::storage("deleting queue", e))
    }

    /// The queue's stream; `QueueNotFound` only when the server says so, never for an outage.
    async fn existing_queue_stream(&self, name: &str) -> Result<stream::Stream> {
        self.ensure_open()?;
        Queue::validate_name(name)?;
        self.js
            .get_stream(queue_stream(name))
            .await
            .map_err(|e| match e.kind() {
                GetStreamErrorKind::JetStream(j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                {
                    queue_not_found(name)
                }
                _ => Error::storage(format!("loading the stream of queue {name}"), e),
            })
    }
}

/// An open queue: its settings as the server holds them, its stream and its consumer.
pub(crate) struct OpenQueue {
    pub(crate) settings: Queue,
    pub(crate) stream: stream::Stream,
    pub(crate) consumer: PullConsumer,
    /// The keyed items of an ordered queue.
    pub(crate) ordered: Option<OrderedItems>,
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

/// The body of `task_id`'s work item.
pub(crate) fn item_body(task_id: &str) -> Result<Vec<u8>> {
    crate::wire::to_go_json(&ProcessItem {
        kind: 0,
        job: task_id.to_string(),
    })
}

/// `task`'s work item with its trace context, deduplicated by task id when `dedupe` is set.
pub(crate) fn item_message(task: &Task, dedupe: bool) -> Result<PublishMessage> {
    let mut publish = PublishMessage::build().payload(item_body(&task.id)?.into());
    if let Some(context) = &task.trace_context {
        let mut headers = async_nats::HeaderMap::new();
        context.add_to(&mut headers);
        publish = publish.headers(headers);
    }
    if dedupe {
        publish = publish.message_id(&task.id);
    }
    Ok(publish)
}

/// Waits for the server to store an item sent with [`Storage::send_item`].
pub(crate) async fn finish_item(queue: &Queue, pending: PublishAckFuture) -> Result<()> {
    await_item(queue, pending).await.map(|_| ())
}

/// [`finish_item`], returning the item's sequence in the queue's stream.
pub(crate) async fn await_item(queue: &Queue, pending: PublishAckFuture) -> Result<u64> {
    let stored = pending.await.map_err(|e| item_error(queue, e));
    let stored = match stored {
        Ok(ack) if ack.duplicate => Err(Error::new(
            ErrorKind::DuplicateItem,
            "duplicate work queue item",
        )),
        Ok(ack) => Ok(ack.sequence),
        Err(e) => Err(e),
    };
    let counter = match stored {
        Ok(_) => &metrics::ENQUEUED,
        Err(_) => &metrics::ENQUEUE_ERRORS,
    };
    metrics::inc(counter, &[&queue.name]);
    stored
}

fn item_error(queue: &Queue, e: PublishError) -> Error {
    match e.kind() {
        PublishErrorKind::StreamNotFound => queue_not_found(&queue.name),
        _ => Error::storage("publishing work item", e),
    }
}

/// `ajc queue configure`'s bounds, checked before anything is changed.
fn check_configurable(q: &Queue) -> Result<()> {
    let bad = |text: &str| Err(Error::new(ErrorKind::InvalidOption, text.to_string()));
    if !q.max_age.is_zero() && q.max_age < std::time::Duration::from_secs(120) {
        return bad("shortest max age is 2 minutes");
    }
    if !q.max_run_time.is_zero() && q.max_run_time < std::time::Duration::from_secs(1) {
        return bad("shortest run-time is 1 second");
    }
    if q.max_concurrent > 10_000 {
        return bad("largest concurrency is 10000");
    }
    Ok(())
}

fn queue_not_found(name: &str) -> Error {
    Error::new(ErrorKind::QueueNotFound, format!("queue not found: {name}"))
}

pub(crate) fn queue_stream_config(q: &Queue, settings: &StorageSettings) -> stream::Config {
    let q = q.with_defaults();
    stream::Config {
        name: q.stream_name(),
        subjects: vec![queue_subjects(&q.name)],
        description: Some("Choria Async Jobs Work Queue".into()),
        retention: RetentionPolicy::WorkQueue,
        max_messages_per_subject: 1,
        max_age: q.max_age,
        max_messages: q.max_entries,
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

pub(crate) fn consumer_config(q: &Queue) -> pull::Config {
    let q = q.with_defaults();
    pull::Config {
        durable_name: Some(QUEUE_CONSUMER.into()),
        ack_policy: AckPolicy::Explicit,
        ack_wait: q.max_run_time,
        max_ack_pending: q.max_concurrent,
        max_deliver: q.max_tries,
        deliver_policy: DeliverPolicy::All,
        replay_policy: ReplayPolicy::Instant,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn process_items_parse_like_asyncjobs() {
        assert_eq!(
            ProcessItem::parse(br#"{"kind":0,"job":"abc"}"#).map(|i| i.job),
            Some("abc".into())
        );
        assert!(ProcessItem::parse(b"").is_none());
        assert!(ProcessItem::parse(b"not json").is_none());
        assert!(ProcessItem::parse(br#"{"kind":0,"job":""}"#).is_none());
        assert!(ProcessItem::parse(br#"[0,"abc"]"#).is_none());
        assert_eq!(
            ProcessItem::parse(b" \n{\"job\":\"abc\"}").map(|i| i.job),
            Some("abc".into())
        );
    }

    #[test]
    fn configure_bounds_follow_ajc() {
        let ok = Queue::new("Q").max_age(Duration::from_secs(120));
        assert!(check_configurable(&ok).is_ok());
        assert!(check_configurable(&Queue::new("Q").max_age(Duration::ZERO)).is_ok());
        for bad in [
            Queue::new("Q").max_age(Duration::from_secs(60)),
            Queue::new("Q").max_run_time(Duration::from_millis(500)),
            Queue::new("Q").max_concurrent(10_001),
        ] {
            let e = check_configurable(&bad).expect_err("out of bounds");
            assert_eq!(e.kind(), ErrorKind::InvalidOption);
        }
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
            (-1, DiscardPolicy::New, stream::StorageType::Memory)
        );
    }
}
