// SPDX-License-Identifier: Apache-2.0
//! `jetjobs task process`: a worker whose handler is an external command (or a request-reply
//! service), as `ajc task process` runs one.

use std::path::PathBuf;

use clap::Args;
use jetjobs::{Mux, Queue, RetryPolicy, TaskState};

use crate::connect::{ConnectArgs, shutdown_on_signal};
use crate::exit::CliError;

#[derive(Debug, Args)]
pub(crate) struct ProcessArgs {
    /// The task type to process
    #[arg(value_name = "TYPE", env = "AJC_TYPE")]
    task_type: String,
    /// The queue to consume (it must exist)
    #[arg(env = "AJC_QUEUE")]
    queue: String,
    /// The command run for each task: no arguments, the task document's path in
    /// CHORIA_AJ_TASK; exit 0 completes the task with its output
    #[arg(env = "AJC_COMMAND", required_unless_present = "remote")]
    command: Option<PathBuf>,
    /// Tasks handled at once
    #[arg(short, long, default_value_t = jetjobs::DEFAULT_CONCURRENCY, env = "AJC_CONCURRENCY")]
    concurrency: usize,
    /// Hand each task to a request-reply service on CHORIA_AJ.H.T.<TYPE> instead of a command
    #[arg(long, conflicts_with = "command")]
    remote: bool,
    /// Backoff policy between tries
    #[arg(long, default_value = "default", value_parser = clap::builder::PossibleValuesParser::new(jetjobs::RETRY_POLICY_NAMES))]
    backoff: String,
    /// Delete tasks that complete instead of keeping them
    #[arg(long)]
    discard_complete: bool,
    /// Delete tasks that expire instead of keeping them
    #[arg(long)]
    discard_expired: bool,
    /// Serve Prometheus metrics on this port
    #[arg(long, value_name = "PORT")]
    monitor: Option<u16>,
}

impl ProcessArgs {
    pub(crate) async fn run(self, connect: &ConnectArgs) -> Result<(), CliError> {
        if let Some(command) = &self.command
            && !command.is_file()
        {
            return Err(CliError::Usage(format!(
                "command {} does not exist or is not a file",
                command.display()
            )));
        }
        let mut discard = Vec::new();
        if self.discard_complete {
            discard.push(TaskState::Complete);
        }
        if self.discard_expired {
            discard.push(TaskState::Expired);
        }
        let mut options = connect
            .options()
            .queue(Queue::bind(&self.queue))
            .concurrency(self.concurrency)
            .retry_policy(RetryPolicy::named(&self.backoff)?)
            .discard_states(discard);
        if let Some(port) = self.monitor {
            options = options.prometheus_port(port);
        }
        let client = connect.connect_with(options).await?;
        let mut mux = Mux::new();
        let handler = match &self.command {
            Some(command) => {
                mux.external_process(&self.task_type, command)?;
                command.display().to_string()
            }
            None => {
                mux.request_reply(&self.task_type, &client)?;
                "a request-reply service".into()
            }
        };
        let shutdown = shutdown_on_signal();
        eprintln!(
            "Processing {} tasks from queue {} with {handler}; Ctrl-C stops",
            self.task_type, self.queue
        );
        client.run(mux, shutdown).await?;
        Ok(())
    }
}
