// SPDX-License-Identifier: Apache-2.0
//! `jetjobs task watch`: follows lifecycle events live, as `ajc task watch` does.

use clap::Args;
use futures::StreamExt as _;
use jetjobs::Event;

use crate::connect::{ConnectArgs, shutdown_on_signal};
use crate::exit::CliError;
use crate::output::Output;

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Only events of this task
    #[arg(long, alias = "task")]
    id: Option<String>,
    /// Stop after this many events
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

impl WatchArgs {
    pub(crate) async fn run(self, connect: &ConnectArgs, out: &Output) -> Result<(), CliError> {
        let client = connect.connect().await?;
        let shutdown = shutdown_on_signal();
        let mut events = client.events().await?;
        // Said once the subscription is in place, so whoever waits for it knows no event after
        // this line is missed.
        eprintln!("Watching task events; Ctrl-C stops");
        let mut seen = 0u64;
        while self.count.is_none_or(|n| seen < n) {
            let event = tokio::select! {
                event = events.next() => event,
                _ = shutdown.cancelled() => break,
            };
            let Some(event) = event else {
                return Err(CliError::Failed("the event subscription ended".into()));
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    eprintln!("could not parse an event: {e}");
                    continue;
                }
            };
            if let Some(id) = &self.id
                && !matches!(&event, Event::TaskState(e) if &e.task_id == id)
            {
                continue;
            }
            seen += 1;
            if out.json() {
                let line = event.to_json()?;
                println!("{}", String::from_utf8_lossy(&line));
            } else {
                println!("{}", describe(&event));
            }
        }
        Ok(())
    }
}

/// One line per event, in `ajc task watch`'s words.
fn describe(event: &Event) -> String {
    match event {
        Event::TaskState(e) => {
            let at = e.timestamp.to_utc().format("%H:%M:%S");
            let mut line = format!(
                "[{at}] {}: queue: {} type: {} tries: {} state: {}",
                e.task_id, e.queue, e.task_type, e.tries, e.state
            );
            if !e.last_error.is_empty() {
                line.push_str(&format!(" error: {}", e.last_error));
            }
            line
        }
        Event::LeaderElected(e) => {
            let at = e.timestamp.to_utc().format("%H:%M:%S");
            format!("[{at}] {}: new {} leader", e.name, e.component)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_like_ajc() {
        let task = jetjobs::Task::new("email:send", &()).expect("task");
        let event = Event::TaskState(jetjobs::TaskStateChangeEvent::for_task(&task));
        let line = describe(&event);
        assert!(
            line.contains(&format!(
                "{}: queue:  type: email:send tries: 0 state: new",
                task.id
            )),
            "{line}"
        );
        let leader = Event::LeaderElected(jetjobs::LeaderElectedEvent::new("s1", "task_scheduler"));
        assert!(describe(&leader).ends_with("s1: new task_scheduler leader"));
    }
}
