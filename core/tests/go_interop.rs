// SPDX-License-Identifier: Apache-2.0
//! Wire compatibility against the real Go asyncjobs v0.3.0: its library (through the test driver in
//! tests/interop/go/cmd/ajdriver) and its `ajc` CLI, both built on demand into a temp dir.
//! Without `go` on PATH these tests fail (they must run in CI); `JETJOBS_SKIP_GO=1` skips them
//! explicitly, with a message, on a machine that cannot have Go.

mod common;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::{NatsServer, observe_concurrency, wait_final, wait_for};
use jetjobs::{
    CancellationToken, Client, ClientOptions, HandlerError, Mux, Queue, RetryPolicy, Task,
    TaskSigner, TaskState,
};
use serde_json::{Value, json};

const FINAL: Duration = Duration::from_secs(60);
const SEED_HEX: &str = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20";

struct GoTools {
    driver: PathBuf,
    ajc: PathBuf,
}

/// Builds the Go driver and `ajc` once per test binary; `None` (after saying so) only when
/// skipping was asked for with `JETJOBS_SKIP_GO=1`.
fn go_tools() -> Option<&'static GoTools> {
    static TOOLS: OnceLock<Option<GoTools>> = OnceLock::new();
    TOOLS
        .get_or_init(|| {
            if std::env::var_os("JETJOBS_SKIP_GO").is_some_and(|v| v == "1") {
                eprintln!("SKIP: JETJOBS_SKIP_GO=1; the Go asyncjobs interop tests did not run");
                return None;
            }
            assert!(
                Command::new("go").arg("version").output().is_ok(),
                "`go` is not on PATH: the Go asyncjobs interop tests need it (JETJOBS_SKIP_GO=1 skips them)"
            );
            let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/go");
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-interop");
            let build = |output: &Path, package: &str| {
                let status = Command::new("go")
                    .args(["build", "-o"])
                    .arg(output)
                    .arg(package)
                    .current_dir(&module)
                    .status()
                    .expect("go build runs");
                assert!(status.success(), "go build {package} failed");
            };
            let tools = GoTools {
                driver: out.join("ajdriver"),
                ajc: out.join("ajc"),
            };
            build(&tools.driver, "./cmd/ajdriver");
            build(&tools.ajc, "github.com/choria-io/asyncjobs/ajc");
            Some(tools)
        })
        .as_ref()
}

/// Runs an `ajdriver` subcommand to completion; returns its JSON lines.
fn ajdriver(tools: &GoTools, args: &[&str]) -> Vec<Value> {
    let output = Command::new(&tools.driver)
        .args(args)
        .output()
        .expect("ajdriver runs");
    assert!(
        output.status.success(),
        "ajdriver {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

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

/// A Go asyncjobs worker process, stopped on drop.
struct GoWorker(Child);

impl GoWorker {
    fn start(tools: &GoTools, url: &str, queue: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(&tools.driver)
            .args(["worker", "-url", url, "-queue", queue, "-bind"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("Go worker starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.contains("\"ready\":true"), "Go worker said {line:?}");
        Self(child)
    }
}

impl Drop for GoWorker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
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

/// Runs `ajc` with a NATS context pointing at `url`, in its own config dir.
fn ajc(tools: &GoTools, url: &str, args: &[&str]) -> String {
    let config = tempfile::tempdir().expect("config dir");
    let contexts = config.path().join("nats/context");
    std::fs::create_dir_all(&contexts).expect("context dir");
    std::fs::write(contexts.join("AJC.json"), json!({"url": url}).to_string()).expect("context");
    let output = Command::new(&tools.ajc)
        .args(args)
        .env("XDG_CONFIG_HOME", config.path())
        .output()
        .expect("ajc runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "ajc {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
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
