// SPDX-License-Identifier: Apache-2.0
//! Delegated handlers against a real nats-server: request-reply routes (asyncjobs' headers, reply
//! mapping and error texts), the jetjobs `Responder` answering them, and external processes.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{NatsServer, RunningWorker, wait_final};
use futures::StreamExt as _;
use jetjobs::wire::names::{
    REQUEST_REPLY_CONTENT_TYPE_HEADER, REQUEST_REPLY_DEADLINE_HEADER, REQUEST_REPLY_ERROR_HEADER,
    REQUEST_REPLY_TASK_CONTENT_TYPE, REQUEST_REPLY_TERMINATE_HEADER,
};
use jetjobs::{
    CancellationToken, Client, ErrorKind, HandlerError, Mux, Queue, Responder, RetryPolicy, Task,
    TaskContext, TaskState, WorkerOptions,
};
use serde_json::{Value, json};

const FINAL: Duration = Duration::from_secs(30);

async fn client(server: &NatsServer, queue: Queue) -> Client {
    jetjobs::ClientOptions::new()
        .queue(queue)
        .connect(&server.url)
        .await
        .expect("client connects")
}

fn fast() -> WorkerOptions {
    WorkerOptions::new().retry_policy(
        RetryPolicy::exponential(Duration::from_millis(50), Duration::from_millis(100), 0.0)
            .expect("policy"),
    )
}

async fn enqueue(client: &Client, task_type: &str, payload: Value, max_tries: i64) -> String {
    let task = Task::new(task_type, &payload)
        .expect("task")
        .with_max_tries(max_tries);
    client.enqueue(task).await.expect("enqueue").id
}

/// A responder written against the wire alone, as a Go service would: it checks asyncjobs'
/// request headers and replies by the payload's `mode`, with raw bytes on success.
fn raw_responder(nats: async_nats::Client, mut requests: async_nats::Subscriber) {
    tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let Some(reply) = request.reply.clone() else {
                continue;
            };
            let headers = request.headers.clone().unwrap_or_default();
            let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
            let task = Task::from_json(&request.payload).expect("the body is the task");
            let mode: Value = task.payload_json().expect("payload");
            let mut out = async_nats::HeaderMap::new();
            let body = match mode["mode"].as_str() {
                _ if header(REQUEST_REPLY_CONTENT_TYPE_HEADER).as_deref()
                    != Some(REQUEST_REPLY_TASK_CONTENT_TYPE) =>
                {
                    out.insert(REQUEST_REPLY_ERROR_HEADER, "bad content type");
                    ""
                }
                Some("headers") => {
                    // Reply with the deadline header, and the time left until it, as seen here.
                    let deadline = header(REQUEST_REPLY_DEADLINE_HEADER).unwrap_or_default();
                    let due = chrono::DateTime::parse_from_rfc3339(&deadline).expect("RFC 3339");
                    let left = (due.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
                    let body = json!({"deadline": deadline, "left": left, "state": task.state.to_string(), "tries": task.tries});
                    let _ = nats.publish(reply, body.to_string().into()).await;
                    continue;
                }
                Some("terminate") => {
                    out.insert(REQUEST_REPLY_TERMINATE_HEADER, "raw refused");
                    "error"
                }
                Some("fail") if task.tries <= mode["fails"].as_i64().unwrap_or(0) => {
                    out.insert(REQUEST_REPLY_ERROR_HEADER, "raw failure");
                    "error"
                }
                _ => "test",
            };
            let _ = nats.publish_with_headers(reply, out, body.into()).await;
        }
    });
}

fn payload_of(task: &Task) -> Value {
    task.result
        .as_ref()
        .map(|r| r.payload.clone())
        .unwrap_or_default()
}

fn decoded(task: &Task) -> Vec<u8> {
    BASE64
        .decode(payload_of(task).as_str().expect("a base64 string"))
        .expect("base64")
}

#[tokio::test]
async fn request_reply_maps_replies_like_asyncjobs() {
    let server = NatsServer::start();
    let client = client(
        &server,
        Queue::new("RR").max_run_time(Duration::from_secs(20)),
    )
    .await;
    let nats = client.nats().clone();
    let requests = nats
        .queue_subscribe("CHORIA_AJ.H.T.rr:", "svc".into())
        .await
        .expect("sub");
    nats.flush().await.expect("flush");
    raw_responder(nats, requests);
    let mut mux = Mux::new();
    // A prefix route: every `rr:*` type is sent to the subject of the registered type.
    mux.request_reply("rr:", &client).expect("route");
    let worker = RunningWorker::start(&client, fast(), mux);

    let ok = enqueue(&client, "rr:ok", json!({"mode": "succeed"}), 5).await;
    let headers = enqueue(&client, "rr:headers", json!({"mode": "headers"}), 5).await;
    let refused = enqueue(&client, "rr:terminate", json!({"mode": "terminate"}), 5).await;
    let flaky = enqueue(&client, "rr:flaky", json!({"mode": "fail", "fails": 1}), 5).await;
    let done = wait_final(&client, &[ok, headers, refused, flaky], FINAL).await;
    worker.stop().await;

    // The raw reply bytes, stored as Go stores a []byte: "test" is "dGVzdA==".
    assert_eq!(done[0].state, TaskState::Complete);
    assert_eq!(payload_of(&done[0]), json!("dGVzdA=="));
    let seen: Value = serde_json::from_slice(&decoded(&done[1])).expect("JSON reply");
    assert_eq!(
        (seen["state"].as_str(), seen["tries"].as_i64()),
        (Some("active"), Some(1))
    );
    let deadline = seen["deadline"].as_str().expect("deadline header");
    assert!(
        deadline.ends_with('Z') && !deadline.contains('.'),
        "{deadline}"
    );
    // 20 s run time, less the processor's margin (1 s) and asyncjobs' 2 s, in whole seconds.
    let left = seen["left"].as_i64().expect("left");
    assert!((14..=17).contains(&left), "{left} s left at the responder");
    assert_eq!(
        (done[2].state, done[2].last_err.as_str(), done[2].tries),
        (TaskState::Terminated, "raw refused: terminate task", 1)
    );
    assert_eq!((done[3].state, done[3].tries), (TaskState::Complete, 2));
}

#[tokio::test]
async fn request_reply_without_responder_or_time_fails_the_try() {
    let server = NatsServer::start();
    let client = client(&server, Queue::new("RRFAIL")).await;
    // 3 s of run time leaves 2.7 s to the handler: under asyncjobs' 3 s minimum.
    let short = client
        .open_queue(Queue::new("RRSHORT").max_run_time(Duration::from_secs(3)))
        .await
        .expect("queue");
    let mut mux = Mux::new();
    mux.request_reply("nobody:home", &client).expect("route");
    let mut worker = jetjobs::Worker::new(&client, fast());
    worker
        .consume(client.default_queue(), mux.clone())
        .expect("consume");
    worker.consume(&short, mux).expect("consume");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(worker.run(shutdown.clone()));

    let lonely = enqueue(&client, "nobody:home", json!(1), 2).await;
    let hurried = short
        .enqueue(
            Task::new("nobody:home", &1)
                .expect("task")
                .with_max_tries(1),
        )
        .await
        .expect("enqueue")
        .id;
    let done = wait_final(&client, &[lonely, hurried], FINAL).await;
    shutdown.cancel();
    running.await.expect("join").expect("worker runs");

    assert_eq!(
        (done[0].state, done[0].tries, done[0].last_err.as_str()),
        (
            TaskState::Expired,
            2,
            "request-reply callout failed: nats: no responders available for request"
        )
    );
    assert_eq!(
        (done[1].state, done[1].tries, done[1].last_err.as_str()),
        (TaskState::Expired, 1, "deadline too short")
    );
}

/// The jetjobs side of the protocol: behaviour chosen by the payload's `mode`.
async fn answer(ctx: TaskContext, task: Task) -> Result<Value, HandlerError> {
    let spec: Value = task.payload_json()?;
    match spec["mode"].as_str() {
        Some("terminate") => Err(HandlerError::terminate("responder refused")),
        Some("fail") if task.tries <= spec["fails"].as_i64().unwrap_or(0) => Err(
            HandlerError::retry(format!("responder failure {}\nsecond line", task.tries)),
        ),
        Some("panic") => panic!("responder panicked"),
        Some("slow") => {
            ctx.cancelled().await;
            Err(HandlerError::retry("cancelled"))
        }
        _ => Ok(
            json!({"handled_by": "responder", "id": task.id, "tries": task.tries, "left_s": ctx.remaining().as_secs()}),
        ),
    }
}

#[tokio::test]
async fn responder_answers_a_request_reply_route() {
    let server = NatsServer::start();
    let client = client(
        &server,
        Queue::new("RESP").max_run_time(Duration::from_secs(20)),
    )
    .await;
    let responder = Responder::new(&client, "resp:work", answer)
        .expect("responder")
        .concurrency(4);
    assert_eq!(responder.subject(), "CHORIA_AJ.H.T.resp:work");
    responder.listen().await.expect("listen");
    let stop_responder = CancellationToken::new();
    let serving = tokio::spawn({
        let (responder, stop) = (responder.clone(), stop_responder.clone());
        async move { responder.run(stop).await }
    });
    let mut mux = Mux::new();
    mux.request_reply("resp:work", &client).expect("route");
    let worker = RunningWorker::start(&client, fast(), mux);

    let ok = enqueue(&client, "resp:work", json!({"mode": "succeed"}), 5).await;
    let refused = enqueue(&client, "resp:work", json!({"mode": "terminate"}), 5).await;
    let flaky = enqueue(&client, "resp:work", json!({"mode": "fail", "fails": 1}), 1).await;
    let broken = enqueue(&client, "resp:work", json!({"mode": "panic"}), 1).await;
    let done = wait_final(&client, &[ok.clone(), refused, flaky, broken], FINAL).await;
    worker.stop().await;

    // The result went back as JSON text, stored base64-encoded like any asyncjobs reply.
    let result: Value = serde_json::from_slice(&decoded(&done[0])).expect("JSON");
    assert_eq!(
        (result["handled_by"].as_str(), result["id"].as_str()),
        (Some("responder"), Some(ok.as_str()))
    );
    // The responder's deadline is the caller's less 2 s (and its own margin).
    let left = result["left_s"].as_u64().expect("left");
    assert!((13..=17).contains(&left), "{left} s left");
    assert_eq!(
        (done[1].state, done[1].last_err.as_str()),
        (TaskState::Terminated, "responder refused: terminate task")
    );
    // An error reply is a failed try (one line in its header), retried until out of tries.
    assert_eq!(
        (done[2].state, done[2].last_err.as_str()),
        (TaskState::Expired, "responder failure 1 second line")
    );
    assert_eq!(
        (done[3].state, done[3].last_err.as_str()),
        (TaskState::Expired, "handler panicked: responder panicked")
    );

    // A request that is not a task gets an error reply, not silence.
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(REQUEST_REPLY_CONTENT_TYPE_HEADER, "text/plain");
    let reply = client
        .nats()
        .request_with_headers("CHORIA_AJ.H.T.resp:work", headers, "hi".into())
        .await
        .expect("reply");
    let error = reply
        .headers
        .as_ref()
        .and_then(|h| h.get(REQUEST_REPLY_ERROR_HEADER));
    assert_eq!(
        error.map(|v| v.as_str()),
        Some("unsupported content type \"text/plain\"")
    );

    stop_responder.cancel();
    serving.await.expect("join").expect("responder ran");
    let again = responder
        .run(CancellationToken::new())
        .await
        .err()
        .map(|e| e.kind());
    assert_eq!(again, Some(ErrorKind::AlreadyRunning));
}

#[tokio::test]
async fn responder_cancels_a_handler_at_the_callers_deadline() {
    let server = NatsServer::start();
    let client = client(
        &server,
        Queue::new("SLOW").max_run_time(Duration::from_secs(4)),
    )
    .await;
    let responder = Responder::new(&client, "", answer).expect("catch-all responder");
    assert_eq!(responder.subject(), "CHORIA_AJ.H.T.catchall");
    responder.listen().await.expect("listen");
    let stop = CancellationToken::new();
    let serving = tokio::spawn({
        let (responder, stop) = (responder.clone(), stop.clone());
        async move { responder.run(stop).await }
    });
    let mut mux = Mux::new();
    mux.request_reply("", &client).expect("route");
    let worker = RunningWorker::start(&client, fast(), mux);
    let slow = enqueue(&client, "slow:thing", json!({"mode": "slow"}), 1).await;
    let done = wait_final(&client, &[slow], FINAL).await;
    worker.stop().await;
    stop.cancel();
    serving.await.expect("join").expect("responder ran");
    // The responder stopped the handler at its deadline and said so before the caller gave up.
    assert_eq!(
        (done[0].state, done[0].last_err.as_str()),
        (TaskState::Expired, "context deadline exceeded")
    );
}

struct Scripts(PathBuf);

impl Scripts {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("jetjobs-scripts-{}", jetjobs::new_id()));
        std::fs::create_dir(&dir).expect("script dir");
        Self(dir)
    }

    fn write(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn external_process_runs_a_command_per_try() {
    let server = NatsServer::start();
    let client = client(&server, Queue::new("EXT")).await;
    let scripts = Scripts::new();
    // Prints its argument count, its whole starting environment (NUL-separated, from /proc), then
    // the task file.
    let ok = scripts.write(
        "ok.sh",
        "echo \"args=$#\"; /bin/cat /proc/$$/environ; echo; echo to-stderr >&2; /bin/cat \"$CHORIA_AJ_TASK\"",
    );
    let bad = scripts.write("bad.sh", "echo 'about to fail'; exit 3");
    let mut mux = Mux::new();
    mux.external_process("ext:ok", &ok).expect("route");
    mux.external_process("ext:bad", &bad).expect("route");
    mux.external_process("ext:missing", scripts.0.join("missing.sh"))
        .expect("a missing command is found out per try, as in asyncjobs");
    let worker = RunningWorker::start(&client, fast(), mux);

    let good = enqueue(&client, "ext:ok", json!({"n": 1}), 5).await;
    let failing = enqueue(&client, "ext:bad", json!(1), 2).await;
    let missing = enqueue(&client, "ext:missing", json!(1), 1).await;
    let done = wait_final(&client, &[good.clone(), failing, missing], FINAL).await;
    worker.stop().await;

    assert_eq!(done[0].state, TaskState::Complete);
    // The result is the output as a JSON string (Go's `string(out)`).
    let output = payload_of(&done[0]);
    let output = output.as_str().expect("a string result");
    let (args, rest) = output.split_once('\n').expect("args line");
    assert_eq!(args, "args=0");
    let (environ, rest) = rest.split_once('\n').expect("environ line");
    let env: Vec<&str> = environ.split('\0').filter(|v| !v.is_empty()).collect();
    assert_eq!(env.len(), 1, "only CHORIA_AJ_TASK: {env:?}");
    let file = env[0]
        .strip_prefix("CHORIA_AJ_TASK=")
        .expect("CHORIA_AJ_TASK");
    assert!(
        Path::new(file)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("asyncjobs-task")),
        "{file}"
    );
    assert!(
        !Path::new(file).exists(),
        "the task file is removed after the run"
    );
    let document = rest
        .strip_prefix("to-stderr\n")
        .expect("stderr in the same output");
    let seen = Task::from_json(document.as_bytes()).expect("the task document");
    assert_eq!(
        (seen.id.as_str(), seen.state, seen.tries),
        (good.as_str(), TaskState::Active, 1)
    );
    assert_eq!(
        seen.payload_json::<Value>().expect("payload"),
        json!({"n": 1})
    );

    assert_eq!(
        (done[1].state, done[1].tries, done[1].last_err.as_str()),
        (TaskState::Expired, 2, "execution failed: exit status 3")
    );
    assert_eq!(
        (done[2].state, done[2].last_err.as_str()),
        (TaskState::Expired, "command not found")
    );
}
