// SPDX-License-Identifier: Apache-2.0
//! `jetjobs`: the operator CLI for jetjobs and Go asyncjobs queues (`ajc`'s commands) and choria
//! governors (`choria governor`'s commands), on NATS JetStream.
//!
//! The library is the whole CLI behind one function, [`run`], so that the binary of this crate
//! and the `jetjobs` commands of the Python and npm packages run the same code.
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

use std::ffi::OsString;
use std::io::Write as _;

use clap::{CommandFactory as _, Parser, Subcommand};

use crate::connect::ConnectArgs;
use crate::exit::CliError;
use crate::output::Output;

pub use crate::exit::install_panic_hook;

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

/// Runs the CLI on `args` (the first is the program name; pass `"jetjobs"`: the name in help and
/// usage is `jetjobs` whatever it is) and returns the process exit code: 0 ok, 1 the operation
/// failed, 2 usage error, 3 not found, or what `governor run`'s command exited with; 101 after a
/// panic (its one line already printed by [`install_panic_hook`]'s hook, if installed).
///
/// This is the whole `jetjobs` command, shared by the binary of this crate (`cargo install`), the
/// Python package's console script and the npm package's `jetjobs` bin (these two through
/// [`run_with_panic_hook`]): each calls it with its process's arguments and exits with the code. Help and version go to stdout, usage errors and
/// messages to stderr, as clap prints them; both are flushed before it returns. It blocks the
/// calling thread on its own tokio runtime: do not call it from async code.
pub fn run(args: Vec<OsString>) -> i32 {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse_and_run(args)))
        .unwrap_or(101);
    // The Python and Node launchers exit through their own runtimes, which do not flush Rust's
    // buffered stdout.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    code
}

/// [`run`] with [`install_panic_hook`]'s hook for the duration of the call, and the process's
/// previous hook back afterwards: for the Python and Node packages, whose processes may run other
/// code before or after (a test suite, an application calling the CLI).
pub fn run_with_panic_hook(args: Vec<OsString>) -> i32 {
    let previous = std::panic::take_hook();
    install_panic_hook();
    let code = run(args);
    std::panic::set_hook(previous);
    code
}

fn parse_and_run(args: Vec<OsString>) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
        Err(e) => {
            let _ = std::io::stdout().flush();
            let _ = e.print();
            return e.exit_code();
        }
    };
    // Logging is scoped to this call's threads, not installed process-wide: in the Python and
    // Node packages the process already forwards the engine's logs to `logging` / the JS sink.
    let dispatch = log_dispatch(&cli.command);
    let _main_thread = tracing::dispatcher::set_default(&dispatch);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            let guard = tracing::dispatcher::set_default(&dispatch);
            LOG_GUARD.with(|slot| *slot.borrow_mut() = Some(guard));
        })
        .on_thread_stop(|| LOG_GUARD.with(|slot| drop(slot.borrow_mut().take())))
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return CliError::Failed(format!("starting the runtime: {e}"))
                .report()
                .into();
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => 0,
        Err(e) => e.report().into(),
    }
}

thread_local! {
    /// The CLI's log subscriber on each of its runtime's threads.
    static LOG_GUARD: std::cell::RefCell<Option<tracing::dispatcher::DefaultGuard>> =
        const { std::cell::RefCell::new(None) };
}

/// Logs go to stderr: warnings only for one-shot commands, progress for the long-running ones
/// (workers, the scheduler, the dev server). `RUST_LOG` overrides both.
fn log_dispatch(command: &Command) -> tracing::Dispatch {
    let default = match command {
        Command::Scheduler(_) | Command::DevServer | Command::Dashboard(_) => "warn,jetjobs=info",
        Command::Task(task::TaskCommand::Process(_)) => "warn,jetjobs=info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .finish()
        .into()
}

async fn execute(cli: Cli) -> Result<(), CliError> {
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
