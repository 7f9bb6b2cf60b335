// SPDX-License-Identifier: Apache-2.0
//! Waiting for results: one subscription to task-state events per client, shared by every waiter,
//! so thousands of waiters cost one subscription and a load or two each, never a poll per task.
//!
//! A waiter registers before it loads the task, so an event published between the load and the
//! wait is not missed. Events are not persisted: after a reconnect (when events may have been
//! lost) every waiter loads its task once more.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Notify, OnceCell};

use crate::error::{Error, ErrorKind, Result};
use crate::events::Event;
use crate::task::{Task, TaskState};
use crate::wire::names::event_subject;

/// How often the dispatcher looks for a reconnect, which may have lost events.
const RECONNECT_CHECK: Duration = Duration::from_secs(1);

/// The waiters of one client and the subscription that wakes them.
pub(crate) struct ResultWaiters {
    nats: async_nats::Client,
    registry: Arc<Mutex<Registry>>,
    listening: OnceCell<()>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    waiting: HashMap<String, Vec<(u64, Arc<Notify>)>>,
}

impl Registry {
    fn wake(&self, task_id: &str) {
        for (_, notify) in self.waiting.get(task_id).into_iter().flatten() {
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for (_, notify) in self.waiting.values().flatten() {
            notify.notify_one();
        }
    }
}

/// One waiter's place in the registry; leaving it (drop) removes it.
pub(crate) struct Registration {
    registry: Weak<Mutex<Registry>>,
    task_id: String,
    id: u64,
    notify: Arc<Notify>,
}

impl Registration {
    /// Resolves when an event says the task may have reached a final state (or events may have
    /// been lost); a wake-up before the first call is kept.
    pub(crate) async fn changed(&self) {
        self.notify.notified().await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let Some(registry) = self.registry.upgrade() else {
            return;
        };
        let mut registry = registry.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = registry.waiting.get_mut(&self.task_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                registry.waiting.remove(&self.task_id);
            }
        }
    }
}

impl ResultWaiters {
    pub(crate) fn new(nats: async_nats::Client) -> Self {
        Self {
            nats,
            registry: Arc::default(),
            listening: OnceCell::new(),
        }
    }

    /// Registers a waiter for `task_id`, subscribing first if this is the client's first.
    pub(crate) async fn register(&self, task_id: &str) -> Result<Registration> {
        self.listening.get_or_try_init(|| self.listen()).await?;
        let notify = Arc::new(Notify::new());
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.next_id += 1;
        let id = registry.next_id;
        registry
            .waiting
            .entry(task_id.to_string())
            .or_default()
            .push((id, notify.clone()));
        Ok(Registration {
            registry: Arc::downgrade(&self.registry),
            task_id: task_id.to_string(),
            id,
            notify,
        })
    }

    /// Subscribes to every task's state events and dispatches them until the subscription or
    /// the client ends.
    async fn listen(&self) -> Result<()> {
        let mut events = self
            .nats
            .subscribe(event_subject("task_state", "*"))
            .await
            .map_err(|e| Error::storage("subscribing to task events", e))?;
        self.nats
            .flush()
            .await
            .map_err(|e| Error::storage("subscribing to task events", e))?;
        let registry = Arc::downgrade(&self.registry);
        let nats = self.nats.clone();
        tokio::spawn(async move {
            let connects = || nats.statistics().connects.load(Ordering::Relaxed);
            let mut seen_connects = connects();
            let mut reconnect_check = tokio::time::interval(RECONNECT_CHECK);
            loop {
                tokio::select! {
                    message = events.next() => {
                        let Some(registry) = registry.upgrade() else { return };
                        let registry = registry.lock().unwrap_or_else(|p| p.into_inner());
                        let Some(message) = message else {
                            // The connection is gone: every waiter finds out by loading.
                            registry.wake_all();
                            return;
                        };
                        if let Ok(Event::TaskState(event)) = Event::from_json(&message.payload)
                            && event.state.is_final()
                        {
                            registry.wake(&event.task_id);
                        }
                    }
                    _ = reconnect_check.tick() => {
                        let Some(registry) = registry.upgrade() else { return };
                        let now = connects();
                        if now != seen_connects {
                            seen_connects = now;
                            registry.lock().unwrap_or_else(|p| p.into_inner()).wake_all();
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

/// The outcome a waiter returns for a final task: the task if it completed, else its error.
pub(crate) fn settle(task: Task) -> Result<Task> {
    if task.state == TaskState::Complete {
        return Ok(task);
    }
    let reason = if task.last_err.is_empty() {
        String::new()
    } else {
        format!(": {}", task.last_err)
    };
    Err(Error::new(
        ErrorKind::TaskFailed,
        format!("task {} is {}{reason}", task.id, task.state),
    ))
}

/// The error of a wait that ran out of time.
pub(crate) fn timed_out(task_id: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!("task {task_id} was not final after {timeout:?}"),
    )
}
