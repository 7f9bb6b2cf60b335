// SPDX-License-Identifier: Apache-2.0
//! Property tests of every decoder of network data: task documents, work items, events, scheduled
//! tasks, governor replies, trace headers and cron specifications never panic on arbitrary input (they return a
//! typed error or nothing), and what the engine writes decodes back to the same value. `make test`
//! runs proptest's default 256 cases each; `make fuzz` runs many more (`PROPTEST_CASES`).

use proptest::prelude::*;

use crate::coord::governor::ApiReply;
use crate::events::Event;
use crate::scheduler::ScheduledTask;
use crate::scheduler::cron::CronSchedule;
use crate::store::ProcessItem;
use crate::task::Task;
use crate::trace::TraceContext;

/// Bytes that are often almost JSON: arbitrary bytes, or JSON-looking text with random edits.
fn network_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\{\"(id|type|queue|payload|state|job|kind|schedule|created|deadline|tries|max_tries|dependencies)\":[^}]{0,64}\\}"
            .prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in network_bytes()) {
        let _ = Task::from_json(&bytes);
        let _ = ProcessItem::parse(&bytes);
        let _ = Event::from_json(&bytes);
        let _ = ScheduledTask::from_json(&bytes);
        let _ = serde_json::from_slice::<ApiReply>(&bytes);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = TraceContext::new(text, Some(text));
        }
    }

    #[test]
    fn cron_parsing_never_panics_and_next_is_in_the_future(
        spec in prop_oneof![
            any::<String>(),
            "(CRON_TZ=UTC )?([0-9*?,/-]{1,8} ){4}[0-9a-z*?,/-]{1,8}",
            "@(every [0-9]{1,4}(ns|us|ms|s|m|h)|hourly|daily|weekly|monthly|yearly|[a-z]{1,8})",
        ],
        seconds in 0i64..4_000_000_000,
    ) {
        if let Ok(schedule) = CronSchedule::parse(&spec) {
            let after = chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default();
            if let Some(next) = schedule.next_after(after) {
                prop_assert!(next > after, "{spec}: {next} is not after {after}");
            }
        }
    }

    #[test]
    fn tasks_round_trip_through_their_documents(
        task_type in "[a-z][a-z0-9:_-]{0,30}",
        payload in proptest::option::of(json_value()),
        max_tries in any::<i64>(),
        tries in any::<i64>(),
        last_err in any::<String>(),
    ) {
        let mut task = Task::new(task_type, &payload).expect("valid task");
        task.max_tries = max_tries;
        task.tries = tries;
        task.last_err = last_err;
        let back = Task::from_json(&task.to_json().expect("encodes")).expect("decodes");
        prop_assert_eq!(back, task);
    }
}
