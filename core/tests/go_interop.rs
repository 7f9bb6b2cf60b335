// SPDX-License-Identifier: Apache-2.0
//! Wire compatibility against the real Go asyncjobs v0.3.0: its library (through the test driver in
//! tests/interop/go/cmd/ajdriver) and its `ajc` CLI, built on demand (see `common::go`).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::go::{GoProcess, GoTools, ajc, ajdriver, go_tools};
use common::{NatsServer, observe_concurrency, wait_final, wait_for};
use jetjobs::{
    CancellationToken, Client, ClientOptions, HandlerError, Mux, Queue, RetryPolicy, Task,
    TaskSigner, TaskState,
};
use serde_json::{Value, json};

const FINAL: Duration = Duration::from_secs(60);
const SEED_HEX: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

fn go_enqueue(tools: &GoTools, url: &str, queue: &str, payload: Value, extra: &[&str]) -> String {
    let payload = payload.to_string();
    let mut args = vec![
        "enqueue",
        "-url",
        url,
        "-queue",
        queue,
        "-type",
        "interop:go",
        "-payload",
        &payload,
    ];
    args.extend_from_slice(extra);
    ajdriver(tools, &args)[0]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Go's `LoadTaskByID` view of a task.
fn go_load(tools: &GoTools, url: &str, id: &str, extra: &[&str]) -> Value {
    let mut args = vec!["load", "-url", url, "-id", id];
    args.extend_from_slice(extra);
    ajdriver(tools, &args).remove(0)
}

/// Go asyncjobs processes of the test driver.
struct GoWorker;

impl GoWorker {
    /// A Go asyncjobs worker, stopped on drop.
    fn start(tools: &GoTools, url: &str, queue: &str, extra: &[&str]) -> GoProcess {
        let mut args = vec!["worker", "-url", url, "-queue", queue, "-bind"];
        args.extend_from_slice(extra);
        GoProcess::spawn(tools, &args)
    }

    /// The driver's hand-written request-reply service for `task_type`.
    fn responder(tools: &GoTools, url: &str, task_type: &str) -> GoProcess {
        GoProcess::spawn(tools, &["responder", "-url", url, "-type", task_type])
    }
}

/// The Rust side of the protocol the Go driver speaks: behaviour chosen by the payload's `mode`.
fn rust_mux(nats: async_nats::Client) -> Mux {
    let mut mux = Mux::new();
    mux.handle("", move |_ctx, task: Task| {
        let nats = nats.clone();
        async move {
            let payload: Value = task.payload_json().unwrap_or(Value::Null);
            let me = format!("rust-{}", std::process::id());
            match payload["mode"].as_str() {
                Some("fail") if task.tries <= payload["fails"].as_i64().unwrap_or(0) => {
                    return Err(HandlerError::retry(format!("rust failure {}", task.tries)));
                }
                Some("terminate") => return Err(HandlerError::terminate("rust refused")),
                Some("track") => {
                    nats.publish("track.start", me.clone().into()).await?;
                    tokio::time::sleep(Duration::from_millis(
                        payload["sleep_ms"].as_u64().unwrap_or(30),
                    ))
                    .await;
                    nats.publish("track.end", me.into()).await?;
                }
                _ => {}
            }
            if !payload["result"].is_null() {
                return Ok(payload["result"].clone());
            }
            let parents: HashMap<&String, Value> = task
                .dependency_results
                .iter()
                .map(|(id, r)| {
                    (
                        id,
                        r.as_ref().map(|r| r.payload.clone()).unwrap_or_default(),
                    )
                })
                .collect();
            Ok(json!({"handled_by": "rust", "id": task.id, "parents": parents}))
        }
    })
    .expect("catch-all handler");
    mux
}

fn fast_options() -> ClientOptions {
    ClientOptions::new().retry_policy(
        RetryPolicy::exponential(Duration::from_millis(100), Duration::from_millis(300), 0.0)
            .expect("policy"),
    )
}

struct RustWorker(CancellationToken, tokio::task::JoinHandle<()>);

impl RustWorker {
    fn start(client: &Client) -> Self {
        let shutdown = CancellationToken::new();
        let (c, s) = (client.clone(), shutdown.clone());
        let mux = rust_mux(client.nats().clone());
        Self(
            shutdown,
            tokio::spawn(async move { c.run(mux, s).await.expect("worker runs") }),
        )
    }

    async fn stop(self) {
        self.0.cancel();
        self.1.await.expect("worker stops");
    }
}

async fn client(server: &NatsServer, queue: Queue, options: ClientOptions) -> Client {
    options
        .queue(queue)
        .connect(&server.url)
        .await
        .expect("jetjobs connects")
}

#[tokio::test]
async fn go_producer_to_jetjobs_worker() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let url = server.url.as_str();
    let ok = go_enqueue(
        go,
        url,
        "GO2RS",
        json!({"mode": "succeed", "result": {"x": 1}}),
        &[],
    );
    let flaky = go_enqueue(go, url, "GO2RS", json!({"mode": "fail", "fails": 1}), &[]);
    let refused = go_enqueue(go, url, "GO2RS", json!({"mode": "terminate"}), &[]);
    let late = go_enqueue(
        go,
        url,
        "GO2RS",
        json!({"mode": "succeed"}),
        &["-deadline", "300ms"],
    );
    let rust = client(&server, Queue::bind("GO2RS"), fast_options()).await;
    let deadline = rust
        .load_task(&late)
        .await
        .expect("load")
        .deadline
        .expect("deadline");
    wait_for("the Go task's deadline to pass", FINAL, || async {
        deadline.until().is_zero().then_some(())
    })
    .await;
    let worker = RustWorker::start(&rust);

    let done = wait_final(
        &rust,
        &[ok.clone(), flaky.clone(), refused.clone(), late.clone()],
        FINAL,
    )
    .await;
    worker.stop().await;
    assert_eq!(
        done.iter().map(|t| t.state).collect::<Vec<_>>(),
        [
            TaskState::Complete,
            TaskState::Complete,
            TaskState::Terminated,
            TaskState::Expired
        ]
    );
    // Go reads what jetjobs wrote.
    let ok = go_load(go, url, &ok, &[]);
    assert_eq!(
        (ok["state"].as_str(), &ok["result"]["payload"]),
        (Some("complete"), &json!({"x": 1}))
    );
    let flaky = go_load(go, url, &flaky, &[]);
    assert_eq!(
        (flaky["state"].as_str(), flaky["tries"].as_i64()),
        (Some("complete"), Some(2))
    );
    assert_eq!(flaky["result"]["payload"]["handled_by"], "rust");
    let refused = go_load(go, url, &refused, &[]);
    assert_eq!(refused["last_err"], "rust refused: terminate task");
    assert_eq!(go_load(go, url, &late, &[])["state"], "expired");
}

#[tokio::test]
async fn jetjobs_producer_to_go_worker() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let rust = client(&server, Queue::new("RS2GO"), fast_options()).await;
    let enqueue = |payload: Value| {
        let rust = rust.clone();
        async move {
            rust.enqueue(Task::new("interop:rs", &payload).expect("task"))
                .await
                .expect("enqueue")
                .id
        }
    };
    let ok = enqueue(json!({"mode": "succeed", "result": {"y": [1, 2]}})).await;
    let flaky = enqueue(json!({"mode": "fail", "fails": 1})).await;
    let refused = enqueue(json!({"mode": "terminate"})).await;
    let late_task = Task::new("interop:rs", &json!({"mode": "succeed"}))
        .expect("task")
        .with_deadline(jetjobs::Timestamp::now().add(Duration::from_millis(200)));
    let late = rust.enqueue(late_task).await.expect("enqueue");
    let deadline = late.deadline.expect("deadline");
    wait_for("the deadline to pass", FINAL, || async {
        deadline.until().is_zero().then_some(())
    })
    .await;
    let _worker = GoWorker::start(go, &server.url, "RS2GO", &[]);

    let done = wait_final(&rust, &[ok, flaky, refused, late.id], FINAL).await;
    assert_eq!(
        (done[0].state, done[0].result.as_ref().map(|r| &r.payload)),
        (TaskState::Complete, Some(&json!({"y": [1, 2]})))
    );
    assert_eq!((done[1].state, done[1].tries), (TaskState::Complete, 2));
    assert_eq!(
        done[1]
            .result
            .as_ref()
            .map(|r| r.payload["handled_by"].clone()),
        Some(json!("go"))
    );
    assert_eq!(
        (done[2].state, done[2].last_err.as_str()),
        (TaskState::Terminated, "go refused: terminate task")
    );
    assert_eq!(done[3].state, TaskState::Expired);
}

#[tokio::test]
async fn signatures_verify_in_both_directions() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let url = server.url.as_str();
    let signer = TaskSigner::from_hex(SEED_HEX).expect("seed");
    let public = signer.verifier().to_hex();

    // Go signs, jetjobs verifies, and terminates a task whose payload was changed after signing.
    let signed = go_enqueue(
        go,
        url,
        "SIG",
        json!({"mode": "succeed"}),
        &["-seed-hex", SEED_HEX],
    );
    let tampered = go_enqueue(
        go,
        url,
        "SIG",
        json!({"mode": "succeed"}),
        &["-seed-hex", SEED_HEX],
    );
    let verifying = client(
        &server,
        Queue::bind("SIG"),
        fast_options().verification_key(signer.verifier()),
    )
    .await;
    let mut forged = verifying
        .load_task(&tampered)
        .await
        .expect("Go's signature verifies");
    forged.payload = Some(bytes::Bytes::from_static(
        br#"{"mode":"succeed","result":"forged"}"#,
    ));
    let js = async_nats::jetstream::new(verifying.nats().clone());
    js.publish(
        format!("CHORIA_AJ.T.{tampered}"),
        forged.to_json().expect("json").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("stored");
    let worker = RustWorker::start(&verifying);
    // Read through a client without the key: the verifying one refuses to load the forged task.
    let reader = client(&server, Queue::bind("SIG"), fast_options()).await;
    let done = wait_final(&reader, &[signed, tampered], FINAL).await;
    worker.stop().await;
    assert_eq!(done[0].state, TaskState::Complete);
    assert_eq!(
        (done[1].state, done[1].last_err.as_str()),
        (TaskState::Terminated, "invalid task signature")
    );

    // jetjobs signs, Go verifies (on load and in its worker).
    let signing = client(
        &server,
        Queue::new("SIG2"),
        fast_options().signing_key(signer),
    )
    .await;
    let id = signing
        .enqueue(Task::new("interop:rs", &json!({"mode": "succeed"})).expect("task"))
        .await
        .expect("enqueue")
        .id;
    assert_eq!(
        go_load(go, url, &id, &["-verify-hex", &public])["id"],
        id.as_str()
    );
    let _worker = GoWorker::start(go, url, "SIG2", &["-verify-hex", &public]);
    let done = wait_final(&signing, &[id], FINAL).await;
    assert_eq!(done[0].state, TaskState::Complete);
    assert_eq!(
        done[0]
            .result
            .as_ref()
            .map(|r| r.payload["handled_by"].clone()),
        Some(json!("go"))
    );
}

#[tokio::test]
async fn go_dependencies_processed_by_jetjobs_with_parent_results() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let url = server.url.as_str();
    let parent = go_enqueue(
        go,
        url,
        "DEPS",
        json!({"mode": "succeed", "result": {"p": 1}}),
        &[],
    );
    let child = go_enqueue(
        go,
        url,
        "DEPS",
        json!({"mode": "succeed"}),
        &["-depends", &parent, "-load-deps"],
    );
    let rust = client(&server, Queue::bind("DEPS"), fast_options()).await;
    assert_eq!(
        rust.load_task(&child).await.expect("load").state,
        TaskState::Blocked
    );
    let worker = RustWorker::start(&rust);
    let done = wait_final(&rust, &[parent.clone(), child.clone()], FINAL).await;
    worker.stop().await;
    assert_eq!(done[1].state, TaskState::Complete);
    let result = &done[1].result.as_ref().expect("result").payload;
    assert_eq!(result["parents"][&parent], json!({"p": 1}));
    let go_child = go_load(go, url, &child, &[]);
    assert_eq!(
        go_child["dependency_results"][&parent]["payload"],
        json!({"p": 1})
    );
}

#[tokio::test]
async fn mixed_fleet_shares_one_queue_and_its_concurrency_limit() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let rust = client(
        &server,
        Queue::new("MIXED").max_concurrent(3),
        fast_options().concurrency(2),
    )
    .await;
    let mut observed = rust.nats().subscribe("track.*").await.expect("subscribe");
    rust.nats().flush().await.expect("flush");
    let _go = GoWorker::start(go, &server.url, "MIXED", &["-concurrency", "2"]);
    let worker = RustWorker::start(&rust);
    let mut ids = Vec::new();
    for _ in 0..40 {
        let task =
            Task::new("interop:rs", &json!({"mode": "track", "sleep_ms": 40})).expect("task");
        ids.push(rust.enqueue(task).await.expect("enqueue").id);
    }

    let seen = observe_concurrency(&mut observed, ids.len(), 3).await;
    let done = wait_final(&rust, &ids, FINAL).await;
    worker.stop().await;
    let kinds: std::collections::BTreeSet<&str> = seen
        .peak_by_worker
        .keys()
        .filter_map(|w| w.split('-').next())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["go", "rust"],
        "both workers handled tasks"
    );
    assert_eq!(seen.peak, 3, "both workers ran at once");
    for task in done {
        assert_eq!(
            (task.state, task.tries),
            (TaskState::Complete, 1),
            "each task ran exactly once"
        );
    }
}

#[tokio::test]
async fn ajc_reads_what_jetjobs_stored() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let url = server.url.as_str();
    let rust = client(
        &server,
        Queue::new("BILLING").max_concurrent(7).max_tries(5),
        fast_options(),
    )
    .await;
    let id = rust
        .enqueue(
            Task::new("bill:send", &json!({"mode": "succeed", "result": "paid"})).expect("task"),
        )
        .await
        .expect("enqueue")
        .id;
    let worker = RustWorker::start(&rust);
    wait_final(&rust, std::slice::from_ref(&id), FINAL).await;
    worker.stop().await;
    let pending = rust
        .enqueue(Task::new("bill:later", &1).expect("task"))
        .await
        .expect("enqueue")
        .id;

    let queues = ajc(go, url, &["queue", "ls"]);
    assert!(
        queues
            .lines()
            .any(|l| l.contains("BILLING") && l.contains(" 5 ") && l.contains(" 7 ")),
        "{queues}"
    );
    let info = ajc(go, url, &["queue", "info", "BILLING"]);
    assert!(
        info.contains("BILLING Work Queue") && info.contains("Entries: 1"),
        "{info}"
    );
    assert!(
        info.contains("Max Concurrent: 7") && info.contains("Max Task Tries: 5"),
        "{info}"
    );
    let tasks = ajc(go, url, &["task", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.contains(&id) && l.contains("complete") && l.contains("bill:send")),
        "{tasks}"
    );
    assert!(
        tasks
            .lines()
            .any(|l| l.contains(&pending) && l.contains("new")),
        "{tasks}"
    );
    let view = ajc(go, url, &["task", "view", &id]);
    assert!(
        view.contains(&format!("Task {id} created at")) && view.contains("Status: complete"),
        "{view}"
    );
    let json: Value =
        serde_json::from_str(&ajc(go, url, &["task", "view", &id, "--json"])).expect("ajc JSON");
    let ours: Value = serde_json::from_slice(
        &rust
            .load_task(&id)
            .await
            .expect("load")
            .to_json()
            .expect("json"),
    )
    .expect("json");
    assert_eq!(json, ours, "ajc shows the document jetjobs stored");
}

fn base64_json(task: &Task) -> Value {
    use base64::Engine as _;
    let text = task
        .result
        .as_ref()
        .map(|r| r.payload.clone())
        .unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("a base64 string, as Go stores []byte"))
        .expect("base64");
    serde_json::from_slice(&bytes).expect("a JSON reply")
}

#[tokio::test]
async fn go_request_reply_worker_calls_jetjobs_responder() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let url = server.url.as_str();
    let rust = client(
        &server,
        Queue::new("RRGO").max_run_time(Duration::from_secs(20)),
        fast_options(),
    )
    .await;
    let short = rust
        .open_queue(Queue::new("RRGOSHORT").max_run_time(Duration::from_secs(2)))
        .await
        .expect("queue");
    let rr = ["-type", "interop:rr", "-request-reply"];
    let _go = GoWorker::start(go, url, "RRGO", &rr);
    let _go_short = GoWorker::start(go, url, "RRGOSHORT", &rr);
    let enqueue = |payload: Value, max_tries: i64| {
        let rust = rust.clone();
        async move {
            let task = Task::new("interop:rr", &payload)
                .expect("task")
                .with_max_tries(max_tries);
            rust.enqueue(task).await.expect("enqueue").id
        }
    };

    // Nobody serves the type yet: Go's callout fails and the task is retried until out of tries.
    let lonely = enqueue(json!({"mode": "succeed"}), 2).await;
    let hurried = short
        .enqueue(Task::new("interop:rr", &1).expect("task").with_max_tries(1))
        .await
        .expect("enqueue")
        .id;
    let done = wait_final(&rust, &[lonely, hurried], FINAL).await;
    assert_eq!(
        (done[0].state, done[0].tries, done[0].last_err.as_str()),
        (
            TaskState::Expired,
            2,
            "request-reply callout failed: nats: no responders available for request"
        )
    );
    // Go gives a handler MaxRunTime (2 s here): under its 3 s minimum for a callout.
    assert_eq!(
        (done[1].state, done[1].last_err.as_str()),
        (TaskState::Expired, "deadline too short")
    );

    let responder = jetjobs::Responder::new(
        &rust,
        "interop:rr",
        |ctx: jetjobs::TaskContext, task: Task| async move {
            let spec: Value = task.payload_json()?;
            match spec["mode"].as_str() {
                Some("terminate") => Err(HandlerError::terminate("rust refused")),
                Some("fail") if task.tries <= spec["fails"].as_i64().unwrap_or(0) => {
                    Err(HandlerError::retry(format!("rust failure {}", task.tries)))
                }
                _ => Ok(json!({
                    "handled_by": "rust-responder",
                    "id": task.id,
                    "state": task.state.to_string(),
                    "tries": task.tries,
                    "left_s": ctx.remaining().as_secs(),
                })),
            }
        },
    )
    .expect("responder");
    responder.listen().await.expect("listen");
    let stop = CancellationToken::new();
    let serving = tokio::spawn({
        let (responder, stop) = (responder.clone(), stop.clone());
        async move { responder.run(stop).await }
    });
    let ok = enqueue(json!({"mode": "succeed"}), 5).await;
    let refused = enqueue(json!({"mode": "terminate"}), 5).await;
    let flaky = enqueue(json!({"mode": "fail", "fails": 1}), 5).await;
    let done = wait_final(&rust, &[ok.clone(), refused.clone(), flaky.clone()], FINAL).await;
    stop.cancel();
    serving.await.expect("join").expect("responder ran");

    // Go stored the reply bytes as a []byte: the responder's JSON, base64-encoded.
    assert_eq!(done[0].state, TaskState::Complete);
    let reply = base64_json(&done[0]);
    assert_eq!(
        (
            &reply["handled_by"],
            &reply["id"],
            &reply["state"],
            &reply["tries"]
        ),
        (
            &json!("rust-responder"),
            &json!(ok),
            &json!("active"),
            &json!(1)
        )
    );
    // Go's deadline is 20 s from the start of the try; the responder is told 2 s less.
    let left = reply["left_s"].as_u64().expect("left_s");
    assert!((14..=18).contains(&left), "{left} s left");
    assert_eq!(
        (done[1].state, done[1].last_err.as_str()),
        (TaskState::Terminated, "rust refused: terminate task")
    );
    assert_eq!((done[2].state, done[2].tries), (TaskState::Complete, 2));
    // And Go reads them the same.
    let go_ok = go_load(go, url, &ok, &[]);
    assert_eq!(go_ok["result"]["payload"], payload_of(&done[0]));
    assert_eq!(
        go_load(go, url, &refused, &[])["last_err"],
        "rust refused: terminate task"
    );
}

fn payload_of(task: &Task) -> Value {
    task.result
        .as_ref()
        .map(|r| r.payload.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn jetjobs_request_reply_route_calls_go_responder() {
    let Some(go) = go_tools() else { return };
    let server = NatsServer::start();
    let rust = client(
        &server,
        Queue::new("RR2GO").max_run_time(Duration::from_secs(20)),
        fast_options(),
    )
    .await;
    let _responder = GoWorker::responder(go, &server.url, "interop:");
    let mut mux = Mux::new();
    mux.request_reply("interop:", &rust).expect("route");
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let (rust, shutdown) = (rust.clone(), shutdown.clone());
        async move { rust.run(mux, shutdown).await }
    });
    let enqueue = |payload: Value| {
        let rust = rust.clone();
        async move {
            let task = Task::new("interop:rr2go", &payload)
                .expect("task")
                .with_max_tries(5);
            rust.enqueue(task).await.expect("enqueue").id
        }
    };
    let ok = enqueue(json!({"mode": "succeed"})).await;
    let result = enqueue(json!({"mode": "succeed", "result": "plain"})).await;
    let refused = enqueue(json!({"mode": "terminate"})).await;
    let flaky = enqueue(json!({"mode": "fail", "fails": 1})).await;
    let done = wait_final(&rust, &[ok.clone(), result, refused, flaky], FINAL).await;
    shutdown.cancel();
    worker.await.expect("join").expect("worker ran");

    // The Go service accepted jetjobs' headers (else it replies AJ-Error) and saw the active task.
    let reply = base64_json(&done[0]);
    assert_eq!(
        (
            &reply["handled_by"],
            &reply["id"],
            &reply["state"],
            &reply["tries"]
        ),
        (
            &json!("go-responder"),
            &json!(ok),
            &json!("active"),
            &json!(1)
        )
    );
    assert_eq!(reply["content_type"], "application/x-asyncjobs-task+json");
    let deadline = reply["deadline"].as_str().expect("deadline");
    assert!(
        deadline.ends_with('Z') && !deadline.contains('.'),
        "{deadline}"
    );
    // 20 s run time, less jetjobs' margin (1 s) and asyncjobs' 2 s, in whole seconds.
    let left = reply["left_ms"].as_i64().expect("left_ms");
    assert!((15_000..=17_000).contains(&left), "{left} ms left");
    // `"plain"` went back as the JSON text `"plain"`, stored base64-encoded.
    assert_eq!(payload_of(&done[1]), json!("InBsYWluIg=="));
    assert_eq!(
        (done[2].state, done[2].last_err.as_str()),
        (
            TaskState::Terminated,
            "go responder refused: terminate task"
        )
    );
    assert_eq!((done[3].state, done[3].tries), (TaskState::Complete, 2));
}
