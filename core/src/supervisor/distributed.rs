// SPDX-License-Identifier: Apache-2.0
//! runutil's `DistributedRepeat` on NATS KV: at most one run per period across every process
//! that repeats a job under the same name.
//!
//! runutil keeps one Redis lock per name, refreshed while the job runs and then slept out, and
//! says it "does not have any correctness guarantees". Here the periods are aligned to the Unix
//! epoch instead and each one has its own key, `<name>.<period index>`: creating it is the claim,
//! so a slow holder or a lost refresh can never let two processes run the same period. The key
//! expires on its own (a per-key TTL, nats-server 2.11+), so nothing needs cleaning up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Kv, KvBucket};
use crate::supervisor::repeat::run_checked;
use crate::supervisor::{Job, Worker, wait};

/// The KV bucket holding the period claims of [`distributed_repeat`].
pub const REPEAT_BUCKET: &str = "JETJOBS_REPEAT";

/// A worker that runs `job` at most once per `every` across all processes using `name`.
///
/// Periods start at multiples of `every` since the Unix epoch. At each start, every process
/// tries to create the key `<name>.<period>` in the [`REPEAT_BUCKET`] bucket; the one that
/// succeeds runs the job. A period that starts while the job is still running is skipped. A job
/// error ends the worker (as with [`repeat`](crate::supervisor::repeat)); a storage error on a
/// claim is logged and that period skipped. The processes' clocks should agree to well within a
/// period.
///
/// Fails with `InvalidOption` unless `every` is a whole number of seconds (at least one) and
/// `name` is made of letters, digits, `_` and `-`; with `Storage` if the bucket cannot be opened.
///
/// # Examples
/// ```no_run
/// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
/// use std::time::Duration;
/// use jetjobs::supervisor::{Job, distributed_repeat};
/// let report = Job::new(|_cancel| async { Ok(()) });
/// let worker = distributed_repeat(&client, "nightly-report", Duration::from_secs(3600), report).await?;
/// worker.run(jetjobs::CancellationToken::new()).await
/// # }
/// ```
pub async fn distributed_repeat(
    client: &Client,
    name: &str,
    every: Duration,
    job: Job,
) -> Result<Worker> {
    validate(name, every)?;
    let kv = client
        .kv(&KvBucket::new(REPEAT_BUCKET)
            .description("jetjobs distributed repeat claims")
            .per_key_ttl())
        .await?;
    let claims = Claims {
        kv,
        name: name.to_string(),
        every: every.as_secs(),
        holder: Bytes::from(crate::wire::new_id()),
    };
    Ok(Worker::new(move |cancel: CancellationToken| {
        let (claims, job) = (claims.clone(), job.clone());
        async move {
            let mut last = None;
            loop {
                let (period, until) = claims.next_period(last);
                if !wait(&cancel, until).await {
                    return Ok(());
                }
                last = Some(period);
                if claims.claim(period).await {
                    run_checked(&job, &cancel).await?;
                }
            }
        }
    }))
}

fn validate(name: &str, every: Duration) -> Result<()> {
    if every < Duration::from_secs(1) || every.subsec_nanos() != 0 {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("a distributed repeat's period is a whole number of seconds, not {every:?}"),
        ));
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("a distributed repeat's name is letters, digits, _ and -, not {name:?}"),
        ));
    }
    Ok(())
}

#[derive(Clone)]
struct Claims {
    kv: Kv,
    name: String,
    /// The period in whole seconds.
    every: u64,
    /// Stored in each claim, to tell in the bucket which process ran a period.
    holder: Bytes,
}

impl Claims {
    /// The index of the next period to claim, after `last`, and how long until it starts.
    fn next_period(&self, last: Option<u64>) -> (u64, Duration) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let current = now.as_secs() / self.every;
        // A timer may wake a hair before the wall clock reaches the boundary; never claim a
        // period twice.
        let next = (current + 1).max(last.map_or(0, |l| l + 1));
        let start = Duration::from_secs(next.saturating_mul(self.every));
        (next, start.saturating_sub(now))
    }

    /// Whether this process won `period`; losing and storage trouble both skip it.
    async fn claim(&self, period: u64) -> bool {
        let key = format!("{}.{period}", self.name);
        // Twice the period: the key outlives its period, so a late process cannot claim it anew.
        let ttl = Duration::from_secs(self.every.saturating_mul(2));
        match self
            .kv
            .create_with_ttl(&key, self.holder.clone(), ttl)
            .await
        {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::KeyExists => false,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "claiming a repeat period failed; skipping it");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_whole_seconds_and_names_are_key_tokens() {
        let kind = |name, every| validate(name, every).err().map(|e| e.kind());
        assert_eq!(kind("report-1_a", Duration::from_secs(60)), None);
        for bad in ["", "a.b", "a b", "a*", ">", "é"] {
            assert_eq!(
                kind(bad, Duration::from_secs(1)),
                Some(ErrorKind::InvalidOption),
                "{bad:?}"
            );
        }
        for bad in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_millis(1500),
        ] {
            assert_eq!(kind("ok", bad), Some(ErrorKind::InvalidOption), "{bad:?}");
        }
    }
}
