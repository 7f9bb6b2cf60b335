// SPDX-License-Identifier: Apache-2.0
//! Ordered queues (jetjobs only). A keyed task's work item goes to the queue's
//! `JETJOBS_ORDERED_<queue>` work-queue stream, on one subject per order key, so the stream keeps
//! each key's unfinished items in enqueue order: the first one on a key's subject is the key's
//! head, and nothing else of the key may run before it. Being in the stream, that order survives
//! worker crashes and server restarts; Go workers never consume the stream, so they cannot break
//! it.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::{PullConsumer, pull};
use async_nats::jetstream::context::{GetStreamErrorKind, PublishAckFuture};
use async_nats::jetstream::stream::{self, DirectGetErrorKind};

use crate::error::{Error, ErrorKind, Result};
use crate::queue::Queue;
use crate::store::kv::{Kv, KvBucket};
use crate::store::queues;
use crate::store::{Storage, StorageSettings};
use crate::task::Task;
use crate::wire::names::{
    ORDER_KEY_CONCURRENCY_METADATA, QUEUE_CONSUMER, order_bucket, ordered_stream, ordered_subject,
    ordered_subjects,
};

/// How many more items than its `max_concurrent` an ordered queue lets its workers hold: items
/// waiting behind their key's head are handed back and forth, and must not crowd out other keys.
const WAITING_ALLOWANCE: i64 = 10;

/// The keyed-items stream of an ordered queue and its shared consumer.
#[derive(Clone)]
pub(crate) struct OrderedItems {
    pub(crate) stream: stream::Stream,
    pub(crate) consumer: PullConsumer,
    /// How many tasks of one key may run at once.
    pub(crate) per_key: u32,
}

/// The first unfinished item of an order key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyHead {
    pub(crate) sequence: u64,
    pub(crate) task_id: Option<String>,
}

impl Storage {
    /// The keyed-items stream of `wanted`: created when `wanted` asks for ordering, otherwise
    /// bound if it exists; `None` for a queue without ordering.
    pub(crate) async fn open_ordered(&self, wanted: &Queue) -> Result<Option<OrderedItems>> {
        let stream = if wanted.is_ordered() && !wanted.no_create {
            self.js
                .get_or_create_stream(ordered_stream_config(wanted, &self.settings))
                .await
                .map_err(|e| Error::storage("preparing the ordered items stream", e))?
        } else {
            match self.js.get_stream(ordered_stream(&wanted.name)).await {
                Ok(stream) => stream,
                Err(e) => {
                    return match e.kind() {
                        GetStreamErrorKind::JetStream(j)
                            if j.error_code() == ErrorCode::STREAM_NOT_FOUND =>
                        {
                            Ok(None)
                        }
                        _ => Err(Error::storage("loading the ordered items stream", e)),
                    };
                }
            }
        };
        let per_key = stream
            .cached_info()
            .config
            .metadata
            .get(ORDER_KEY_CONCURRENCY_METADATA)
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let consumer = stream
            .get_or_create_consumer(QUEUE_CONSUMER, ordered_consumer_config(wanted))
            .await
            .map_err(|e| Error::storage("preparing the ordered items consumer", e))?;
        Ok(Some(OrderedItems {
            stream,
            consumer,
            per_key,
        }))
    }

    /// Sends `task`'s item to its key's subject in the ordered stream.
    pub(crate) async fn send_ordered_item(
        &self,
        queue: &Queue,
        task: &Task,
        order_key: &str,
        dedupe: bool,
    ) -> Result<PublishAckFuture> {
        if !queue.is_ordered() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "task {} has an order key but queue {} has no ordering: create it with \
                     ordering on",
                    task.id, queue.name
                ),
            ));
        }
        self.js
            .send_publish(
                ordered_subject(&queue.name, order_key),
                queues::item_message(task, dedupe)?,
            )
            .await
            .map_err(|e| Error::storage("publishing ordered work item", e))
    }

    /// The bucket naming the failed task that holds back each key of `queue`.
    pub(crate) async fn order_holds(&self, queue: &str) -> Result<Kv> {
        self.open_kv(
            &KvBucket::new(order_bucket(queue))
                .description("jetjobs order keys held back by a failed task"),
        )
        .await
    }
}

impl OrderedItems {
    /// The first item stored on `subject` at or after `from`; `None` if there is none.
    pub(crate) async fn first_from(&self, subject: &str, from: u64) -> Result<Option<KeyHead>> {
        match self
            .stream
            .direct_get_next_for_subject(subject, Some(from.max(1)))
            .await
        {
            Ok(message) => Ok(Some(KeyHead {
                sequence: message.sequence,
                task_id: crate::store::ProcessItem::parse(&message.payload).map(|i| i.job),
            })),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::storage("reading an order key's items", e)),
        }
    }
}

/// The queue's own stream settings, on the ordered subjects, any number of items per subject.
fn ordered_stream_config(q: &Queue, settings: &StorageSettings) -> stream::Config {
    stream::Config {
        name: ordered_stream(&q.name),
        subjects: vec![ordered_subjects(&q.name)],
        description: Some("jetjobs ordered work items".into()),
        max_messages_per_subject: -1,
        allow_direct: true,
        metadata: [(
            ORDER_KEY_CONCURRENCY_METADATA.to_string(),
            q.order_key_concurrency.to_string(),
        )]
        .into(),
        ..queues::queue_stream_config(q, settings)
    }
}

/// Like the queue's own consumer, but tries are counted in the task document only: an item
/// handed back because it waits for its key is delivered again without using up a try.
fn ordered_consumer_config(q: &Queue) -> pull::Config {
    let queue_consumer = queues::consumer_config(q);
    pull::Config {
        max_ack_pending: queue_consumer
            .max_ack_pending
            .saturating_mul(WAITING_ALLOWANCE),
        max_deliver: -1,
        ..queue_consumer
    }
}
