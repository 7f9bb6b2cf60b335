// SPDX-License-Identifier: Apache-2.0
//! Per-key ordering barrier (rudder-server's `eventorder.Barrier`, seed semantics with HEAD's
//! `wait` rule): when a task fails and will be retried, later tasks of its key are held until it
//! succeeds or ends for good. A pure, single-owner state machine: no I/O, no clock.
//!
//! The owner's protocol (from rudder's router): each pickup pass starts with [`Barrier::sync`];
//! jobs of a key are offered in ascending id order and, once a key is refused in a pass, its later
//! jobs in that pass are skipped; a retryable failure is reported at once
//! ([`JobState::Failed`]), every other outcome after it is stored, and takes effect at the next
//! `sync`. Ids must grow per key (the queue's stream sequence does).

use std::collections::{HashMap, HashSet};

/// What became of a job, as reported to [`Barrier::state_changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Done: later jobs of the key may run.
    Succeeded,
    /// Skipped on purpose: like success.
    Filtered,
    /// Failed and will be retried: later jobs of the key wait for it.
    Failed,
    /// Ended for good without success (terminated, expired, out of tries).
    Aborted,
    /// Did not run because an earlier job of its key is unfinished.
    Waiting,
}

#[derive(Debug, Default)]
struct KeyState {
    /// The failed job every later job of the key waits for.
    failed: Option<u64>,
    /// After a failed head was aborted: the jobs let in meanwhile (at most the drain limit).
    draining: Option<HashSet<u64>>,
}

/// Holds later jobs of a key behind its failed one; see the [module docs](self).
#[derive(Debug)]
pub struct Barrier {
    drain_limit: usize,
    keys: HashMap<String, KeyState>,
    queued: Vec<(String, u64, JobState)>,
    illegal: u64,
}

impl Barrier {
    /// A barrier letting at most `drain_limit` jobs of a key in at once right after its failed
    /// head was aborted (0: no limit), so a worker's queue does not fill with jobs that would
    /// only wait.
    pub fn new(drain_limit: usize) -> Self {
        Self {
            drain_limit,
            keys: HashMap::new(),
            queued: Vec::new(),
            illegal: 0,
        }
    }

    /// May job `job` of `key` be handed to a worker? Also returns the failed job it is held
    /// behind, if any. Only the failed job itself may enter while the key is blocked.
    pub fn enter(&mut self, key: &str, job: u64) -> (bool, Option<u64>) {
        let Some(state) = self.keys.get_mut(key) else {
            return (true, None);
        };
        if let Some(failed) = state.failed {
            if failed > job {
                self.illegal += 1;
            }
            return (job == failed, Some(failed));
        }
        if let Some(draining) = &mut state.draining {
            if draining.contains(&job) {
                return (true, None);
            }
            if draining.len() >= self.drain_limit {
                return (false, None);
            }
            draining.insert(job);
        }
        (true, None)
    }

    /// Undoes [`Barrier::enter`] for a job that was not handed over after all.
    pub fn leave(&mut self, key: &str, job: u64) {
        if let Some(draining) = self.keys.get_mut(key).and_then(|s| s.draining.as_mut()) {
            draining.remove(&job);
        }
    }

    /// The failed job `key` is blocked behind, if any.
    pub fn peek(&self, key: &str) -> Option<u64> {
        self.keys.get(key).and_then(|s| s.failed)
    }

    /// Must job `job` of `key` wait instead of running (checked by the worker just before it
    /// runs)? True for any job but the failed one while the key is blocked.
    pub fn wait(&mut self, key: &str, job: u64) -> (bool, Option<u64>) {
        match self.keys.get(key).and_then(|s| s.failed) {
            Some(failed) => {
                if failed > job {
                    self.illegal += 1;
                }
                (job != failed, Some(failed))
            }
            None => (false, None),
        }
    }

    /// Reports what became of `job`. A failure applies at once; every other state applies at
    /// the next [`Barrier::sync`] if the key has state (at once otherwise).
    pub fn state_changed(&mut self, key: &str, job: u64, state: JobState) {
        if state != JobState::Failed && self.keys.contains_key(key) {
            self.queued.push((key.to_string(), job, state));
        } else {
            self.apply(key, job, state);
        }
    }

    /// Applies the reports queued since the last call; returns how many. Call it at the start of
    /// every pickup pass.
    pub fn sync(&mut self) -> usize {
        let queued = std::mem::take(&mut self.queued);
        let count = queued.len();
        for (key, job, state) in queued {
            self.apply(&key, job, state);
        }
        count
    }

    /// Keys with state (blocked or draining).
    pub fn size(&self) -> usize {
        self.keys.len()
    }

    /// How often a job arrived with an id below its key's failed job (a caller-protocol bug).
    pub fn illegal_sequences(&self) -> u64 {
        self.illegal
    }

    fn apply(&mut self, key: &str, job: u64, state: JobState) {
        match state {
            JobState::Failed => {
                let entry = self.keys.entry(key.to_string()).or_default();
                match entry.failed {
                    None => entry.failed = Some(job),
                    Some(failed) if failed > job => self.illegal += 1,
                    Some(_) => {}
                }
                entry.draining = None;
            }
            JobState::Succeeded | JobState::Filtered => {
                let Some(entry) = self.keys.get(key) else {
                    return;
                };
                if entry.failed.is_some_and(|failed| failed != job) {
                    return; // out of sync: some other job is the one holding the key
                }
                self.keys.remove(key);
            }
            JobState::Aborted => {
                let Some(entry) = self.keys.get_mut(key) else {
                    return;
                };
                match entry.failed {
                    None => {
                        self.keys.remove(key);
                    }
                    Some(failed) if failed != job => {}
                    Some(_) if self.drain_limit == 0 => {
                        self.keys.remove(key);
                    }
                    Some(_) => {
                        entry.failed = None;
                        entry.draining = Some(HashSet::new());
                    }
                }
            }
            JobState::Waiting => self.leave(key, job),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_job_holds_later_ones_until_it_succeeds_and_the_next_sync() {
        let mut b = Barrier::new(1);
        assert_eq!(b.enter("user1", 1), (true, None));
        assert_eq!(b.enter("user1", 2), (true, None));
        b.state_changed("user1", 1, JobState::Failed);
        assert_eq!(b.wait("user1", 2), (true, Some(1)));
        assert_eq!(b.size(), 1);
        b.state_changed("user1", 2, JobState::Waiting);
        assert_eq!(b.sync(), 1);
        assert_eq!(b.peek("user1"), Some(1));
        assert_eq!(b.enter("user1", 1), (true, Some(1)));
        assert_eq!(b.wait("user1", 1), (false, Some(1)));
        b.state_changed("user1", 1, JobState::Succeeded);
        assert_eq!(
            b.enter("user1", 2),
            (false, Some(1)),
            "not before the next sync"
        );
        assert_eq!(b.sync(), 1);
        assert_eq!(b.enter("user1", 2), (true, None));
        assert_eq!(b.size(), 0);
    }

    #[test]
    fn an_aborted_head_lets_later_jobs_drain_at_the_limit() {
        let mut b = Barrier::new(1);
        b.state_changed("user1", 1, JobState::Failed);
        b.state_changed("user1", 1, JobState::Aborted);
        assert_eq!(b.enter("user1", 2), (false, Some(1)));
        assert_eq!(b.sync(), 1);
        assert_eq!(b.enter("user1", 2), (true, None));
        assert_eq!(b.enter("user1", 3), (false, None), "drain limit 1");
        b.leave("user1", 2);
        assert_eq!(b.enter("user1", 3), (true, None));
        b.state_changed("user1", 3, JobState::Aborted);
        assert_eq!(b.sync(), 1);
        for job in 4..=6 {
            assert_eq!(b.enter("user1", job), (true, None), "no limit once drained");
        }
    }

    #[test]
    fn other_keys_are_never_held_and_illegal_sequences_are_counted() {
        let mut b = Barrier::new(1);
        b.state_changed("a", 5, JobState::Failed);
        assert_eq!(b.enter("b", 6), (true, None));
        assert_eq!(b.wait("b", 6), (false, None));
        assert_eq!(b.wait("a", 3), (true, Some(5)));
        assert_eq!(b.illegal_sequences(), 1);
        b.state_changed("a", 7, JobState::Succeeded);
        b.sync();
        assert_eq!(
            b.peek("a"),
            Some(5),
            "a success of another job does not unblock the key"
        );
    }

    use proptest::prelude::*;
    use std::collections::BTreeSet;

    proptest! {
        /// rudder's `TestSimulateBarrier`, as a property: a pickup loop, a worker and a commit
        /// step following the owner's protocol, with random successes, retryable failures and
        /// aborts (a job failing a third time is aborted, its "max tries"). Every job ends, and
        /// for every key the jobs that end do so in id order.
        #[test]
        fn random_outcomes_never_break_per_key_order(
            outcomes in proptest::collection::vec(0u8..10, 1..64),
            keys in 1u64..6,
            jobs in 1u64..200,
            drain_limit in 0usize..3,
        ) {
            let key_of = |job: u64| format!("k{}", job % keys);
            let mut barrier = Barrier::new(drain_limit);
            let mut pending: BTreeSet<u64> = (1..=jobs).collect();
            let mut failures: HashMap<u64, u32> = HashMap::new();
            let mut ended: HashMap<String, Vec<u64>> = HashMap::new();
            let mut draw = outcomes.iter().cycle();
            let mut rounds = 0;
            while !pending.is_empty() && rounds < 100_000 {
                rounds += 1;
                barrier.sync();
                let mut blocked = HashSet::new();
                let mut dispatched = Vec::new();
                for &job in &pending {
                    let key = key_of(job);
                    if blocked.contains(&key) {
                        continue;
                    }
                    if !barrier.enter(&key, job).0 {
                        blocked.insert(key);
                        continue;
                    }
                    dispatched.push(job);
                    if dispatched.len() >= 8 {
                        break;
                    }
                }
                let mut reports = Vec::new();
                for job in dispatched {
                    let key = key_of(job);
                    if barrier.wait(&key, job).0 {
                        reports.push((key, job, JobState::Waiting));
                        continue;
                    }
                    let outcome = *draw.next().unwrap_or(&0);
                    let tries = failures.entry(job).or_default();
                    let state = match outcome {
                        0..=5 => JobState::Succeeded,
                        6..=8 if *tries < 2 => JobState::Failed,
                        _ => JobState::Aborted,
                    };
                    if state == JobState::Failed {
                        *tries += 1;
                        barrier.state_changed(&key, job, JobState::Failed);
                        continue;
                    }
                    pending.remove(&job);
                    ended.entry(key.clone()).or_default().push(job);
                    reports.push((key, job, state));
                }
                reports.sort_by_key(|(_, job, _)| *job);
                for (key, job, state) in reports {
                    barrier.state_changed(&key, job, state);
                }
            }
            prop_assert!(pending.is_empty(), "stuck: {pending:?}");
            for (key, order) in ended {
                prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "{key}: {order:?}");
            }
            prop_assert_eq!(barrier.illegal_sequences(), 0);
        }
    }
}
