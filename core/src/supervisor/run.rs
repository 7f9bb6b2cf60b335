// SPDX-License-Identifier: Apache-2.0
//! Running workers and jobs side by side: runutil's `RunAllWorkers` and `RunAllJobs`.

use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::supervisor::{Job, Worker, health};

/// Runs every worker on its own task until all have returned; the first to return, with an
/// error or not, cancels the others.
///
/// A worker that returns `Ok(())` while its token is not cancelled yet is reported as
/// `WorkerExitedPrematurely`; errors returned while shutting down are kept. All errors are
/// joined in the order the workers returned ([`Error::joined`]). No workers: `Ok(())` at once.
/// The caller's token is never cancelled here, only a child of it.
///
/// # Examples
/// ```
/// use jetjobs::supervisor::{Worker, run_all_workers};
/// use jetjobs::{CancellationToken, ErrorKind};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let waits = Worker::new(|cancel: CancellationToken| async move {
///     cancel.cancelled().await;
///     Ok(())
/// });
/// let quits = Worker::new(|_cancel| async { Ok(()) });
/// let err = run_all_workers(&CancellationToken::new(), vec![waits, quits])
///     .await
///     .expect_err("one quit early");
/// assert_eq!(err.kind(), ErrorKind::WorkerExitedPrematurely);
/// # }
/// ```
pub async fn run_all_workers(cancel: &CancellationToken, workers: Vec<Worker>) -> Result<()> {
    let cancel = cancel.child_token();
    // Dropping this future (the caller gave up on it) stops the workers too.
    let _stop_on_drop = cancel.clone().drop_guard();
    let mut running = JoinSet::new();
    for worker in workers {
        let cancel = cancel.clone();
        running.spawn(health::inherit(async move {
            let result = worker.run(cancel.clone()).await;
            // Checked before cancelling: the first worker to return `Ok` is always premature.
            let premature = result.is_ok() && !cancel.is_cancelled();
            cancel.cancel();
            match result {
                Err(e) => Some(e),
                Ok(()) if premature => Some(Error::new(
                    ErrorKind::WorkerExitedPrematurely,
                    "worker exited prematurely",
                )),
                Ok(()) => None,
            }
        }));
    }
    let mut errors = Vec::new();
    while let Some(done) = running.join_next().await {
        cancel.cancel();
        if let Some(e) = done.unwrap_or_else(|e| Some(crashed(e))) {
            errors.push(e);
        }
    }
    Error::joined(errors).map_or(Ok(()), Err)
}

/// Runs every job on its own task and waits for all of them, whatever each returns; their errors
/// are joined in the order the jobs returned ([`Error::joined`]).
///
/// # Examples
/// ```
/// use jetjobs::supervisor::{Job, run_all_jobs};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jetjobs::Result<()> {
/// let jobs = (0..3).map(|_| Job::new(|_cancel| async { Ok(()) })).collect();
/// run_all_jobs(&jetjobs::CancellationToken::new(), jobs).await
/// # }
/// ```
pub async fn run_all_jobs(cancel: &CancellationToken, jobs: Vec<Job>) -> Result<()> {
    let mut running = JoinSet::new();
    for job in jobs {
        let cancel = cancel.clone();
        running.spawn(health::inherit(
            async move { job.run_once(cancel).await.err() },
        ));
    }
    let mut errors = Vec::new();
    while let Some(done) = running.join_next().await {
        if let Some(e) = done.unwrap_or_else(|e| Some(crashed(e))) {
            errors.push(e);
        }
    }
    Error::joined(errors).map_or(Ok(()), Err)
}

/// [`Worker::run`] catches panics, so this is only the runtime shutting down under us.
fn crashed(e: JoinError) -> Error {
    Error::with_source(
        ErrorKind::WorkerExitedPrematurely,
        "a supervised task ended abnormally",
        e,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    fn until_cancelled() -> Worker {
        Worker::new(|cancel: CancellationToken| async move {
            cancel.cancelled().await;
            Ok(())
        })
    }

    fn omg() -> Error {
        Error::new(ErrorKind::Timeout, "omg")
    }

    #[tokio::test]
    async fn workers_returning_ok_early_exited_prematurely() {
        let workers = (0..3).map(|_| Worker::new(|_c| async { Ok(()) })).collect();
        let err = run_all_workers(&CancellationToken::new(), workers)
            .await
            .expect_err("premature");
        // Only the first is premature: the others returned after its cancel.
        assert_eq!(err.kind(), ErrorKind::WorkerExitedPrematurely, "{err}");
    }

    #[tokio::test]
    async fn workers_stopping_on_cancel_are_fine() {
        let cancel = CancellationToken::new();
        let run = tokio::spawn({
            let cancel = cancel.clone();
            async move { run_all_workers(&cancel, vec![until_cancelled(); 3]).await }
        });
        cancel.cancel();
        run.await.expect("joined").expect("no error");
        assert!(
            run_all_workers(&CancellationToken::new(), Vec::new())
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn errors_returned_after_cancel_are_passed_through() {
        let cancel = CancellationToken::new();
        let grumpy = Worker::new(|cancel: CancellationToken| async move {
            cancel.cancelled().await;
            Err(omg())
        });
        let run = tokio::spawn({
            let cancel = cancel.clone();
            async move { run_all_workers(&cancel, vec![until_cancelled(), grumpy]).await }
        });
        cancel.cancel();
        let err = run.await.expect("joined").expect_err("omg");
        assert_eq!(
            (err.kind(), err.to_string()),
            (ErrorKind::Timeout, "omg".into())
        );
    }

    #[tokio::test]
    async fn the_first_failure_cancels_the_others() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let counting = {
            let stopped = stopped.clone();
            Worker::new(move |cancel: CancellationToken| {
                let stopped = stopped.clone();
                async move {
                    cancel.cancelled().await;
                    stopped.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            })
        };
        let failing = Worker::new(|_c| async { Err(omg()) });
        let caller = CancellationToken::new();
        let err = run_all_workers(&caller, vec![counting.clone(), failing, counting])
            .await
            .expect_err("omg");
        assert_eq!(err.kind(), ErrorKind::Timeout);
        assert_eq!(stopped.load(Ordering::SeqCst), 2);
        assert!(!caller.is_cancelled(), "only a child token is cancelled");
    }

    #[tokio::test]
    async fn several_errors_are_joined_in_completion_order() {
        let first = Worker::new(|_c| async { Err(Error::new(ErrorKind::Storage, "first")) });
        let second = Worker::new(|cancel: CancellationToken| async move {
            cancel.cancelled().await;
            Err(Error::new(ErrorKind::Timeout, "second"))
        });
        let panics = Worker::new(|cancel: CancellationToken| async move {
            cancel.cancelled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            panic!("third")
        });
        let err = run_all_workers(&CancellationToken::new(), vec![panics, second, first])
            .await
            .expect_err("joined");
        assert_eq!(err.kind(), ErrorKind::WorkersFailed);
        let kinds: Vec<_> = err.errors().iter().map(Error::kind).collect();
        assert_eq!(
            kinds,
            vec![
                ErrorKind::Storage,
                ErrorKind::Timeout,
                ErrorKind::WorkerExitedPrematurely
            ]
        );
        assert!(err.to_string().contains("first") && err.to_string().contains("third"));
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_all_run_to_the_end_and_their_errors_are_joined() {
        let finished = Arc::new(AtomicUsize::new(0));
        let job = |secs: u64, fail: bool| {
            let finished = finished.clone();
            Job::new(move |_c| {
                let finished = finished.clone();
                async move {
                    tokio::time::sleep(Duration::from_secs(secs)).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    if fail {
                        Err(Error::new(ErrorKind::Timeout, format!("job {secs}")))
                    } else {
                        Ok(())
                    }
                }
            })
        };
        let jobs = vec![job(3, true), job(1, true), job(5, false)];
        let err = run_all_jobs(&CancellationToken::new(), jobs)
            .await
            .expect_err("two failed");
        assert_eq!(finished.load(Ordering::SeqCst), 3, "no job was cut short");
        let messages: Vec<_> = err.errors().iter().map(ToString::to_string).collect();
        assert_eq!(messages, vec!["job 1", "job 3"]);
        let one = run_all_jobs(&CancellationToken::new(), vec![job(1, true), job(1, false)])
            .await
            .expect_err("one failed");
        assert_eq!((one.kind(), one.errors().len()), (ErrorKind::Timeout, 0));
    }
}
