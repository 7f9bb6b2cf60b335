// SPDX-License-Identifier: Apache-2.0
//! Repeats of one storage call through a short outage (a server restart, a leader election).

use tokio_util::sync::CancellationToken;

use crate::error::{ErrorKind, Result};
use crate::retry::RetryPolicy;

/// Repeats of a storage call through an outage before giving up on it (about a minute).
const STORAGE_ATTEMPTS: u32 = 12;

/// Paces the repeats of one storage call until it succeeds, fails for another reason, or
/// `abandon` (if any) fires. Handing the item back at once is no use then: a NAK sent to a server
/// that is going down is lost, and the item would wait out the queue's max run time.
pub(crate) struct OutageRetry<'a> {
    what: &'static str,
    abandon: Option<&'a CancellationToken>,
    attempt: u32,
}

/// Evaluates `$call` (an awaited storage call) until `$retry` says it is not worth repeating, and
/// gives its last result. A macro because the call borrows from the caller's scope (`&mut task`).
macro_rules! through_outage {
    ($retry:expr, $call:expr) => {{
        let mut retry = $retry;
        loop {
            let result = $call;
            if !retry.again(&result).await {
                break result;
            }
        }
    }};
}
pub(crate) use through_outage;

impl<'a> OutageRetry<'a> {
    pub(crate) fn new(what: &'static str, abandon: Option<&'a CancellationToken>) -> Self {
        Self {
            what,
            abandon,
            attempt: 0,
        }
    }

    /// True, after a pause, if `result` is a storage error worth another try.
    pub(crate) async fn again<T>(&mut self, result: &Result<T>) -> bool {
        let Err(e) = result else { return false };
        if e.kind() != ErrorKind::Storage
            || self.attempt >= STORAGE_ATTEMPTS
            || self.abandon.is_some_and(CancellationToken::is_cancelled)
        {
            return false;
        }
        self.attempt += 1;
        tracing::warn!(error = %e, attempt = self.attempt, "{} failed; retrying", self.what);
        let pause = tokio::time::sleep(storage_retry().delay(self.attempt));
        match self.abandon {
            Some(abandon) => tokio::select! { _ = pause => {}, _ = abandon.cancelled() => {} },
            None => pause.await,
        }
        true
    }
}

/// asyncjobs' `retryLinearTenSeconds` (0.5s to 10s), used when storage is unreachable.
pub(crate) fn storage_retry() -> RetryPolicy {
    RetryPolicy::linear(
        20,
        std::time::Duration::from_millis(500),
        std::time::Duration::from_secs(10),
        0.1,
    )
}
