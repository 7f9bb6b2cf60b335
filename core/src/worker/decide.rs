// SPDX-License-Identifier: Apache-2.0
//! asyncjobs' decision table as pure functions: what to do with a delivered task, with its
//! dependencies and with a failed try, from the task, the queue's settings, the delivery and the
//! time. The worker only carries the decisions out, so every row is unit-tested without a server.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::queue::Queue;
use crate::task::{Task, TaskResult, TaskState};

/// How soon a task waiting on something (dependencies, storage) is looked at again; asyncjobs'
/// `defaultBlockedNakTime`.
pub(crate) const BLOCKED_NAK_DELAY: Duration = Duration::from_secs(5);
/// Why a task past its deadline expires (asyncjobs' `ErrTaskPastDeadline`).
pub(crate) const PAST_DEADLINE: &str = "past deadline";
/// Margin after an `active` task turns stale before it is looked at again.
const STALE_MARGIN: Duration = Duration::from_millis(100);

/// Deliveries of an item whose task document cannot be found before the item is discarded.
const MISSING_TASK_DELIVERIES: i64 = 8;

/// How soon to look again for the task of an item whose document was not found, or `None` to
/// discard the item now. A producer sends a task's document and item together, so the item can
/// arrive a moment before its document is readable (longer while a clustered stream elects a
/// leader, or from a replica that lags); the waits double from 50 ms up to 2 s, about 7 s in all,
/// within the consumer's delivery limit `max_deliver`.
pub(crate) fn missing_task_delay(delivered: i64, max_deliver: i64) -> Option<Duration> {
    let limit = if max_deliver > 0 {
        MISSING_TASK_DELIVERIES.min(max_deliver)
    } else {
        MISSING_TASK_DELIVERIES
    };
    if delivered >= limit {
        return None;
    }
    let doublings = u32::try_from(delivered.clamp(1, 16) - 1).unwrap_or(0);
    Some((Duration::from_millis(50) * 2u32.pow(doublings)).min(Duration::from_secs(2)))
}

/// What to do with a delivered task before anything runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decision {
    /// The signature does not verify: terminate with this error.
    Terminate(String),
    /// Already final: acknowledge the item, nothing to do.
    Settle,
    /// Another worker is running it: look again after this delay (when it would be stale).
    Defer(Duration),
    /// Past its deadline or out of tries: expire it (only the state changes, as in asyncjobs).
    Expire(&'static str),
    /// Blocked: its dependencies decide.
    CheckDependencies,
    /// It may start (after admission).
    Start,
}

/// The decision table's steps 1–5 for `task` as loaded, `verification` being the signature
/// check's error, if any.
pub(crate) fn decide(
    task: &Task,
    verification: Option<&str>,
    queue: &Queue,
    now: DateTime<Utc>,
) -> Decision {
    if let Some(error) = verification {
        return Decision::Terminate(error.to_string());
    }
    match task.state {
        TaskState::Active => {
            let age = task
                .tried
                .map(|t| (now - t.to_utc()).to_std().unwrap_or_default());
            match age {
                Some(age) if age >= queue.max_run_time => {} // its worker died: take it over
                Some(age) => return Decision::Defer(queue.max_run_time - age + STALE_MARGIN),
                None => return Decision::Defer(queue.max_run_time + STALE_MARGIN),
            }
        }
        TaskState::Complete
        | TaskState::Expired
        | TaskState::Terminated
        | TaskState::Unreachable => {
            return Decision::Settle;
        }
        _ => {}
    }
    if task.deadline.is_some_and(|d| d.to_utc() <= now) {
        return Decision::Expire(PAST_DEADLINE);
    }
    if task.max_tries > 0 && task.tries >= task.max_tries {
        return Decision::Expire("exceeded maximum tries");
    }
    // Only a clock ahead of the server's, or an item published by hand, arrives early.
    if let Some(run_at) = task.run_at
        && let Ok(early) = (run_at.to_utc() - now).to_std()
        && !early.is_zero()
    {
        return Decision::Defer(early);
    }
    if task.state == TaskState::Blocked && !task.dependencies.is_empty() {
        return Decision::CheckDependencies;
    }
    Decision::Start
}

/// What loading one parent found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parent {
    /// Loaded and verified.
    Loaded {
        state: TaskState,
        result: Option<TaskResult>,
    },
    /// No such task.
    NotFound,
    /// Its signature does not verify.
    Unverified(String),
    /// Storage failed; try again later.
    Unavailable,
}

/// What the dependencies of a blocked task allow.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dependencies {
    /// All complete; the results to hand over (empty unless `load_dependencies`).
    Ready(BTreeMap<String, Option<TaskResult>>),
    /// Some are still to finish (or could not be loaded): look again later.
    Waiting,
    /// One failed, so the task is unreachable, for this reason.
    Failed(String),
}

/// asyncjobs' dependency rules (§3.5), with two deliberate differences: an unreachable parent, and
/// a parent whose signature does not verify, fail the child instead of blocking it forever (so an
/// unverified result is never handed over).
pub(crate) fn decide_dependencies(
    parents: impl IntoIterator<Item = (String, Parent)>,
    load_results: bool,
) -> Dependencies {
    let mut waiting = false;
    let mut results = BTreeMap::new();
    for (id, parent) in parents {
        match parent {
            Parent::Loaded {
                state: TaskState::Complete,
                result,
            } => {
                if load_results {
                    results.insert(id, result);
                }
            }
            // Unlike asyncjobs, an unreachable parent fails its children too instead of leaving
            // them blocked forever (docs/compatibility.md).
            Parent::Loaded {
                state:
                    state @ (TaskState::Expired
                    | TaskState::Terminated
                    | TaskState::QueueError
                    | TaskState::Unreachable
                    | TaskState::Unknown),
                ..
            } => return Dependencies::Failed(format!("dependency {id} is {state}")),
            Parent::Loaded { .. } | Parent::Unavailable => waiting = true,
            Parent::NotFound => return Dependencies::Failed(format!("task not found: {id}")),
            Parent::Unverified(error) => {
                return Dependencies::Failed(format!(
                    "dependency {id} failed verification: {error}"
                ));
            }
        }
    }
    if waiting {
        Dependencies::Waiting
    } else {
        Dependencies::Ready(results)
    }
}

/// What to do after a handler failed (without asking to terminate).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AfterFailure {
    /// No tries left: expire.
    Expire,
    /// Store `retry` and hand the item back for delivery number `delivered + 1`.
    Retry,
}

/// Whether a failed try was the last: the task's own max tries, or the queue's (JetStream's
/// delivery limit) reached by this delivery.
pub(crate) fn after_failure(task: &Task, queue: &Queue, delivered: i64) -> AfterFailure {
    let task_out = task.max_tries > 0 && task.tries >= task.max_tries;
    let queue_out = queue.max_tries > 0 && delivered >= queue.max_tries;
    if task_out || queue_out {
        AfterFailure::Expire
    } else {
        AfterFailure::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Timestamp;

    fn task(state: TaskState) -> Task {
        let mut t = Task::new("t", &1).expect("valid task");
        t.state = state;
        t
    }

    fn queue() -> Queue {
        Queue::new("Q").max_run_time(Duration::from_secs(60))
    }

    fn at(t: Timestamp, secs: i64) -> DateTime<Utc> {
        t.to_utc() + chrono::Duration::seconds(secs)
    }

    #[test]
    fn failed_verification_terminates_before_anything_else() {
        let t = task(TaskState::Complete);
        assert_eq!(
            decide(&t, Some("bad signature"), &queue(), Utc::now()),
            Decision::Terminate("bad signature".into())
        );
    }

    #[test]
    fn new_retry_and_terminated_tasks_start() {
        for state in [
            TaskState::New,
            TaskState::Retry,
            TaskState::Terminated,
            TaskState::QueueError,
            TaskState::Unknown,
        ] {
            let t = task(state);
            let expected = if state == TaskState::Terminated {
                Decision::Settle
            } else {
                Decision::Start
            };
            assert_eq!(decide(&t, None, &queue(), Utc::now()), expected, "{state}");
        }
    }

    #[test]
    fn final_states_are_settled() {
        for state in [
            TaskState::Complete,
            TaskState::Expired,
            TaskState::Terminated,
            TaskState::Unreachable,
        ] {
            assert_eq!(
                decide(&task(state), None, &queue(), Utc::now()),
                Decision::Settle
            );
        }
    }

    #[test]
    fn live_active_task_is_deferred_until_stale_and_stale_one_taken_over() {
        let mut t = task(TaskState::Active);
        let tried = Timestamp::now();
        t.tried = Some(tried);
        assert_eq!(
            decide(&t, None, &queue(), at(tried, 20)),
            Decision::Defer(Duration::from_secs(40) + STALE_MARGIN)
        );
        assert_eq!(decide(&t, None, &queue(), at(tried, 61)), Decision::Start);
        t.tried = None;
        assert_eq!(
            decide(&t, None, &queue(), Utc::now()),
            Decision::Defer(Duration::from_secs(60) + STALE_MARGIN)
        );
    }

    #[test]
    fn deadline_and_max_tries_expire() {
        let now = Timestamp::now();
        let t = task(TaskState::New).with_deadline(now);
        assert_eq!(
            decide(&t, None, &queue(), at(now, 1)),
            Decision::Expire("past deadline")
        );
        assert_eq!(decide(&t, None, &queue(), at(now, -1)), Decision::Start);
        let mut t = task(TaskState::Retry).with_max_tries(3);
        t.tries = 3;
        assert_eq!(
            decide(&t, None, &queue(), Utc::now()),
            Decision::Expire("exceeded maximum tries")
        );
        t.max_tries = 0;
        assert_eq!(decide(&t, None, &queue(), Utc::now()), Decision::Start);
    }

    #[test]
    fn early_items_wait_until_due_and_expired_ones_expire() {
        let now = Timestamp::now();
        let t = task(TaskState::New).with_run_at(now.add(Duration::from_secs(30)));
        assert_eq!(
            decide(&t, None, &queue(), at(now, 10)),
            Decision::Defer(Duration::from_secs(20))
        );
        assert_eq!(decide(&t, None, &queue(), at(now, 30)), Decision::Start);
        let t = t.with_deadline(now.add(Duration::from_secs(5)));
        assert_eq!(
            decide(&t, None, &queue(), at(now, 10)),
            Decision::Expire("past deadline")
        );
    }

    #[test]
    fn only_blocked_tasks_check_dependencies() {
        let t = task(TaskState::New).depends_on(["a"]);
        assert_eq!(t.state, TaskState::Blocked);
        assert_eq!(
            decide(&t, None, &queue(), Utc::now()),
            Decision::CheckDependencies
        );
        let mut t = t;
        t.state = TaskState::Retry;
        assert_eq!(decide(&t, None, &queue(), Utc::now()), Decision::Start);
    }

    fn loaded(state: TaskState) -> Parent {
        Parent::Loaded {
            state,
            result: None,
        }
    }

    #[test]
    fn dependencies_follow_asyncjobs_rules() {
        let done = Parent::Loaded {
            state: TaskState::Complete,
            result: Some(TaskResult {
                payload: serde_json::json!(1),
                completed: Timestamp::now(),
            }),
        };
        let ready = decide_dependencies([("a".to_string(), done.clone())], true);
        assert!(matches!(ready, Dependencies::Ready(r) if r.contains_key("a")));
        let ready = decide_dependencies([("a".to_string(), done.clone())], false);
        assert!(matches!(ready, Dependencies::Ready(r) if r.is_empty()));
        for waiting in [
            TaskState::New,
            TaskState::Active,
            TaskState::Retry,
            TaskState::Blocked,
        ] {
            assert_eq!(
                decide_dependencies(
                    [
                        ("a".to_string(), done.clone()),
                        ("b".into(), loaded(waiting))
                    ],
                    true
                ),
                Dependencies::Waiting,
                "{waiting}"
            );
        }
        assert_eq!(
            decide_dependencies([("b".to_string(), Parent::Unavailable)], true),
            Dependencies::Waiting
        );
        for failed in [
            TaskState::Expired,
            TaskState::Terminated,
            TaskState::QueueError,
            TaskState::Unreachable,
        ] {
            assert_eq!(
                decide_dependencies([("b".to_string(), loaded(failed))], true),
                Dependencies::Failed(format!("dependency b is {failed}"))
            );
        }
        assert_eq!(
            decide_dependencies([("x".to_string(), Parent::NotFound)], true),
            Dependencies::Failed("task not found: x".into())
        );
        assert!(matches!(
            decide_dependencies([("x".to_string(), Parent::Unverified("bad".into()))], true),
            Dependencies::Failed(reason) if reason.contains("failed verification")
        ));
    }

    #[test]
    fn failures_expire_at_the_task_or_queue_limit() {
        let mut t = task(TaskState::Active).with_max_tries(3);
        t.tries = 2;
        assert_eq!(after_failure(&t, &queue(), 2), AfterFailure::Retry);
        t.tries = 3;
        assert_eq!(after_failure(&t, &queue(), 3), AfterFailure::Expire);
        t.tries = 1;
        let limited = queue().max_tries(5);
        assert_eq!(after_failure(&t, &limited, 4), AfterFailure::Retry);
        assert_eq!(after_failure(&t, &limited, 5), AfterFailure::Expire);
        t.max_tries = 0;
        assert_eq!(after_failure(&t, &queue(), 1000), AfterFailure::Retry);
    }

    #[test]
    fn an_item_without_its_task_is_looked_at_again_then_discarded() {
        let delays: Vec<_> = (1..=8).map(|d| missing_task_delay(d, -1)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(
            delays,
            [
                ms(50),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1600),
                ms(2000),
                None
            ]
        );
        // The consumer stops delivering at max_deliver: the last delivery discards.
        assert_eq!(missing_task_delay(2, 3), ms(100));
        assert_eq!(missing_task_delay(3, 3), None);
        assert_eq!(missing_task_delay(1, 1), None);
    }
}
