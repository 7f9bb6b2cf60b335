// SPDX-License-Identifier: Apache-2.0
//! The task scheduler: every instance watches the schedules and keeps their timers, and the one
//! elected leader (asyncjobs' election on `CHORIA_AJ_ELECTIONS`, key `task_scheduler`, shared with
//! Go `TaskScheduler`s) enqueues one task per firing. Schedule changes apply at once; firings
//! missed while no leader is announced are not caught up, as in asyncjobs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, QueueHandle, ScheduleChange};
use crate::coord::election::{Election, Observer};
use crate::error::{Error, ErrorKind, Result};
use crate::events::LeaderElectedEvent;
use crate::metrics;
use crate::queue::Queue;
use crate::scheduler::ScheduledTask;
use crate::scheduler::cron::CronSchedule;
use crate::store::KvBucket;
use crate::wire::Timestamp;
use crate::wire::names::{ELECTIONS_BUCKET, SCHEDULER_ELECTION_KEY};

/// The TTL of `CHORIA_AJ_ELECTIONS` (its max age), which sets the campaign interval.
const ELECTION_TTL: Duration = Duration::from_secs(10);
/// How long a scheduler with no schedules sleeps between looks at the clock.
const IDLE: Duration = Duration::from_secs(60);
/// How long after a failed watch of the schedules it is opened again.
const REWATCH: Duration = Duration::from_secs(1);

/// Creates tasks from the schedules while elected leader; see the [module docs](self).
///
/// # Examples
/// ```no_run
/// # async fn demo() -> jetjobs::Result<()> {
/// let client = jetjobs::connect("nats://127.0.0.1:4222").await?;
/// let task = jetjobs::Task::new("report:daily", &"ops")?;
/// client.create_schedule(&jetjobs::ScheduledTask::new("daily", "@daily", "REPORTS", &task)?).await?;
/// let scheduler = jetjobs::TaskScheduler::new(&client, "scheduler-1")?;
/// scheduler.run(jetjobs::CancellationToken::new()).await
/// # }
/// ```
#[derive(Clone)]
pub struct TaskScheduler {
    client: Client,
    name: String,
    leader: Arc<AtomicBool>,
}

struct Entry {
    schedule: ScheduledTask,
    cron: CronSchedule,
    next: Option<DateTime<Utc>>,
}

impl TaskScheduler {
    /// A scheduler of `client`'s schedules, campaigning as `name` (unique per instance, as in
    /// asyncjobs: it is what the election key and the leader-elected event name).
    pub fn new(client: &Client, name: &str) -> Result<Self> {
        if name.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a task scheduler needs a name",
            ));
        }
        Ok(Self {
            client: client.clone(),
            name: name.to_string(),
            leader: Arc::default(),
        })
    }

    /// The name of the scheduler holding the election now (asyncjobs' and jetjobs' share it),
    /// `None` while none does. It becomes the announced leader one campaign interval after
    /// taking the election, so a new holder may not have started creating tasks yet.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// match jetjobs::TaskScheduler::leader(&client).await? {
    ///     Some(name) => println!("scheduler leader: {name}"),
    ///     None => println!("no task scheduler is running"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leader(client: &Client) -> Result<Option<String>> {
        let elections = client.kv(&KvBucket::new(ELECTIONS_BUCKET)).await?;
        Ok(elections
            .get(SCHEDULER_ELECTION_KEY)
            .await?
            .map(|entry| String::from_utf8_lossy(&entry.value).into_owned())
            .filter(|name| !name.is_empty()))
    }

    /// Whether this instance is the announced leader (the one creating tasks).
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    /// Campaigns and keeps the schedules' timers until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        let elections = self.client.kv(&KvBucket::new(ELECTIONS_BUCKET)).await?;
        let election = Election::new(
            elections,
            SCHEDULER_ELECTION_KEY,
            &self.name,
            ELECTION_TTL,
            self.leader.clone(),
        )?;
        let stop = shutdown.child_token();
        let _stop_campaign = stop.clone().drop_guard();
        let announcer = Arc::new(Announcer {
            nats: self.client.storage().nats.clone(),
            name: self.name.clone(),
        });
        tokio::spawn(election.run(announcer, stop.clone()));
        self.client.serve_metrics().await?;
        metrics::set(&metrics::SCHEDULER_PAUSED, &[], 1.0);

        let mut table: HashMap<String, Entry> = HashMap::new();
        let mut queues: HashMap<String, QueueHandle> = HashMap::new();
        let mut changes = self.client.watch_schedules().await?;
        loop {
            let now = Utc::now();
            let wait = table
                .values()
                .filter_map(|e| e.next)
                .min()
                .map_or(IDLE, |next| (next - now).to_std().unwrap_or_default());
            tokio::select! {
                change = changes.next() => match change {
                    Some(Ok(change)) => {
                        apply(&mut table, change);
                        metrics::set(&metrics::SCHEDULES, &[], table.len() as f64);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watching schedules failed; watching again");
                        changes = self.rewatch(&shutdown).await?;
                    }
                    None => changes = self.rewatch(&shutdown).await?,
                },
                _ = tokio::time::sleep(wait) => {
                    let now = Utc::now();
                    for entry in table.values_mut() {
                        if entry.next.is_some_and(|next| next <= now) {
                            if self.is_leader() {
                                self.fire(&entry.schedule, &mut queues).await;
                            }
                            entry.next = entry.cron.next_after(now);
                        }
                    }
                }
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    async fn rewatch(
        &self,
        shutdown: &CancellationToken,
    ) -> Result<futures::stream::BoxStream<'static, Result<ScheduleChange>>> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REWATCH) => {}
                _ = shutdown.cancelled() => return Ok(futures::stream::pending().boxed()),
            }
            match self.client.watch_schedules().await {
                Ok(changes) => return Ok(changes),
                Err(e) if e.kind() == ErrorKind::Closed => return Err(e),
                Err(e) => tracing::warn!(error = %e, "watching schedules failed"),
            }
        }
    }

    /// Enqueues one task of `schedule`; failures are logged, as in asyncjobs.
    async fn fire(&self, schedule: &ScheduledTask, queues: &mut HashMap<String, QueueHandle>) {
        let fired = async {
            let task = schedule.task_at(Timestamp::now())?;
            let queue = match queues.get(&schedule.queue) {
                Some(queue) => queue.clone(),
                None => {
                    let queue = self.client.open_queue(Queue::new(&schedule.queue)).await?;
                    queues.insert(schedule.queue.clone(), queue.clone());
                    queue
                }
            };
            queue.enqueue(task).await
        };
        let labels = [schedule.task_type.as_str(), schedule.queue.as_str()];
        match fired.await {
            Ok(task) => {
                metrics::inc(&metrics::SCHEDULED, &labels);
                tracing::debug!(schedule = %schedule.name, task = %task.id, "scheduled task enqueued");
            }
            Err(e) => {
                metrics::inc(&metrics::SCHEDULE_ERRORS, &labels);
                tracing::warn!(schedule = %schedule.name, error = %e, "enqueueing a scheduled task failed");
            }
        }
    }
}

fn apply(table: &mut HashMap<String, Entry>, change: ScheduleChange) {
    match change {
        ScheduleChange::Stored(schedule) => match schedule.cron() {
            Ok(cron) => {
                let next = cron.next_after(Utc::now());
                tracing::info!(schedule = %schedule.name, spec = %schedule.schedule, "schedule loaded");
                table.insert(
                    schedule.name.clone(),
                    Entry {
                        schedule,
                        cron,
                        next,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(schedule = %schedule.name, error = %e, "ignoring a schedule that does not parse");
                table.remove(&schedule.name);
            }
        },
        ScheduleChange::Removed(name) => {
            tracing::info!(schedule = %name, "schedule removed");
            table.remove(&name);
        }
    }
}

/// Publishes asyncjobs' leader-elected event on a win.
struct Announcer {
    nats: async_nats::Client,
    name: String,
}

impl Observer for Announcer {
    fn won(&self) {
        metrics::set(&metrics::SCHEDULER_PAUSED, &[], 0.0);
        let event = LeaderElectedEvent::new(&self.name, SCHEDULER_ELECTION_KEY);
        let nats = self.nats.clone();
        tokio::spawn(async move {
            match crate::wire::to_go_json(&event) {
                Ok(body) => {
                    if let Err(e) = nats.publish(event.subject(), body.into()).await {
                        tracing::warn!(error = %e, "publishing the leader-elected event failed");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "encoding the leader-elected event failed"),
            }
        });
    }

    fn lost(&self) {
        metrics::set(&metrics::SCHEDULER_PAUSED, &[], 1.0);
        tracing::info!(name = %self.name, "no longer the task scheduler's leader");
    }
}
