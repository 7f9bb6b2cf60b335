// SPDX-License-Identifier: Apache-2.0
//! Priority between the queues of one worker: which waiting task gets a freed handler slot.
//!
//! Without a priority, each queue's loop takes slots as they free up, first come first served.
//! With one, loops pull ahead a bounded number of items that wait for a slot (their redelivery
//! timer kept running with in-progress acks), and each freed slot goes to a waiting item of the
//! queue the policy picks: the highest listed (strict) or by smooth weighted round robin
//! (weighted), the order nginx uses for upstream weights.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::{Error, ErrorKind, Result};

/// How a worker consuming several queues shares its handler slots when more than one queue has
/// tasks waiting; see [`WorkerOptions::priority`](crate::WorkerOptions::priority).
///
/// # Examples
/// ```
/// use jetjobs::{Priority, WorkerOptions};
/// // Interactive tasks always first, bulk ones only when none wait:
/// let strict = WorkerOptions::new().priority(Priority::strict(["INTERACTIVE", "BULK"]));
/// // Three EMAIL tasks start for each REPORTS task while both have a backlog:
/// let weighted = WorkerOptions::new().priority(Priority::weighted([("EMAIL", 3), ("REPORTS", 1)]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Priority {
    /// A queue listed earlier always goes first: a later queue's task starts only while no earlier
    /// queue has one waiting. Consumed queues not listed come last, in the order consumed.
    Strict(Vec<String>),
    /// Freed slots go to the queues with waiting tasks in proportion to their weights (at least
    /// 1). Consumed queues not listed weigh 1.
    Weighted(Vec<(String, u32)>),
}

impl Priority {
    /// Strict priority, highest first.
    pub fn strict<S: Into<String>>(queues: impl IntoIterator<Item = S>) -> Self {
        Self::Strict(queues.into_iter().map(Into::into).collect())
    }

    /// Weighted priority from `(queue, weight)` pairs.
    pub fn weighted<S: Into<String>>(queues: impl IntoIterator<Item = (S, u32)>) -> Self {
        Self::Weighted(queues.into_iter().map(|(q, w)| (q.into(), w)).collect())
    }

    fn names(&self) -> Vec<&str> {
        match self {
            Self::Strict(queues) => queues.iter().map(String::as_str).collect(),
            Self::Weighted(queues) => queues.iter().map(|(q, _)| q.as_str()).collect(),
        }
    }

    /// The policy for queues consumed in the order of `consumed`; fails with `InvalidOption` for
    /// a queue named twice, one the worker does not consume, or a weight of 0.
    pub(crate) fn policy(&self, consumed: &[&str]) -> Result<Policy> {
        let names = self.names();
        for (i, name) in names.iter().enumerate() {
            if names[..i].contains(name) {
                return Err(invalid(format!("priority names queue {name} twice")));
            }
            if !consumed.contains(name) {
                return Err(invalid(format!(
                    "priority names queue {name}, which the worker does not consume"
                )));
            }
        }
        let index = |name: &str| consumed.iter().position(|c| *c == name);
        Ok(match self {
            Self::Strict(queues) => {
                let mut order: Vec<usize> = queues.iter().filter_map(|q| index(q)).collect();
                let unlisted: Vec<usize> =
                    (0..consumed.len()).filter(|i| !order.contains(i)).collect();
                order.extend(unlisted);
                Policy::Strict { order }
            }
            Self::Weighted(queues) => {
                let mut weight = vec![1i64; consumed.len()];
                for (name, w) in queues {
                    if *w == 0 {
                        return Err(invalid(format!(
                            "queue {name} has weight 0; the least is 1"
                        )));
                    }
                    if let Some(i) = index(name) {
                        weight[i] = i64::from(*w);
                    }
                }
                Policy::Weighted { weight }
            }
        })
    }
}

fn invalid(message: String) -> Error {
    Error::new(ErrorKind::InvalidOption, message)
}

/// A [`Priority`] resolved to the worker's queue indices.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Policy {
    Strict { order: Vec<usize> },
    Weighted { weight: Vec<i64> },
}

/// Hands out the worker's handler slots by policy.
pub(crate) struct Arbiter {
    policy: Policy,
    state: Mutex<State>,
}

struct State {
    free: usize,
    /// Per queue, the items waiting for a slot. Invariant: while `free > 0` none wait.
    waiting: Vec<VecDeque<oneshot::Sender<Grant>>>,
    /// Smooth weighted round robin's running credit per queue.
    credit: Vec<i64>,
}

/// One handler slot, given back to the arbiter when dropped.
pub(crate) struct Grant {
    arbiter: Option<Arc<Arbiter>>,
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(arbiter) = self.arbiter.take() {
            arbiter.release();
        }
    }
}

impl Arbiter {
    pub(crate) fn new(slots: usize, policy: Policy, queues: usize) -> Arc<Self> {
        Arc::new(Self {
            policy,
            state: Mutex::new(State {
                free: slots,
                waiting: (0..queues).map(|_| VecDeque::new()).collect(),
                credit: vec![0; queues],
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot if one is free now.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Grant> {
        let mut state = self.lock();
        (state.free > 0).then(|| {
            state.free -= 1;
            Grant {
                arbiter: Some(self.clone()),
            }
        })
    }

    /// Waits for a slot for an item of queue `queue`. Dropping the future gives up its place.
    pub(crate) async fn acquire(self: &Arc<Self>, queue: usize) -> Grant {
        loop {
            let granted = {
                let mut state = self.lock();
                if state.free > 0 {
                    state.free -= 1;
                    return Grant {
                        arbiter: Some(self.clone()),
                    };
                }
                let (tx, rx) = oneshot::channel();
                if let Some(waiting) = state.waiting.get_mut(queue) {
                    waiting.push_back(tx);
                }
                rx
            };
            if let Ok(grant) = granted.await {
                return grant;
            }
        }
    }

    fn release(self: &Arc<Self>) {
        let mut state = self.lock();
        loop {
            let Some(queue) = self.pick(&mut state) else {
                state.free += 1;
                return;
            };
            let Some(waiter) = state.waiting[queue].pop_front() else {
                continue;
            };
            let grant = Grant {
                arbiter: Some(self.clone()),
            };
            match waiter.send(grant) {
                Ok(()) => return,
                // The waiting item gave up; its grant must not release into this locked state.
                Err(mut unclaimed) => unclaimed.arbiter = None,
            }
        }
    }

    /// The queue whose waiting item gets the next slot, if any waits.
    fn pick(&self, state: &mut State) -> Option<usize> {
        let waits = |i: &usize| !state.waiting[*i].is_empty();
        match &self.policy {
            Policy::Strict { order } => order.iter().copied().find(waits),
            Policy::Weighted { weight } => {
                let candidates: Vec<usize> = (0..weight.len()).filter(waits).collect();
                let total: i64 = candidates.iter().map(|&i| weight[i]).sum();
                for &i in &candidates {
                    state.credit[i] += weight[i];
                }
                let chosen = candidates
                    .iter()
                    .copied()
                    .max_by_key(|&i| (state.credit[i], std::cmp::Reverse(i)))?;
                state.credit[chosen] -= total;
                Some(chosen)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> [&'static str; 3] {
        ["A", "B", "C"]
    }

    #[test]
    fn unknown_repeated_and_zero_weight_queues_are_refused() {
        for bad in [
            Priority::strict(["A", "X"]),
            Priority::strict(["A", "A"]),
            Priority::weighted([("A", 0)]),
        ] {
            let error = bad.policy(&names()).expect_err("refused");
            assert_eq!(error.kind(), ErrorKind::InvalidOption, "{bad:?}");
        }
    }

    #[test]
    fn unlisted_queues_come_last_or_weigh_one() -> Result<()> {
        assert_eq!(
            Priority::strict(["C"]).policy(&names())?,
            Policy::Strict {
                order: vec![2, 0, 1]
            }
        );
        assert_eq!(
            Priority::weighted([("B", 5)]).policy(&names())?,
            Policy::Weighted {
                weight: vec![1, 5, 1]
            }
        );
        Ok(())
    }

    /// Every queue keeps `backlog` items waiting; returns which queue got each of `grants` slots.
    async fn grants(policy: Policy, grants: usize) -> Vec<usize> {
        let queues = match &policy {
            Policy::Strict { order } => order.len(),
            Policy::Weighted { weight } => weight.len(),
        };
        let arbiter = Arbiter::new(1, policy, queues);
        let held = arbiter.try_acquire().expect("one free slot");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for queue in 0..queues {
            for _ in 0..grants {
                let (arbiter, tx) = (arbiter.clone(), tx.clone());
                tokio::spawn(async move {
                    let grant = arbiter.acquire(queue).await;
                    let _ = tx.send((queue, grant));
                });
            }
        }
        while arbiter
            .lock()
            .waiting
            .iter()
            .map(VecDeque::len)
            .sum::<usize>()
            < queues * grants
        {
            tokio::task::yield_now().await;
        }
        drop(held);
        let mut order = Vec::new();
        while order.len() < grants {
            let (queue, grant) = rx.recv().await.expect("a grant");
            order.push(queue);
            drop(grant);
        }
        order
    }

    #[tokio::test]
    async fn strict_priority_serves_higher_queues_first() {
        let order = grants(Policy::Strict { order: vec![1, 0] }, 10).await;
        assert_eq!(order, vec![1; 10]);
    }

    #[tokio::test]
    async fn weighted_priority_serves_queues_in_ratio() {
        let order = grants(Policy::Weighted { weight: vec![3, 1] }, 40).await;
        let first = order.iter().filter(|&&q| q == 0).count();
        assert_eq!(first, 30, "{order:?}");
        assert_eq!(&order[..4], &[0, 0, 1, 0], "smooth, not bursty: {order:?}");
    }
}
