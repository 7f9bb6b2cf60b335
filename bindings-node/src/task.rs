// SPDX-License-Identifier: Apache-2.0
//! `Task`: a JS view of `jetjobs::Task`. The core value is kept as is, so the exact timestamps
//! (the RFC 3339 strings with nanoseconds that signatures cover) are never re-encoded; JS gets
//! them as strings and as bigint nanoseconds, and `lib/index.ts` adds `Date` conveniences.

use std::collections::HashMap;

use bytes::Bytes;
use jetjobs::Timestamp;
use napi::Env;
use napi::bindgen_prelude::{BigInt, Buffer, Either};
use napi_derive::napi;

use crate::error::{check, duration_ms, invalid_option};
use crate::trace::TraceContextSpec;

/// What `enqueue` builds a task from (`Task::new` and its `with_*` options).
#[napi(object, object_to_js = false)]
pub struct TaskSpec {
    /// Routing type.
    #[napi(js_name = "type")]
    pub task_type: String,
    /// The payload: JSON text (as `Task::new` would encode it) or raw bytes; absent means no
    /// payload (`null` on the wire).
    #[napi(ts_type = "string | Buffer")]
    pub payload: Option<Either<String, Buffer>>,
    /// Replaces the generated KSUID.
    pub id: Option<String>,
    /// RFC 3339 time after which the task is not started.
    pub deadline: Option<String>,
    /// Tries before the task expires; 0 or less means unlimited.
    pub max_tries: Option<i64>,
    /// Ids of tasks that must complete first.
    pub dependencies: Option<Vec<String>>,
    /// Hand the dependencies' results to the handler.
    pub load_dependencies: Option<bool>,
    /// Enqueue returns the pending task holding this key instead of storing this one.
    pub unique_key: Option<String>,
    /// How long the key holds after its task is final, in ms (default 0).
    pub unique_for_ms: Option<f64>,
    /// Not started before this long from now, in ms; not with `runAt`.
    pub delay_ms: Option<f64>,
    /// RFC 3339 time before which the task is not started; not with `delayMs`.
    pub run_at: Option<String>,
    /// On an ordered queue, tasks sharing this key run one at a time in enqueue order.
    pub order_key: Option<String>,
    /// The W3C trace context to send with the enqueue, for the handler to continue the trace.
    pub trace_context: Option<TraceContextSpec>,
}

impl TaskSpec {
    pub(crate) fn into_task(self) -> jetjobs::Result<jetjobs::Task> {
        let payload = self.payload.map(|p| match p {
            Either::A(text) => Bytes::from(text),
            Either::B(bytes) => Bytes::copy_from_slice(&bytes),
        });
        let mut task = jetjobs::Task::with_raw_payload(self.task_type, payload)?;
        if let Some(id) = self.id {
            task = task.with_id(id)?;
        }
        if let Some(deadline) = self.deadline {
            task = task.with_deadline(deadline.parse::<Timestamp>()?);
        }
        if let Some(max_tries) = self.max_tries {
            task = task.with_max_tries(max_tries);
        }
        if let Some(dependencies) = self.dependencies {
            task = task.depends_on(dependencies);
        }
        if self.load_dependencies == Some(true) {
            task = task.with_dependency_results();
        }
        match (self.unique_key, self.unique_for_ms) {
            (Some(key), window) => {
                let window = window.map_or(Ok(std::time::Duration::ZERO), |ms| {
                    duration_ms("uniqueForMs", ms)
                })?;
                task = task.with_unique_key(key, window);
            }
            (None, Some(_)) => {
                return Err(crate::error::invalid_option(
                    "uniqueForMs needs a uniqueKey",
                ));
            }
            (None, None) => {}
        }
        match (self.delay_ms, self.run_at) {
            (Some(_), Some(_)) => {
                return Err(invalid_option("give a task a delay or a runAt, not both"));
            }
            (Some(ms), None) => task = task.with_delay(duration_ms("delay", ms)?),
            (None, Some(run_at)) => task = task.with_run_at(run_at.parse::<Timestamp>()?),
            (None, None) => {}
        }
        if let Some(key) = self.order_key {
            task = task.with_order_key(key);
        }
        if let Some(context) = self.trace_context {
            task = task.with_trace_context(context.into_core()?);
        }
        Ok(task)
    }
}

/// A successful handler's stored outcome.
#[napi(object, object_from_js = false)]
pub struct TaskResult {
    /// What the handler returned.
    #[napi(ts_type = "unknown")]
    pub payload: serde_json::Value,
    /// When the handler finished (RFC 3339, exact).
    pub completed: String,
    /// The same instant in nanoseconds since the epoch.
    pub completed_ns: BigInt,
}

impl From<jetjobs::TaskResult> for TaskResult {
    fn from(r: jetjobs::TaskResult) -> Self {
        Self {
            completed: r.completed.to_string(),
            completed_ns: BigInt::from(r.completed.unix_nanos()),
            payload: r.payload,
        }
    }
}

/// A unit of work as stored (the asyncjobs task document).
#[napi]
pub struct Task {
    pub(crate) inner: jetjobs::Task,
}

impl From<jetjobs::Task> for Task {
    fn from(inner: jetjobs::Task) -> Self {
        Self { inner }
    }
}

fn nanos(t: Option<Timestamp>) -> Option<BigInt> {
    t.map(|t| BigInt::from(t.unix_nanos()))
}

#[napi]
impl Task {
    /// Parses a stored task document (the JSON asyncjobs writes).
    #[napi(factory)]
    pub fn from_json(env: &Env, document: Either<String, Buffer>) -> napi::Result<Task> {
        let bytes: &[u8] = match &document {
            Either::A(text) => text.as_bytes(),
            Either::B(buffer) => buffer,
        };
        check(env, jetjobs::Task::from_json(bytes)).map(Task::from)
    }

    /// The task document exactly as asyncjobs stores it.
    #[napi]
    pub fn to_json(&self, env: &Env) -> napi::Result<String> {
        let bytes = check(env, self.inner.to_json())?;
        check(
            env,
            String::from_utf8(bytes).map_err(|_| invalid_option("task document is not UTF-8")),
        )
    }

    /// The bytes asyncjobs signs: `id:queue:type:max_tries:created_ns:deadline_ns:base64(payload)`.
    #[napi]
    pub fn signature_message(&self, env: &Env) -> napi::Result<String> {
        check(env, self.inner.signature_message())
    }

    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    #[napi(getter, js_name = "type")]
    pub fn task_type(&self) -> String {
        self.inner.task_type.clone()
    }

    #[napi(getter)]
    pub fn queue(&self) -> String {
        self.inner.queue.clone()
    }

    #[napi(getter)]
    pub fn dependencies(&self) -> Vec<String> {
        self.inner.dependencies.clone()
    }

    #[napi(getter)]
    pub fn load_dependencies(&self) -> bool {
        self.inner.load_dependencies
    }

    /// Results of the dependencies, by id, when `loadDependencies` is set (null for a parent
    /// that completed without a stored result).
    #[napi(getter)]
    pub fn dependency_results(&self) -> HashMap<String, Option<TaskResult>> {
        self.inner
            .dependency_results
            .iter()
            .map(|(id, r)| (id.clone(), r.clone().map(TaskResult::from)))
            .collect()
    }

    /// The payload bytes; null when the task has none.
    #[napi(getter)]
    pub fn payload_bytes(&self) -> Option<Buffer> {
        self.inner
            .payload
            .as_ref()
            .map(|b| Buffer::from(b.to_vec()))
    }

    /// The payload parsed as JSON (null when there is none), converted as results are: integers
    /// outside JS's safe range (±(2^53 - 1)) become `BigInt`, everything else plain JS values.
    /// Not JSON: `InvalidPayload`.
    #[napi(getter, ts_return_type = "unknown")]
    pub fn payload(&self, env: &Env) -> napi::Result<serde_json::Value> {
        check(env, self.inner.payload_json::<serde_json::Value>())
    }

    /// The payload as text (JSON for tasks made with a JSON payload); null when there is none.
    #[napi(getter)]
    pub fn payload_text(&self) -> Option<String> {
        self.inner
            .payload
            .as_ref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    /// RFC 3339, exact; null when there is no deadline.
    #[napi(getter)]
    pub fn deadline(&self) -> Option<String> {
        self.inner.deadline.map(|t| t.to_string())
    }

    #[napi(getter)]
    pub fn deadline_ns(&self) -> Option<BigInt> {
        nanos(self.inner.deadline)
    }

    /// RFC 3339, exact: the time before which the task is not started; null when it has none.
    #[napi(getter)]
    pub fn run_at(&self) -> Option<String> {
        self.inner.run_at.map(|t| t.to_string())
    }

    #[napi(getter)]
    pub fn run_at_ns(&self) -> Option<BigInt> {
        nanos(self.inner.run_at)
    }

    /// The order key it was enqueued with; null when it has none.
    #[napi(getter)]
    pub fn order_key(&self) -> Option<String> {
        self.inner.order_key.clone()
    }

    /// On an ordered queue, the id of the earlier task of its key this task waits for (its
    /// state stays `new` or `retry`); null when it is not waiting.
    #[napi(getter)]
    pub fn waiting_for(&self) -> Option<String> {
        self.inner.waiting_for.clone()
    }

    #[napi(getter)]
    pub fn max_tries(&self) -> i64 {
        self.inner.max_tries
    }

    #[napi(getter)]
    pub fn result(&self) -> Option<TaskResult> {
        self.inner.result.clone().map(TaskResult::from)
    }

    /// One of `new`, `active`, `retry`, `expired`, `terminated`, `complete`, `queue_error`,
    /// `blocked`, `unreachable` (or `""`).
    #[napi(getter)]
    pub fn state(&self) -> &'static str {
        self.inner.state.as_str()
    }

    /// True in a state no worker moves the task out of on its own (the core's `is_final`).
    #[napi(getter)]
    pub fn is_final(&self) -> bool {
        self.inner.state.is_final()
    }

    /// RFC 3339, exact.
    #[napi(getter)]
    pub fn created(&self) -> String {
        self.inner.created.to_string()
    }

    #[napi(getter)]
    pub fn created_ns(&self) -> BigInt {
        BigInt::from(self.inner.created.unix_nanos())
    }

    #[napi(getter)]
    pub fn tried(&self) -> Option<String> {
        self.inner.tried.map(|t| t.to_string())
    }

    #[napi(getter)]
    pub fn tried_ns(&self) -> Option<BigInt> {
        nanos(self.inner.tried)
    }

    #[napi(getter)]
    pub fn tries(&self) -> i64 {
        self.inner.tries
    }

    #[napi(getter)]
    pub fn last_err(&self) -> String {
        self.inner.last_err.clone()
    }

    /// Hex ed25519 signature; empty when unsigned.
    #[napi(getter)]
    pub fn signature(&self) -> String {
        self.inner.signature.clone()
    }
}
