// SPDX-License-Identifier: Apache-2.0
//! Routing of task types to handlers, with asyncjobs' rules: exact type, else the longest
//! registered prefix (`""` catches everything), else a built-in "no handler" failure.

use std::future::Future;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::handler::{Handler, HandlerError, HandlerResult, TaskContext};
use crate::task::Task;

/// Wraps a handler in another, e.g. for logging, timing or short-circuiting.
pub type Middleware = Arc<dyn Fn(Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync>;

/// Composes middleware so that `chain([a, b, c])` wraps a handler as `a(b(c(h)))`.
pub fn chain(middleware: Vec<Middleware>) -> Middleware {
    Arc::new(move |handler| wrap(&middleware, handler))
}

fn wrap(middleware: &[Middleware], handler: Arc<dyn Handler>) -> Arc<dyn Handler> {
    middleware.iter().rev().fold(handler, |h, mw| mw(h))
}

#[derive(Clone)]
struct Route {
    task_type: String,
    handler: Arc<dyn Handler>,
    middleware: Vec<Middleware>,
    wrapped: Arc<dyn Handler>,
    /// Gates this route's starts, inside the worker's own admission step.
    admission: Option<Arc<dyn crate::Admission>>,
    /// The innermost wrapper that goes with `admission` (a per-key field's check), if any.
    guard: Option<Middleware>,
}

impl Route {
    fn rewrap(&mut self, global: &[Middleware]) {
        let handler = match &self.guard {
            Some(guard) => guard(self.handler.clone()),
            None => self.handler.clone(),
        };
        self.wrapped = wrap(global, wrap(&self.middleware, handler));
    }
}

/// A task router.
///
/// # Examples
/// ```
/// use jetjobs::{Mux, HandlerError};
/// let mut mux = Mux::new();
/// mux.handle("email:", |_ctx, task: jetjobs::Task| async move {
///     Ok::<_, HandlerError>(serde_json::json!({"type": task.task_type}))
/// })?;
/// assert!(mux.route_for("email:new").is_some());
/// assert!(mux.route_for("sms:new").is_none());
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Mux {
    routes: Vec<Route>,
    global: Vec<Middleware>,
}

impl Mux {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an async function for `task_type` (a type or a prefix; `""` matches all).
    pub fn handle<F, Fut>(&mut self, task_type: impl Into<String>, f: F) -> Result<&mut Self>
    where
        F: Fn(TaskContext, Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.handle_with(task_type, Arc::new(f), Vec::new())
    }

    /// Registers a handler with per-route middleware, applied inside the global middleware.
    pub fn handle_with(
        &mut self,
        task_type: impl Into<String>,
        handler: Arc<dyn Handler>,
        middleware: Vec<Middleware>,
    ) -> Result<&mut Self> {
        let task_type = task_type.into();
        // "" is the catch-all; any other route must be a type (or prefix) a task can have.
        if !task_type.is_empty() {
            crate::task::validate_task_type(&task_type)?;
        }
        if self.routes.iter().any(|r| r.task_type == task_type) {
            return Err(Error::new(
                ErrorKind::DuplicateHandler,
                format!("duplicate handler for task type {task_type:?}"),
            ));
        }
        let wrapped = wrap(&self.global, wrap(&middleware, handler.clone()));
        self.routes.push(Route {
            task_type,
            handler,
            middleware,
            wrapped,
            admission: None,
            guard: None,
        });
        // Longest prefix first, so the first match is the most specific.
        self.routes
            .sort_by_key(|r| std::cmp::Reverse(r.task_type.len()));
        Ok(self)
    }

    /// Routes `task_type` to remote responders over NATS request-reply, as asyncjobs'
    /// `Mux.RequestReply` does: each try sends the task to `CHORIA_AJ.H.T.<task_type>` (`catchall`
    /// for `""`) on `client`'s connection, with asyncjobs' headers and the try's deadline. See
    /// [`Responder`](crate::Responder) for the other side.
    ///
    /// A reply with `AJ-Terminate` terminates the task, one with `AJ-Error` fails the try; any
    /// other reply completes it with the reply bytes as the result, base64-encoded as asyncjobs
    /// stores them. No responder, a timeout (`request-reply callout failed: …`) or less than 3 s
    /// left (`deadline too short`) fail the try.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// let mut mux = jetjobs::Mux::new();
    /// mux.request_reply("email:send", &client)?;
    /// # Ok(()) }
    /// ```
    pub fn request_reply(
        &mut self,
        task_type: impl Into<String>,
        client: &crate::Client,
    ) -> Result<&mut Self> {
        let task_type = task_type.into();
        let handler = crate::delegated::RequestReply::new(client.nats().clone(), &task_type);
        self.handle_with(task_type, Arc::new(handler), Vec::new())
    }

    /// Routes `task_type` to an external command, as asyncjobs' `Mux.ExternalProcess` does: each
    /// try runs `command` with no arguments, no stdin and only `CHORIA_AJ_TASK` in its
    /// environment, the path of a temporary file holding the task document. Exit 0 completes the
    /// task with the combined stdout and stderr as a string; another exit fails the try
    /// (`execution failed: exit status N`). A command that does not exist (checked on each try)
    /// fails it with `command not found`.
    ///
    /// # Examples
    /// ```
    /// let mut mux = jetjobs::Mux::new();
    /// mux.external_process("report:build", "/usr/local/bin/build-report")?;
    /// assert_eq!(mux.route_for("report:build"), Some("report:build"));
    /// # Ok::<(), jetjobs::Error>(())
    /// ```
    pub fn external_process(
        &mut self,
        task_type: impl Into<String>,
        command: impl Into<std::path::PathBuf>,
    ) -> Result<&mut Self> {
        let handler = crate::delegated::ExternalProcess::new(command.into());
        self.handle_with(task_type, Arc::new(handler), Vec::new())
    }

    /// Gates the starts of route `task_type` (registered already) with `admission`, after the
    /// worker's own admission step: while it says "later" a task waits without a try and
    /// without a handler slot, until its deadline.
    pub fn route_admission(
        &mut self,
        task_type: &str,
        admission: Arc<dyn crate::Admission>,
    ) -> Result<&mut Self> {
        self.gate(task_type, admission, None)
    }

    /// Sets route `task_type`'s admission and the guard that goes with it.
    fn gate(
        &mut self,
        task_type: &str,
        admission: Arc<dyn crate::Admission>,
        guard: Option<Middleware>,
    ) -> Result<&mut Self> {
        let route = self
            .routes
            .iter_mut()
            .find(|r| r.task_type == task_type)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOption,
                    format!("no route {task_type:?} to gate; register its handler first"),
                )
            })?;
        route.admission = Some(admission);
        route.guard = guard;
        route.rewrap(&self.global);
        Ok(self)
    }

    /// Runs route `task_type` only while holding a slot of `governor` (fleet-wide, across queues
    /// and processes; Go's choria governor users share it). Each task campaigns as its id; with
    /// [`Governor::without_leaving`](crate::Governor::without_leaving) this is a rate limit: at
    /// most the governor's limit of starts per its max age.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// use std::time::Duration;
    /// jetjobs::GovernorManager::create(&client, "DB", 2, Duration::from_secs(600), 1, None).await?;
    /// let mut mux = jetjobs::Mux::new();
    /// mux.handle("db:migrate", |_ctx, _task| async { Ok(serde_json::json!("done")) })?
    ///     .governed("db:migrate", jetjobs::Governor::new(&client, "DB")?)?;
    /// # Ok(()) }
    /// ```
    pub fn governed(&mut self, task_type: &str, governor: crate::Governor) -> Result<&mut Self> {
        self.route_admission(task_type, Arc::new(governor))
    }

    /// Runs route `task_type` only while holding a slot of the per-key governor `name` for the
    /// task's key (`key`, e.g. its tenant); see
    /// [`GovernorManager::create_per_key`](crate::GovernorManager::create_per_key).
    pub fn governed_per_key(
        &mut self,
        task_type: &str,
        client: &crate::Client,
        name: &str,
        key: impl Fn(&Task) -> String + Send + Sync + 'static,
    ) -> Result<&mut Self> {
        let admission = crate::coord::governor::PerKeyAdmission {
            client: client.clone(),
            name: name.to_string(),
            key: Box::new(key),
        };
        self.route_admission(task_type, Arc::new(admission))
    }

    /// Like [`governed_per_key`](Self::governed_per_key), with each task's key read from its JSON
    /// payload at `pointer` (RFC 6901: `"/tenant"`, `"/account/id"`, or `""` for the whole
    /// payload), the form the Python and Node bindings use. A string is the key as it is, a
    /// number its JSON text (`42`). A task with no usable key (the payload is not JSON, the value
    /// is missing or of another type, or it is not one subject token: empty, or with `.`, `*`,
    /// `>` or whitespace) takes no slot and is **terminated** with the reason as its error
    /// (`governor TENANT: the payload has no key at "/tenant": terminate task`), as a retry could never find a
    /// key; its handler does not run. `InvalidOption` for an invalid governor name or pointer, or
    /// no such route.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// use std::time::Duration;
    /// jetjobs::GovernorManager::create_per_key(&client, "TENANT", 1, Duration::from_secs(600), 1).await?;
    /// let mut mux = jetjobs::Mux::new();
    /// mux.handle("report", |_ctx, _task| async { Ok(serde_json::json!("done")) })?
    ///     .governed_per_key_field("report", &client, "TENANT", "/tenant")?;
    /// # Ok(()) }
    /// ```
    pub fn governed_per_key_field(
        &mut self,
        task_type: &str,
        client: &crate::Client,
        name: &str,
        pointer: &str,
    ) -> Result<&mut Self> {
        let field = Arc::new(crate::coord::governor::KeyField::new(
            client, name, pointer,
        )?);
        let guard = field.guard();
        self.gate(task_type, field, Some(guard))
    }

    /// The route's own admission step for `task_type`, if it has one.
    pub(crate) fn admission_for(&self, task_type: &str) -> Option<Arc<dyn crate::Admission>> {
        self.find(task_type).and_then(|r| r.admission.clone())
    }

    /// Adds global middleware, outermost first in the order added; existing routes are rewrapped.
    pub fn use_middleware(&mut self, middleware: Middleware) -> &mut Self {
        self.global.push(middleware);
        for route in &mut self.routes {
            route.rewrap(&self.global);
        }
        self
    }

    /// The registered type that `task_type` routes to, if any.
    pub fn route_for(&self, task_type: &str) -> Option<&str> {
        self.find(task_type).map(|r| r.task_type.as_str())
    }

    fn find(&self, task_type: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.task_type == task_type)
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| task_type.starts_with(&r.task_type))
            })
    }

    /// The wrapped handler for `task_type`, or the built-in one that fails every try.
    pub fn handler_for(&self, task_type: &str) -> Arc<dyn Handler> {
        match self.find(task_type) {
            Some(route) => route.wrapped.clone(),
            None => Arc::new(NoHandler),
        }
    }
}

/// Not wrapped by middleware, as in asyncjobs: the failure is an ordinary retryable error.
struct NoHandler;

impl Handler for NoHandler {
    fn call(
        &self,
        _ctx: TaskContext,
        task: Task,
    ) -> futures::future::BoxFuture<'static, HandlerResult> {
        let message = format!("no handler for task type {:?}", task.task_type);
        Box::pin(async move { Err(HandlerError::retry(message)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    fn echo(name: &'static str) -> Arc<dyn Handler> {
        Arc::new(move |_ctx: TaskContext, _t: Task| async move { Ok(serde_json::json!(name)) })
    }

    fn recorder(log: Arc<Mutex<Vec<String>>>, name: &'static str) -> Middleware {
        Arc::new(move |next: Arc<dyn Handler>| {
            let log = log.clone();
            Arc::new(move |ctx: TaskContext, task: Task| {
                let (log, next) = (log.clone(), next.clone());
                async move {
                    log.lock()
                        .map_err(|e| HandlerError::retry(e.to_string()))?
                        .push(name.into());
                    next.call(ctx, task).await
                }
            }) as Arc<dyn Handler>
        })
    }

    async fn run(mux: &Mux, task_type: &str) -> HandlerResult {
        let task = Task::new(task_type, &1).map_err(|e| HandlerError::retry(e.to_string()))?;
        mux.handler_for(task_type)
            .call(TaskContext::detached(Duration::from_secs(1)), task)
            .await
    }

    #[tokio::test]
    async fn longest_prefix_wins_and_catch_all_is_last() -> Result<()> {
        let mut mux = Mux::new();
        mux.handle_with("", echo("all"), vec![])?
            .handle_with("things:", echo("things"), vec![])?
            .handle_with("things:special", echo("special"), vec![])?;
        assert_eq!(
            run(&mux, "things:special").await,
            Ok(serde_json::json!("special"))
        );
        assert_eq!(
            run(&mux, "things:other").await,
            Ok(serde_json::json!("things"))
        );
        assert_eq!(run(&mux, "else").await, Ok(serde_json::json!("all")));
        Ok(())
    }

    #[tokio::test]
    async fn unknown_type_fails_with_asyncjobs_text_and_duplicates_are_refused() -> Result<()> {
        let mut mux = Mux::new();
        mux.handle_with("a", echo("a"), vec![])?;
        let err = run(&mux, "b").await.err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("no handler for task type \"b\""));
        let dup = mux
            .handle_with("a", echo("a"), vec![])
            .err()
            .map(|e| e.kind());
        assert_eq!(dup, Some(ErrorKind::DuplicateHandler));
        // A type no task can have is refused when registered, not found out when tasks expire.
        let unroutable = mux
            .handle_with("email.send", echo("x"), vec![])
            .err()
            .map(|e| e.kind());
        assert_eq!(unroutable, Some(ErrorKind::InvalidTaskType));
        Ok(())
    }

    #[tokio::test]
    async fn middleware_order_is_global_then_route_and_late_use_rewraps() -> Result<()> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut mux = Mux::new();
        mux.use_middleware(recorder(log.clone(), "g1"));
        mux.handle_with(
            "a",
            echo("a"),
            vec![recorder(log.clone(), "r1"), recorder(log.clone(), "r2")],
        )?;
        mux.use_middleware(recorder(log.clone(), "g2"));
        run(&mux, "a")
            .await
            .map_err(|e| Error::new(ErrorKind::Storage, e.to_string()))?;
        assert_eq!(
            *log.lock()
                .map_err(|e| Error::new(ErrorKind::Storage, e.to_string()))?,
            ["g1", "g2", "r1", "r2"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn chain_composes_outermost_first() -> Result<()> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mw = chain(vec![recorder(log.clone(), "a"), recorder(log.clone(), "b")]);
        let h = mw(echo("x"));
        let task = Task::new("t", &1)?;
        let _ = h
            .call(TaskContext::detached(Duration::from_secs(1)), task)
            .await;
        assert_eq!(
            *log.lock()
                .map_err(|e| Error::new(ErrorKind::Storage, e.to_string()))?,
            ["a", "b"]
        );
        Ok(())
    }
}
