// SPDX-License-Identifier: Apache-2.0
//! Task documents: one per subject in `CHORIA_AJ_TASKS`, saved with the expected last subject
//! sequence (asyncjobs' optimistic concurrency), and their state-change events.

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream;

use crate::error::{Error, ErrorKind, Result};
use crate::events::TaskStateChangeEvent;
use crate::metrics;
use crate::store::Storage;
use crate::task::Task;
use crate::wire::names::task_subject;

impl Storage {
    /// Saves `task` if no one else saved it since this copy was read, then publishes its event.
    pub(crate) async fn save_task(&self, task: &mut Task) -> Result<()> {
        let pending = self.send_task(task).await?;
        self.finish_save(task, pending).await
    }

    /// Sends the save of `task` without waiting for the server: pipelined writers send many,
    /// then [`Storage::finish_save`] each in order.
    pub(crate) async fn send_task(&self, task: &Task) -> Result<PublishAckFuture> {
        self.ensure_open()?;
        let document = task.to_json()?;
        self.check_size(&task.id, document.len())?;
        let publish = PublishMessage::build()
            .payload(document.into())
            .expected_last_subject_sequence(task.seq);
        self.js
            .send_publish(task_subject(&task.id), publish)
            .await
            .map_err(|e| save_error(task, e))
    }

    /// Waits for the server to store a save sent with [`Storage::send_task`], then publishes the
    /// task's event.
    pub(crate) async fn finish_save(
        &self,
        task: &mut Task,
        pending: PublishAckFuture,
    ) -> Result<()> {
        let ack = match pending.await {
            Ok(ack) => ack,
            Err(e) => {
                metrics::inc(&metrics::TASK_UPDATE_ERRORS, &[]);
                return Err(save_error(task, e));
            }
        };
        metrics::inc(&metrics::TASK_UPDATES, &[task.state.as_str()]);
        task.seq = ack.sequence;
        self.publish_event(task).await
    }

    /// Fails with `PayloadTooLarge` for a document the server would refuse: the connection would
    /// otherwise report a misleading timeout.
    fn check_size(&self, id: &str, document_len: usize) -> Result<()> {
        let max = self.nats.max_payload();
        if max == 0 || document_len <= max {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::PayloadTooLarge,
            format!(
                "task {id} is {document_len} bytes as a document, the server accepts {max}: the \
                 payload is stored base64-encoded inside the document, so at most about 3/4 of the \
                 server's max_payload ({} bytes) is usable",
                max / 4 * 3
            ),
        ))
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
        self.ensure_open()?;
        let not_found = || Error::new(ErrorKind::TaskNotFound, format!("task not found: {id}"));
        if crate::task::validate_id(id).is_err() {
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
}

fn save_error(task: &Task, e: PublishError) -> Error {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => Error::with_source(
            ErrorKind::TaskUpdateFailed,
            format!("failed updating task state {}", task.state),
            e,
        ),
        _ => Error::storage(format!("saving task {}", task.id), e),
    }
}
