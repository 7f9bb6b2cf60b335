// SPDX-License-Identifier: Apache-2.0
//! The admission step: between "this task may start" and its `active` save, an [`Admission`]
//! grants a [`Permit`] (held until the handler ends, whatever the outcome) or asks the worker to
//! come back later. Governor slots, per-key ordering and keyed jobs plug in here.

use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::Result;
use crate::task::Task;

/// Decides whether a task may start now.
///
/// `admit` should answer promptly: the task holds a handler slot while it runs. To make the task
/// wait, answer [`Admit::RetryAfter`]; the worker then frees the slot, keeps the work item (so
/// the wait never counts as a try or a delivery), and asks again after the delay, until the
/// task's deadline. An `Err` is treated like a short retry-after and logged.
///
/// # Examples
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::time::Duration;
/// use jetjobs::{Admission, Admit, Permit, Task};
///
/// /// At most `limit` tasks of this process run at once.
/// struct Limit { running: std::sync::Arc<AtomicUsize>, limit: usize }
///
/// impl Admission for Limit {
///     fn admit<'a>(&'a self, _task: &'a Task) -> futures::future::BoxFuture<'a, jetjobs::Result<Admit>> {
///         Box::pin(async move {
///             if self.running.fetch_add(1, Ordering::SeqCst) >= self.limit {
///                 self.running.fetch_sub(1, Ordering::SeqCst);
///                 return Ok(Admit::RetryAfter(Duration::from_millis(100)));
///             }
///             let running = self.running.clone();
///             Ok(Admit::Granted(Permit::on_release(move || {
///                 running.fetch_sub(1, Ordering::SeqCst);
///             })))
///         })
///     }
/// }
/// ```
pub trait Admission: Send + Sync + 'static {
    /// Grants a permit for `task` to start, or says when to ask again.
    fn admit<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<Admit>>;
}

/// The answer of an [`Admission`].
pub enum Admit {
    /// The task may start; the permit is released when its handler ends.
    Granted(Permit),
    /// Not now: ask again after this long.
    RetryAfter(Duration),
}

/// Something held while a handler runs and released (dropped) when it ends: on success, failure,
/// panic, timeout or shutdown alike.
#[must_use = "dropping a permit releases it"]
pub struct Permit {
    _held: Option<Box<dyn Send + Sync>>,
}

impl Permit {
    /// A permit that holds nothing.
    pub fn unit() -> Self {
        Self { _held: None }
    }

    /// A permit that keeps `guard` alive until the handler ends (an RAII lease, a lock guard).
    pub fn holding(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _held: Some(Box::new(guard)),
        }
    }

    /// A permit that calls `release` when the handler ends.
    pub fn on_release(release: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self::holding(OnDrop(Some(release)))
    }
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

/// Two admission steps in turn: the worker's, then the route's. A "later" from the second gives
/// back the first's permit, so a waiting task holds neither.
pub(crate) struct Both(
    pub(crate) std::sync::Arc<dyn Admission>,
    pub(crate) std::sync::Arc<dyn Admission>,
);

impl Admission for Both {
    fn admit<'a>(&'a self, task: &'a Task) -> BoxFuture<'a, Result<Admit>> {
        Box::pin(async move {
            let first = match self.0.admit(task).await? {
                Admit::Granted(permit) => permit,
                later => return Ok(later),
            };
            Ok(match self.1.admit(task).await? {
                Admit::Granted(second) => Admit::Granted(Permit::holding((first, second))),
                later => later,
            })
        })
    }
}
