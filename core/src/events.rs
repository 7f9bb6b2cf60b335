// SPDX-License-Identifier: Apache-2.0
//! Lifecycle events: core NATS publishes on `CHORIA_AJ.E.…`, not persisted, as asyncjobs sends them.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::task::{Task, TaskState};
use crate::wire::{self, Timestamp};

pub use crate::wire::names::EVENTS_SUBJECT_WILDCARD;
/// `type` of [`TaskStateChangeEvent`].
pub const TASK_STATE_EVENT_TYPE: &str = "io.choria.asyncjobs.v1.task_state";
/// `type` of [`LeaderElectedEvent`].
pub const LEADER_ELECTED_EVENT_TYPE: &str = "io.choria.asyncjobs.v1.leader_elected";

/// Published after every stored state change of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStateChangeEvent {
    /// KSUID of the event.
    pub event_id: String,
    /// Always [`TASK_STATE_EVENT_TYPE`].
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event was made (second precision, UTC).
    pub timestamp: Timestamp,
    /// The task's id.
    pub task_id: String,
    /// The state it moved to.
    pub state: TaskState,
    /// Its tries so far.
    pub tries: i64,
    /// Its queue.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub queue: String,
    /// Its type.
    pub task_type: String,
    /// Its last error (`last_error` on the wire, unlike the task's `last_err`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// Nanoseconds since the task was created.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub task_age: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Published when a scheduler becomes leader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderElectedEvent {
    /// KSUID of the event.
    pub event_id: String,
    /// Always [`LEADER_ELECTED_EVENT_TYPE`].
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event was made (second precision, UTC).
    pub timestamp: Timestamp,
    /// The new leader's name.
    pub name: String,
    /// The elected component, `task_scheduler`.
    pub component: String,
}

/// Any lifecycle event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A task changed state.
    TaskState(TaskStateChangeEvent),
    /// A leader was elected.
    LeaderElected(LeaderElectedEvent),
}

impl Event {
    /// Parses an event by its `type`; unknown types are an `UnknownEventType` error.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Kind<'a> {
            #[serde(rename = "type", borrow)]
            event_type: std::borrow::Cow<'a, str>,
        }
        let invalid = |e: serde_json::Error| {
            Error::with_source(ErrorKind::InvalidDocument, "invalid event", e)
        };
        let kind: Kind<'_> = serde_json::from_slice(bytes).map_err(invalid)?;
        match kind.event_type.as_ref() {
            TASK_STATE_EVENT_TYPE => serde_json::from_slice(bytes)
                .map(Event::TaskState)
                .map_err(invalid),
            LEADER_ELECTED_EVENT_TYPE => serde_json::from_slice(bytes)
                .map(Event::LeaderElected)
                .map_err(invalid),
            other => Err(Error::new(
                ErrorKind::UnknownEventType,
                format!("unknown event type: {other}"),
            )),
        }
    }
}

impl Event {
    /// The event's JSON exactly as asyncjobs publishes it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        match self {
            Event::TaskState(e) => wire::to_go_json(e),
            Event::LeaderElected(e) => wire::to_go_json(e),
        }
    }
}

impl TaskStateChangeEvent {
    /// The event describing `task`'s current state.
    pub fn for_task(task: &Task) -> Self {
        let (id, id_time) = wire::new_id_with_time();
        let now = Utc::now();
        let created = task.created.to_utc();
        let created_ms = chrono::DateTime::from_timestamp_millis(
            created.timestamp_millis()
                + i64::from(created.timestamp_subsec_nanos() % 1_000_000 >= 500_000),
        )
        .unwrap_or(created);
        Self {
            timestamp: id_time.into(),
            event_id: id,
            event_type: TASK_STATE_EVENT_TYPE.into(),
            task_id: task.id.clone(),
            state: task.state,
            tries: task.tries,
            queue: task.queue.clone(),
            task_type: task.task_type.clone(),
            last_error: task.last_err.clone(),
            task_age: (now - created_ms).num_nanoseconds().unwrap_or(0),
        }
    }

    /// The subject the event is published on.
    pub fn subject(&self) -> String {
        wire::names::event_subject("task_state", &self.task_id)
    }
}

impl LeaderElectedEvent {
    /// The event `name` publishes when it wins the election of `component`.
    pub fn new(name: &str, component: &str) -> Self {
        let (id, id_time) = wire::new_id_with_time();
        Self {
            timestamp: id_time.into(),
            event_id: id,
            event_type: LEADER_ELECTED_EVENT_TYPE.into(),
            name: name.to_string(),
            component: component.to_string(),
        }
    }

    /// The subject asyncjobs publishes it on: `CHORIA_AJ.E.leader_election.<component>`.
    pub fn subject(&self) -> String {
        wire::names::event_subject("leader_election", &self.component)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_event_type_is_typed() {
        let err = Event::from_json(br#"{"type":"x"}"#).err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::UnknownEventType));
    }

    #[test]
    fn task_event_round_trips() -> Result<()> {
        let task = Task::new("email:new", &1)?;
        let ev = TaskStateChangeEvent::for_task(&task);
        let json = serde_json::to_vec(&ev)
            .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "t", e))?;
        assert_eq!(Event::from_json(&json)?, Event::TaskState(ev));
        Ok(())
    }
}
