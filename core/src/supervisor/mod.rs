// SPDX-License-Identifier: Apache-2.0
//! Supervised services and jobs, after rebuy-go-sdk's `runutil`: run workers together so that
//! the first one to stop stops them all ([`run_all_workers`]), repeat jobs on a period
//! ([`repeat`], [`distributed_repeat`]), restart failed workers with backoff ([`retry`],
//! [`retry_job`]) and track the health of named workers ([`WorkerGroup`]).
//!
//! A [`Worker`] runs until its token is cancelled; a [`Job`] runs once. Both are cheap to clone.
//! A panic inside either is caught and becomes an error, so one broken worker cannot take the
//! process down with it.
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use jetjobs::supervisor::{self, Job, Worker, WorkerGroup};
//! use jetjobs::{CancellationToken, RetryPolicy};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> jetjobs::Result<()> {
//! let tick = Job::new(|_cancel| async { Ok(()) });
//! let mut group = WorkerGroup::new();
//! group.add_with_retry(
//!     "ticker",
//!     supervisor::repeat(Duration::from_secs(60), tick, true),
//!     RetryPolicy::exponential(Duration::from_secs(1), Duration::from_secs(60), 0.5)?,
//! );
//! group.add("idle", Worker::new(|cancel: CancellationToken| async move {
//!     cancel.cancelled().await;
//!     Ok(())
//! }));
//! let shutdown = CancellationToken::new();
//! shutdown.cancel(); // e.g. on Ctrl-C
//! group.run(&shutdown).await
//! # }
//! ```

mod distributed;
mod health;
mod repeat;
mod retry;
mod run;

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};

pub use distributed::{REPEAT_BUCKET, distributed_repeat};
pub use health::{HEALTHY_AFTER, Health, WorkerGroup};
pub use repeat::repeat;
pub use retry::{MIN_RESTART_DELAY, backoff_delay, retry, retry_job, wait};
pub use run::{run_all_jobs, run_all_workers};

type RunFn = dyn Fn(CancellationToken) -> BoxFuture<'static, Result<()>> + Send + Sync;

/// A service that runs until its token is cancelled (runutil's `Worker`); cheap to clone.
///
/// Returning `Ok(())` before the token is cancelled counts as
/// [`WorkerExitedPrematurely`](ErrorKind::WorkerExitedPrematurely) in [`run_all_workers`].
///
/// # Examples
/// ```
/// use jetjobs::supervisor::Worker;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jetjobs::Result<()> {
/// let worker = Worker::new(|cancel: jetjobs::CancellationToken| async move {
///     cancel.cancelled().await;
///     Ok(())
/// });
/// let cancel = jetjobs::CancellationToken::new();
/// cancel.cancel();
/// worker.run(cancel).await
/// # }
/// ```
#[derive(Clone)]
pub struct Worker {
    run: Arc<RunFn>,
}

impl Worker {
    /// A worker whose every run calls `f`.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        Self {
            run: Arc::new(move |cancel| f(cancel).boxed()),
        }
    }

    /// Runs the worker until it returns; a panic becomes an error.
    pub async fn run(&self, cancel: CancellationToken) -> Result<()> {
        catch_panic("worker", async { (self.run)(cancel).await }).await
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Worker")
    }
}

/// Work that runs once and returns (runutil's `Job`); cheap to clone.
///
/// # Examples
/// ```
/// use jetjobs::supervisor::Job;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> jetjobs::Result<()> {
/// let job = Job::new(|_cancel| async { Ok(()) });
/// job.run_once(jetjobs::CancellationToken::new()).await
/// # }
/// ```
#[derive(Clone)]
pub struct Job {
    run: Arc<RunFn>,
}

impl Job {
    /// A job whose every run calls `f`.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        Self {
            run: Arc::new(move |cancel| f(cancel).boxed()),
        }
    }

    /// Runs the job once; a panic becomes an error.
    pub async fn run_once(&self, cancel: CancellationToken) -> Result<()> {
        catch_panic("job", async { (self.run)(cancel).await }).await
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Job")
    }
}

/// Runs `fut`, turning a panic into a `WorkerExitedPrematurely` error: the worker or job did not
/// finish the way it meant to, and the process keeps running.
async fn catch_panic(what: &str, fut: impl Future<Output = Result<()>>) -> Result<()> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| Err(panicked(what, payload.as_ref())))
}

fn panicked(what: &str, payload: &(dyn Any + Send)) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    Error::new(
        ErrorKind::WorkerExitedPrematurely,
        format!("a supervised {what} panicked: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_becomes_an_error() {
        let worker = Worker::new(|_cancel| async { panic!("boom") });
        let err = worker
            .run(CancellationToken::new())
            .await
            .expect_err("panicked");
        assert_eq!(err.kind(), ErrorKind::WorkerExitedPrematurely);
        assert!(err.to_string().contains("boom"), "{err}");
        let job = Job::new(|_cancel| async { panic!("{}", String::from("bang")) });
        let err = job
            .run_once(CancellationToken::new())
            .await
            .expect_err("panicked");
        assert!(err.to_string().contains("bang"), "{err}");
    }
}
