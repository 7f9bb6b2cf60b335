// SPDX-License-Identifier: Apache-2.0
//! Cancelling a task: a pending one is stored as `terminated` so it never runs; a running one's
//! handler gets its cancellation signal in whichever worker runs it, and its outcome is stored as
//! `terminated` with the reason.

use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::task::{Task, TaskState};
use crate::wire::Timestamp;
use crate::wire::names::cancel_subject;

/// How long a worker has to answer a cancellation request.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// How long a cancelled handler's outcome may take to be stored.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// Rounds of "it changed meanwhile" before giving up.
const ATTEMPTS: usize = 10;

impl Client {
    /// Cancels task `id` of any queue and returns it as stored afterwards.
    ///
    /// A task not yet running (`new`, `retry`, `blocked`) is stored as `terminated` with
    /// `last_err` `cancelled: <reason>` and never runs. A running one's handler gets its
    /// cancellation signal ([`TaskContext::cancelled`](crate::TaskContext::cancelled)) in
    /// whichever worker process runs it, which stores it as `terminated` (`cancelled: <reason>:
    /// terminate task`); this waits for that. A task already final is returned as it is.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client, id: &str) -> jetjobs::Result<()> {
    /// let task = client.cancel(id, "the customer left").await?;
    /// assert!(task.state.is_final());
    /// # Ok(()) }
    /// ```
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<Task> {
        for _ in 0..ATTEMPTS {
            let mut task = self.load_task(id).await?;
            match task.state {
                state if state.is_final() => return Ok(task),
                TaskState::Active => {
                    if self.ask_workers(id, reason).await? {
                        return self.wait_final(id, SETTLE_WITHIN).await;
                    }
                    // Nobody runs it: its worker died, or it finished meanwhile. A stale
                    // `active` task is ours to terminate; a live one saves first and we go round.
                    if !self.is_stale(&task).await {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                _ => {}
            }
            task.state = TaskState::Terminated;
            task.last_err = format!("cancelled: {reason}");
            task.tried = Some(Timestamp::now());
            match self.storage().save_task(&mut task).await {
                Ok(()) => {
                    // A Go worker would run a `terminated` task it is handed (asyncjobs only
                    // skips complete and expired ones), so its item goes too.
                    if let Err(e) = self.storage().remove_item(&task.queue, &task.id).await {
                        tracing::warn!(task = %id, error = %e, "removing a cancelled task's item failed");
                    }
                    if task.run_at.is_some()
                        && let Err(e) = self
                            .storage()
                            .remove_delayed_item(&task.queue, &task.id)
                            .await
                    {
                        tracing::warn!(task = %id, error = %e, "removing a cancelled task's delayed item failed");
                    }
                    return Ok(task);
                }
                Err(e) if e.kind() == ErrorKind::TaskUpdateFailed => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::TaskUpdateFailed,
            format!("task {id} kept changing while being cancelled"),
        ))
    }

    /// Sends the request to every worker; true if the one running the task answered.
    async fn ask_workers(&self, id: &str, reason: &str) -> Result<bool> {
        let request = self
            .nats()
            .request(cancel_subject(id), reason.to_string().into());
        match tokio::time::timeout(ANSWER_WITHIN, request).await {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(false),
            Ok(Err(e)) if e.kind() == async_nats::RequestErrorKind::TimedOut => Ok(false),
            Err(_) => Ok(false),
            Ok(Err(e)) => Err(Error::storage(format!("cancelling task {id}"), e)),
        }
    }

    /// An `active` task whose worker has not touched it for longer than its queue's max run
    /// time is left over by a crash.
    async fn is_stale(&self, task: &Task) -> bool {
        let max_run_time = if task.queue == self.queue().name {
            self.queue().max_run_time
        } else {
            match self.admin().queue_info(&task.queue).await {
                Ok(info) => info.queue.max_run_time,
                // Unknown: treat it as live rather than risk terminating a running task.
                Err(_) => return false,
            }
        };
        task.tried.is_none_or(|t| t.elapsed() >= max_run_time)
    }
}
