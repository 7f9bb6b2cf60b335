// SPDX-License-Identifier: Apache-2.0
//! Scheduled (cron) tasks: the document asyncjobs keeps in KV `CHORIA_AJ_CONFIGURATION` under
//! `scheduled_tasks.<name>` ([`ScheduledTask`]), its cron syntax ([`cron`]) and the leader-elected
//! loop that turns schedules into tasks ([`runner`]).

pub(crate) mod cron;
pub(crate) mod runner;

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::queue::Queue;
use crate::task::Task;
use crate::wire::{Timestamp, base64_bytes};

/// asyncjobs' shortest deadline for a scheduled task.
pub const MIN_SCHEDULE_DEADLINE: Duration = Duration::from_secs(30);

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
    /// A schedule `name` creating tasks like `task` (its type, payload and max tries; its deadline,
    /// if set, as an offset from each firing, rounded to seconds) on `queue` at each time `schedule`
    /// gives. Fails with asyncjobs' rules: `InvalidScheduleName`, `InvalidSchedule`,
    /// `InvalidQueueName`, or `ScheduleDeadlineTooShort` for a deadline under 30 s.
    ///
    /// # Examples
    /// ```
    /// let task = jetjobs::Task::new("report:daily", &serde_json::json!({"to": "ops"}))?;
    /// let nightly = jetjobs::ScheduledTask::new("nightly", "@daily", "REPORTS", &task)?;
    /// assert_eq!(nightly.task_type, "report:daily");
    /// assert!(jetjobs::ScheduledTask::new("nightly", "@fortnightly", "REPORTS", &task).is_err());
    /// # Ok::<(), jetjobs::Error>(())
    /// ```
    pub fn new(name: &str, schedule: &str, queue: &str, task: &Task) -> Result<Self> {
        validate_schedule_name(name)?;
        cron::CronSchedule::parse(schedule)?;
        if queue.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidQueueName,
                "queue name is required",
            ));
        }
        Queue::validate_name(queue)?;
        let deadline = match task.deadline {
            Some(deadline) => {
                let left = deadline.until();
                let rounded = Duration::from_secs((left.as_millis() as u64 + 500) / 1000);
                if rounded < MIN_SCHEDULE_DEADLINE {
                    return Err(Error::new(
                        ErrorKind::ScheduleDeadlineTooShort,
                        format!(
                            "deadline too short: {rounded:?}, the least is {MIN_SCHEDULE_DEADLINE:?}"
                        ),
                    ));
                }
                rounded
            }
            None => Duration::ZERO,
        };
        Ok(Self {
            name: name.to_string(),
            schedule: schedule.to_string(),
            queue: queue.to_string(),
            task_type: task.task_type.clone(),
            payload: task.payload.clone(),
            deadline,
            max_tries: task.max_tries,
            created_at: Timestamp::now(),
        })
    }

    /// The parsed schedule.
    pub fn cron(&self) -> Result<cron::CronSchedule> {
        cron::CronSchedule::parse(&self.schedule)
    }

    /// The task one firing at `now` enqueues.
    pub(crate) fn task_at(&self, now: Timestamp) -> Result<Task> {
        let mut task = Task::with_raw_payload(self.task_type.clone(), self.payload.clone())?;
        task.created = now;
        if !self.deadline.is_zero() {
            task = task.with_deadline(now.add(self.deadline));
        }
        if self.max_tries > 0 {
            task = task.with_max_tries(self.max_tries);
        }
        Ok(task)
    }

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

/// Fails with `InvalidScheduleName` unless `name` is a valid schedule name.
pub fn validate_schedule_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidScheduleName,
            "name is required",
        ));
    }
    if !crate::wire::is_valid_name(name) || name.len() > crate::MAX_QUEUE_NAME_LEN {
        return Err(Error::new(
            ErrorKind::InvalidScheduleName,
            format!("name is invalid: {name:?} must match ^[a-zA-Z0-9_:-]+$"),
        ));
    }
    Ok(())
}
