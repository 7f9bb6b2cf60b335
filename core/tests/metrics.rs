// SPDX-License-Identifier: Apache-2.0
//! Prometheus metrics against a real server: a worker with `prometheus_port` processes 10 tasks
//! of which 3 fail until they expire and 2 terminate; a scrape of its HTTP endpoint, parsed line
//! by line, has asyncjobs' counters with exact values. (One test per binary: the registry is
//! process-wide, like Go's.)

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{NatsServer, RunningWorker, wait_final};
use jetjobs::{
    ClientOptions, HandlerError, Mux, Queue, RetryPolicy, Task, TaskState, WorkerOptions,
};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn scrape(port: u16) -> HashMap<String, f64> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics endpoint listens");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

#[tokio::test]
async fn a_worker_serves_asyncjobs_counters_with_exact_values() {
    let server = NatsServer::start();
    let port = free_port();
    let client = ClientOptions::new()
        .queue(Queue::new("METRICS"))
        .prometheus_port(port)
        .connect(&server.url)
        .await
        .expect("client connects");
    let mut mux = Mux::new();
    mux.handle("ok", |_ctx, _task| async { Ok(json!("fine")) })
        .expect("register")
        .handle("fail", |_ctx, _task| async {
            Err(HandlerError::retry("not today"))
        })
        .expect("register")
        .handle("term", |_ctx, _task| async {
            Err(HandlerError::terminate("never"))
        })
        .expect("register");
    let options = WorkerOptions::new().retry_policy(
        RetryPolicy::intervals(vec![Duration::from_millis(50)], 0.0).expect("policy"),
    );
    let worker = RunningWorker::start(&client, options, mux);

    let mut ids = Vec::new();
    for (task_type, n) in [("ok", 5), ("fail", 3), ("term", 2)] {
        for i in 0..n {
            let task = Task::new(task_type, &i).expect("task").with_max_tries(2);
            ids.push(client.enqueue(task).await.expect("enqueued").id);
        }
    }
    let done = wait_final(&client, &ids, Duration::from_secs(60)).await;
    let states = |state| done.iter().filter(|t| t.state == state).count();
    assert_eq!(
        (
            states(TaskState::Complete),
            states(TaskState::Expired),
            states(TaskState::Terminated)
        ),
        (5, 3, 2)
    );
    worker.stop().await;

    let metrics = scrape(port).await;
    let get = |series: &str| {
        metrics
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("{series} missing"))
    };
    let q = "queue=\"METRICS\"";
    assert_eq!(
        get(&format!("choria_asyncjobs_queue_enqueue_count{{{q}}}")),
        10.0
    );
    assert_eq!(
        get(&format!(
            "choria_asyncjobs_handler_error_total{{{q},type=\"fail\"}}"
        )),
        6.0,
        "3 tasks × 2 tries"
    );
    assert_eq!(
        get(&format!(
            "choria_asyncjobs_handler_error_total{{{q},type=\"term\"}}"
        )),
        2.0
    );
    assert_eq!(
        get(&format!(
            "choria_asyncjobs_handler_runtime_count{{{q},type=\"ok\"}}"
        )),
        5.0
    );
    assert_eq!(
        get(&format!(
            "jetjobs_handler_duration_seconds_count{{{q},type=\"fail\"}}"
        )),
        6.0
    );
    assert_eq!(
        get(&format!(
            "choria_asyncjobs_queue_task_past_max_tries_count{{{q}}}"
        )),
        3.0
    );
    for (state, n) in [
        ("new", 10.0),
        ("active", 13.0),
        ("retry", 3.0),
        ("complete", 5.0),
        ("expired", 3.0),
        ("terminated", 2.0),
    ] {
        assert_eq!(
            get(&format!(
                "choria_asyncjobs_task_update_total{{state=\"{state}\"}}"
            )),
            n,
            "{state}"
        );
    }
    assert_eq!(get("choria_asyncjobs_handler_busy_count"), 0.0);
    assert_eq!(get("choria_asyncjobs_task_update_error_total"), 0.0);
    assert!(get(&format!("choria_asyncjobs_queue_poll_total{{{q}}}")) >= 1.0);
}
