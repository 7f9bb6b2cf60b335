// SPDX-License-Identifier: Apache-2.0
//! A pool-wide ticker (pulse's `NewTicker`): every node that opens a ticker of one name sleeps
//! until the stored next tick, then tries to advance it by compare-and-swap; only the winner
//! ticks. Periods run from tick to tick; missed ones are skipped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::pool::node::Inner;
use crate::pool::records::{self, TICKERS, TickerRecord};
use crate::store::KvEntry;
use crate::wire::Timestamp;

/// Ticks of a pool-wide ticker delivered to this node; each tick reaches one node.
///
/// A tick nobody is waiting for is dropped, as with pulse (and Go's `time.Ticker`).
pub struct Ticker {
    ticks: tokio::sync::Mutex<mpsc::Receiver<Timestamp>>,
    inner: Arc<Inner>,
    key: String,
    closed: CancellationToken,
}

impl Ticker {
    pub(crate) async fn open(inner: Arc<Inner>, key: String, every: Duration) -> Result<Self> {
        if every < Duration::from_millis(1) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a ticker's period is at least 1 ms",
            ));
        }
        let every_ns = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX);
        let fresh = TickerRecord {
            next_ns: records::now_ns().saturating_add(every_ns),
            every_ns,
        };
        // Keep the stored schedule when it has this period, so that nodes joining late share it.
        match inner.kv.get(&key).await? {
            Some(entry) => {
                let stored: Option<TickerRecord> = records::decode("ticker", &entry.value).ok();
                if stored.is_none_or(|s| s.every_ns != every_ns) {
                    inner.kv.put(&key, records::encode(&fresh)?).await?;
                }
            }
            None => match inner.kv.create(&key, records::encode(&fresh)?).await {
                Err(e) if e.kind() == ErrorKind::KeyExists => {}
                other => {
                    other?;
                }
            },
        }
        let (tx, rx) = mpsc::channel(1);
        let closed = inner.stop.child_token();
        tokio::spawn(run(inner.clone(), key.clone(), tx, closed.clone()));
        Ok(Self {
            ticks: tokio::sync::Mutex::new(rx),
            inner,
            key,
            closed,
        })
    }

    /// The next tick delivered to this node; `None` once the ticker stopped (here or everywhere).
    pub async fn next(&self) -> Option<Timestamp> {
        self.ticks.lock().await.recv().await
    }

    /// Stops the ticker on every node.
    pub async fn stop(&self) -> Result<()> {
        self.closed.cancel();
        self.inner.kv.delete(&self.key, None).await
    }

    /// Stops this node's share of the ticker; the others keep ticking.
    pub fn close(&self) {
        self.closed.cancel();
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

async fn run(
    inner: Arc<Inner>,
    key: String,
    ticks: mpsc::Sender<Timestamp>,
    closed: CancellationToken,
) {
    loop {
        let entry = match inner.kv.get(&key).await {
            Ok(Some(entry)) => entry,
            // Deleted: stopped on every node.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, key, "reading a pool ticker");
                if pause(&closed, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        let Ok(record) = records::decode::<TickerRecord>("ticker", &entry.value) else {
            tracing::warn!(key, "a corrupt pool ticker record stops the ticker here");
            return;
        };
        let wait = Duration::from_nanos(
            u64::try_from(record.next_ns.saturating_sub(records::now_ns())).unwrap_or(0),
        );
        if pause(&closed, wait).await {
            return;
        }
        match advance(&inner, &key, &entry, &record).await {
            Ok(true) => {
                // Dropped when nobody waits, like Go's ticker.
                let _ = ticks.try_send(Timestamp::now());
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, key, "advancing a pool ticker");
                let retry = Duration::from_nanos(u64::try_from(record.every_ns).unwrap_or(0))
                    .min(Duration::from_secs(1));
                if pause(&closed, retry).await {
                    return;
                }
            }
        }
    }
}

/// Moves the stored tick past now; true if this node won the tick.
async fn advance(inner: &Inner, key: &str, entry: &KvEntry, record: &TickerRecord) -> Result<bool> {
    let now = records::now_ns();
    let every = record.every_ns.max(1);
    let missed = now.saturating_sub(record.next_ns).max(0) / every;
    let next = TickerRecord {
        next_ns: record
            .next_ns
            .saturating_add((missed + 1).saturating_mul(every)),
        every_ns: record.every_ns,
    };
    match inner
        .kv
        .update(key, records::encode(&next)?, entry.revision)
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::RevisionMismatch => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sleeps `d`; true if closed first.
async fn pause(closed: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = closed.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

pub(crate) fn ticker_key(name: &str) -> String {
    format!("{TICKERS}{name}")
}
