// SPDX-License-Identifier: Apache-2.0
//! Delayed work items (jetjobs only). The item of a task due later waits in `JETJOBS_DELAYED` as a
//! server message schedule (`Nats-Schedule: @at …`, nats-server 2.12+); when it is due the server
//! publishes it on the queue's due subject, and a worker of the queue moves it into the queue's
//! stream. Until then no worker, Go or jetjobs, can see it.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{NATS_SCHEDULE, NATS_SCHEDULE_TARGET};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, RetentionPolicy};
use chrono::SecondsFormat;

use crate::error::{Error, Result};
use crate::queue::Queue;
use crate::store::{Storage, storage_type};
use crate::task::Task;
use crate::wire::Timestamp;
use crate::wire::names::{
    DELAYED_STREAM, DELAYED_SUBJECTS, delayed_subject, due_consumer, due_subject, due_subjects,
};

/// How long a worker may take to move one due item before another worker gets it.
const MOVE_ACK_WAIT: Duration = Duration::from_secs(30);

impl Storage {
    /// The delayed-items stream, created on first use.
    pub(crate) async fn delayed_stream(&self) -> Result<stream::Stream> {
        self.delayed
            .get_or_try_init(|| async {
                self.js
                    .get_or_create_stream(stream::Config {
                        name: DELAYED_STREAM.into(),
                        subjects: vec![DELAYED_SUBJECTS.into()],
                        description: Some("jetjobs delayed work items".into()),
                        retention: RetentionPolicy::WorkQueue,
                        allow_message_schedules: true,
                        storage: storage_type(self.settings.memory),
                        num_replicas: self.settings.replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| {
                        Error::storage(
                            "preparing the delayed-items stream (delayed tasks need nats-server \
                             2.12 or later)",
                            e,
                        )
                    })
            })
            .await
            .cloned()
    }

    /// Sends `task`'s work item as a schedule due at `run_at`, deduplicated by task id when
    /// `dedupe` is set; a later schedule for the same task replaces it.
    pub(crate) async fn send_delayed_item(
        &self,
        queue: &Queue,
        task: &Task,
        run_at: Timestamp,
        dedupe: bool,
    ) -> Result<PublishAckFuture> {
        self.delayed_stream().await?;
        let mut headers = HeaderMap::new();
        headers.insert(
            NATS_SCHEDULE,
            format!(
                "@at {}",
                run_at.to_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true)
            )
            .as_str(),
        );
        headers.insert(
            NATS_SCHEDULE_TARGET,
            due_subject(&queue.name, &task.id).as_str(),
        );
        if let Some(context) = &task.trace_context {
            context.add_to(&mut headers);
        }
        let mut publish = PublishMessage::build()
            .payload(super::queues::item_body(&task.id)?.into())
            .headers(headers);
        if dedupe {
            publish = publish.message_id(&task.id);
        }
        self.js
            .send_publish(delayed_subject(&queue.name, &task.id), publish)
            .await
            .map_err(|e| Error::storage("publishing a delayed work item", e))
    }

    /// Removes the waiting schedule of `task_id`'s item, if there is one.
    pub(crate) async fn remove_delayed_item(&self, queue: &str, task_id: &str) -> Result<()> {
        let stream = self.delayed_stream().await?;
        match stream
            .get_last_raw_message_by_subject(&delayed_subject(queue, task_id))
            .await
        {
            Ok(message) => stream
                .delete_message(message.sequence)
                .await
                .map(|_| ())
                .map_err(|e| Error::storage("removing a delayed work item", e)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(()),
            Err(e) => Err(Error::storage("looking up a delayed work item", e)),
        }
    }

    /// The consumer of `queue`'s due items, which its workers share.
    pub(crate) async fn due_items(&self, queue: &str) -> Result<PullConsumer> {
        self.delayed_stream()
            .await?
            .get_or_create_consumer(
                &due_consumer(queue),
                pull::Config {
                    durable_name: Some(due_consumer(queue)),
                    filter_subject: due_subjects(queue),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: MOVE_ACK_WAIT,
                    deliver_policy: DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| Error::storage("preparing the due-items consumer", e))
    }
}
