// SPDX-License-Identifier: Apache-2.0
//! What a handler is, what it gets (a [`TaskContext`]) and how it fails ([`HandlerError`]).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::task::Task;
use crate::trace::TraceContext;

/// What a handler returns: a JSON result, or an error that decides between retry and terminate.
pub type HandlerResult = std::result::Result<serde_json::Value, HandlerError>;

/// Processes tasks of the types it is registered for.
///
/// Implemented for every `Fn(TaskContext, Task) -> impl Future<Output = HandlerResult>`, so an async
/// closure is a handler; bindings implement it for foreign callables.
pub trait Handler: Send + Sync + 'static {
    /// Runs the task. Dropping the returned future cancels the work.
    fn call(&self, ctx: TaskContext, task: Task) -> BoxFuture<'static, HandlerResult>;
}

impl<F, Fut> Handler for F
where
    F: Fn(TaskContext, Task) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    fn call(&self, ctx: TaskContext, task: Task) -> BoxFuture<'static, HandlerResult> {
        Box::pin(self(ctx, task))
    }
}

/// A failed try. Any `std::error::Error` converts into a retryable one, so `?` works in handlers.
///
/// # Examples
/// ```
/// let retry: jetjobs::HandlerError = std::io::Error::other("disk full").into();
/// assert!(!retry.is_terminate());
/// let stop = jetjobs::HandlerError::terminate("bad address");
/// assert_eq!(stop.to_string(), "bad address: terminate task");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
    terminate: bool,
}

impl HandlerError {
    /// A failure that is retried according to the retry policy.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            terminate: false,
        }
    }

    /// A failure after which the task is `terminated` and never tried again.
    pub fn terminate(reason: impl Into<String>) -> Self {
        // asyncjobs handlers wrap ErrTerminateTask, so Go tooling sees "<reason>: terminate task".
        Self {
            message: format!("{}: terminate task", reason.into()),
            terminate: true,
        }
    }

    /// True if the task must not be tried again.
    pub fn is_terminate(&self) -> bool {
        self.terminate
    }

    /// The text stored in the task's `last_err`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for HandlerError {
    fn from(e: E) -> Self {
        Self::retry(e.to_string())
    }
}

/// Where `mark_in_progress` sends its `+WPI`: the delivery's ack subject.
#[derive(Clone)]
pub(crate) struct ProgressTarget {
    pub(crate) nats: async_nats::Client,
    pub(crate) ack_subject: String,
}

/// The running handler's view of its try: a deadline, a cancellation signal, and a way to ask for
/// more time.
#[derive(Clone)]
pub struct TaskContext {
    inner: Arc<ContextInner>,
}

struct ContextInner {
    cancel: CancellationToken,
    deadline: Mutex<Instant>,
    run_time: Duration,
    progress: Option<ProgressTarget>,
    trace_context: Option<TraceContext>,
}

impl TaskContext {
    /// A context whose time runs out `run_time` after `delivered`, less a margin: JetStream's
    /// redelivery timer started at delivery, and the handler must be stopped before it fires.
    pub(crate) fn new(
        delivered: Instant,
        run_time: Duration,
        progress: Option<ProgressTarget>,
        trace_context: Option<TraceContext>,
    ) -> Self {
        Self {
            inner: Arc::new(ContextInner {
                cancel: CancellationToken::new(),
                deadline: Mutex::new(delivered + usable(run_time)),
                run_time,
                progress,
                trace_context,
            }),
        }
    }

    /// A context outside any processor (tests, direct calls): `mark_in_progress` is unsupported.
    pub fn detached(run_time: Duration) -> Self {
        Self::new(Instant::now(), run_time, None, None)
    }

    /// The W3C trace context the producer sent with the task, if any.
    pub fn trace_context(&self) -> Option<&TraceContext> {
        self.inner.trace_context.as_ref()
    }

    /// When this try's time runs out (start + the queue's max run time, pushed back by
    /// [`mark_in_progress`](Self::mark_in_progress)).
    pub fn deadline(&self) -> std::time::Instant {
        self.deadline_instant().into_std()
    }

    pub(crate) fn deadline_instant(&self) -> Instant {
        *self
            .inner
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Time left before the deadline.
    pub fn remaining(&self) -> Duration {
        self.deadline_instant()
            .saturating_duration_since(Instant::now())
    }

    /// True once the deadline passed or the worker is shutting down.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Resolves when the try is cancelled.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }

    pub(crate) fn cancel(&self) {
        self.inner.cancel.cancel()
    }

    /// Tells JetStream the task is still being worked on (`+WPI`) and, once the server confirmed,
    /// moves the deadline a full max run time ahead. Only the redelivery timer of a live worker is
    /// reset, so a task whose worker died is still redelivered.
    pub async fn mark_in_progress(&self) -> Result<()> {
        let Some(target) = &self.inner.progress else {
            return Err(Error::new(
                ErrorKind::InProgressNotSupported,
                "task is not being processed by a handler",
            ));
        };
        let request = target.nats.request(
            target.ack_subject.clone(),
            Bytes::from_static(crate::wire::names::ack::IN_PROGRESS),
        );
        tokio::time::timeout(Duration::from_secs(2), request)
            .await
            .map_err(|e| Error::storage("marking task in progress", e))?
            .map_err(|e| Error::storage("marking task in progress", e))?;
        *self
            .inner
            .deadline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now() + usable(self.inner.run_time);
        Ok(())
    }
}

/// The part of a max run time a handler may use: a tenth (at most a second) is kept back so the
/// try ends before JetStream's ack wait of the same length redelivers the item.
fn usable(run_time: Duration) -> Duration {
    run_time - (run_time / 10).min(Duration::from_secs(1))
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("remaining", &self.remaining())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}
