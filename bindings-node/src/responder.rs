// SPDX-License-Identifier: Apache-2.0
//! `Responder`: the core responder with a JS handler, called as a `Mux`'s handlers are (the JS
//! side reports through `ctx.complete` / `ctx.fail`).

use std::sync::Arc;

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use crate::cancellation_token::CancellationToken;
use crate::client::Client;
use crate::error::{check, positive_count, promise};
use crate::handler::{AbortFn, HandlerFn, JsHandler};

/// Serves one routing type to asyncjobs request-reply workers on `CHORIA_AJ.H.T.<type>`, in a
/// queue group. Its handler is held (keeping the process alive) until `run` ends or `close()`.
#[napi]
pub struct Responder {
    inner: Option<jetjobs::Responder>,
    task_type: String,
    subject: String,
}

fn spent() -> jetjobs::Error {
    jetjobs::Error::new(
        jetjobs::ErrorKind::AlreadyRunning,
        "this Responder is running, has run or was closed; a Responder runs once",
    )
}

#[napi]
impl Responder {
    /// `handler(task, ctx)` reports with `ctx.complete(json)` or `ctx.fail(message, terminate)`;
    /// `onAbort(callId)` is called when a call is abandoned (its deadline passed).
    #[napi(
        constructor,
        ts_args_type = "client: Client, taskType: string, handler: (task: Task, ctx: TaskContext) => void, onAbort: (callId: number) => void, concurrency?: number | undefined | null, queueGroup?: string | undefined | null"
    )]
    pub fn new(
        env: &Env,
        client: &Client,
        task_type: String,
        handler: HandlerFn,
        on_abort: AbortFn,
        concurrency: Option<f64>,
        queue_group: Option<String>,
    ) -> napi::Result<Self> {
        let client = client.client(env)?;
        let handler = JsHandler {
            function: Arc::new(handler),
            on_abort: Arc::new(on_abort),
        };
        let mut inner = check(env, jetjobs::Responder::new(&client, task_type, handler))?;
        if let Some(n) = concurrency {
            inner = inner.concurrency(check(env, positive_count("concurrency", n))?);
        }
        if let Some(group) = queue_group {
            inner = inner.queue_group(group);
        }
        Ok(Self {
            task_type: inner.task_type().to_owned(),
            subject: inner.subject().to_owned(),
            inner: Some(inner),
        })
    }

    /// The routing type served.
    #[napi(getter)]
    pub fn task_type(&self) -> String {
        self.task_type.clone()
    }

    /// The subject served, `CHORIA_AJ.H.T.<type>` (`catchall` for `''`).
    #[napi(getter)]
    pub fn subject(&self) -> String {
        self.subject.clone()
    }

    /// Subscribes now: requests sent once this resolves reach this responder (they wait for
    /// `run`).
    #[napi(ts_return_type = "Promise<void>")]
    pub fn listen<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let inner = check(env, self.inner.clone().ok_or_else(spent))?;
        promise(env, async move { inner.listen().await }, |()| ())
    }

    /// Answers requests until `shutdown` is cancelled, then waits for the running handlers. The
    /// handler is released when the returned promise settles.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn run<'env>(
        &mut self,
        env: &'env Env,
        shutdown: &CancellationToken,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let inner = check(env, self.inner.take().ok_or_else(spent))?;
        let shutdown = shutdown.inner.clone();
        promise(env, async move { inner.run(shutdown).await }, |()| ())
    }

    /// Releases the handler without running.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}
