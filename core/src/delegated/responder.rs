// SPDX-License-Identifier: Apache-2.0
//! [`Responder`]: the service side of asyncjobs' request-reply handlers. It answers the requests a
//! Go asyncjobs worker (`Mux.RequestReply`) or a jetjobs one ([`Mux::request_reply`]) sends for a
//! routing type, running a jetjobs [`Handler`] on each task.
//!
//! [`Mux::request_reply`]: crate::Mux::request_reply

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::handler::{Handler, HandlerError, HandlerResult, TaskContext};
use crate::queue::DEFAULT_MAX_RUN_TIME;
use crate::task::Task;
use crate::wire::names::{
    REQUEST_REPLY_CONTENT_TYPE_HEADER, REQUEST_REPLY_DEADLINE_HEADER, REQUEST_REPLY_ERROR_HEADER,
    REQUEST_REPLY_TASK_CONTENT_TYPE, REQUEST_REPLY_TERMINATE_HEADER, request_reply_subject,
};
use crate::worker::options::DEFAULT_CONCURRENCY;

/// Serves one routing type to request-reply workers, on `CHORIA_AJ.H.T.<type>` in a queue group.
///
/// Each request's task goes to the handler, with a [`TaskContext`] whose deadline is the caller's
/// `AJ-Handler-Deadline`. A result is replied as its JSON text (which the caller stores, as asyncjobs
/// stores any reply, base64-encoded); [`HandlerError::terminate`] replies `AJ-Terminate` with the
/// reason (the task is terminated with `<reason>: terminate task`); any other failure replies
/// `AJ-Error` with its text (the try fails and is retried).
///
/// # Examples
/// ```no_run
/// use jetjobs::{HandlerError, Responder, Task};
/// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
/// let responder = Responder::new(&client, "email:send", |_ctx, task: Task| async move {
///     let body: serde_json::Value = task.payload_json()?;
///     Ok::<_, HandlerError>(serde_json::json!({"sent_to": body["to"]}))
/// })?
/// .concurrency(20);
/// let shutdown = jetjobs::CancellationToken::new();
/// responder.run(shutdown).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Responder {
    shared: Arc<Shared>,
    queue_group: String,
    concurrency: usize,
    state: Arc<Mutex<State>>,
}

/// What every request's reply needs.
struct Shared {
    nats: async_nats::Client,
    task_type: String,
    subject: String,
    handler: Arc<dyn Handler>,
}

enum State {
    Idle,
    Listening(async_nats::Subscriber),
    Running,
}

impl Responder {
    /// A responder for `task_type` (a routing type as a worker registered it, `""` for asyncjobs'
    /// `catchall`) on `client`'s connection. `InvalidTaskType` for a type no route can have.
    pub fn new(
        client: &Client,
        task_type: impl Into<String>,
        handler: impl Handler,
    ) -> Result<Self> {
        let task_type = task_type.into();
        if !task_type.is_empty() {
            crate::task::validate_task_type(&task_type)?;
        }
        let subject = request_reply_subject(&task_type);
        Ok(Self {
            queue_group: subject.clone(),
            concurrency: DEFAULT_CONCURRENCY,
            state: Arc::new(Mutex::new(State::Idle)),
            shared: Arc::new(Shared {
                nats: client.nats().clone(),
                task_type,
                subject,
                handler: Arc::new(handler),
            }),
        })
    }

    /// Handlers run at once (default 10, at least 1); further requests wait.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// The queue group the responders of this type share (default: the subject), so each request
    /// reaches one of them. Set before [`listen`](Self::listen).
    pub fn queue_group(mut self, group: impl Into<String>) -> Self {
        self.queue_group = group.into();
        self
    }

    /// The routing type served.
    pub fn task_type(&self) -> &str {
        &self.shared.task_type
    }

    /// The subject served, `CHORIA_AJ.H.T.<type>`.
    pub fn subject(&self) -> &str {
        &self.shared.subject
    }

    /// Subscribes now, so that requests sent from here on reach this responder (they wait until
    /// [`run`](Self::run)). `run` subscribes by itself; this is for knowing when it is ready.
    pub async fn listen(&self) -> Result<()> {
        if !matches!(*self.state(), State::Idle) {
            return Ok(());
        }
        let subscription = self.subscribe().await?;
        let mut state = self.state();
        if matches!(*state, State::Idle) {
            *state = State::Listening(subscription);
        }
        Ok(())
    }

    /// Answers requests until `shutdown` is cancelled; then takes no more and waits for the
    /// handlers running (each ends by its deadline). Runs once: again is `AlreadyRunning`.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        let taken = std::mem::replace(&mut *self.state(), State::Running);
        let mut subscription = match taken {
            State::Listening(subscription) => subscription,
            State::Idle => self.subscribe().await?,
            State::Running => {
                return Err(Error::new(
                    ErrorKind::AlreadyRunning,
                    "this responder is running or has run; a Responder runs once",
                ));
            }
        };
        let permits = Arc::new(Semaphore::new(self.concurrency));
        let mut running = JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit,
                _ = shutdown.cancelled() => break,
            };
            let Ok(permit) = permit else { break };
            let message = tokio::select! {
                message = subscription.next() => message,
                _ = shutdown.cancelled() => break,
            };
            let Some(message) = message else { break };
            let shared = self.shared.clone();
            running.spawn(async move {
                shared.answer(message).await;
                drop(permit);
            });
            // Reap finished ones, so a long run does not keep every outcome.
            while running.try_join_next().is_some() {}
        }
        // Requests delivered but not taken get no reply; their callers time out and retry.
        let _ = subscription.unsubscribe().await;
        while running.join_next().await.is_some() {}
        Ok(())
    }

    async fn subscribe(&self) -> Result<async_nats::Subscriber> {
        let shared = &self.shared;
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
            Error::storage(format!("subscribing to {}", shared.subject), e)
        };
        let subscription = shared
            .nats
            .queue_subscribe(shared.subject.clone(), self.queue_group.clone())
            .await
            .map_err(|e| failed(e.into()))?;
        // Once the server has the subscription, requests reach it.
        shared.nats.flush().await.map_err(|e| failed(e.into()))?;
        Ok(subscription)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("subject", &self.shared.subject)
            .field("queue_group", &self.queue_group)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Shared {
    async fn answer(&self, message: async_nats::Message) {
        let Some(reply) = message.reply.clone() else {
            tracing::warn!(subject = %message.subject, "request-reply message without a reply subject");
            return;
        };
        let (headers, body) = match self.respond(&message).await {
            Ok(value) => match crate::wire::to_go_json(&value) {
                Ok(body) => (HeaderMap::new(), Bytes::from(body)),
                Err(e) => failed(REQUEST_REPLY_ERROR_HEADER, &e.to_string()),
            },
            Err(e) if e.is_terminate() => {
                let message = e.message();
                let reason = message.strip_suffix(": terminate task").unwrap_or(message);
                failed(REQUEST_REPLY_TERMINATE_HEADER, reason)
            }
            Err(e) => failed(REQUEST_REPLY_ERROR_HEADER, e.message()),
        };
        self.send(reply, headers, body).await;
    }

    async fn send(&self, reply: Subject, headers: HeaderMap, body: Bytes) {
        if let Err(e) = self.nats.publish_with_headers(reply, headers, body).await {
            tracing::warn!(subject = %self.subject, error = %e, "replying to a request-reply call failed");
        }
    }

    async fn respond(&self, message: &async_nats::Message) -> HandlerResult {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        if let Some(kind) = header(REQUEST_REPLY_CONTENT_TYPE_HEADER)
            && kind != REQUEST_REPLY_TASK_CONTENT_TYPE
        {
            return Err(HandlerError::retry(format!(
                "unsupported content type {kind:?}"
            )));
        }
        let time = match header(REQUEST_REPLY_DEADLINE_HEADER) {
            Some(deadline) => until(&deadline)?,
            None => DEFAULT_MAX_RUN_TIME,
        };
        if time.is_zero() {
            return Err(HandlerError::retry("context deadline exceeded"));
        }
        let task = Task::from_json(&message.payload)
            .map_err(|e| HandlerError::retry(format!("invalid task: {e}")))?;
        let ctx = TaskContext::detached(time);
        run_handler(self.handler.as_ref(), ctx, task).await
    }
}

/// Time left until an `AJ-Handler-Deadline`.
pub(crate) fn until(deadline: &str) -> std::result::Result<Duration, HandlerError> {
    let due = DateTime::parse_from_rfc3339(deadline).map_err(|e| {
        HandlerError::retry(format!(
            "invalid {REQUEST_REPLY_DEADLINE_HEADER} {deadline:?}: {e}"
        ))
    })?;
    Ok((due.with_timezone(&Utc) - Utc::now())
        .to_std()
        .unwrap_or_default())
}

/// Runs the handler until it ends or its deadline passes (then its context is cancelled and the
/// future dropped); a panic is a failed try, as in a worker.
async fn run_handler(handler: &dyn Handler, ctx: TaskContext, task: Task) -> HandlerResult {
    let call = std::panic::catch_unwind(AssertUnwindSafe(|| handler.call(ctx.clone(), task)));
    let future = match call {
        Ok(future) => future,
        Err(panic) => return Err(panicked(panic)),
    };
    tokio::select! {
        result = AssertUnwindSafe(future).catch_unwind() => {
            result.unwrap_or_else(|panic| Err(panicked(panic)))
        }
        _ = tokio::time::sleep_until(ctx.deadline().into()) => {
            ctx.cancel();
            Err(HandlerError::retry("context deadline exceeded"))
        }
    }
}

fn panicked(panic: Box<dyn std::any::Any + Send>) -> HandlerError {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    HandlerError::retry(format!("handler panicked: {text}"))
}

/// A reply with one verdict header and no body. A header value is one line and never empty (an
/// empty one would read as success).
fn failed(header: &str, text: &str) -> (HeaderMap, Bytes) {
    let mut value: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if value.trim().is_empty() {
        value = "handler failed".into();
    }
    let mut headers = HeaderMap::new();
    headers.insert(header, value.as_str());
    (headers, Bytes::new())
}
