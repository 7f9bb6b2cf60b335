// SPDX-License-Identifier: Apache-2.0
//! runutil's `Repeat`: a job run on a fixed period, as a worker.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::error::Result;
use crate::supervisor::{Job, Worker, health};

/// A worker that runs `job` every `every`, first at once when `start_immediately`, otherwise
/// after one period.
///
/// The period runs from start to start. A run that overruns it is followed at once by the next,
/// and then the schedule resumes; missed ticks are skipped, not caught up (Go's `time.Ticker`).
/// A job error ends the worker with that error (wrap it in [`retry`](crate::supervisor::retry)
/// to keep going); cancellation between runs returns `Ok(())`. A zero period is taken as 1 ms.
/// Inside a [`WorkerGroup`](crate::supervisor::WorkerGroup), each outcome sets the worker's health.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use jetjobs::supervisor::{Job, repeat};
/// let cleanup = Job::new(|_cancel| async { Ok(()) });
/// let worker = repeat(Duration::from_secs(300), cleanup, true);
/// # let _ = worker;
/// ```
pub fn repeat(every: Duration, job: Job, start_immediately: bool) -> Worker {
    // tokio's interval panics on a zero period.
    let every = every.max(Duration::from_millis(1));
    Worker::new(move |cancel: CancellationToken| {
        let job = job.clone();
        async move {
            if start_immediately {
                run_checked(&job, &cancel).await?;
            }
            let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok(()),
                    _ = ticks.tick() => run_checked(&job, &cancel).await?,
                }
            }
        }
    })
}

/// One traced run whose outcome is the enclosing named worker's health checkpoint.
pub(super) async fn run_checked(job: &Job, cancel: &CancellationToken) -> Result<()> {
    let result = job
        .run_once(cancel.clone())
        .instrument(tracing::debug_span!("supervisor.job"))
        .await;
    health::checkpoint(&result);
    result
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use super::*;
    use crate::error::{Error, ErrorKind};

    /// A job recording when each run started (seconds since `origin`), lasting `lengths[i]`.
    fn recording(origin: Instant, lengths: Vec<u64>) -> (Job, Arc<Mutex<Vec<u64>>>) {
        let starts = Arc::new(Mutex::new(Vec::new()));
        let job = Job::new({
            let starts = starts.clone();
            move |_c| {
                let starts = starts.clone();
                let lengths = lengths.clone();
                async move {
                    let n = {
                        let mut starts = starts.lock().unwrap_or_else(PoisonError::into_inner);
                        starts.push((Instant::now() - origin).as_secs());
                        starts.len() - 1
                    };
                    let secs = lengths.get(n).copied().unwrap_or(0);
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    Ok(())
                }
            }
        });
        (job, starts)
    }

    async fn run_for(worker: Worker, secs: u64) -> Result<()> {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.cancel();
        });
        worker.run(cancel).await
    }

    #[tokio::test(start_paused = true)]
    async fn the_period_runs_start_to_start_and_skips_missed_ticks() {
        let origin = Instant::now();
        // Runs of 3 s keep the 10 s grid; the 25 s run at 30 overruns two ticks (40 and 50):
        // one is run at once at 55, the other is dropped, and the grid resumes at 60.
        let (job, starts) = recording(origin, vec![3, 3, 25, 0, 0]);
        run_for(repeat(Duration::from_secs(10), job, false), 75)
            .await
            .expect("ends on cancel");
        let starts = starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(starts, vec![10, 20, 30, 55, 60, 70]);
    }

    #[tokio::test(start_paused = true)]
    async fn start_immediately_runs_at_once() {
        let origin = Instant::now();
        let (job, starts) = recording(origin, vec![2]);
        run_for(repeat(Duration::from_secs(10), job, true), 25)
            .await
            .expect("ends on cancel");
        let starts = starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // The ticker starts after the first run, as Go's does.
        assert_eq!(starts, vec![0, 12, 22]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_error_ends_the_worker() {
        let runs = Arc::new(Mutex::new(0));
        let job = Job::new({
            let runs = runs.clone();
            move |_c| {
                let runs = runs.clone();
                async move {
                    let mut runs = runs.lock().unwrap_or_else(PoisonError::into_inner);
                    *runs += 1;
                    if *runs == 2 {
                        Err(Error::new(ErrorKind::Timeout, "second run failed"))
                    } else {
                        Ok(())
                    }
                }
            }
        });
        let err = run_for(repeat(Duration::from_secs(1), job, false), 60)
            .await
            .expect_err("the job failed");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(*runs.lock().unwrap_or_else(PoisonError::into_inner), 2);
    }
}
