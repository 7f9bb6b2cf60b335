// SPDX-License-Identifier: Apache-2.0
//! `jetjobs queue`: create, list, inspect, configure, purge and delete work queues (`ajc queue`).

use std::time::Duration;

use clap::{Args, Subcommand};
use jetjobs::{ErrorKind, Queue};
use serde_json::json;

use crate::connect::ConnectArgs;
use crate::exit::CliError;
use crate::output::{self, Output, Table, confirm};
use crate::schema::QueueJson;

#[derive(Debug, Subcommand)]
pub(crate) enum QueueCommand {
    /// Create a queue; fails if it exists
    #[command(visible_alias = "add")]
    New(NewArgs),
    /// List every queue
    #[command(visible_alias = "ls")]
    List,
    /// Show a queue's settings and counts
    #[command(visible_alias = "view")]
    Info {
        /// The queue
        queue: String,
    },
    /// Change an existing queue's limits; flags not given stay as they are
    #[command(visible_alias = "config")]
    Configure(ConfigureArgs),
    /// Remove every item (waiting task) from a queue; task documents stay
    Purge {
        /// The queue
        queue: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Delete a queue and its items
    #[command(visible_alias = "rm")]
    Delete {
        /// The queue
        queue: String,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// The queue's name
    queue: String,
    /// Discard items older than this (Go duration, 0 keeps them)
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    age: Duration,
    /// Most items held, 0 for unlimited
    #[arg(long, default_value_t = 0)]
    entries: i64,
    /// Deliveries per item, -1 for unlimited
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    tries: i64,
    /// How long one handler run may take before the item is delivered again
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    run_time: Duration,
    /// Most tasks in flight across every worker
    #[arg(long, default_value_t = jetjobs::DEFAULT_MAX_CONCURRENT)]
    concurrent: i64,
    /// When full, discard the oldest item instead of refusing new ones
    #[arg(long)]
    discard_old: bool,
    /// Keep the queue in memory instead of on disk
    #[arg(long)]
    memory: bool,
    /// Stream replicas, 1 to 5
    #[arg(long, default_value_t = 1)]
    replicas: usize,
    /// Run tasks sharing an order key in order, this many of a key at once (jetjobs only)
    #[arg(long, value_name = "N")]
    ordered: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigureArgs {
    /// The queue
    queue: String,
    /// Discard items older than this (Go duration; 0 keeps them, else at least 2m)
    #[arg(long, value_parser = parse_duration)]
    age: Option<Duration>,
    /// Most items held, 0 for unlimited
    #[arg(long)]
    entries: Option<i64>,
    /// Deliveries per item, -1 for unlimited
    #[arg(long, allow_negative_numbers = true)]
    tries: Option<i64>,
    /// How long one handler run may take (at least 1s)
    #[arg(long, value_parser = parse_duration)]
    run_time: Option<Duration>,
    /// Most tasks in flight across every worker (at most 10000)
    #[arg(long)]
    concurrent: Option<i64>,
    /// When full, discard the oldest item (true) or refuse new ones (false)
    #[arg(long)]
    discard_old: Option<bool>,
}

/// A Go duration (`90s`, `1h30m`), the syntax of `ajc` and `choria` flags.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    jetjobs::parse_go_duration(text).map_err(|e| e.to_string())
}

impl QueueCommand {
    pub(crate) async fn run(self, connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
        match self {
            QueueCommand::New(args) => new(connect, out, args).await,
            QueueCommand::List => {
                let admin = connect.connect().await?.admin();
                let mut queues = Vec::new();
                for name in admin.queue_names().await? {
                    queues.push(QueueJson::from(&admin.queue_info(&name).await?));
                }
                out.show(&queues, |queues| {
                    if queues.is_empty() {
                        println!("No queues defined");
                        return;
                    }
                    let mut table = Table::new(&[
                        "NAME",
                        "ITEMS",
                        "IN FLIGHT",
                        "MAX TRIES",
                        "MAX ITEMS",
                        "MAX CONCURRENT",
                        "MAX RUN TIME",
                    ]);
                    for q in queues {
                        table.row(vec![
                            q.name.clone(),
                            q.items.to_string(),
                            q.in_flight.to_string(),
                            output::limit(q.max_tries),
                            output::limit(q.max_entries),
                            q.max_concurrent.to_string(),
                            output::duration(Duration::from_secs_f64(q.max_run_time_seconds), "-"),
                        ]);
                    }
                    table.print();
                })
            }
            QueueCommand::Info { queue } => {
                let admin = connect.connect().await?.admin();
                let info = QueueJson::from(&admin.queue_info(&queue).await?);
                out.show(&info, show_queue)
            }
            QueueCommand::Configure(args) => configure(connect, out, args).await,
            QueueCommand::Purge { queue, force } => {
                let admin = connect.connect().await?.admin();
                let info = admin.queue_info(&queue).await?;
                confirm(
                    &format!("Really purge all {} items from queue {queue}", info.items),
                    force,
                )?;
                admin.purge_queue(&queue).await?;
                out.show(&json!({"queue": queue, "purged": info.items}), |_| {
                    println!("Queue {queue} was purged")
                })
            }
            QueueCommand::Delete { queue, force } => {
                let admin = connect.connect().await?.admin();
                let info = admin.queue_info(&queue).await?;
                confirm(
                    &format!("Really delete queue {queue} with {} items", info.items),
                    force,
                )?;
                admin.delete_queue(&queue).await?;
                out.show(&json!({"queue": queue, "deleted": true}), |_| {
                    println!("Queue {queue} was removed")
                })
            }
        }
    }
}

async fn new(connect: &ConnectArgs, out: &Output, args: NewArgs) -> Result<(), CliError> {
    let mut options = connect.options().replicas(args.replicas);
    if args.memory {
        options = options.memory_storage();
    }
    // Binding first tells an existing queue apart without creating `DEFAULT` on the way, so
    // even `queue new DEFAULT` works on an empty account.
    match connect
        .connect_with(options.clone().queue(Queue::bind(&args.queue)))
        .await
    {
        Ok(_) => {
            return Err(CliError::Failed(format!(
                "queue {} already exists",
                args.queue
            )));
        }
        Err(CliError::Core(e)) if e.kind() == ErrorKind::QueueNotFound => {}
        Err(e) => return Err(e),
    }
    let mut queue = Queue::new(&args.queue)
        .max_age(args.age)
        .max_entries(args.entries)
        .discard_old(args.discard_old)
        .max_tries(args.tries)
        .max_run_time(args.run_time)
        .max_concurrent(args.concurrent);
    if let Some(n) = args.ordered {
        queue = queue.order_key_concurrency(n);
    }
    let client = connect.connect_with(options.queue(queue)).await?;
    let info = QueueJson::from(&client.default_queue().info().await?);
    out.show(&info, show_queue)
}

async fn configure(
    connect: &ConnectArgs,
    out: &Output,
    args: ConfigureArgs,
) -> Result<(), CliError> {
    let admin = connect.connect().await?.admin();
    let mut queue = admin.queue_info(&args.queue).await?.queue;
    if let Some(age) = args.age {
        queue = queue.max_age(age);
    }
    if let Some(entries) = args.entries {
        queue = queue.max_entries(entries);
    }
    if let Some(tries) = args.tries {
        queue = queue.max_tries(tries);
    }
    if let Some(run_time) = args.run_time {
        queue = queue.max_run_time(run_time);
    }
    if let Some(concurrent) = args.concurrent {
        queue = queue.max_concurrent(concurrent);
    }
    if let Some(discard_old) = args.discard_old {
        queue = queue.discard_old(discard_old);
    }
    let info = QueueJson::from(&admin.configure_queue(&queue).await?);
    out.show(&info, show_queue)
}

/// A queue as `ajc queue info` shows it.
pub(crate) fn show_queue(q: &QueueJson) {
    println!("{} Work Queue:\n", q.name);
    println!("           Entries: {}", q.items);
    println!("         In Flight: {}", q.in_flight);
    println!("     Waiting Pulls: {}", q.waiting_pulls);
    println!(
        "           Max Age: {}",
        output::duration(Duration::from_secs_f64(q.max_age_seconds), "unlimited")
    );
    println!("       Max Entries: {}", output::limit(q.max_entries));
    println!(
        "         When Full: {}",
        if q.discard_old {
            "discard old"
        } else {
            "refuse new"
        }
    );
    println!("    Max Task Tries: {}", output::limit(q.max_tries));
    println!(
        "      Max Run Time: {}",
        output::duration(Duration::from_secs_f64(q.max_run_time_seconds), "-")
    );
    println!("    Max Concurrent: {}", q.max_concurrent);
    if q.order_key_concurrency > 0 {
        println!("  Ordered, per Key: {}", q.order_key_concurrency);
    }
}
