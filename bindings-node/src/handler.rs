// SPDX-License-Identifier: Apache-2.0
//! A JS function as a `jetjobs::Handler`: the processor calls it through a threadsafe function
//! with the task and a [`TaskContext`]; the JS side (`lib/handler.ts`) runs the user's handler and
//! reports how it went through `ctx.complete(json)` or `ctx.fail(message, terminate)`, which this
//! file turns into a `HandlerResult`. Reporting through the context rather than a returned
//! promise saves the promise bridging on every call.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::BoxFuture;
use jetjobs::{HandlerError, HandlerResult};
use napi::Env;
use napi::bindgen_prelude::{FnArgs, PromiseRaw};
use napi::threadsafe_function::{
    ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi_derive::napi;
use tokio::sync::oneshot;

use crate::error::{promise, to_ms};
use crate::task::Task;
use crate::trace::TraceContext;

/// The JS function the processor calls: `(task, ctx) => void`; it must eventually call
/// `ctx.complete` or `ctx.fail`.
pub(crate) type HandlerFn = ThreadsafeFunction<
    FnArgs<(Task, TaskContext)>,
    UnknownReturnValue,
    FnArgs<(Task, TaskContext)>,
    napi::Status,
    false,
>;

/// The JS function told that a call was abandoned (deadline or hard shutdown): `(callId) => void`.
pub(crate) type AbortFn =
    ThreadsafeFunction<u32, napi::bindgen_prelude::Unknown<'static>, u32, napi::Status, false>;

/// Ids of handler calls, unique in the process (across every `Mux`), so one abort callback can
/// serve every queue of a worker.
static NEXT_CALL: AtomicU32 = AtomicU32::new(0);

/// A registered JS handler.
pub(crate) struct JsHandler {
    pub(crate) function: Arc<HandlerFn>,
    pub(crate) on_abort: Arc<AbortFn>,
}

/// Tells JS when the processor drops a call's future before it finished.
struct AbortOnDrop {
    call: u32,
    on_abort: Arc<AbortFn>,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.on_abort
                .call(self.call, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

/// The call itself failed (a rejection that bypassed `lib/index.ts`, or Node shutting down).
fn failed(e: napi::Error) -> HandlerError {
    if e.reason.is_empty() {
        HandlerError::retry(format!("JS handler call failed: {}", e.status.as_ref()))
    } else {
        HandlerError::retry(e.reason)
    }
}

impl jetjobs::Handler for JsHandler {
    fn call(
        &self,
        ctx: jetjobs::TaskContext,
        task: jetjobs::Task,
    ) -> BoxFuture<'static, HandlerResult> {
        let function = self.function.clone();
        let call = NEXT_CALL.fetch_add(1, Ordering::Relaxed);
        let guard = AbortOnDrop {
            call,
            on_abort: self.on_abort.clone(),
            armed: true,
        };
        Box::pin(async move {
            // Owned by this future, so dropping the future fires it.
            let mut guard = guard;
            let (reply, outcome) = oneshot::channel();
            let ctx = TaskContext {
                inner: ctx,
                call,
                reply: Mutex::new(Some(reply)),
            };
            // `call_async_catch`: a synchronous throw becomes an `Err`, never a fatal exception.
            function
                .call_async_catch(FnArgs::from((Task::from(task), ctx)))
                .await
                .map_err(failed)?;
            let result = outcome.await.unwrap_or_else(|_| {
                Err(HandlerError::retry(
                    "the JS handler ended without reporting an outcome",
                ))
            });
            guard.armed = false;
            result
        })
    }
}

/// A handler's JSON result text as a `HandlerResult`.
fn completed(json: Option<String>) -> HandlerResult {
    match json {
        None => Ok(serde_json::Value::Null),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| HandlerError::retry(format!("invalid handler result: {e}"))),
    }
}

/// A failed try: retried, or with `terminate` never tried again.
fn failure(message: String, terminate: bool) -> HandlerResult {
    if terminate {
        Err(HandlerError::terminate(message))
    } else {
        Err(HandlerError::retry(message))
    }
}

/// The running handler's view of its try (`jetjobs::TaskContext`).
#[napi]
pub struct TaskContext {
    inner: jetjobs::TaskContext,
    call: u32,
    reply: Mutex<Option<oneshot::Sender<HandlerResult>>>,
}

impl TaskContext {
    /// The first report wins; later ones (and reports after the call was abandoned) are ignored.
    fn report(&self, result: HandlerResult) {
        let sender = self
            .reply
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(result);
        }
    }
}

#[napi]
impl TaskContext {
    /// Identifies this call to the abort callback given to `Mux`.
    #[napi(getter)]
    pub fn call_id(&self) -> u32 {
        self.call
    }

    /// Milliseconds left before the deadline.
    #[napi(getter)]
    pub fn remaining_ms(&self) -> f64 {
        to_ms(self.inner.remaining())
    }

    /// The trace context the task's enqueue sent; null when it sent none.
    #[napi(getter)]
    pub fn trace_context(&self) -> Option<TraceContext> {
        self.inner.trace_context().map(TraceContext::from)
    }

    /// True once the deadline passed or the worker is shutting down hard.
    #[napi(getter)]
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }

    /// Reports success; `json` is the result as JSON text (absent for `null`).
    #[napi]
    pub fn complete(&self, json: Option<String>) {
        self.report(completed(json));
    }

    /// Reports a failed try with the text for `last_err`; with `terminate` the task is
    /// terminated (`last_err` becomes `<message>: terminate task`).
    #[napi]
    pub fn fail(&self, message: String, terminate: Option<bool>) {
        self.report(failure(message, terminate.unwrap_or(false)));
    }

    /// Tells JetStream the task is still being worked on and moves the deadline a full max run
    /// time ahead.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn mark_in_progress<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let ctx = self.inner.clone();
        promise(env, async move { ctx.mark_in_progress().await }, |()| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_become_handler_results() {
        assert_eq!(
            completed(Some(r#"{"a":1}"#.into())),
            Ok(serde_json::json!({"a": 1}))
        );
        assert_eq!(completed(None), Ok(serde_json::Value::Null));
        assert!(completed(Some("{".into())).is_err_and(|e| !e.is_terminate()));
        assert_eq!(
            failure("Error: x".into(), false),
            Err(HandlerError::retry("Error: x"))
        );
        let terminated = failure("bad".into(), true);
        assert_eq!(
            terminated.err().map(|e| (e.is_terminate(), e.to_string())),
            Some((true, "bad: terminate task".into()))
        );
    }
}
