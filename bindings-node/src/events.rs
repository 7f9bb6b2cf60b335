// SPDX-License-Identifier: Apache-2.0
//! `EventStream`: the core's lifecycle event stream, pulled one event per `next()`;
//! `lib/events.ts` makes it an async iterator.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;
use jetjobs::CancellationToken;
use napi::Env;
use napi::bindgen_prelude::{BigInt, PromiseRaw};
use napi_derive::napi;
use tokio::sync::Mutex;

use crate::error::promise;

/// A lifecycle event. `kind` tells which fields are set: `task_state` events carry the task's
/// fields, `leader_elected` events `name` and `component`.
#[napi(object, object_from_js = false)]
pub struct LifecycleEvent {
    #[napi(ts_type = "'task_state' | 'leader_elected'")]
    pub kind: String,
    /// The wire `type`, e.g. `io.choria.asyncjobs.v1.task_state`.
    #[napi(js_name = "type")]
    pub event_type: String,
    pub event_id: String,
    /// RFC 3339, exact.
    pub timestamp: String,
    pub task_id: Option<String>,
    pub state: Option<String>,
    pub tries: Option<i64>,
    pub queue: Option<String>,
    pub task_type: Option<String>,
    pub last_error: Option<String>,
    /// Nanoseconds since the task was created.
    pub task_age_ns: Option<BigInt>,
    pub name: Option<String>,
    pub component: Option<String>,
}

impl From<jetjobs::Event> for LifecycleEvent {
    fn from(event: jetjobs::Event) -> Self {
        match event {
            jetjobs::Event::TaskState(e) => Self {
                kind: "task_state".into(),
                event_type: e.event_type,
                event_id: e.event_id,
                timestamp: e.timestamp.to_string(),
                task_id: Some(e.task_id),
                state: Some(e.state.as_str().into()),
                tries: Some(e.tries),
                queue: Some(e.queue),
                task_type: Some(e.task_type),
                last_error: Some(e.last_error),
                task_age_ns: Some(BigInt::from(e.task_age)),
                name: None,
                component: None,
            },
            jetjobs::Event::LeaderElected(e) => Self {
                kind: "leader_elected".into(),
                event_type: e.event_type,
                event_id: e.event_id,
                timestamp: e.timestamp.to_string(),
                task_id: None,
                state: None,
                tries: None,
                queue: None,
                task_type: None,
                last_error: None,
                task_age_ns: None,
                name: Some(e.name),
                component: Some(e.component),
            },
        }
    }
}

type Events = BoxStream<'static, jetjobs::Result<jetjobs::Event>>;

/// A subscription to lifecycle events.
#[napi]
pub struct EventStream {
    stream: Arc<Mutex<Option<Events>>>,
    closed: CancellationToken,
}

impl From<Events> for EventStream {
    fn from(stream: Events) -> Self {
        Self {
            stream: Arc::new(Mutex::new(Some(stream))),
            closed: CancellationToken::new(),
        }
    }
}

#[napi]
impl EventStream {
    /// The next event, or null once the stream is closed.
    #[napi(ts_return_type = "Promise<LifecycleEvent | null>")]
    pub fn next<'env>(
        &self,
        env: &'env Env,
    ) -> napi::Result<PromiseRaw<'env, Option<LifecycleEvent>>> {
        let (stream, closed) = (self.stream.clone(), self.closed.clone());
        let next = async move {
            let mut guard = stream.lock().await;
            let Some(events) = guard.as_mut() else {
                return Ok(None);
            };
            let next = tokio::select! {
                biased;
                _ = closed.cancelled() => None,
                next = events.next() => next,
            };
            if next.is_none() {
                // Unsubscribe now rather than when JS collects this object.
                *guard = None;
            }
            next.transpose().map(|e| e.map(LifecycleEvent::from))
        };
        promise(env, next, |e| e)
    }

    /// Ends the subscription; a pending and every later `next()` resolve to null.
    #[napi]
    pub fn close(&self) {
        self.closed.cancel();
        if let Ok(mut guard) = self.stream.try_lock() {
            *guard = None;
        }
    }
}
