// SPDX-License-Identifier: Apache-2.0
//! Scheduled (cron) tasks: the document asyncjobs keeps in KV `CHORIA_AJ_CONFIGURATION` under
//! `scheduled_tasks.<name>`.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::wire::{Timestamp, base64_bytes};

/// A task created on a cron schedule by the elected scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledTask {
    /// Schedule name (`^[a-zA-Z0-9_:-]+$`).
    pub name: String,
    /// Cron specification (robfig/cron standard syntax).
    pub schedule: String,
    /// Queue the tasks are enqueued to.
    pub queue: String,
    /// Type of the created tasks.
    pub task_type: String,
    /// Payload bytes of the created tasks.
    #[serde(default, with = "base64_bytes")]
    pub payload: Option<Bytes>,
    /// Deadline of each created task, relative to its creation.
    #[serde(
        default,
        with = "crate::wire::nanos",
        skip_serializing_if = "Duration::is_zero"
    )]
    pub deadline: Duration,
    /// Max tries of each created task.
    #[serde(default)]
    pub max_tries: i64,
    /// When the schedule was created.
    pub created_at: Timestamp,
}

impl ScheduledTask {
    /// Parses the stored JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::with_source(ErrorKind::InvalidDocument, "invalid scheduled task", e)
        })
    }

    /// The document exactly as asyncjobs stores it.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        crate::wire::to_go_json(self)
    }
}
