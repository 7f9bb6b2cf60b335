// SPDX-License-Identifier: Apache-2.0
//! Tasks: the JSON document asyncjobs stores at `CHORIA_AJ.T.<id>`, its states and its options.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::wire::{self, Timestamp, base64_bytes, is_valid_name};

/// asyncjobs' `DefaultMaxTries`.
pub const DEFAULT_MAX_TRIES: i64 = 10;
/// Longest task id or task type, in bytes. Ids and types travel in subjects, and a NATS server
/// drops a connection whose protocol line exceeds 4 KiB (`max_control_line`).
pub const MAX_NAME_LEN: usize = 1024;

/// A task's lifecycle state, with asyncjobs' exact strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TaskState {
    /// State not known (`""`).
    #[serde(rename = "")]
    #[default]
    Unknown,
    /// Created and enqueued, not yet handled.
    #[serde(rename = "new")]
    New,
    /// A handler is running it.
    #[serde(rename = "active")]
    Active,
    /// A try failed; it will be tried again.
    #[serde(rename = "retry")]
    Retry,
    /// Past its deadline or out of tries.
    #[serde(rename = "expired")]
    Expired,
    /// A handler asked for no further tries.
    #[serde(rename = "terminated")]
    Terminated,
    /// Handled successfully (the wire string is `complete`).
    #[serde(rename = "complete")]
    Complete,
    /// Storing its work item failed.
    #[serde(rename = "queue_error")]
    QueueError,
    /// Waiting for dependencies.
    #[serde(rename = "blocked")]
    Blocked,
    /// A dependency failed, so it will never run.
    #[serde(rename = "unreachable")]
    Unreachable,
}

impl TaskState {
    /// The wire string, e.g. `"complete"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Unknown => "",
            TaskState::New => "new",
            TaskState::Active => "active",
            TaskState::Retry => "retry",
            TaskState::Expired => "expired",
            TaskState::Terminated => "terminated",
            TaskState::Complete => "complete",
            TaskState::QueueError => "queue_error",
            TaskState::Blocked => "blocked",
            TaskState::Unreachable => "unreachable",
        }
    }

    /// Parses a state name given as a discard state (`complete`/`completed`, `expired` or
    /// `terminated`); anything else fails with `UnknownDiscardPolicy`, as in asyncjobs.
    ///
    /// # Examples
    /// ```
    /// use jetjobs::{ErrorKind, TaskState};
    /// assert_eq!(TaskState::parse_discard("completed")?, TaskState::Complete);
    /// assert_eq!(TaskState::parse_discard("nope").unwrap_err().kind(), ErrorKind::UnknownDiscardPolicy);
    /// # Ok::<(), jetjobs::Error>(())
    /// ```
    pub fn parse_discard(name: &str) -> Result<Self> {
        match name.parse::<TaskState>() {
            Ok(state @ (TaskState::Complete | TaskState::Expired | TaskState::Terminated)) => {
                Ok(state)
            }
            _ => Err(Error::new(
                ErrorKind::UnknownDiscardPolicy,
                format!(
                    "unknown discard policy {name:?}: only complete, expired or terminated tasks can be discarded"
                ),
            )),
        }
    }

    /// Every state, in asyncjobs' order.
    pub const ALL: [TaskState; 10] = [
        TaskState::Unknown,
        TaskState::New,
        TaskState::Active,
        TaskState::Retry,
        TaskState::Expired,
        TaskState::Terminated,
        TaskState::Complete,
        TaskState::QueueError,
        TaskState::Blocked,
        TaskState::Unreachable,
    ];

    /// True for states no processor will move the task out of on its own.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Expired
                | TaskState::Terminated
                | TaskState::Complete
                | TaskState::Unreachable
                | TaskState::QueueError
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskState {
    type Err = Error;
    /// Parses the wire strings; `"completed"` is accepted for `complete` as asyncjobs does.
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "" => TaskState::Unknown,
            "new" => TaskState::New,
            "active" => TaskState::Active,
            "retry" => TaskState::Retry,
            "expired" => TaskState::Expired,
            "terminated" => TaskState::Terminated,
            "complete" | "completed" => TaskState::Complete,
            "queue_error" => TaskState::QueueError,
            "blocked" => TaskState::Blocked,
            "unreachable" => TaskState::Unreachable,
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidDocument,
                    format!("unknown task state {other:?}"),
                ));
            }
        })
    }
}

/// The outcome a successful handler stored on its task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// What the handler returned, as JSON.
    pub payload: serde_json::Value,
    /// When the handler finished.
    pub completed: Timestamp,
}

/// A unit of work: routing type, payload and processing options.
///
/// Fields mirror asyncjobs' `Task` and serialize to its exact JSON.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let task = jetjobs::Task::new("email:new", &serde_json::json!({"to": "a@example.net"}))?
///     .with_max_tries(5)
///     .with_deadline(jetjobs::Timestamp::now().add(Duration::from_secs(3600)));
/// assert_eq!(task.state, jetjobs::TaskState::New);
/// assert_eq!(task.payload_json::<serde_json::Value>()?["to"], "a@example.net");
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique id, a KSUID unless set with [`Task::with_id`].
    pub id: String,
    /// Routing type, matched against the [`Mux`](crate::Mux).
    #[serde(rename = "type")]
    pub task_type: String,
    /// The queue it was enqueued to.
    #[serde(default)]
    pub queue: String,
    /// Ids of tasks that must complete first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Results of the dependencies, filled in when `load_dependencies` is set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependency_results: BTreeMap<String, Option<TaskResult>>,
    /// Whether the dependency results are loaded for the handler.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub load_dependencies: bool,
    /// The payload bytes (JSON unless a raw payload was given).
    #[serde(default, with = "base64_bytes")]
    pub payload: Option<Bytes>,
    /// The task is not started after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// Tries allowed before the task expires; 0 or less means unlimited.
    #[serde(default)]
    pub max_tries: i64,
    /// Set on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    /// Lifecycle state.
    #[serde(default)]
    pub state: TaskState,
    /// Creation time (UTC).
    pub created: Timestamp,
    /// When a handler last took it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tried: Option<Timestamp>,
    /// Handler invocations so far.
    #[serde(default)]
    pub tries: i64,
    /// The last handler error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_err: String,
    /// Hex ed25519 signature, see [`signing`](crate::signing).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// Not started before this time (jetjobs only): its work item waits in `JETJOBS_DELAYED`
    /// until then, so Go workers cannot run it early either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<Timestamp>,
    /// Tasks of one queue sharing this key run in enqueue order (jetjobs only; see
    /// [`Queue::ordered`](crate::Queue::ordered)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_key: Option<String>,
    /// The task this one waits for: an earlier task of its order key that is unfinished
    /// (jetjobs only; its state meanwhile stays `new` or `retry`, which Go reads as usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// Stream sequence of the stored document this copy was read from or written as; the next save
    /// must match it (asyncjobs' optimistic concurrency). 0 for a task never stored.
    #[serde(skip)]
    pub(crate) seq: u64,
    /// Deduplication on enqueue (see [`Task::with_unique_key`]); not stored in the document.
    #[serde(skip)]
    pub(crate) unique: Option<Unique>,
    /// The trace context an enqueue sends in the item's headers; not stored in the document.
    #[serde(skip)]
    pub(crate) trace_context: Option<crate::trace::TraceContext>,
}

/// A task's deduplication key and how long it holds after the task is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unique {
    pub(crate) key: String,
    pub(crate) window: std::time::Duration,
}

/// Longest unique key, in bytes.
pub const MAX_UNIQUE_KEY_LEN: usize = 512;
/// Longest order key, in bytes.
pub const MAX_ORDER_KEY_LEN: usize = 512;

impl Task {
    /// A new task with a JSON-encoded payload. A payload that encodes as JSON `null` (`()`,
    /// `None`) is stored as no payload, as Go's `NewTask(type, nil)` does.
    pub fn new(task_type: impl Into<String>, payload: &(impl Serialize + ?Sized)) -> Result<Self> {
        let bytes = serde_json::to_vec(payload)
            .map_err(|e| Error::with_source(ErrorKind::InvalidPayload, "encoding payload", e))?;
        let payload = (bytes != b"null").then(|| Bytes::from(bytes));
        Self::with_raw_payload(task_type, payload)
    }

    /// A new task whose payload bytes are stored as given (or `null` for `None`).
    pub fn with_raw_payload(task_type: impl Into<String>, payload: Option<Bytes>) -> Result<Self> {
        let task_type = task_type.into();
        validate_type(&task_type)?;
        Ok(Self {
            id: wire::new_id(),
            task_type,
            queue: String::new(),
            dependencies: Vec::new(),
            dependency_results: BTreeMap::new(),
            load_dependencies: false,
            payload,
            deadline: None,
            max_tries: DEFAULT_MAX_TRIES,
            result: None,
            state: TaskState::New,
            created: Timestamp::now(),
            tried: None,
            tries: 0,
            last_err: String::new(),
            signature: String::new(),
            run_at: None,
            order_key: None,
            waiting_for: None,
            seq: 0,
            unique: None,
            trace_context: None,
        })
    }

    /// Replaces the generated id.
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        validate_id(&id)?;
        self.id = id;
        Ok(self)
    }

    /// The task is not started after `deadline`.
    pub fn with_deadline(mut self, deadline: Timestamp) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The task does not start before `run_at` (a time in the past means now).
    pub fn with_run_at(mut self, run_at: Timestamp) -> Self {
        self.run_at = Some(run_at);
        self
    }

    /// The task does not start before `delay` from now.
    pub fn with_delay(self, delay: std::time::Duration) -> Self {
        self.with_run_at(Timestamp::now().add(delay))
    }

    /// When the task is due, if that is still in the future.
    pub(crate) fn due_later(&self) -> Option<Timestamp> {
        self.run_at.filter(|t| !t.until().is_zero())
    }

    /// Sends `context` with the enqueue, for the handler's span to continue the trace (the
    /// `opentelemetry` feature sends the current span's context without this).
    pub fn with_trace_context(mut self, context: crate::trace::TraceContext) -> Self {
        self.trace_context = Some(context);
        self
    }

    /// The trace context this copy sends with its enqueue, if any (not stored in the document).
    pub fn trace_context(&self) -> Option<&crate::trace::TraceContext> {
        self.trace_context.as_ref()
    }

    /// Tries before the task expires; 0 or less means unlimited.
    pub fn with_max_tries(mut self, max_tries: i64) -> Self {
        self.max_tries = max_tries;
        self
    }

    /// Runs only after these tasks complete; the task starts `blocked`. Duplicate ids are dropped.
    pub fn depends_on<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for id in ids {
            let id = id.into();
            if !self.dependencies.contains(&id) {
                self.dependencies.push(id);
            }
        }
        if !self.dependencies.is_empty() {
            self.state = TaskState::Blocked;
        }
        self
    }

    /// Enqueue this task only if no task with `key` is pending: while one with that key is not
    /// final (and for `window` after it became final), enqueueing returns that task instead of
    /// storing this one. Concurrent producers with one key make exactly one task. The key lives
    /// in the KV bucket `JETJOBS_UNIQUE`, not in the task document.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let task = jetjobs::Task::new("report:build", &7)?
    ///     .with_unique_key("report-7", Duration::from_secs(60));
    /// # Ok::<(), jetjobs::Error>(())
    /// ```
    pub fn with_unique_key(mut self, key: impl Into<String>, window: std::time::Duration) -> Self {
        self.unique = Some(Unique {
            key: key.into(),
            window,
        });
        self
    }

    /// Runs this task after every earlier-enqueued task of its queue with the same key (the
    /// queue must be [ordered](crate::Queue::ordered)); for example a customer id, so that one
    /// customer's tasks apply in order while different customers' run in parallel.
    ///
    /// ```
    /// let task = jetjobs::Task::new("invoice:update", &1)?.with_order_key("customer-7");
    /// assert_eq!(task.order_key.as_deref(), Some("customer-7"));
    /// # Ok::<(), jetjobs::Error>(())
    /// ```
    pub fn with_order_key(mut self, key: impl Into<String>) -> Self {
        self.order_key = Some(key.into());
        self
    }

    /// The unique key given with [`Task::with_unique_key`], if any.
    pub fn unique_key(&self) -> Option<&str> {
        self.unique.as_ref().map(|u| u.key.as_str())
    }

    /// Makes the dependencies' results available to the handler in `dependency_results`.
    pub fn with_dependency_results(mut self) -> Self {
        self.load_dependencies = true;
        self
    }

    /// The payload decoded from JSON.
    pub fn payload_json<T: DeserializeOwned>(&self) -> Result<T> {
        let bytes = self.payload.as_deref().unwrap_or(b"null");
        serde_json::from_slice(bytes)
            .map_err(|e| Error::with_source(ErrorKind::InvalidPayload, "decoding payload", e))
    }

    /// The task's JSON document exactly as asyncjobs stores it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        crate::wire::to_go_json(self)
    }

    /// Parses a stored task document.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "invalid task document", e))
    }

    /// The bytes asyncjobs signs: `id:queue:type:max_tries:created_ns:deadline_ns:base64(payload)`.
    pub fn signature_message(&self) -> Result<String> {
        if self.queue.is_empty() {
            return Err(Error::new(
                ErrorKind::SignatureRequiresQueue,
                "signing a task requires the queue to be set",
            ));
        }
        Ok(format!(
            "{}:{}:{}:{}:{}:{}:{}",
            self.id,
            self.queue,
            self.task_type,
            self.max_tries,
            self.created.unix_nanos(),
            self.deadline.map(|d| d.unix_nanos()).unwrap_or(0),
            wire::base64_encode(self.payload.as_deref().unwrap_or_default()),
        ))
    }

    /// Checks what an enqueue needs: valid names, and dependencies that can be satisfied.
    pub(crate) fn validate(&self) -> Result<()> {
        validate_type(&self.task_type)?;
        validate_id(&self.id)?;
        if let Some(unique) = &self.unique
            && (unique.key.is_empty() || unique.key.len() > MAX_UNIQUE_KEY_LEN)
        {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("a unique key is 1 to {MAX_UNIQUE_KEY_LEN} bytes long"),
            ));
        }
        if let Some(key) = &self.order_key {
            if key.is_empty() || key.len() > MAX_ORDER_KEY_LEN {
                return Err(Error::new(
                    ErrorKind::InvalidOption,
                    format!("an order key is 1 to {MAX_ORDER_KEY_LEN} bytes long"),
                ));
            }
            if self.run_at.is_some() {
                return Err(Error::new(
                    ErrorKind::InvalidOption,
                    "a task with an order key runs in enqueue order and cannot be delayed",
                ));
            }
        }
        if let (Some(run_at), Some(deadline)) = (self.run_at, self.deadline)
            && deadline.to_utc() < run_at.to_utc()
        {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "task {} is due at {run_at}, after its deadline {deadline}",
                    self.id
                ),
            ));
        }
        for parent in &self.dependencies {
            if parent == &self.id {
                return Err(Error::new(
                    ErrorKind::InvalidDependencies,
                    format!("task {} depends on itself and could never run", self.id),
                ));
            }
            validate_id(parent).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidDependencies,
                    format!("dependency {parent:?} is not a task id: {e}"),
                )
            })?;
        }
        Ok(())
    }
}

/// Fails with `InvalidTaskType` unless `task_type` can be enqueued and routed.
///
/// # Examples
/// ```
/// assert!(jetjobs::validate_task_type("email:send").is_ok());
/// assert_eq!(
///     jetjobs::validate_task_type("email.send").unwrap_err().kind(),
///     jetjobs::ErrorKind::InvalidTaskType
/// );
/// ```
pub fn validate_task_type(task_type: &str) -> Result<()> {
    validate_type(task_type)
}

fn validate_type(task_type: &str) -> Result<()> {
    if !is_valid_name(task_type) {
        return Err(Error::new(
            ErrorKind::InvalidTaskType,
            format!("task type is invalid: must match ^[a-zA-Z0-9_:-]+$, got {task_type:?}"),
        ));
    }
    if task_type.len() > MAX_NAME_LEN {
        return Err(Error::new(
            ErrorKind::InvalidTaskType,
            format!(
                "task type is invalid: {} bytes long, the limit is {MAX_NAME_LEN}",
                task_type.len()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn validate_id(id: &str) -> Result<()> {
    if !is_valid_name(id) {
        return Err(Error::new(
            ErrorKind::InvalidTaskId,
            format!("task ID is invalid: must match ^[a-zA-Z0-9_:-]+$, got {id:?}"),
        ));
    }
    if id.len() > MAX_NAME_LEN {
        return Err(Error::new(
            ErrorKind::InvalidTaskId,
            format!(
                "task ID is invalid: {} bytes long, the limit is {MAX_NAME_LEN}",
                id.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_task_defaults_match_asyncjobs() -> Result<()> {
        let t = Task::new("email:new", "hello")?;
        assert_eq!(t.max_tries, DEFAULT_MAX_TRIES);
        assert_eq!(t.state, TaskState::New);
        // A string payload is JSON-encoded, quotes included, as Go's json.Marshal does.
        assert_eq!(t.payload.as_deref(), Some(&b"\"hello\""[..]));
        let json: serde_json::Value = serde_json::from_slice(&t.to_json()?)
            .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "test", e))?;
        assert_eq!(json["payload"], "ImhlbGxvIg==");
        Ok(())
    }

    #[test]
    fn dependencies_block_and_dedupe() -> Result<()> {
        let t = Task::new("a", &1)?.depends_on(["x", "y", "x"]);
        assert_eq!(t.dependencies, vec!["x", "y"]);
        assert_eq!(t.state, TaskState::Blocked);
        Ok(())
    }

    #[test]
    fn invalid_names_are_typed_errors() {
        let err = Task::new("bad type", &1).err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::InvalidTaskType));
        let err = Task::new("ok", &1)
            .and_then(|t| t.with_id("no/slash"))
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::InvalidTaskId));
    }

    #[test]
    fn json_numbers_round_trip_exactly_through_documents() -> Result<()> {
        // Parsed without serde_json's `float_roundtrip`, about 9% of doubles change in the last
        // digit; a parent's result copied into a child would then be stored altered.
        let doc = br#"{"id":"a","type":"t","queue":"Q","payload":null,"max_tries":10,"state":"complete","created":"2024-01-01T00:00:00Z","tries":1,"result":{"payload":{"f":1796130929.2805421,"big":18446744073709551615,"neg":-9007199254740993},"completed":"2024-01-01T00:00:01Z"}}"#;
        let task = Task::from_json(doc)?;
        let json = String::from_utf8(task.to_json()?).unwrap_or_default();
        assert!(json.contains(r#""f":1796130929.2805421"#), "{json}");
        assert!(json.contains(r#""big":18446744073709551615"#), "{json}");
        assert!(json.contains(r#""neg":-9007199254740993"#), "{json}");
        Ok(())
    }

    #[test]
    fn null_payload_is_no_payload_like_go() -> Result<()> {
        let t = Task::new("a", &())?;
        assert_eq!(t.payload, None);
        let json: serde_json::Value = serde_json::from_slice(&t.to_json()?)
            .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "test", e))?;
        assert_eq!(json["payload"], serde_json::Value::Null);
        Ok(())
    }

    #[test]
    fn overlong_names_and_self_dependencies_are_refused() -> Result<()> {
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            Task::new(long.as_str(), &1).err().map(|e| e.kind()),
            Some(ErrorKind::InvalidTaskType)
        );
        assert_eq!(
            Task::new("a", &1)?.with_id(long).err().map(|e| e.kind()),
            Some(ErrorKind::InvalidTaskId)
        );
        let selfish = Task::new("a", &1)?.with_id("me")?.depends_on(["me"]);
        assert_eq!(
            selfish.validate().err().map(|e| e.kind()),
            Some(ErrorKind::InvalidDependencies)
        );
        Ok(())
    }

    #[test]
    fn completed_parses_as_complete() -> Result<()> {
        assert_eq!("completed".parse::<TaskState>()?, TaskState::Complete);
        assert!("bogus".parse::<TaskState>().is_err());
        Ok(())
    }
}
