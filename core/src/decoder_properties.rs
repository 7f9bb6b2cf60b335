// SPDX-License-Identifier: Apache-2.0
//! Property tests of every decoder of network data: task documents, work items (queue, ordered
//! and due items share one body), events, scheduled tasks, governor replies, stream info and
//! lifecycle events, pool records and notifications, trace and request-reply headers, timestamps
//! and cron specifications. Anything a peer can publish never panics a decoder (it returns a typed
//! error or nothing), and what the engine writes decodes back to the same value.
//!
//! These stand in for `cargo fuzz` targets, which need a nightly toolchain that CI lacks.
//! `make test` runs 256 cases per property; `make fuzz` sets `PROPTEST_CASES` for long runs.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;

use crate::coord::governor::ApiReply;
use crate::coord::lifecycle::{GovernorEvent, GovernorEventType};
use crate::delegated::request_reply::outcome as request_reply_outcome;
use crate::delegated::responder::until as handler_deadline;
use crate::events::{
    Event, LEADER_ELECTED_EVENT_TYPE, LeaderElectedEvent, TASK_STATE_EVENT_TYPE,
    TaskStateChangeEvent,
};
use crate::pool::records::{
    self, JobRecord, JobState, NodeRecord, Notification, Outcome, ScheduleRecord, ShutdownRecord,
    TickerRecord, WorkerRecord,
};
use crate::scheduler::ScheduledTask;
use crate::scheduler::cron::{CronSchedule, parse_go_duration};
use crate::signing::TaskSigner;
use crate::store::ProcessItem;
use crate::task::{Task, TaskResult, TaskState};
use crate::trace::{TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceContext};
use crate::wire::Timestamp;
use crate::wire::names::{REQUEST_REPLY_ERROR_HEADER, REQUEST_REPLY_TERMINATE_HEADER};

/// Cases per property: 256 (proptest's default) keeps `make test` fast unless `PROPTEST_CASES`
/// asks for more (`make fuzz`). Set here rather than left to the library's defaults, so that the
/// short run stays short whatever those become.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Shrinking a failure of a long run must not turn into a second long run.
        max_shrink_iters: 4096,
        ..ProptestConfig::default()
    }
}

/// Field names of the documents decoded here: objects built from them reach the typed fields, so
/// wrong types are checked by the decoders, not rejected as unknown shapes first.
const FIELDS: &[&str] = &[
    "id",
    "type",
    "queue",
    "payload",
    "state",
    "job",
    "kind",
    "schedule",
    "created",
    "created_at",
    "deadline",
    "tries",
    "max_tries",
    "dependencies",
    "dependency_results",
    "load_dependencies",
    "result",
    "completed",
    "tried",
    "last_err",
    "signature",
    "run_at",
    "order_key",
    "waiting_for",
    "event_id",
    "timestamp",
    "task_id",
    "task_type",
    "last_error",
    "task_age",
    "name",
    "component",
    "protocol",
    "identity",
    "governor",
    "sequence",
    "event_type",
    "error",
    "err_code",
    "description",
    "seq",
    "config",
    "created_ns",
    "client_only",
    "node",
    "leaving",
    "key",
    "owner",
    "generation",
    "reply",
    "next_ns",
    "every_ns",
    "keys",
];

fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any::<String>().prop_map(Value::String),
        // Strings the typed fields might accept, so decoding goes past the first type check.
        prop_oneof![
            Just("2022-02-09T17:28:41.943198067Z".to_string()),
            Just("9999-12-31T23:59:59.999999999+23:59".to_string()),
            Just("0000-01-01T00:00:00Z".to_string()),
            Just("new".to_string()),
            Just("complete".to_string()),
            Just("running".to_string()),
            Just("eviction".to_string()),
            Just(TASK_STATE_EVENT_TYPE.to_string()),
            Just(LEADER_ELECTED_EVENT_TYPE.to_string()),
            Just("io.choria.lifecycle.v1.governor".to_string()),
            Just("aGVsbG8=".to_string()),
            Just("aGVsbG8".to_string()),
        ]
        .prop_map(Value::String),
    ]
}

/// Any JSON value; with `floats` unset, none that could lose precision in a round trip.
fn json_value(floats: bool) -> BoxedStrategy<serde_json::Value> {
    use serde_json::Value;
    let leaf = if floats {
        json_leaf().boxed()
    } else {
        json_leaf()
            .prop_filter("no floats", |v| !v.is_f64())
            .boxed()
    };
    leaf.prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A JSON object of known field names with values of any type.
fn wrong_typed_document() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::btree_map(proptest::sample::select(FIELDS), json_value(true), 0..10)
        .prop_map(|fields| {
            let object: serde_json::Map<_, _> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            serde_json::to_vec(&object).unwrap_or_default()
        })
}

/// One edit of a document: overwrite, insert or remove a byte, or cut the rest off.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that change JSON's structure are more interesting than random ones.
    let byte = prop_oneof![
        any::<u8>(),
        proptest::sample::select(b"{}[]\":,-0123456789eE.tfn\\u ".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut doc: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = doc.len();
        match *edit {
            Edit::Set(i, b) if len > 0 => doc[i % len] = b,
            Edit::Insert(i, b) => doc.insert(i % (len + 1), b),
            Edit::Remove(i) if len > 0 => {
                doc.remove(i % len);
            }
            Edit::Truncate(i) => doc.truncate(i % (len + 1)),
            _ => {}
        }
    }
    doc
}

/// Valid documents of every kind, as the engine (or a peer) writes them: edited a little they
/// are near-misses that get deep into each decoder.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let created: Timestamp = "2022-02-09T17:28:41.943198067Z"
            .parse()
            .expect("a valid time");
        let mut task = Task::new("email:new", &serde_json::json!({"to": "a@example.net"}))
            .expect("valid task")
            .with_deadline(created.add(Duration::from_secs(60)))
            .with_max_tries(5)
            .depends_on(["parent-1"])
            .with_order_key("customer-7");
        task.queue = "EMAIL".into();
        task.created = created;
        task.tried = Some(created);
        task.result = Some(TaskResult {
            payload: serde_json::json!({"sent": [1, 2.5, "x", null]}),
            completed: created,
        });
        task.dependency_results.insert("parent-1".into(), None);
        task.waiting_for = Some("parent-0".into());
        task.last_err = "boom".into();
        task.signature = "ab".repeat(64);
        let scheduled = ScheduledTask {
            name: "nightly".into(),
            schedule: "CRON_TZ=Europe/Berlin 30 2 * * 1-5".into(),
            queue: "EMAIL".into(),
            task_type: task.task_type.clone(),
            payload: task.payload.clone(),
            deadline: Duration::from_secs(3600),
            max_tries: 5,
            created_at: created,
        };
        let job = JobRecord {
            key: "tenant/7".into(),
            payload: Some(Bytes::from_static(b"\x00\xffpayload")),
            owner: "w1".into(),
            generation: 3,
            state: JobState::Running,
            created_ns: 1,
            node: "n1".into(),
            reply: "_INBOX.x".into(),
        };
        let stream_info = serde_json::json!({
            "type": "io.nats.jetstream.api.v1.stream_info_response",
            "config": {"name": "GOVERNOR_G", "subjects": ["$GOVERNOR.campaign.G"],
                "retention": "limits", "max_consumers": -1, "max_msgs": 5,
                "max_bytes": -1, "max_age": 0, "max_msgs_per_subject": -1,
                "max_msg_size": -1, "discard": "new", "storage": "file",
                "num_replicas": 1, "duplicate_window": 120000000000u64},
            "created": "2022-02-09T17:28:41.943198067Z",
            "state": {"messages": 1, "bytes": 10, "first_seq": 1,
                "first_ts": "2022-02-09T17:28:41.943198067Z", "last_seq": 1,
                "last_ts": "2022-02-09T17:28:41.943198067Z", "consumer_count": 0},
        });
        vec![
            task.to_json().expect("encodes"),
            crate::wire::to_go_json(&ProcessItem {
                kind: 0,
                job: task.id.clone(),
            })
            .expect("encodes"),
            Event::TaskState(TaskStateChangeEvent::for_task(&task))
                .to_json()
                .expect("encodes"),
            Event::LeaderElected(leader_elected("sched-1", "task_scheduler"))
                .to_json()
                .expect("encodes"),
            scheduled.to_json().expect("encodes"),
            GovernorEvent::new(GovernorEventType::Enter, "comp", "me", "G", 7)
                .to_json()
                .expect("encodes"),
            br#"{"error":{"code":404,"err_code":10037,"description":"no message found"},"seq":9}"#
                .to_vec(),
            serde_json::to_vec(&stream_info).expect("encodes"),
            records::encode(&job).expect("encodes").to_vec(),
            records::encode(&WorkerRecord {
                id: "w1".into(),
                node: "n1".into(),
                created_ns: 5,
                leaving: true,
            })
            .expect("encodes")
            .to_vec(),
            records::encode(&NodeRecord {
                id: "n1".into(),
                created_ns: -5,
                client_only: true,
            })
            .expect("encodes")
            .to_vec(),
            records::encode(&TickerRecord {
                next_ns: i64::MAX,
                every_ns: 1,
            })
            .expect("encodes")
            .to_vec(),
            records::encode(&ScheduleRecord {
                keys: vec!["a".into(), "b".into()],
            })
            .expect("encodes")
            .to_vec(),
            records::encode(&Notification {
                key: "k".into(),
                payload: Some(Bytes::from_static(b"reload")),
            })
            .expect("encodes")
            .to_vec(),
            records::encode(&Outcome { error: "no".into() })
                .expect("encodes")
                .to_vec(),
        ]
    })
}

/// Bytes as a peer might publish them: random, text, JSON-ish, wrong-typed or edited valid
/// documents.
fn network_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        "\\{\"(id|type|queue|payload|state|job|kind|schedule|created|deadline|tries|max_tries|dependencies)\":[^}]{0,64}\\}"
            .prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        wrong_typed_document(),
        json_value(true).prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
        (
            proptest::sample::select((0..corpus().len()).collect::<Vec<_>>()),
            proptest::collection::vec(edit(), 1..6),
        )
            .prop_map(|(i, edits)| apply(corpus()[i].clone(), &edits)),
    ]
}

fn leader_elected(name: &str, component: &str) -> LeaderElectedEvent {
    let (event_id, at) = crate::wire::new_id_with_time();
    LeaderElectedEvent {
        event_id,
        event_type: LEADER_ELECTED_EVENT_TYPE.into(),
        timestamp: at.into(),
        name: name.into(),
        component: component.into(),
    }
}

/// Any instant RFC 3339 can write (years 1 to 9998 so that every offset stays in range), with
/// any offset of whole minutes.
fn timestamp() -> impl Strategy<Value = Timestamp> {
    (
        -62_104_060_800i64..253_370_764_800,
        0u32..1_000_000_000,
        -(23 * 60 + 59)..=(23 * 60 + 59i32),
    )
        .prop_map(|(secs, nanos, offset_minutes)| {
            let utc = chrono::DateTime::from_timestamp(secs, nanos).expect("in range");
            let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("in range");
            Timestamp::from(utc.with_timezone(&offset))
        })
}

/// Names as the engine accepts them for ids, types and queues.
fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_:-]{1,40}"
}

fn task_state() -> impl Strategy<Value = TaskState> {
    proptest::sample::select(TaskState::ALL.to_vec())
}

fn task_result() -> impl Strategy<Value = TaskResult> {
    (json_value(false), timestamp())
        .prop_map(|(payload, completed)| TaskResult { payload, completed })
}

fn bytes_payload() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
}

prop_compose! {
    /// Any task document the engine could write: every field set to what a task can hold.
    fn stored_task()(
        (id, task_type, queue) in (name(), name(), name()),
        dependencies in proptest::collection::vec(name(), 0..3),
        dependency_results in proptest::collection::btree_map(
            name(), proptest::option::of(task_result()), 0..3),
        (load_dependencies, payload) in (any::<bool>(), bytes_payload()),
        (deadline, tried, run_at) in (
            proptest::option::of(timestamp()),
            proptest::option::of(timestamp()),
            proptest::option::of(timestamp()),
        ),
        (max_tries, tries, state) in (any::<i64>(), any::<i64>(), task_state()),
        result in proptest::option::of(task_result()),
        created in timestamp(),
        (last_err, signature) in (any::<String>(), "[0-9a-f]{0,128}"),
        (order_key, waiting_for) in (proptest::option::of(any::<String>()),
            proptest::option::of(name())),
    ) -> Task {
        let mut task = Task::with_raw_payload(task_type, payload).expect("valid type");
        task.id = id;
        task.queue = queue;
        task.dependencies = dependencies;
        task.dependency_results = dependency_results.into_iter().collect::<BTreeMap<_, _>>();
        task.load_dependencies = load_dependencies;
        task.deadline = deadline;
        task.tried = tried;
        task.run_at = run_at;
        task.max_tries = max_tries;
        task.tries = tries;
        task.state = state;
        task.result = result;
        task.created = created;
        task.last_err = last_err;
        task.signature = signature;
        task.order_key = order_key;
        task.waiting_for = waiting_for;
        task
    }
}

/// A header value as a peer could send it: any text without line breaks (which NATS framing
/// cannot carry), or one close to a valid traceparent.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\r\n]{0,80}",
        "00-[0-9a-fA-F]{30,34}-[0-9a-f]{15,17}-[0-9a-f]{1,3}",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in network_bytes()) {
        let _ = Task::from_json(&bytes);
        let _ = ProcessItem::parse(&bytes);
        let _ = Event::from_json(&bytes);
        let _ = ScheduledTask::from_json(&bytes);
        let _ = serde_json::from_slice::<ApiReply>(&bytes);
        let _ = GovernorEvent::from_json(&bytes);
        let _ = records::decode::<NodeRecord>("node", &bytes);
        let _ = records::decode::<WorkerRecord>("worker", &bytes);
        let _ = records::decode::<JobRecord>("job", &bytes);
        let _ = records::decode::<TickerRecord>("ticker", &bytes);
        let _ = records::decode::<ScheduleRecord>("schedule", &bytes);
        let _ = records::decode::<ShutdownRecord>("shutdown", &bytes);
        let _ = records::decode::<Outcome>("outcome", &bytes);
        let _ = records::decode::<Notification>("notification", &bytes);
        let _ = request_reply_outcome(None, Bytes::from(bytes.clone()));
        // A governor's stream info reaches the decoder as a JSON value.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            let _ = serde_json::from_value::<async_nats::jetstream::stream::Info>(value);
        }
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = TraceContext::new(text, Some(text));
            let _ = text.parse::<Timestamp>();
            let _ = text.parse::<TaskState>();
            let _ = TaskState::parse_discard(text);
            let _ = parse_go_duration(text);
            let _ = handler_deadline(text);
        }
    }

    /// Decoded documents are then used: their timestamps and numbers, however extreme, must not
    /// panic what the engine computes from them (signature message, event, verification).
    #[test]
    fn decoded_tasks_are_usable_whatever_they_hold(bytes in network_bytes()) {
        if let Ok(task) = Task::from_json(&bytes) {
            let _ = task.signature_message();
            let _ = task.validate();
            let _ = task.created.elapsed();
            let _ = task.deadline.map(|d| d.until());
            let _ = task.run_at.map(|d| d.add(Duration::MAX));
            let _ = TaskStateChangeEvent::for_task(&task);
            let _ = signer().verifier().verify(&task, false);
            let _ = task.to_json();
        }
        if let Ok(schedule) = ScheduledTask::from_json(&bytes) {
            let _ = schedule.task_at(Timestamp::now());
            if let Ok(cron) = schedule.cron() {
                let _ = cron.next_after(chrono::Utc::now());
            }
        }
    }

    /// The same for any document the engine could have written: timestamps across the whole
    /// RFC 3339 range and numbers at their limits.
    #[test]
    fn stored_tasks_are_usable_whatever_they_hold(task in stored_task()) {
        let _ = task.signature_message();
        let _ = task.validate();
        let _ = task.created.elapsed();
        let _ = task.deadline.map(|d| d.until());
        let _ = task.run_at.map(|d| d.add(Duration::MAX));
        let event = TaskStateChangeEvent::for_task(&task);
        prop_assert!(event.task_age >= 0 || task.created.to_utc() > chrono::Utc::now());
        let _ = signer().verifier().verify(&task, true);
    }

    #[test]
    fn trace_headers_never_panic_and_valid_ones_survive(
        traceparent in proptest::option::of(header_value()),
        tracestate in proptest::option::of(header_value()),
    ) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(value) = &traceparent {
            headers.insert(TRACEPARENT_HEADER, value.as_str());
        }
        if let Some(value) = &tracestate {
            headers.insert(TRACESTATE_HEADER, value.as_str());
        }
        let decoded = TraceContext::from_headers(Some(&headers));
        if let Some(context) = decoded {
            prop_assert_eq!(Some(context.traceparent()), traceparent.as_deref());
            let _ = context.trace_id();
            let mut written = async_nats::HeaderMap::new();
            context.add_to(&mut written);
            prop_assert_eq!(TraceContext::from_headers(Some(&written)), Some(context));
        }
    }

    #[test]
    fn request_reply_headers_decide_the_outcome(
        terminate in proptest::option::of(header_value()),
        error in proptest::option::of(header_value()),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(value) = &terminate {
            headers.insert(REQUEST_REPLY_TERMINATE_HEADER, value.as_str());
        }
        if let Some(value) = &error {
            headers.insert(REQUEST_REPLY_ERROR_HEADER, value.as_str());
        }
        let terminate = terminate.filter(|v| !v.is_empty());
        let error = error.filter(|v| !v.is_empty());
        match request_reply_outcome(Some(&headers), Bytes::from(body.clone())) {
            Ok(serde_json::Value::String(encoded)) => {
                prop_assert!(terminate.is_none() && error.is_none());
                let decoded = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD, encoded)
                    .expect("base64");
                prop_assert_eq!(decoded, body);
            }
            Ok(other) => prop_assert!(false, "reply stored as {other}"),
            Err(e) => {
                prop_assert!(terminate.is_some() || error.is_some());
                prop_assert_eq!(e.is_terminate(), terminate.is_some());
            }
        }
    }

    #[test]
    fn handler_deadlines_never_exceed_what_the_header_allows(
        seconds in -1_000_000i64..1_000_000,
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59i32),
    ) {
        let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).expect("in range");
        let due = (chrono::Utc::now() + chrono::Duration::seconds(seconds)).with_timezone(&offset);
        let header = due.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false);
        let left = handler_deadline(&header).expect("a valid header");
        prop_assert!(left <= Duration::from_secs(seconds.max(0).unsigned_abs()));
    }

    #[test]
    fn cron_parsing_never_panics_and_next_is_in_the_future(
        spec in prop_oneof![
            any::<String>(),
            "(CRON_TZ=UTC )?([0-9*?,/-]{1,8} ){4}[0-9a-z*?,/-]{1,8}",
            "(TZ=(Europe/Berlin|America/New_York|Nowhere/Land) )?([0-9*?,/-]{1,8} ){4,5}[0-9a-zA-Z*?,/-]{1,8}",
            "@(every [0-9]{1,4}(ns|us|ms|s|m|h)|hourly|daily|weekly|monthly|yearly|[a-z]{1,8})",
            "@every (-?[0-9]{0,20}(\\.[0-9]{0,10})?(ns|us|µs|ms|s|m|h|d)?){1,4}",
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
    fn go_durations_round_trip(n in 0u64..1_000_000, unit in 0usize..6) {
        let (suffix, nanos) = [
            ("ns", 1u64), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
            ("m", 60_000_000_000), ("h", 3_600_000_000_000),
        ][unit];
        let parsed = parse_go_duration(&format!("{n}{suffix}")).expect("a valid duration");
        prop_assert_eq!(parsed, Duration::from_nanos(n * nanos));
    }

    #[test]
    fn timestamps_round_trip_through_their_text(at in timestamp()) {
        let text = at.to_string();
        let back: Timestamp = text.parse().expect("decodes");
        prop_assert_eq!(back, at);
        prop_assert_eq!(back.utc_offset_seconds(), at.utc_offset_seconds());
        let json = serde_json::to_vec(&at).expect("encodes");
        prop_assert_eq!(serde_json::from_slice::<Timestamp>(&json).expect("decodes"), at);
    }

    #[test]
    fn tasks_round_trip_through_their_documents(task in stored_task()) {
        let back = Task::from_json(&task.to_json().expect("encodes")).expect("decodes");
        prop_assert_eq!(back, task);
    }

    #[test]
    fn tasks_with_json_payloads_round_trip(
        task_type in "[a-z][a-z0-9:_-]{0,30}",
        payload in proptest::option::of(json_value(true)),
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

    /// A signature covers fields the document stores; it must still verify once the document
    /// has been through the wire.
    #[test]
    fn signed_tasks_still_verify_after_their_document_round_trip(mut task in stored_task()) {
        task.signature.clear();
        signer().sign(&mut task).expect("signs a task with a queue");
        let back = Task::from_json(&task.to_json().expect("encodes")).expect("decodes");
        prop_assert!(signer().verifier().verify(&back, false).is_ok());
    }

    #[test]
    fn work_items_round_trip(id in name(), garbage in any::<String>()) {
        let body = crate::wire::to_go_json(&ProcessItem { kind: 0, job: id.clone() })
            .expect("encodes");
        let item = ProcessItem::parse(&body).expect("decodes");
        prop_assert_eq!((item.kind, item.job), (0, id));
        // An item naming any string at all decodes; `load_task` is what rejects bad ids.
        let odd = serde_json::to_vec(&serde_json::json!({"kind": 0, "job": garbage}))
            .expect("encodes");
        prop_assert_eq!(
            ProcessItem::parse(&odd).map(|i| i.job),
            Some(garbage).filter(|g| !g.is_empty())
        );
    }

    #[test]
    fn events_round_trip(task in stored_task(), leader in name(), component in name()) {
        let state = Event::TaskState(TaskStateChangeEvent::for_task(&task));
        prop_assert_eq!(Event::from_json(&state.to_json().expect("encodes")).expect("decodes"), state);
        let elected = Event::LeaderElected(leader_elected(&leader, &component));
        prop_assert_eq!(
            Event::from_json(&elected.to_json().expect("encodes")).expect("decodes"),
            elected
        );
    }

    #[test]
    fn scheduled_tasks_round_trip(
        (schedule_name, queue, task_type) in (name(), name(), name()),
        schedule in "(@(hourly|daily|weekly|every [1-9][0-9]{0,3}(s|m|h)))|([0-5]?[0-9] \\* \\* \\* \\*)",
        payload in bytes_payload(),
        deadline in 0u64..=i64::MAX as u64,
        max_tries in any::<i64>(),
        created_at in timestamp(),
    ) {
        let scheduled = ScheduledTask {
            name: schedule_name,
            schedule,
            queue,
            task_type,
            payload,
            deadline: Duration::from_nanos(deadline),
            max_tries,
            created_at,
        };
        let back = ScheduledTask::from_json(&scheduled.to_json().expect("encodes"))
            .expect("decodes");
        prop_assert_eq!(back, scheduled);
    }

    #[test]
    fn governor_lifecycle_events_round_trip(
        kind in proptest::sample::select(vec![
            GovernorEventType::Enter, GovernorEventType::Exit,
            GovernorEventType::Timeout, GovernorEventType::Eviction,
        ]),
        (component, identity) in (any::<String>(), any::<String>()),
        governor in ".{1,40}",
        sequence in any::<u64>(),
    ) {
        let event = GovernorEvent::new(kind, component, identity, governor, sequence);
        let back = GovernorEvent::from_json(&event.to_json().expect("encodes")).expect("decodes");
        prop_assert_eq!(back, event);
    }

    #[test]
    fn pool_records_round_trip(
        (id, node, key, owner, reply) in
            (any::<String>(), any::<String>(), any::<String>(), any::<String>(), any::<String>()),
        (created_ns, other_ns, generation) in (any::<i64>(), any::<i64>(), any::<u64>()),
        (client_only, leaving) in (any::<bool>(), any::<bool>()),
        state in proptest::sample::select(vec![JobState::Assigned, JobState::Running, JobState::Stopping]),
        payload in bytes_payload(),
        keys in proptest::collection::vec(any::<String>(), 0..4),
    ) {
        fn round_trip<T>(value: &T) -> Result<(), TestCaseError>
        where
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let back: T = records::decode("record", &records::encode(value).expect("encodes"))
                .expect("decodes");
            prop_assert_eq!(&back, value);
            Ok(())
        }
        round_trip(&NodeRecord { id: id.clone(), created_ns, client_only })?;
        round_trip(&WorkerRecord { id: id.clone(), node: node.clone(), created_ns, leaving })?;
        round_trip(&JobRecord {
            key: key.clone(),
            payload: payload.clone(),
            owner,
            generation,
            state,
            created_ns,
            node: node.clone(),
            reply: reply.clone(),
        })?;
        round_trip(&TickerRecord { next_ns: created_ns, every_ns: other_ns })?;
        round_trip(&ScheduleRecord { keys })?;
        round_trip(&ShutdownRecord { node })?;
        round_trip(&Outcome { error: reply })?;
        round_trip(&Notification { key, payload })?;
    }
}

fn signer() -> &'static TaskSigner {
    static SIGNER: OnceLock<TaskSigner> = OnceLock::new();
    SIGNER.get_or_init(|| TaskSigner::from_bytes(&[7; 32]).expect("a 32-byte seed"))
}
