// SPDX-License-Identifier: Apache-2.0
//! `jetjobs`: the operator CLI for jetjobs and Go asyncjobs queues (`ajc`'s commands) and choria
//! governors (`choria governor`'s commands), on NATS JetStream.
//!
//! Everything here parses arguments and renders results; every effect goes through the `jetjobs`
//! crate's public API. Exit codes: 0 ok, 1 the operation failed, 2 usage error, 3 not found.

mod connect;
mod cron;
mod dashboard;
mod dev_server;
mod exit;
mod governor;
mod info;
mod output;
mod pool;
mod process;
mod queue;
mod schema;
mod task;
mod watch;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::connect::ConnectArgs;
use crate::exit::CliError;
use crate::output::Output;

/// Operate jetjobs and asyncjobs queues, tasks and schedules, choria governors and job pools.
///
/// Connection settings come from the flags or `NATS_URL`. Read commands print aligned tables, or
/// with `--json` one JSON document whose schema is documented in cli/README.md.
#[derive(Debug, Parser)]
#[command(
    name = "jetjobs",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(flatten)]
    connect: ConnectArgs,

    /// Print one JSON document (object or array) instead of a table; `task watch` prints one
    /// JSON event per line
    #[arg(long, global = true, help_heading = "Output")]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The tasks store, the task scheduler's leader, schedules and every queue (`ajc info`)
    Info,
    /// Manage work queues (`ajc queue`)
    #[command(subcommand, visible_alias = "queues", alias = "q")]
    Queue(queue::QueueCommand),
    /// Manage tasks (`ajc task`)
    #[command(subcommand, visible_alias = "tasks", alias = "t")]
    Task(task::TaskCommand),
    /// Manage scheduled (cron) tasks (`ajc task cron`)
    #[command(subcommand, alias = "schedule")]
    Cron(cron::CronCommand),
    /// Run the leader-elected task scheduler until Ctrl-C (`ajc task cron scheduler`)
    Scheduler(cron::SchedulerArgs),
    /// Manage and use choria concurrency governors (`choria governor`)
    #[command(subcommand, alias = "gov")]
    Governor(governor::GovernorCommand),
    /// Inspect a keyed job pool without joining it
    #[command(subcommand)]
    Pool(pool::PoolCommand),
    /// Run a local nats-server with JetStream in the foreground until Ctrl-C
    DevServer,
    /// Serve the web dashboard until Ctrl-C (loopback only, unless given an access token)
    Dashboard(dashboard::DashboardArgs),
    /// Print a shell completion script
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    exit::install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
        Err(e) => e.exit(),
    };
    init_logging(&cli.command);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return CliError::Failed(format!("starting the runtime: {e}")).report(),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.report(),
    }
}

/// Logs go to stderr: warnings only for one-shot commands, progress for the long-running ones
/// (workers, the scheduler, the dev server). `RUST_LOG` overrides both.
fn init_logging(command: &Command) {
    let default = match command {
        Command::Scheduler(_) | Command::DevServer | Command::Dashboard(_) => "warn,jetjobs=info",
        Command::Task(task::TaskCommand::Process(_)) => "warn,jetjobs=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let out = Output::new(cli.json);
    let connect = &cli.connect;
    match cli.command {
        Command::Info => info::run(connect, &out).await,
        Command::Queue(command) => command.run(connect, &out).await,
        Command::Task(command) => command.run(connect, &out).await,
        Command::Cron(command) => command.run(connect, &out).await,
        Command::Scheduler(args) => args.run(connect).await,
        Command::Governor(command) => command.run(connect, &out).await,
        Command::Pool(command) => command.run(connect, &out).await,
        Command::DevServer => dev_server::run(&out).await,
        Command::Dashboard(args) => args.run(connect, &out).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "jetjobs",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
