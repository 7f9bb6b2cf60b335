// SPDX-License-Identifier: Apache-2.0
//! The `--json` documents. These shapes are a stable interface for scripts (documented field by
//! field in cli/README.md): add fields if needed, never rename or remove one. Times are RFC 3339
//! strings, durations are seconds (a number), absent values are `null`.

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

/// A payload decoded as JSON when it is JSON, else base64; `encoding` says which.
#[derive(Debug, Serialize)]
pub(crate) struct Payload {
    /// The payload: a JSON value, a base64 string, or `null` when there is none.
    pub(crate) payload: Value,
    /// `"json"`, `"base64"` or `null` (no payload).
    pub(crate) payload_encoding: Option<&'static str>,
    /// The payload's size in bytes.
    pub(crate) payload_bytes: usize,
}

impl Payload {
    pub(crate) fn of(bytes: Option<&[u8]>) -> Self {
        match bytes {
            None => Self {
                payload: Value::Null,
                payload_encoding: None,
                payload_bytes: 0,
            },
            Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
                Ok(value) => Self {
                    payload: value,
                    payload_encoding: Some("json"),
                    payload_bytes: bytes.len(),
                },
                Err(_) => Self {
                    payload: Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    payload_encoding: Some("base64"),
                    payload_bytes: bytes.len(),
                },
            },
        }
    }
}

fn time(t: &jetjobs::Timestamp) -> String {
    t.to_string()
}

/// `queue list` (an array of these), `queue info|new|configure`.
#[derive(Debug, Serialize)]
pub(crate) struct QueueJson {
    pub(crate) name: String,
    pub(crate) items: u64,
    pub(crate) in_flight: u64,
    pub(crate) waiting_pulls: u64,
    pub(crate) max_age_seconds: f64,
    pub(crate) max_entries: i64,
    pub(crate) discard_old: bool,
    pub(crate) max_tries: i64,
    pub(crate) max_run_time_seconds: f64,
    pub(crate) max_concurrent: i64,
    pub(crate) order_key_concurrency: u32,
}

impl From<&jetjobs::QueueInfo> for QueueJson {
    fn from(info: &jetjobs::QueueInfo) -> Self {
        let q = &info.queue;
        Self {
            name: q.name.clone(),
            items: info.items,
            in_flight: info.in_flight,
            waiting_pulls: info.waiting_pulls,
            max_age_seconds: q.max_age.as_secs_f64(),
            max_entries: q.max_entries,
            discard_old: q.discard_old,
            max_tries: q.max_tries,
            max_run_time_seconds: q.max_run_time.as_secs_f64(),
            max_concurrent: q.max_concurrent,
            order_key_concurrency: q.order_key_concurrency,
        }
    }
}

/// A completed task's result.
#[derive(Debug, Serialize)]
pub(crate) struct ResultJson {
    pub(crate) payload: Value,
    pub(crate) completed: String,
}

/// `task list` (an array of these), `task view|add`, `task retry` (an array).
#[derive(Debug, Serialize)]
pub(crate) struct TaskJson {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) task_type: String,
    pub(crate) queue: String,
    pub(crate) state: String,
    pub(crate) created: String,
    pub(crate) tried: Option<String>,
    pub(crate) tries: i64,
    pub(crate) max_tries: i64,
    pub(crate) deadline: Option<String>,
    pub(crate) run_at: Option<String>,
    pub(crate) last_error: String,
    pub(crate) dependencies: Vec<String>,
    pub(crate) load_dependencies: bool,
    pub(crate) order_key: Option<String>,
    pub(crate) signed: bool,
    #[serde(flatten)]
    pub(crate) payload: Payload,
    pub(crate) result: Option<ResultJson>,
}

impl From<&jetjobs::Task> for TaskJson {
    fn from(t: &jetjobs::Task) -> Self {
        Self {
            id: t.id.clone(),
            task_type: t.task_type.clone(),
            queue: t.queue.clone(),
            state: t.state.as_str().to_string(),
            created: time(&t.created),
            tried: t.tried.as_ref().map(time),
            tries: t.tries,
            max_tries: t.max_tries,
            deadline: t.deadline.as_ref().map(time),
            run_at: t.run_at.as_ref().map(time),
            last_error: t.last_err.clone(),
            dependencies: t.dependencies.clone(),
            load_dependencies: t.load_dependencies,
            order_key: t.order_key.clone(),
            signed: !t.signature.is_empty(),
            payload: Payload::of(t.payload.as_deref()),
            result: t.result.as_ref().map(|r| ResultJson {
                payload: r.payload.clone(),
                completed: time(&r.completed),
            }),
        }
    }
}

/// `cron list` (an array of these), `cron view|add`.
#[derive(Debug, Serialize)]
pub(crate) struct ScheduleJson {
    pub(crate) name: String,
    pub(crate) schedule: String,
    pub(crate) queue: String,
    pub(crate) task_type: String,
    #[serde(flatten)]
    pub(crate) payload: Payload,
    pub(crate) deadline_seconds: f64,
    pub(crate) max_tries: i64,
    pub(crate) created_at: String,
}

impl From<&jetjobs::ScheduledTask> for ScheduleJson {
    fn from(s: &jetjobs::ScheduledTask) -> Self {
        Self {
            name: s.name.clone(),
            schedule: s.schedule.clone(),
            queue: s.queue.clone(),
            task_type: s.task_type.clone(),
            payload: Payload::of(s.payload.as_deref()),
            deadline_seconds: s.deadline.as_secs_f64(),
            max_tries: s.max_tries,
            created_at: time(&s.created_at),
        }
    }
}

/// The tasks store in `info`.
#[derive(Debug, Serialize)]
pub(crate) struct TasksStoreJson {
    pub(crate) stored: u64,
    pub(crate) bytes: u64,
    pub(crate) memory: bool,
    pub(crate) replicas: usize,
}

/// `info`.
#[derive(Debug, Serialize)]
pub(crate) struct InfoJson {
    pub(crate) tasks: TasksStoreJson,
    pub(crate) scheduler_leader: Option<String>,
    pub(crate) schedules: usize,
    pub(crate) queues: Vec<QueueJson>,
}

/// One lease of a governor.
#[derive(Debug, Serialize)]
pub(crate) struct LeaseJson {
    pub(crate) seq: u64,
    pub(crate) holder: String,
    pub(crate) taken_at: String,
    pub(crate) age_seconds: f64,
}

/// `governor view|add`.
#[derive(Debug, Serialize)]
pub(crate) struct GovernorJson {
    pub(crate) name: String,
    pub(crate) capacity: u64,
    pub(crate) max_age_seconds: f64,
    pub(crate) replicas: usize,
    pub(crate) subject: String,
    pub(crate) active: usize,
    pub(crate) leases: Vec<LeaseJson>,
}

/// `pool nodes|workers` (arrays of these).
#[derive(Debug, Serialize)]
pub(crate) struct PoolMemberJson {
    pub(crate) id: String,
    pub(crate) node: String,
    pub(crate) created_at: String,
}

impl From<&jetjobs::PoolMember> for PoolMemberJson {
    fn from(m: &jetjobs::PoolMember) -> Self {
        Self {
            id: m.id.clone(),
            node: m.node.clone(),
            created_at: time(&m.created_at),
        }
    }
}

/// `pool jobs` (an array of these).
#[derive(Debug, Serialize)]
pub(crate) struct PoolJobJson {
    pub(crate) key: String,
    pub(crate) owner: String,
    pub(crate) generation: u64,
    pub(crate) state: String,
    pub(crate) payload_bytes: usize,
}

impl From<&jetjobs::PoolJobInfo> for PoolJobJson {
    fn from(j: &jetjobs::PoolJobInfo) -> Self {
        Self {
            key: j.key.clone(),
            owner: j.owner.clone(),
            generation: j.generation,
            state: j.state.clone(),
            payload_bytes: j.payload_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_are_json_when_they_are_json() {
        let p = serde_json::to_value(Payload::of(Some(br#"{"a":1}"#))).expect("json");
        assert_eq!(
            p,
            json!({"payload": {"a": 1}, "payload_encoding": "json", "payload_bytes": 7})
        );
        let p = serde_json::to_value(Payload::of(Some(b"\xff\x00"))).expect("json");
        assert_eq!(p["payload"], "/wA=");
        assert_eq!(p["payload_encoding"], "base64");
        let p = serde_json::to_value(Payload::of(None)).expect("json");
        assert_eq!(p["payload"], Value::Null);
        assert_eq!(p["payload_encoding"], Value::Null);
    }

    #[test]
    fn a_task_has_every_documented_field() {
        let task = jetjobs::Task::new("email:send", &json!({"to": "ops"})).expect("task");
        let v = serde_json::to_value(TaskJson::from(&task)).expect("json");
        let mut fields: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "created",
                "deadline",
                "dependencies",
                "id",
                "last_error",
                "load_dependencies",
                "max_tries",
                "order_key",
                "payload",
                "payload_bytes",
                "payload_encoding",
                "queue",
                "result",
                "run_at",
                "signed",
                "state",
                "tried",
                "tries",
                "type"
            ]
        );
        assert_eq!(v["payload"]["to"], "ops");
    }
}
