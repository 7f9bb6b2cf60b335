// SPDX-License-Identifier: Apache-2.0
//! `jetjobs task`: enqueue, list, view, retry, delete and purge tasks (`ajc task`); `watch` and
//! `process` live in their own modules.

use std::time::Duration;

use clap::{Args, Subcommand};
use jetjobs::{Queue, Task, TaskFilter, TaskState, Timestamp};
use serde_json::json;

use crate::connect::ConnectArgs;
use crate::exit::{self, CliError};
use crate::output::{self, Output, Table, confirm};
use crate::queue::parse_duration;
use crate::schema::TaskJson;

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Enqueue a task
    #[command(visible_alias = "new", alias = "enqueue")]
    Add(AddArgs),
    /// List stored tasks, oldest update first
    #[command(visible_alias = "ls")]
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show at most this many tasks
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Show one task
    #[command(visible_alias = "show", alias = "info")]
    View {
        /// The task id
        id: String,
    },
    /// Enqueue stored tasks again (state `retry`, tries reset): by id, or every task the
    /// filters select
    Retry(RetryArgs),
    /// Delete task documents by id (their work items are terminated when delivered)
    #[command(visible_alias = "rm")]
    Delete {
        /// The task ids
        #[arg(required = true)]
        ids: Vec<String>,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Delete every task document, or those the filters select; work items stay
    Purge {
        #[command(flatten)]
        filter: FilterArgs,
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Follow task lifecycle events as they happen, until Ctrl-C or --count events
    Watch(crate::watch::WatchArgs),
    /// Process tasks of one type from a queue by running a command for each (like
    /// `ajc task process`)
    Process(crate::process::ProcessArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The task type
    #[arg(value_name = "TYPE")]
    task_type: String,
    /// The payload: JSON if it parses as JSON, else stored as a JSON string (as ajc does)
    payload: Option<String>,
    /// The queue to add the task to (it must exist)
    #[arg(short, long, default_value = jetjobs::DEFAULT_QUEUE_NAME)]
    queue: String,
    /// The latest time from now a handler may start it (Go duration)
    #[arg(long, value_parser = parse_duration)]
    deadline: Option<Duration>,
    /// Most times it may be tried
    #[arg(long)]
    tries: Option<i64>,
    /// Ids of tasks it depends on (comma separated or repeated)
    #[arg(long = "depends", value_delimiter = ',')]
    depends: Vec<String>,
    /// Give the handler its dependencies' results
    #[arg(long = "load", requires = "depends")]
    load: bool,
    /// Start it no sooner than this from now (Go duration)
    #[arg(long, value_parser = parse_duration)]
    delay: Option<Duration>,
    /// Use this task id instead of a new one
    #[arg(long)]
    id: Option<String>,
}

/// Which tasks `list`, `retry` and `purge` select; every filter given must match.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only tasks in this state (repeat or comma separate for several)
    #[arg(long, value_parser = parse_state, value_delimiter = ',')]
    state: Vec<TaskState>,
    /// Only tasks of this type
    #[arg(long = "type", value_name = "TYPE")]
    task_type: Option<String>,
    /// Only tasks of this queue
    #[arg(short, long)]
    queue: Option<String>,
    /// Only tasks created at least this long ago (Go duration)
    #[arg(long, value_parser = parse_duration, value_name = "AGE")]
    older_than: Option<Duration>,
}

impl FilterArgs {
    fn filter(&self) -> TaskFilter {
        let mut filter = TaskFilter::new().states(self.state.iter().copied());
        if let Some(t) = &self.task_type {
            filter = filter.task_type(t);
        }
        if let Some(q) = &self.queue {
            filter = filter.queue(q);
        }
        if let Some(age) = self.older_than {
            filter = filter.older_than(age);
        }
        filter
    }
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The task ids (none: every task the filters select)
    ids: Vec<String>,
    /// Only tasks in this state (repeat or comma separate for several)
    #[arg(long, value_parser = parse_state, value_delimiter = ',', conflicts_with = "ids")]
    state: Vec<TaskState>,
    /// Only tasks of this type
    #[arg(long = "type", value_name = "TYPE", conflicts_with = "ids")]
    task_type: Option<String>,
    /// With ids: the queue to retry them on (default: each task's own); else only tasks of
    /// this queue
    #[arg(short, long)]
    queue: Option<String>,
    /// Only tasks created at least this long ago (Go duration)
    #[arg(long, value_parser = parse_duration, value_name = "AGE", conflicts_with = "ids")]
    older_than: Option<Duration>,
}

/// A task state by its asyncjobs name.
fn parse_state(text: &str) -> Result<TaskState, String> {
    match text.parse::<TaskState>() {
        Ok(TaskState::Unknown) | Err(_) => Err(format!(
            "unknown task state {text:?}; one of: {}",
            TaskState::ALL
                .iter()
                .skip(1)
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Ok(state) => Ok(state),
    }
}

impl TaskCommand {
    pub(crate) async fn run(self, connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
        match self {
            TaskCommand::Add(args) => add(connect, out, args).await,
            TaskCommand::List { filter, limit } => {
                let client = connect.connect().await?;
                let tasks = client.admin().find_tasks(&filter.filter(), limit).await?;
                let json: Vec<TaskJson> = tasks.iter().map(TaskJson::from).collect();
                out.show(&json, |_| {
                    if tasks.is_empty() {
                        println!("No tasks found");
                        return;
                    }
                    let mut table =
                        Table::new(&["ID", "TYPE", "QUEUE", "STATE", "CREATED", "TRIES"]);
                    for t in &tasks {
                        table.row(vec![
                            t.id.clone(),
                            t.task_type.clone(),
                            t.queue.clone(),
                            t.state.to_string(),
                            output::time(&t.created),
                            t.tries.to_string(),
                        ]);
                    }
                    table.print();
                })
            }
            TaskCommand::View { id } => {
                let task = connect.connect().await?.load_task(&id).await?;
                out.show(&TaskJson::from(&task), |_| show_task(&task))
            }
            TaskCommand::Retry(args) => retry(connect, out, args).await,
            TaskCommand::Delete { ids, force } => {
                let admin = connect.connect().await?.admin();
                let question = match ids.as_slice() {
                    [id] => format!("Really delete task {id}"),
                    _ => format!("Really delete {} tasks", ids.len()),
                };
                confirm(&question, force)?;
                let bar = out.progress(ids.len(), "deleting");
                let mut deleted = Vec::new();
                let mut first_error = None;
                for id in &ids {
                    match admin.delete_task(id).await {
                        Ok(()) => deleted.push(id.clone()),
                        Err(e) => {
                            bar.suspend(|| eprintln!("error: deleting {id}: {e} ({})", e.code()));
                            first_error.get_or_insert(e);
                        }
                    }
                    bar.inc(1);
                }
                bar.finish_and_clear();
                out.show(&json!({"deleted": deleted}), |_| {
                    for id in &deleted {
                        println!("Removed task {id}");
                    }
                })?;
                first_error.map_or(Ok(()), |e| {
                    Err(CliError::Exit(exit::core_exit_code(e.kind())))
                })
            }
            TaskCommand::Purge { filter, force } => purge(connect, out, filter, force).await,
            TaskCommand::Watch(args) => args.run(connect, out).await,
            TaskCommand::Process(args) => args.run(connect).await,
        }
    }
}

async fn add(connect: &ConnectArgs, out: &Output, args: AddArgs) -> Result<(), CliError> {
    let payload = match &args.payload {
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value) => value,
            Err(_) => serde_json::Value::String(text.clone()),
        },
        None => serde_json::Value::Null,
    };
    let mut task = if args.payload.is_some() {
        Task::new(&args.task_type, &payload)?
    } else {
        Task::with_raw_payload(&args.task_type, None)?
    };
    if let Some(id) = &args.id {
        task = task.with_id(id)?;
    }
    if let Some(deadline) = args.deadline {
        task = task.with_deadline(Timestamp::now().add(deadline));
    }
    if let Some(tries) = args.tries {
        task = task.with_max_tries(tries);
    }
    if !args.depends.is_empty() {
        task = task.depends_on(args.depends.iter().map(|d| d.trim().to_string()));
        if args.load {
            task = task.with_dependency_results();
        }
    }
    if let Some(delay) = args.delay {
        task = task.with_delay(delay);
    }
    // Binding (not creating) the queue, as `ajc task add` does: a typo fails with
    // QueueNotFound instead of creating a queue nobody consumes. `DEFAULT` is the exception:
    // every asyncjobs client creates it on first use.
    let queue = if args.queue == jetjobs::DEFAULT_QUEUE_NAME {
        Queue::default_queue()
    } else {
        Queue::bind(&args.queue)
    };
    let client = connect.connect_with(connect.options().queue(queue)).await?;
    let task = client.enqueue(task).await?;
    out.show(&TaskJson::from(&task), |t| {
        println!("Enqueued task {}", t.id)
    })
}

async fn retry(connect: &ConnectArgs, out: &Output, args: RetryArgs) -> Result<(), CliError> {
    let client = connect.connect().await?;
    let filter = FilterArgs {
        state: args.state,
        task_type: args.task_type,
        queue: args.queue.clone(),
        older_than: args.older_than,
    }
    .filter();
    let by_id = !args.ids.is_empty();
    if !by_id && filter.is_empty() {
        return Err(CliError::Usage(
            "give task ids or at least one filter (--state, --type, --queue, --older-than)".into(),
        ));
    }
    let ids: Vec<String> = if by_id {
        args.ids
    } else {
        let found = client.admin().find_tasks(&filter, usize::MAX).await?;
        found.into_iter().map(|t| t.id).collect()
    };
    let bar = out.progress(ids.len(), "retrying");
    let results = match (by_id, &args.queue) {
        // `ajc task retry --queue Q`: every id goes to that queue.
        (true, Some(queue)) => {
            let queue = client.open_queue(Queue::bind(queue)).await?;
            let mut results = Vec::with_capacity(ids.len());
            for id in &ids {
                results.push(queue.retry_task(id).await);
                bar.inc(1);
            }
            results
        }
        _ => {
            client
                .replay(&ids, |done, _, _| bar.set_position(done as u64))
                .await
        }
    };
    bar.finish_and_clear();
    let mut retried = Vec::new();
    let mut first_error = None;
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(task) => retried.push(task),
            Err(e) => {
                eprintln!("error: retrying {id}: {e} ({})", e.code());
                first_error.get_or_insert(e);
            }
        }
    }
    let json: Vec<TaskJson> = retried.iter().map(TaskJson::from).collect();
    out.show(&json, |tasks| {
        if tasks.is_empty() && first_error.is_none() {
            println!("No tasks to retry");
        }
        for t in tasks {
            println!("Retried task {} on queue {}", t.id, t.queue);
        }
    })?;
    first_error.map_or(Ok(()), |e| {
        Err(CliError::Exit(exit::core_exit_code(e.kind())))
    })
}

async fn purge(
    connect: &ConnectArgs,
    out: &Output,
    filter: FilterArgs,
    force: bool,
) -> Result<(), CliError> {
    let admin = connect.connect().await?.admin();
    let filter = filter.filter();
    if filter.is_empty() {
        let stored = admin.tasks_info().await?.tasks;
        confirm(
            &format!(
                "Really purge the tasks store of {stored} tasks (work queue items are not removed)"
            ),
            force,
        )?;
        let purged = admin.purge_tasks().await?;
        return out.show(&json!({"purged": purged}), |_| {
            println!("Purged {purged} tasks")
        });
    }
    let ids: Vec<String> = admin
        .find_tasks(&filter, usize::MAX)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    if ids.is_empty() {
        return out.show(&json!({"purged": 0}), |_| println!("No tasks matched"));
    }
    confirm(&format!("Really delete {} tasks", ids.len()), force)?;
    let bar = out.progress(ids.len(), "purging");
    let mut purged = 0u64;
    for id in &ids {
        match admin.delete_task(id).await {
            Ok(()) => purged += 1,
            // Deleted meanwhile (a worker discarding it, another purge): already gone.
            Err(e) if e.kind() == jetjobs::ErrorKind::TaskNotFound => {}
            Err(e) => {
                bar.finish_and_clear();
                return Err(e.into());
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    out.show(&json!({"purged": purged}), |_| {
        println!("Purged {purged} tasks")
    })
}

/// A task as `ajc task view` shows it.
fn show_task(task: &Task) {
    println!(
        "Task {} created at {}\n",
        task.id,
        output::time(&task.created)
    );
    println!("            Task Type: {}", task.task_type);
    println!(
        "              Payload: {}",
        output::bytes(task.payload.as_ref().map_or(0, |p| p.len()) as u64)
    );
    println!("               Status: {}", task.state);
    if !task.dependencies.is_empty() {
        println!("         Dependencies: {}", task.dependencies.join(", "));
        println!("     Load Dep Results: {}", task.load_dependencies);
    }
    match &task.result {
        Some(result) => println!(
            "            Completed: {} ({})",
            output::time(&result.completed),
            output::duration(
                (result.completed.to_utc() - task.created.to_utc())
                    .to_std()
                    .unwrap_or_default(),
                "0s"
            )
        ),
        None => {
            if let Some(tried) = &task.tried {
                println!("       Last Processed: {}", output::time(tried));
            }
            if !task.last_err.is_empty() {
                println!("           Last Error: {}", task.last_err);
            }
        }
    }
    if !task.queue.is_empty() {
        println!("                Queue: {}", task.queue);
    }
    println!("                Tries: {}", task.tries);
    if let Some(deadline) = &task.deadline {
        println!("  Scheduling Deadline: {}", output::time(deadline));
    }
    if let Some(run_at) = &task.run_at {
        println!("               Run At: {}", output::time(run_at));
    }
    if task.max_tries > 0 {
        println!("        Maximum Tries: {}", task.max_tries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_by_their_asyncjobs_names() {
        assert_eq!(parse_state("complete"), Ok(TaskState::Complete));
        assert_eq!(parse_state("completed"), Ok(TaskState::Complete));
        let e = parse_state("done").expect_err("unknown");
        assert!(e.contains("queue_error"), "{e}");
        assert!(parse_state("").is_err());
    }
}
