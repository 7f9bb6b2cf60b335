// SPDX-License-Identifier: Apache-2.0
//! Named workers and their health: runutil's `DeclarativeWorker` and v10 health monitor.
//!
//! Each run of a named worker carries its health cell in a task-local, so a [`repeat`] inside it
//! reports every job's outcome without the user wiring anything up.
//!
//! [`repeat`]: crate::supervisor::repeat

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::error::Result;
use crate::metrics;
use crate::retry::RetryPolicy;
use crate::supervisor::{Worker, retry, run_all_workers};

/// A named worker that has run this long without returning is healthy, even if it has no
/// [`repeat`](crate::supervisor::repeat) job to report success.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(1);

/// The health of a named worker in a [`WorkerGroup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// Just (re)started: no job has succeeded yet and it has run less than [`HEALTHY_AFTER`].
    Starting,
    /// A job succeeded, or it has been running for [`HEALTHY_AFTER`].
    Ok,
    /// The last job or run failed.
    Failing,
}

impl Health {
    const ALL: [Health; 3] = [Health::Starting, Health::Ok, Health::Failing];

    /// `"starting"`, `"ok"` or `"failing"`, the `state` label of the health gauge.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(jetjobs::supervisor::Health::Failing.as_str(), "failing");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Ok => "ok",
            Health::Failing => "failing",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named worker's health, mirrored in the `jetjobs_supervised_worker_health` gauge.
#[derive(Debug)]
struct Cell {
    name: String,
    health: Mutex<Health>,
}

impl Cell {
    fn new(name: &str) -> Self {
        let cell = Self {
            name: name.to_string(),
            health: Mutex::new(Health::Starting),
        };
        cell.set(Health::Starting);
        cell
    }

    fn get(&self) -> Health {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, health: Health) {
        let mut current = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        self.write(&mut current, health);
    }

    /// `Ok` unless something already happened in this run.
    fn promote(&self) {
        let mut current = self.health.lock().unwrap_or_else(PoisonError::into_inner);
        if *current == Health::Starting {
            self.write(&mut current, Health::Ok);
        }
    }

    /// Called under the lock, so the gauge never disagrees with [`Cell::get`].
    fn write(&self, current: &mut Health, health: Health) {
        *current = health;
        for state in Health::ALL {
            let value = if state == health { 1.0 } else { 0.0 };
            metrics::set(
                &metrics::SUPERVISED_HEALTH,
                &[&self.name, state.as_str()],
                value,
            );
        }
    }
}

tokio::task_local! {
    static HEALTH: Arc<Cell>;
}

/// Records a job's outcome on the named worker running it, if any.
pub(super) fn checkpoint(result: &Result<()>) {
    let health = if result.is_ok() {
        Health::Ok
    } else {
        Health::Failing
    };
    let _ = HEALTH.try_with(|cell| cell.set(health));
}

/// `fut` with the current named worker's health cell, for a task spawned on its behalf.
pub(super) fn inherit<F>(fut: F) -> BoxFuture<'static, F::Output>
where
    F: Future + Send + 'static,
{
    match HEALTH.try_with(Arc::clone) {
        Ok(cell) => HEALTH.scope(cell, fut).boxed(),
        Err(_) => fut.boxed(),
    }
}

#[derive(Debug, Clone)]
struct Entry {
    worker: Worker,
    backoff: Option<RetryPolicy>,
    cell: Arc<Cell>,
}

/// Named workers run together under [`run_all_workers`]'s rules, each optionally restarted with
/// [`retry`], each with a tracing span per run and a [`Health`] exported as the gauge
/// `jetjobs_supervised_worker_health{worker, state}` (1 for the current state, 0 for the others).
///
/// Names should be unique: they label the gauge.
///
/// # Examples
/// ```
/// use jetjobs::supervisor::{Health, Worker, WorkerGroup};
/// let mut group = WorkerGroup::new();
/// group.add("idle", Worker::new(|cancel: jetjobs::CancellationToken| async move {
///     cancel.cancelled().await;
///     Ok(())
/// }));
/// assert_eq!(group.health(), vec![("idle".to_string(), Health::Starting)]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct WorkerGroup {
    entries: Vec<Entry>,
}

impl WorkerGroup {
    /// An empty group.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a worker that ends the group when it returns (runutil's `DeclarativeWorker` without
    /// `Retry`).
    pub fn add(&mut self, name: &str, worker: Worker) -> &mut Self {
        self.push(name, worker, None)
    }

    /// Adds a worker that is restarted after `backoff` whenever it fails ([`retry`]).
    pub fn add_with_retry(
        &mut self,
        name: &str,
        worker: Worker,
        backoff: RetryPolicy,
    ) -> &mut Self {
        self.push(name, worker, Some(backoff))
    }

    fn push(&mut self, name: &str, worker: Worker, backoff: Option<RetryPolicy>) -> &mut Self {
        self.entries.push(Entry {
            worker,
            backoff,
            cell: Arc::new(Cell::new(name)),
        });
        self
    }

    /// Every worker's name and current health, in the order they were added.
    pub fn health(&self) -> Vec<(String, Health)> {
        self.entries
            .iter()
            .map(|e| (e.cell.name.clone(), e.cell.get()))
            .collect()
    }

    /// Runs every worker until `cancel` fires or one of them (one without retry) returns; see
    /// [`run_all_workers`].
    pub async fn run(&self, cancel: &CancellationToken) -> Result<()> {
        let workers = self
            .entries
            .iter()
            .map(|e| {
                // Retry is the outer layer, so each restart is a fresh, traced, `Starting` run.
                let named = named(e.cell.clone(), e.worker.clone());
                match &e.backoff {
                    Some(backoff) => retry(named, backoff.clone()),
                    None => named,
                }
            })
            .collect();
        run_all_workers(cancel, workers).await
    }
}

fn named(cell: Arc<Cell>, worker: Worker) -> Worker {
    Worker::new(move |cancel: CancellationToken| {
        let (cell, worker) = (cell.clone(), worker.clone());
        let span = tracing::info_span!("supervisor.worker", worker = %cell.name);
        async move {
            cell.set(Health::Starting);
            let run = HEALTH.scope(cell.clone(), worker.run(cancel.clone()));
            tokio::pin!(run);
            let result = tokio::select! {
                result = &mut run => result,
                () = tokio::time::sleep(HEALTHY_AFTER) => {
                    cell.promote();
                    run.await
                }
            };
            if let Err(e) = &result {
                tracing::warn!(error = %e, "supervised worker failed");
                cell.set(Health::Failing);
            } else if !cancel.is_cancelled() {
                cell.set(Health::Failing);
            }
            result
        }
        .instrument(span)
    })
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    use super::*;
    use crate::error::{Error, ErrorKind};
    use crate::supervisor::{Job, repeat};

    async fn eventually(group: &WorkerGroup, want: Health) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(60);
        while group.health()[0].1 != want {
            assert!(Instant::now() < deadline, "never {want}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn health_goes_starting_ok_failing_starting() {
        // The job reports each start and then waits for the outcome the test gives it.
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let (outcome, outcomes) = mpsc::unbounded_channel::<bool>();
        let outcomes = Arc::new(tokio::sync::Mutex::new(outcomes));
        let job = Job::new(move |_c| {
            let (started_tx, outcomes) = (started_tx.clone(), outcomes.clone());
            async move {
                let _ = started_tx.send(());
                match outcomes.lock().await.recv().await {
                    Some(true) | None => Ok(()),
                    Some(false) => Err(Error::new(ErrorKind::Timeout, "job failed")),
                }
            }
        });
        let mut group = WorkerGroup::new();
        group.add_with_retry(
            "health-test",
            repeat(Duration::from_secs(10), job, true),
            RetryPolicy::fixed(Duration::from_secs(5)),
        );
        let cancel = CancellationToken::new();
        let running = tokio::spawn({
            let (group, cancel) = (group.clone(), cancel.clone());
            async move { group.run(&cancel).await }
        });

        let begin = Instant::now();
        started.recv().await.expect("first run");
        assert_eq!(group.health()[0].1, Health::Starting);
        let text = metrics::render_metrics();
        assert!(text.contains(
            "jetjobs_supervised_worker_health{worker=\"health-test\",state=\"starting\"} 1\n"
        ));
        outcome.send(true).expect("job listens");
        let ok_at = eventually(&group, Health::Ok).await;
        assert!(
            ok_at - begin < HEALTHY_AFTER,
            "the job's success made it healthy"
        );
        assert!(
            metrics::render_metrics().contains(
                "jetjobs_supervised_worker_health{worker=\"health-test\",state=\"ok\"} 1\n"
            )
        );

        started.recv().await.expect("second run");
        outcome.send(false).expect("job listens");
        let failed_at = eventually(&group, Health::Failing).await;
        let restarted_at = eventually(&group, Health::Starting).await;
        assert!(
            restarted_at - failed_at >= Duration::from_secs(5),
            "the backoff applies"
        );

        // The restarted job hangs, yet running for a while counts as healthy.
        started.recv().await.expect("third run");
        let ok_at = eventually(&group, Health::Ok).await;
        assert!(ok_at - restarted_at >= HEALTHY_AFTER);

        cancel.cancel();
        outcome.send(true).expect("job listens");
        running.await.expect("joined").expect("retry never fails");
        assert_eq!(
            group.health()[0].1,
            Health::Ok,
            "a clean shutdown is no failure"
        );
    }

    #[tokio::test]
    async fn a_worker_without_retry_that_quits_is_failing() {
        let mut group = WorkerGroup::new();
        group.add("quitter", Worker::new(|_c| async { Ok(()) }));
        let err = group
            .run(&CancellationToken::new())
            .await
            .expect_err("premature");
        assert_eq!(err.kind(), ErrorKind::WorkerExitedPrematurely);
        assert_eq!(group.health(), vec![("quitter".into(), Health::Failing)]);
    }
}
