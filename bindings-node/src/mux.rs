// SPDX-License-Identifier: Apache-2.0
//! `Mux`: a `jetjobs::Mux` of JS handlers, handed to `Worker.consume` for one queue.

use std::sync::Arc;

use napi::{Env, Status};
use napi_derive::napi;

use crate::client::Client;
use crate::error::check;
use crate::governor::Governor;
use crate::handler::{AbortFn, HandlerFn, JsHandler};

/// Routes task types to JS handlers (exact type, else the longest registered prefix, `""` for
/// everything), for one queue of a `Worker`.
///
/// Each handler is held as a threadsafe function, which keeps the Node process alive; they are
/// all released when the worker run they were given to ends (or by `close()`).
#[napi]
pub struct Mux {
    mux: Option<jetjobs::Mux>,
    on_abort: Option<Arc<AbortFn>>,
}

fn spent() -> napi::Error {
    napi::Error::new(
        Status::InvalidArg,
        "this Mux was already given to a worker or closed",
    )
}

#[napi]
impl Mux {
    /// `onAbort(callId)` is called when the worker abandons a handler call (its deadline
    /// passed, or the worker stopped before it finished).
    #[napi(constructor, ts_args_type = "onAbort: (callId: number) => void")]
    pub fn new(on_abort: AbortFn) -> Self {
        Self {
            mux: Some(jetjobs::Mux::new()),
            on_abort: Some(Arc::new(on_abort)),
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
        };
        check(
            env,
            mux.handle_with(task_type, Arc::new(handler), Vec::new()),
        )
        .map(|_| ())
    }

    /// Routes `taskType` to remote responders over NATS request-reply on `client`'s connection
    /// (asyncjobs' `Mux.RequestReply`): each try is a request to `CHORIA_AJ.H.T.<taskType>`.
    #[napi]
    pub fn request_reply(
        &mut self,
        env: &Env,
        task_type: String,
        client: &Client,
    ) -> napi::Result<()> {
        let client = client.client(env)?;
        let mux = self.mux.as_mut().ok_or_else(spent)?;
        check(env, mux.request_reply(task_type, &client)).map(|_| ())
    }

    /// Routes `taskType` to an external command (asyncjobs' `Mux.ExternalProcess`).
    #[napi]
    pub fn external_process(
        &mut self,
        env: &Env,
        task_type: String,
        command: String,
    ) -> napi::Result<()> {
        let mux = self.mux.as_mut().ok_or_else(spent)?;
        check(env, mux.external_process(task_type, command)).map(|_| ())
    }

    /// Runs route `taskType` (registered already) only while holding a slot of `governor`: each
    /// task campaigns as its id, waiting without a try and without a handler slot, and gives the
    /// slot back when its handler ends. Throws `InvalidOption` if there is no such route.
    #[napi]
    pub fn governed(
        &mut self,
        env: &Env,
        task_type: String,
        governor: &Governor,
    ) -> napi::Result<()> {
        let mux = self.mux.as_mut().ok_or_else(spent)?;
        check(env, mux.governed(&task_type, governor.inner.clone())).map(|_| ())
    }

    /// Runs route `taskType` (registered already) only while holding a slot of the per-key
    /// governor `name` for the task's key, read from its JSON payload at `pointer` (RFC 6901,
    /// e.g. `"/tenant"`; a string as it is, a number as its text). A task without a usable key is
    /// terminated with the reason. Throws `InvalidOption` for a bad name or pointer, or no such
    /// route.
    #[napi]
    pub fn governed_per_key_field(
        &mut self,
        env: &Env,
        task_type: String,
        client: &Client,
        name: String,
        pointer: String,
    ) -> napi::Result<()> {
        let client = client.client(env)?;
        let mux = self.mux.as_mut().ok_or_else(spent)?;
        check(
            env,
            mux.governed_per_key_field(&task_type, &client, &name, &pointer),
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

impl Mux {
    /// Hands the core mux to a worker; this object keeps no threadsafe function after this.
    pub(crate) fn take(&mut self) -> napi::Result<jetjobs::Mux> {
        self.on_abort = None;
        self.mux.take().ok_or_else(spent)
    }
}
