// SPDX-License-Identifier: Apache-2.0
//! `Router` (a `jetjobs::Mux` of JS handlers) and `ShutdownToken` (a `CancellationToken`), the
//! two things `Client.run` takes.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;

use jetjobs::{CancellationToken, Mux};
use napi::{Env, Status};
use napi_derive::napi;

use crate::error::check;
use crate::handler::{AbortFn, HandlerFn, JsHandler};

/// Routes task types to JS handlers (exact type, else the longest registered prefix, `""` for
/// everything), for one `Client.run`.
///
/// Each handler is held as a threadsafe function, which keeps the Node process alive; they are
/// all released when the `run` they were given to ends.
#[napi]
pub struct Router {
    mux: Option<Mux>,
    on_abort: Option<Arc<AbortFn>>,
    next_call: Arc<AtomicU32>,
}

fn spent() -> napi::Error {
    napi::Error::new(Status::InvalidArg, "this Router was already given to run()")
}

#[napi]
impl Router {
    /// `onAbort(callId)` is called when the processor abandons a handler call (its deadline
    /// passed, or the worker stopped before it finished).
    #[napi(constructor, ts_args_type = "onAbort: (callId: number) => void")]
    pub fn new(on_abort: AbortFn) -> Self {
        Self {
            mux: Some(Mux::new()),
            on_abort: Some(Arc::new(on_abort)),
            next_call: Arc::new(AtomicU32::new(0)),
        }
    }

    /// Registers `handler` for `taskType` (a type or a prefix; `""` matches all). The handler
    /// reports its outcome with `ctx.complete(json)` or `ctx.fail(message, terminate)`.
    #[napi(ts_args_type = "taskType: string, handler: (task: Task, ctx: TaskContext) => void")]
    pub fn handle(&mut self, env: &Env, task_type: String, handler: HandlerFn) -> napi::Result<()> {
        let (Some(mux), Some(on_abort)) = (self.mux.as_mut(), self.on_abort.as_ref()) else {
            return Err(spent());
        };
        let handler = JsHandler {
            function: Arc::new(handler),
            on_abort: on_abort.clone(),
            next_call: self.next_call.clone(),
        };
        check(
            env,
            mux.handle_with(task_type, Arc::new(handler), Vec::new()),
        )
        .map(|_| ())
    }

    /// Releases the handlers without running them.
    #[napi]
    pub fn close(&mut self) {
        self.mux = None;
        self.on_abort = None;
    }

    /// The registered type that `taskType` routes to, if any.
    #[napi]
    pub fn route_for(&self, task_type: String) -> Option<String> {
        self.mux
            .as_ref()
            .and_then(|m| m.route_for(&task_type))
            .map(str::to_owned)
    }
}

impl Router {
    /// Hands the mux to a run; the router keeps no threadsafe function after this.
    pub(crate) fn take_mux(&mut self) -> napi::Result<Mux> {
        self.on_abort = None;
        self.mux.take().ok_or_else(spent)
    }
}

/// Cancelling it stops `Client.run` gracefully.
#[napi]
#[derive(Default)]
pub struct ShutdownToken {
    pub(crate) inner: CancellationToken,
}

#[napi]
impl ShutdownToken {
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    #[napi(getter)]
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}
