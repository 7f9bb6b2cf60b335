// SPDX-License-Identifier: Apache-2.0
//! `jetjobs cron`: scheduled tasks (`ajc task cron`), and `jetjobs scheduler`, the leader-elected
//! loop that enqueues them.

use std::time::Duration;

use clap::{Args, Subcommand};
use jetjobs::{ScheduledTask, Task, TaskScheduler, Timestamp};
use serde_json::json;

use crate::connect::{ConnectArgs, identity, shutdown_on_signal};
use crate::exit::CliError;
use crate::output::{self, Output, Table, confirm};
use crate::queue::parse_duration;
use crate::schema::ScheduleJson;

#[derive(Debug, Subcommand)]
pub(crate) enum CronCommand {
    /// Add a scheduled task: every time SCHEDULE says, a task of TYPE is enqueued to the queue
    #[command(visible_alias = "new")]
    Add(AddArgs),
    /// List scheduled tasks
    #[command(visible_alias = "ls")]
    List {
        /// Print only their names
        #[arg(long)]
        names: bool,
    },
    /// Show a scheduled task
    #[command(visible_alias = "show")]
    View {
        /// The schedule's name
        name: String,
    },
    /// Remove a scheduled task
    #[command(visible_alias = "rm")]
    Delete {
        /// The schedule's name
        name: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// A unique name for the schedule
    name: String,
    /// Cron syntax (`*/5 * * * *`), a descriptor (`@daily`, `@every 10m`) or a bare
    /// descriptor word (`daily`, `every 10m`) as ajc accepts
    schedule: String,
    /// The type of the tasks created
    #[arg(value_name = "TYPE")]
    task_type: String,
    /// The tasks' payload: JSON if it parses as JSON, else stored as a JSON string
    payload: Option<String>,
    /// The queue the tasks are enqueued to
    #[arg(short, long, default_value = jetjobs::DEFAULT_QUEUE_NAME)]
    queue: String,
    /// Each task's deadline, from its creation (Go duration, at least 30s)
    #[arg(long, value_parser = parse_duration)]
    deadline: Option<Duration>,
    /// Most times each task may be tried
    #[arg(long)]
    tries: Option<i64>,
}

/// `jetjobs scheduler`.
#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    /// A unique name for this scheduler in the election (default: the host name)
    #[arg(env = "AJC_SCHEDULER_NAME")]
    name: Option<String>,
    /// Serve Prometheus metrics on this port
    #[arg(long, value_name = "PORT")]
    monitor: Option<u16>,
}

/// `ajc task cron add` turns a bare descriptor word into a descriptor (`daily` → `@daily`).
fn descriptor(schedule: &str) -> String {
    const WORDS: [&str; 8] = [
        "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly", "every",
    ];
    if WORDS.iter().any(|w| schedule.starts_with(w)) {
        format!("@{schedule}")
    } else {
        schedule.to_string()
    }
}

impl CronCommand {
    pub(crate) async fn run(self, connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
        let client = connect.connect().await?;
        match self {
            CronCommand::Add(args) => {
                let payload = args.payload.as_ref().map(|text| {
                    serde_json::from_str::<serde_json::Value>(text)
                        .unwrap_or_else(|_| serde_json::Value::String(text.clone()))
                });
                let mut task = match &payload {
                    Some(payload) => Task::new(&args.task_type, payload)?,
                    None => Task::with_raw_payload(&args.task_type, None)?,
                };
                if let Some(deadline) = args.deadline {
                    task = task.with_deadline(Timestamp::now().add(deadline));
                }
                if let Some(tries) = args.tries {
                    task = task.with_max_tries(tries);
                }
                let schedule = ScheduledTask::new(
                    &args.name,
                    &descriptor(&args.schedule),
                    &args.queue,
                    &task,
                )?;
                client.create_schedule(&schedule).await?;
                let stored = client.load_schedule(&args.name).await?;
                out.show(&ScheduleJson::from(&stored), show_schedule)
            }
            CronCommand::List { names } => {
                let schedules = client.schedules().await?;
                if names && !out.json() {
                    for s in &schedules {
                        println!("{}", s.name);
                    }
                    return Ok(());
                }
                let json: Vec<ScheduleJson> = schedules.iter().map(ScheduleJson::from).collect();
                out.show(&json, |_| {
                    if schedules.is_empty() {
                        println!("No scheduled tasks found");
                        return;
                    }
                    let mut table =
                        Table::new(&["NAME", "SCHEDULE", "QUEUE", "TASK TYPE", "CREATED"]);
                    for s in &schedules {
                        table.row(vec![
                            s.name.clone(),
                            s.schedule.clone(),
                            s.queue.clone(),
                            s.task_type.clone(),
                            output::time(&s.created_at),
                        ]);
                    }
                    table.print();
                })
            }
            CronCommand::View { name } => {
                let schedule = client.load_schedule(&name).await?;
                out.show(&ScheduleJson::from(&schedule), show_schedule)
            }
            CronCommand::Delete { name, force } => {
                // Loaded first so an unknown name is "not found" before anyone is asked.
                client.load_schedule(&name).await?;
                confirm(&format!("Really remove scheduled task {name}"), force)?;
                client.remove_schedule(&name).await?;
                out.show(&json!({"schedule": name, "deleted": true}), |_| {
                    println!("Removed scheduled task {name}")
                })
            }
        }
    }
}

impl SchedulerArgs {
    pub(crate) async fn run(self, connect: &ConnectArgs) -> Result<(), CliError> {
        let mut options = connect.options();
        if let Some(port) = self.monitor {
            options = options.prometheus_port(port);
        }
        let client = connect.connect_with(options).await?;
        let name = self.name.unwrap_or_else(identity);
        let scheduler = TaskScheduler::new(&client, &name)?;
        let shutdown = shutdown_on_signal();
        eprintln!("Task scheduler {name} campaigning for leadership; Ctrl-C stops");
        scheduler.run(shutdown).await?;
        Ok(())
    }
}

/// A schedule as `ajc task cron view` shows it.
fn show_schedule(s: &ScheduleJson) {
    println!("Scheduled Task {} created at {}\n", s.name, s.created_at);
    println!("             Schedule: {}", s.schedule);
    println!("                Queue: {}", s.queue);
    println!("            Task Type: {}", s.task_type);
    println!(
        "              Payload: {}",
        output::bytes(s.payload.payload_bytes as u64)
    );
    if s.deadline_seconds > 0.0 {
        println!(
            "  Scheduling Deadline: {}",
            output::duration(Duration::from_secs_f64(s.deadline_seconds), "-")
        );
    }
    if s.max_tries > 0 {
        println!("        Maximum Tries: {}", s.max_tries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_descriptor_words_get_their_at_sign() {
        assert_eq!(descriptor("daily"), "@daily");
        assert_eq!(descriptor("every 10m"), "@every 10m");
        assert_eq!(descriptor("@hourly"), "@hourly");
        assert_eq!(descriptor("*/5 * * * *"), "*/5 * * * *");
    }
}
