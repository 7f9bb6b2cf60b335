// SPDX-License-Identifier: Apache-2.0
//! Leader election exactly as asyncjobs (`election/election.go`) runs it, so Go and jetjobs
//! candidates share one election: one KV key per election in a bucket whose max age is the TTL.
//! A candidate campaigns after a random splay of up to 5 s and then every 0.75 × TTL: a create of
//! the key (only one succeeds), then, as leader, a compare-and-swap refresh of its own revision.
//! A win is announced only after the first refresh succeeds, one interval later, so that a deposed
//! leader can notice first; a failed refresh makes the leader a candidate again. A dead leader's
//! key expires with the bucket's TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng as _;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::metrics;
use crate::store::Kv;

/// The longest random delay before a candidate's first campaign.
const MAX_SPLAY: Duration = Duration::from_millis(5000);

/// Where a candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Candidate,
    Leader,
}

/// One candidate in one election.
pub(crate) struct Election {
    kv: Kv,
    key: String,
    name: String,
    interval: Duration,
    leader: Arc<AtomicBool>,
}

/// What the election tells its owner.
pub(crate) trait Observer: Send + Sync {
    /// This candidate's win, announced one interval after it took the key.
    fn won(&self);
    /// The announced leadership ended (lost the key, or stopped).
    fn lost(&self);
}

impl Election {
    /// Candidate `name` for `key` in `kv`, whose bucket expires keys after `ttl`; asyncjobs
    /// accepts a TTL of 10 s to 1 h.
    pub(crate) fn new(
        kv: Kv,
        key: &str,
        name: &str,
        ttl: Duration,
        leader: Arc<AtomicBool>,
    ) -> Result<Self> {
        if !(Duration::from_secs(10)..=Duration::from_secs(3600)).contains(&ttl) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("an election's TTL is 10s to 1h, not {ttl:?}"),
            ));
        }
        Ok(Self {
            kv,
            key: key.to_string(),
            name: name.to_string(),
            interval: ttl.mul_f64(0.75),
            leader,
        })
    }

    /// Campaigns until `shutdown`; the observer hears of wins and losses, and the `leader` flag
    /// given to [`Election::new`] is true while the win is announced.
    pub(crate) async fn run(self, observer: Arc<dyn Observer>, shutdown: CancellationToken) {
        let splay = rand::rng().random_range(Duration::ZERO..MAX_SPLAY);
        tokio::select! {
            _ = tokio::time::sleep(splay) => {}
            _ = shutdown.cancelled() => return,
        }
        let mut state = State::Candidate;
        let mut revision = 0u64;
        let mut announce_next = false;
        let mut ticker = tokio::time::interval(self.interval);
        let identity = [self.key.as_str(), self.name.as_str()];
        metrics::set(
            &metrics::CAMPAIGN_INTERVAL,
            &identity,
            self.interval.as_secs_f64(),
        );
        metrics::set(&metrics::LEADER, &identity, 0.0);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.cancelled() => break,
            }
            let value = Bytes::from(self.name.clone());
            let state_name = match state {
                State::Candidate => "candidate",
                State::Leader => "leader",
            };
            metrics::inc(&metrics::CAMPAIGNS, &[&self.key, &self.name, state_name]);
            match state {
                State::Candidate => match self.kv.create(&self.key, value).await {
                    Ok(won) => {
                        tracing::debug!(election = %self.key, name = %self.name, "took the election key");
                        state = State::Leader;
                        revision = won;
                        announce_next = true;
                        metrics::set(&metrics::LEADER, &identity, 1.0);
                    }
                    Err(e) if e.kind() == ErrorKind::KeyExists => {}
                    Err(e) => tracing::debug!(election = %self.key, error = %e, "campaign failed"),
                },
                State::Leader => match self.kv.update(&self.key, value, revision).await {
                    Ok(refreshed) => {
                        revision = refreshed;
                        if announce_next {
                            announce_next = false;
                            self.leader.store(true, Ordering::Release);
                            tracing::info!(election = %self.key, name = %self.name, "became leader");
                            observer.won();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(election = %self.key, name = %self.name, error = %e, "lost leadership");
                        state = State::Candidate;
                        announce_next = false;
                        metrics::set(&metrics::LEADER, &identity, 0.0);
                        if self.leader.swap(false, Ordering::AcqRel) {
                            observer.lost();
                        }
                    }
                },
            }
        }
        metrics::set(&metrics::LEADER, &identity, 0.0);
        if self.leader.swap(false, Ordering::AcqRel) {
            observer.lost();
        }
    }
}
