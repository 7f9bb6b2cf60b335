// SPDX-License-Identifier: Apache-2.0
//! Cancelling running tasks from any process: a worker listens on `JETJOBS.cancel.*`, and a
//! request for a task one of its handlers runs fires that handler's cancellation and is answered,
//! so the requester knows some worker took it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::wire::names::CANCEL_SUBJECT_WILDCARD;

/// The body of the answer a worker sends when it cancelled the task.
pub(crate) const CANCELLED_REPLY: &[u8] = b"cancelled";

/// The handlers this worker runs, by task id, and how to cancel each.
#[derive(Default)]
pub(crate) struct Cancels {
    running: Mutex<HashMap<String, Arc<Cancel>>>,
}

/// One running handler's cancellation.
#[derive(Default)]
pub(crate) struct Cancel {
    token: CancellationToken,
    reason: Mutex<String>,
}

impl Cancel {
    pub(crate) async fn cancelled(&self) {
        self.token.cancelled().await
    }

    pub(crate) fn reason(&self) -> String {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A handler's place in [`Cancels`] while it runs; leaving it (drop) removes it.
pub(crate) struct Running {
    cancels: Arc<Cancels>,
    task_id: String,
    pub(crate) cancel: Arc<Cancel>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancels
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.task_id);
    }
}

impl Cancels {
    pub(crate) fn register(self: &Arc<Self>, task_id: &str) -> Running {
        let cancel = Arc::new(Cancel::default());
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task_id.to_string(), cancel.clone());
        Running {
            cancels: self.clone(),
            task_id: task_id.to_string(),
            cancel,
        }
    }

    /// Fires the cancellation of `task_id` if a handler of this worker runs it.
    fn cancel(&self, task_id: &str, reason: String) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let Some(cancel) = running.get(task_id) else {
            return false;
        };
        *cancel.reason.lock().unwrap_or_else(|p| p.into_inner()) = reason;
        cancel.token.cancel();
        true
    }

    /// Answers cancellation requests until `stop` fires.
    pub(crate) async fn listen(
        self: Arc<Self>,
        nats: async_nats::Client,
        stop: CancellationToken,
    ) -> Result<()> {
        let mut requests = nats
            .subscribe(CANCEL_SUBJECT_WILDCARD)
            .await
            .map_err(|e| Error::storage("subscribing to cancellation requests", e))?;
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    request = requests.next() => match request {
                        Some(request) => request,
                        None => return,
                    },
                    _ = stop.cancelled() => return,
                };
                let Some(task_id) = request.subject.as_str().rsplit('.').next() else {
                    continue;
                };
                let reason = String::from_utf8_lossy(&request.payload).into_owned();
                if self.cancel(task_id, reason)
                    && let Some(reply) = request.reply
                    && let Err(e) = nats.publish(reply, CANCELLED_REPLY.into()).await
                {
                    tracing::warn!(task = %task_id, error = %e, "answering a cancellation failed");
                }
            }
        });
        Ok(())
    }
}
