// SPDX-License-Identifier: Apache-2.0
//! Golden documents written by the real Go asyncjobs (see fixtures/README.md): jetjobs must read
//! them and write them back byte for byte.

use std::path::Path;

use jetjobs::{Event, RetryPolicy, ScheduledTask, Task, TaskSigner, TaskState, TaskVerifier};
use serde::Deserialize;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("utf-8")
}

#[test]
fn task_documents_round_trip_byte_for_byte() {
    for name in [
        "task_new.json",
        "task_blocked.json",
        "task_complete.json",
        "task_retry_offset.json",
    ] {
        let golden = fixture(name);
        let task = Task::from_json(&golden).expect(name);
        assert_eq!(
            text(&task.to_json().expect("encode")),
            text(&golden),
            "{name}"
        );
    }
}

#[test]
fn task_fields_decode_as_go_wrote_them() {
    let task = Task::from_json(&fixture("task_complete.json")).expect("decode");
    assert_eq!(task.state, TaskState::Complete);
    assert_eq!(task.created.unix_nanos(), 1_644_427_721_943_198_067);
    assert_eq!(
        task.payload_json::<serde_json::Value>().expect("json")["to"],
        "a@example.net"
    );
    let result = task.result.expect("result");
    assert_eq!(result.payload["message"], "sent <b>ok</b> & done");
    assert_eq!(
        task.dependency_results["p1"].as_ref().map(|r| &r.payload),
        Some(&serde_json::json!("parent done"))
    );
    let offset = Task::from_json(&fixture("task_retry_offset.json")).expect("decode");
    assert_eq!(
        offset.deadline.map(|d| d.to_string()).as_deref(),
        Some("2030-01-02T04:04:05.12+01:00")
    );
    assert_eq!(
        offset.payload_json::<String>().expect("string payload"),
        "hello"
    );
    let blocked = Task::from_json(&fixture("task_blocked.json")).expect("decode");
    assert_eq!(
        (blocked.state, blocked.payload.is_none()),
        (TaskState::Blocked, true)
    );
}

#[test]
fn events_round_trip_byte_for_byte() {
    for name in [
        "event_task_state.json",
        "event_task_state_minimal.json",
        "event_task_state_last_err.json",
        "event_leader_elected.json",
    ] {
        let golden = fixture(name);
        let event = Event::from_json(&golden).expect(name);
        assert_eq!(
            text(&event.to_json().expect("encode")),
            text(&golden),
            "{name}"
        );
    }
}

#[test]
fn scheduled_task_and_process_item_round_trip() {
    let golden = fixture("scheduled_task.json");
    let schedule = ScheduledTask::from_json(&golden).expect("decode");
    assert_eq!(schedule.deadline, std::time::Duration::from_secs(3600));
    assert_eq!(text(&schedule.to_json().expect("encode")), text(&golden));
    assert_eq!(
        text(&fixture("process_item.json")),
        r#"{"kind":0,"job":"24smZHaWnjuP371iglxeQWK7nOi"}"#
    );
}

#[derive(Deserialize)]
struct SignatureVector {
    seed_hex: String,
    public_key_hex: String,
    task_json: String,
    message: String,
    signature_hex: String,
}

#[test]
fn signatures_match_go_ed25519_byte_for_byte() {
    let vector: SignatureVector =
        serde_json::from_slice(&fixture("signature.json")).expect("vector");
    let signer = TaskSigner::from_hex(&vector.seed_hex).expect("seed");
    assert_eq!(signer.verifier().to_hex(), vector.public_key_hex);
    let stored = Task::from_json(vector.task_json.as_bytes()).expect("task");
    assert_eq!(stored.signature_message().expect("message"), vector.message);
    let verifier = TaskVerifier::from_hex(&vector.public_key_hex).expect("public key");
    verifier
        .verify(&stored, false)
        .expect("Go's signature verifies");

    let mut unsigned = stored.clone();
    unsigned.signature.clear();
    signer.sign(&mut unsigned).expect("sign");
    assert_eq!(unsigned.signature, vector.signature_hex);
    assert_eq!(text(&unsigned.to_json().expect("encode")), vector.task_json);
}

#[derive(Deserialize)]
struct Policies {
    policies: Vec<NamedPolicy>,
}

#[derive(Deserialize)]
struct NamedPolicy {
    name: String,
    intervals: Vec<u64>,
    jitter: f64,
}

#[test]
fn named_retry_policies_match_asyncjobs_intervals() {
    let golden: Policies =
        serde_json::from_slice(&fixture("retry_policies.json")).expect("policies");
    let names: Vec<&str> = golden.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, jetjobs::RETRY_POLICY_NAMES);
    for policy in golden.policies {
        let RetryPolicy::Intervals { intervals, jitter } =
            RetryPolicy::named(&policy.name).expect("named")
        else {
            panic!("{} is an interval policy", policy.name);
        };
        let ours: Vec<u64> = intervals.iter().map(|d| d.as_nanos() as u64).collect();
        assert_eq!(
            (ours, jitter),
            (policy.intervals, policy.jitter),
            "{}",
            policy.name
        );
    }
}
