// SPDX-License-Identifier: Apache-2.0
//! Scheduled tasks: create, load, list, remove and watch the schedules in
//! `CHORIA_AJ_CONFIGURATION`, where Go asyncjobs (`ajc task cron`) keeps them too.

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::scheduler::{ScheduledTask, validate_schedule_name};
use crate::store::{Kv, KvBucket, KvOperation};
use crate::wire::names::{CONFIG_BUCKET, SCHEDULED_TASKS_PREFIX};

/// A change to the schedules, as [`Client::watch_schedules`] reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleChange {
    /// A schedule was stored (created or replaced).
    Stored(ScheduledTask),
    /// The schedule of this name was removed.
    Removed(String),
}

impl Client {
    /// Stores `schedule`; fails with `ScheduleExists` if one of that name exists (as asyncjobs'
    /// `NewScheduledTask`). The elected scheduler starts firing it without a restart.
    pub async fn create_schedule(&self, schedule: &ScheduledTask) -> Result<ScheduledTask> {
        validate_schedule_name(&schedule.name)?;
        schedule.cron()?;
        let document = Bytes::from(schedule.to_json()?);
        match self
            .schedules_kv()
            .await?
            .create(&key(&schedule.name), document)
            .await
        {
            Ok(_) => Ok(schedule.clone()),
            Err(e) if e.kind() == ErrorKind::KeyExists => Err(Error::new(
                ErrorKind::ScheduleExists,
                format!("scheduled task already exist: {}", schedule.name),
            )),
            Err(e) => Err(e),
        }
    }

    /// The schedule named `name`; `ScheduleNotFound` if there is none.
    pub async fn load_schedule(&self, name: &str) -> Result<ScheduledTask> {
        validate_schedule_name(name)?;
        match self.schedules_kv().await?.get(&key(name)).await? {
            Some(entry) => ScheduledTask::from_json(&entry.value),
            None => Err(Error::new(
                ErrorKind::ScheduleNotFound,
                format!("scheduled task not found: {name}"),
            )),
        }
    }

    /// Every schedule, by name.
    pub async fn schedules(&self) -> Result<Vec<ScheduledTask>> {
        let kv = self.schedules_kv().await?;
        let mut out = Vec::new();
        for key in kv.keys().await? {
            let Some(name) = key.strip_prefix(SCHEDULED_TASKS_PREFIX) else {
                continue;
            };
            if let Some(entry) = kv.get(&key).await? {
                match ScheduledTask::from_json(&entry.value) {
                    Ok(schedule) => out.push(schedule),
                    Err(e) => {
                        tracing::warn!(schedule = %name, error = %e, "skipping an invalid schedule")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes the schedule named `name`; `ScheduleNotFound` if there is none.
    pub async fn remove_schedule(&self, name: &str) -> Result<()> {
        self.load_schedule(name).await?;
        self.schedules_kv().await?.delete(&key(name), None).await
    }

    /// Every schedule as it is now, then each change as it happens. A stored document that does
    /// not parse is skipped with a warning.
    pub async fn watch_schedules(&self) -> Result<BoxStream<'static, Result<ScheduleChange>>> {
        let watch = self
            .schedules_kv()
            .await?
            .watch(&format!("{SCHEDULED_TASKS_PREFIX}*"), None)
            .await?;
        Ok(watch
            .filter_map(|entry| async move {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => return Some(Err(e)),
                };
                let name = entry.key.strip_prefix(SCHEDULED_TASKS_PREFIX)?.to_string();
                match entry.operation {
                    KvOperation::Put => match ScheduledTask::from_json(&entry.value) {
                        Ok(schedule) => Some(Ok(ScheduleChange::Stored(schedule))),
                        Err(e) => {
                            tracing::warn!(schedule = %name, error = %e, "skipping an invalid schedule");
                            None
                        }
                    },
                    KvOperation::Delete | KvOperation::Purge => {
                        Some(Ok(ScheduleChange::Removed(name)))
                    }
                }
            })
            .boxed())
    }

    async fn schedules_kv(&self) -> Result<Kv> {
        self.kv(&KvBucket::new(CONFIG_BUCKET)).await
    }
}

fn key(name: &str) -> String {
    format!("{SCHEDULED_TASKS_PREFIX}{name}")
}
