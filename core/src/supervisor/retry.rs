// SPDX-License-Identifier: Apache-2.0
//! Restarting with backoff: runutil's `Retry`, `RetryJob`, `Wait` and `Backoff.Duration`, on the
//! project's one backoff implementation, [`RetryPolicy`].

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind};
use crate::retry::RetryPolicy;
use crate::supervisor::{Job, Worker};

/// The least time [`retry`] waits before restarting a worker. runutil restarts a worker that
/// returned `Ok` before it was cancelled in a tight loop; this keeps such a worker from spinning.
pub const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);

/// runutil's `Backoff.Duration`: no wait before the first attempt (`attempt == 0`), then
/// `policy.delay(attempt)`.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use jetjobs::{RetryPolicy, supervisor::backoff_delay};
/// let p = RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(60), 0.0)?;
/// let waits: Vec<u64> = (0..9).map(|a| backoff_delay(&p, a).as_secs()).collect();
/// assert_eq!(waits, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
/// # Ok::<(), jetjobs::Error>(())
/// ```
pub fn backoff_delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    match attempt {
        0 => Duration::ZERO,
        n => policy.delay(n),
    }
}

/// Sleeps for `d` unless `cancel` fires first; `true` if the whole time passed, `false` if
/// `cancel` fired (or already had).
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let cancel = jetjobs::CancellationToken::new();
/// cancel.cancel();
/// assert!(!jetjobs::supervisor::wait(&cancel, Duration::from_secs(10)).await);
/// # }
/// ```
pub async fn wait(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}

/// A worker that runs `worker` again whenever it returns, until cancelled; it never returns an
/// error.
///
/// After a failure it waits [`backoff_delay`]`(backoff, attempt)`, where `attempt` counts
/// failures in a row; a run that returns `Ok(())` resets the count. Every restart waits at
/// least [`MIN_RESTART_DELAY`].
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use jetjobs::supervisor::{Worker, retry};
/// let flaky = Worker::new(|_cancel| async { Err(jetjobs::Error::new(jetjobs::ErrorKind::Storage, "down")) });
/// let resilient = retry(flaky, jetjobs::RetryPolicy::fixed(Duration::from_secs(1)));
/// # let _ = resilient;
/// ```
pub fn retry(worker: Worker, backoff: RetryPolicy) -> Worker {
    Worker::new(move |cancel: CancellationToken| {
        let (worker, backoff) = (worker.clone(), backoff.clone());
        async move {
            let mut attempt = 0u32;
            let mut delay = Duration::ZERO;
            while wait(&cancel, delay).await {
                match worker.run(cancel.clone()).await {
                    Err(e) => {
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(attempt, error = %e, "worker failed; restarting");
                        delay = backoff_delay(&backoff, attempt).max(MIN_RESTART_DELAY);
                    }
                    Ok(()) => {
                        attempt = 0;
                        if !cancel.is_cancelled() {
                            tracing::warn!("worker exited prematurely; restarting");
                        }
                        delay = MIN_RESTART_DELAY;
                    }
                }
            }
            Ok(())
        }
    })
}

/// A job that runs `job` until it succeeds, waiting [`backoff_delay`]`(backoff, attempt)` after
/// each failure. Cancelled before it succeeds, it fails with `Closed` (runutil returns
/// `ctx.Err()`), naming the last error.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use jetjobs::supervisor::{Job, retry_job};
/// let job = retry_job(Job::new(|_cancel| async { Ok(()) }), jetjobs::RetryPolicy::fixed(Duration::from_millis(50)));
/// # let _ = job;
/// ```
pub fn retry_job(job: Job, backoff: RetryPolicy) -> Job {
    Job::new(move |cancel: CancellationToken| {
        let (job, backoff) = (job.clone(), backoff.clone());
        async move {
            let mut attempt = 0u32;
            let mut last = None;
            while !cancel.is_cancelled() {
                match job.run_once(cancel.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        attempt = attempt.saturating_add(1);
                        tracing::warn!(attempt, error = %e, "job failed; retrying");
                        last = Some(e);
                        wait(&cancel, backoff_delay(&backoff, attempt)).await;
                    }
                }
            }
            let message = match last {
                Some(e) => format!("cancelled before the job succeeded; last error: {e}"),
                None => "cancelled before the job ran".to_string(),
            };
            Err(Error::new(ErrorKind::Closed, message))
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use tokio::time::Instant;

    use super::*;
    use crate::error::Result;

    fn secs(policy: &RetryPolicy, attempts: std::ops::Range<u32>) -> Vec<u64> {
        attempts
            .map(|a| backoff_delay(policy, a).as_secs())
            .collect()
    }

    #[test]
    fn fixed_backoff_waits_the_same_after_the_first_attempt() {
        let p = RetryPolicy::fixed(Duration::from_secs(3));
        assert_eq!(secs(&p, 0..5), vec![0, 3, 3, 3, 3]);
        let none = RetryPolicy::fixed(Duration::ZERO);
        assert_eq!(backoff_delay(&none, 7), Duration::ZERO);
    }

    #[test]
    fn exponential_backoff_without_jitter_matches_runutil() -> Result<()> {
        let exp = |initial, max| {
            RetryPolicy::exponential(Duration::from_secs(initial), Duration::from_secs(max), 0.0)
        };
        assert_eq!(
            secs(&exp(1, 60)?, 0..11),
            vec![0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
        );
        assert_eq!(
            secs(&exp(2, 60)?, 0..11),
            vec![0, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60]
        );
        assert_eq!(
            secs(&exp(3, 60)?, 0..9),
            vec![0, 3, 6, 12, 24, 48, 60, 60, 60]
        );
        Ok(())
    }

    #[test]
    fn exponential_backoff_with_jitter_stays_in_runutils_bounds() -> Result<()> {
        let p = RetryPolicy::exponential(Duration::from_secs(2), Duration::from_secs(60), 0.5)?;
        let min = [0, 1, 2, 4, 8, 16, 30, 30, 30, 30, 30];
        let max = [0, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60];
        for _ in 0..100 {
            for attempt in 0..11 {
                let got = backoff_delay(&p, attempt);
                let (lo, hi) = (min[attempt as usize], max[attempt as usize]);
                assert!(
                    got >= Duration::from_secs(lo) && got <= Duration::from_secs(hi),
                    "attempt {attempt}: {got:?} not in {lo}..={hi} s"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn exponential_backoff_survives_huge_attempts() -> Result<()> {
        let p = RetryPolicy::exponential(Duration::from_secs(60), Duration::from_secs(300), 0.5)?;
        for attempt in [
            100,
            1_000,
            10_000,
            100_000,
            1_000_000,
            10_000_000,
            100_000_000,
        ] {
            let got = backoff_delay(&p, attempt);
            assert!(got > Duration::ZERO && got <= Duration::from_secs(300));
        }
        assert!(backoff_delay(&p, u32::MAX) > Duration::ZERO);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn wait_sleeps_or_returns_early_on_cancel() {
        let cancel = CancellationToken::new();
        let begin = Instant::now();
        for _ in 0..4 {
            assert!(wait(&cancel, Duration::from_millis(10)).await);
        }
        assert!(Instant::now() - begin >= Duration::from_millis(40));

        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            canceller.cancel();
        });
        let begin = Instant::now();
        assert!(!wait(&cancel, Duration::from_secs(10)).await);
        assert!(Instant::now() - begin < Duration::from_secs(1));
    }

    /// A worker failing its first `failures` runs, then returning `Ok` (prematurely) each run;
    /// it records when each run started.
    fn flaky(failures: u32) -> (Worker, Arc<std::sync::Mutex<Vec<Instant>>>) {
        let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let worker = Worker::new({
            let starts = starts.clone();
            move |_c| {
                let starts = starts.clone();
                async move {
                    let mut starts = starts
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    starts.push(Instant::now());
                    if starts.len() as u32 <= failures {
                        Err(Error::new(ErrorKind::Storage, "down"))
                    } else {
                        Ok(())
                    }
                }
            }
        });
        (worker, starts)
    }

    #[tokio::test(start_paused = true)]
    async fn retry_restarts_with_backoff_and_a_minimum_delay() {
        let (worker, starts) = flaky(3);
        let policy = RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(60), 0.0)
            .expect("policy");
        let cancel = CancellationToken::new();
        let retried = retry(worker, policy);
        let running = tokio::spawn({
            let cancel = cancel.clone();
            async move { retried.run(cancel).await }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while starts.lock().map(|s| s.len()).unwrap_or_default() < 8 {
            assert!(Instant::now() < deadline, "restarts stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        cancel.cancel();
        running.await.expect("joined").expect("retry never fails");
        let starts = starts.lock().map(|s| s.clone()).unwrap_or_default();
        let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        let ms = |n| Duration::from_millis(n);
        // Three failures back off 1 s, 2 s, 4 s; the premature `Ok`s wait the minimum.
        assert_eq!(&gaps[..3], &[ms(1000), ms(2000), ms(4000)]);
        assert!(
            gaps[3..].iter().all(|&g| g == MIN_RESTART_DELAY),
            "{gaps:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_returns_ok_once_cancelled() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let (worker, starts) = flaky(100);
        retry(worker, RetryPolicy::fixed(Duration::from_secs(1)))
            .run(cancel)
            .await
            .expect("ok");
        assert_eq!(starts.lock().map(|s| s.len()).unwrap_or_default(), 0);
    }

    fn failing_job(failures: u32) -> (Job, Arc<AtomicU32>) {
        let runs = Arc::new(AtomicU32::new(0));
        let job = Job::new({
            let runs = runs.clone();
            move |_c| {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    if n <= failures {
                        Err(Error::new(ErrorKind::Storage, format!("failure {n}")))
                    } else {
                        Ok(())
                    }
                }
            }
        });
        (job, runs)
    }

    #[tokio::test(start_paused = true)]
    async fn retry_job_succeeds_first_time_or_after_failures_with_backoff() {
        let (job, runs) = failing_job(0);
        let fixed = RetryPolicy::fixed(Duration::from_millis(50));
        retry_job(job, fixed.clone())
            .run_once(CancellationToken::new())
            .await
            .expect("first try");
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        let (job, runs) = failing_job(3);
        let begin = Instant::now();
        retry_job(job, fixed)
            .run_once(CancellationToken::new())
            .await
            .expect("fourth try");
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert!(Instant::now() - begin >= Duration::from_millis(150));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_job_gives_up_when_cancelled() {
        let (job, _) = failing_job(u32::MAX);
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            canceller.cancel();
        });
        let err = retry_job(job, RetryPolicy::fixed(Duration::from_secs(1)))
            .run_once(cancel)
            .await
            .expect_err("cancelled");
        assert_eq!(err.kind(), ErrorKind::Closed);
        assert!(err.to_string().contains("failure"), "{err}");
    }
}
