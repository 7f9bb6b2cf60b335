// SPDX-License-Identifier: Apache-2.0
//! The dashboard's JSON API against a real nats-server (`NATS_SERVER_BIN`, `make setup`): the
//! overview's counts, cursor pages and filters, the effect of retry, delete and purge, schedules,
//! governors, pools, the event stream, and who may use it.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jetjobs::{
    CancellationToken, Client, ClientOptions, DevServer, ErrorKind, GovernorManager, HandlerError,
    Mux, Queue, RetryPolicy, Task, TaskState,
};
use jetjobs_dashboard::{Dashboard, DashboardOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

// --- harness ---------------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection; `Host` is the dashboard's unless given.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        text.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(&body);
    stream.write_all(text.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a full reply");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

const ACTION: (&str, &str) = ("X-Jetjobs-Dashboard", "1");

async fn get(addr: SocketAddr, path: &str) -> Value {
    let reply = http(addr, "GET", path, &[], None).await;
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    reply.json()
}

async fn post(addr: SocketAddr, path: &str, body: Option<&Value>) -> Reply {
    http(addr, "POST", path, &[ACTION], body).await
}

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<jetjobs::Result<()>>,
}

impl Running {
    async fn start(client: &Client, options: DashboardOptions) -> Self {
        let dashboard = Dashboard::bind(client.clone(), options)
            .await
            .expect("dashboard binds");
        let addr = dashboard.local_addr();
        assert_eq!(dashboard.url(), format!("http://{addr}/"));
        let stop = CancellationToken::new();
        let handle = tokio::spawn(dashboard.run(stop.clone()));
        Self { addr, stop, handle }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("the dashboard stops")
            .expect("join")
            .expect("served");
    }
}

fn loopback() -> DashboardOptions {
    DashboardOptions::new().listen("127.0.0.1:0".parse().unwrap())
}

async fn connect(server: &DevServer, queue: &str) -> Client {
    ClientOptions::new()
        .queue(Queue::new(queue))
        .retry_policy(RetryPolicy::fixed(Duration::from_secs(3600)))
        .connect(server.url())
        .await
        .expect("client connects")
}

/// Polls `check` until it returns `Some`, for up to 20 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a worker on the client's default queue until every task in `want` is in its state.
async fn work_until(client: &Client, mux: Mux, want: &[(String, TaskState)]) {
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let (client, shutdown) = (client.clone(), shutdown.clone());
        async move { client.run(mux, shutdown).await }
    });
    eventually("tasks to reach their states", || async {
        for (id, state) in want {
            if client.load_task(id).await.ok()?.state != *state {
                return None;
            }
        }
        Some(())
    })
    .await;
    shutdown.cancel();
    worker.await.expect("join").expect("worker");
}

fn failing_mux() -> Mux {
    let mut mux = Mux::new();
    mux.handle("ok", |_ctx, _task| async {
        Ok::<_, HandlerError>(json!({"done": true}))
    })
    .unwrap();
    mux.handle("bad", |_ctx, _task| async {
        Err(HandlerError::terminate("no such thing"))
    })
    .unwrap();
    mux
}

fn count(overview: &Value, queue: &str, state: &str) -> u64 {
    overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == queue)
        .map(|q| q["counts"][state].as_u64().unwrap())
        .unwrap_or(0)
}

async fn ready_overview(addr: SocketAddr, stored: u64) -> Value {
    eventually("the index to hold every task", || async {
        let overview = get(addr, "/api/overview").await;
        let index = &overview["index"];
        (index["ready"] == true && index["indexed"] == stored && index["stored"] == stored)
            .then_some(overview)
    })
    .await
}

// --- tests -----------------------------------------------------------------------------------

#[tokio::test]
async fn overview_counts_tasks_by_queue_and_state() {
    let server = DevServer::start().expect("nats-server (make setup)");
    let client = connect(&server, "WORK").await;
    let other = client.open_queue(Queue::new("OTHER")).await.unwrap();
    let mut want = Vec::new();
    for n in 0..3 {
        let task = client.enqueue(Task::new("ok", &n).unwrap()).await.unwrap();
        want.push((task.id, TaskState::Complete));
    }
    let bad = client.enqueue(Task::new("bad", &0).unwrap()).await.unwrap();
    want.push((bad.id, TaskState::Terminated));
    work_until(&client, failing_mux(), &want).await;
    for n in 0..2 {
        other
            .enqueue(Task::new("later", &n).unwrap())
            .await
            .unwrap();
    }

    let dashboard = Running::start(&client, loopback()).await;
    let overview = ready_overview(dashboard.addr, 6).await;
    assert_eq!(count(&overview, "WORK", "complete"), 3);
    assert_eq!(count(&overview, "WORK", "terminated"), 1);
    assert_eq!(count(&overview, "OTHER", "new"), 2);
    assert_eq!(overview["totals"]["complete"], 3);
    assert_eq!(overview["total"], 6);
    let other_queue = overview["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "OTHER")
        .unwrap();
    assert_eq!(other_queue["items"], 2, "two work items wait");
    assert_eq!(other_queue["exists"], true);
    assert!(
        overview["scheduler"]["leader"].is_null(),
        "no scheduler runs"
    );
    assert_eq!(
        overview["rates"]["series"]["enqueued"]
            .as_array()
            .unwrap()
            .len(),
        60
    );

    // Events from now on feed the rates and the live counts.
    other
        .enqueue(Task::new("later", &9).unwrap())
        .await
        .unwrap();
    let overview = eventually("the new task to be counted", || async {
        let overview = get(dashboard.addr, "/api/overview").await;
        (count(&overview, "OTHER", "new") == 3).then_some(overview)
    })
    .await;
    assert!(overview["rates"]["events_seen"].as_u64().unwrap() >= 1);
    assert!(
        overview["rates"]["per_second"]["enqueued"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // The page and its assets are served from the binary.
    let page = http(dashboard.addr, "GET", "/", &[], None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<main id=\"main\""));
    assert!(page.header("content-security-policy").is_some());
    for asset in ["app.js", "style.css", "favicon.svg"] {
        let reply = http(
            dashboard.addr,
            "GET",
            &format!("/assets/{asset}"),
            &[],
            None,
        )
        .await;
        assert_eq!(reply.status, 200, "{asset}");
    }
    assert_eq!(
        http(dashboard.addr, "GET", "/nope", &[], None).await.status,
        404
    );
    dashboard.stop().await;
}

#[tokio::test]
async fn tasks_page_by_cursor_with_filters_and_search() {
    let server = DevServer::start().expect("nats-server (make setup)");
    let client = connect(&server, "PAGED").await;
    let other = client.open_queue(Queue::new("SIDE")).await.unwrap();
    let tasks: Vec<Task> = (0..110).map(|n| Task::new("page:a", &n).unwrap()).collect();
    let mut ids: Vec<String> = client
        .enqueue_many(tasks)
        .await
        .into_iter()
        .map(|t| t.unwrap().id)
        .collect();
    for n in 0..7 {
        ids.push(
            other
                .enqueue(Task::new("page:b", &n).unwrap())
                .await
                .unwrap()
                .id,
        );
    }
    let dashboard = Running::start(&client, loopback()).await;
    let addr = dashboard.addr;
    ready_overview(addr, 117).await;

    // Newest id first, 50 at a time, each task once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut sizes = Vec::new();
    loop {
        let page = get(addr, &format!("/api/tasks?limit=50&cursor={cursor}")).await;
        assert_eq!(page["matching"], 117);
        let rows = page["tasks"].as_array().unwrap();
        sizes.push(rows.len());
        seen.extend(rows.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(sizes, [50, 50, 17]);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted);

    // Filters narrow, and the facets list what can be chosen.
    let side = get(addr, "/api/tasks?queue=SIDE").await;
    assert_eq!(side["matching"], 7);
    assert!(
        side["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["queue"] == "SIDE")
    );
    assert_eq!(side["facets"]["queues"], json!(["PAGED", "SIDE"]));
    assert_eq!(
        get(addr, "/api/tasks?type=page:b&state=new").await["matching"],
        7
    );
    assert_eq!(get(addr, "/api/tasks?state=complete").await["matching"], 0);
    assert_eq!(get(addr, "/api/tasks?state=failed").await["matching"], 0);
    let bad = http(addr, "GET", "/api/tasks?state=bogus", &[], None).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("bogus"));

    // Search by id: the whole id, or its start.
    let found = get(addr, &format!("/api/tasks?id={}", ids[3])).await;
    assert_eq!(found["matching"], 1);
    assert_eq!(found["tasks"][0]["id"], ids[3]);
    let prefix = &ids[3][..ids[3].len() - 3];
    let by_prefix = get(addr, &format!("/api/tasks?id={prefix}")).await;
    assert!(
        by_prefix["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == ids[3])
    );
    assert_eq!(get(addr, "/api/tasks?id=nope").await["matching"], 0);

    // A page stays fast: it reads the index, not the store.
    let started = Instant::now();
    get(addr, "/api/tasks?limit=100&state=new&queue=SIDE").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    dashboard.stop().await;
}

#[tokio::test]
async fn retry_delete_and_purge_change_the_store() {
    let server = DevServer::start().expect("nats-server (make setup)");
    let client = connect(&server, "ACT").await;
    let bad = client.enqueue(Task::new("bad", &1).unwrap()).await.unwrap();
    let good = client.enqueue(Task::new("ok", &2).unwrap()).await.unwrap();
    work_until(
        &client,
        failing_mux(),
        &[
            (bad.id.clone(), TaskState::Terminated),
            (good.id.clone(), TaskState::Complete),
        ],
    )
    .await;
    let dashboard = Running::start(&client, loopback()).await;
    let addr = dashboard.addr;
    ready_overview(addr, 2).await;

    let detail = get(addr, &format!("/api/tasks/{}", bad.id)).await;
    assert_eq!(detail["state"], "terminated");
    assert_eq!(detail["payload"]["json"], 1);
    assert_eq!(detail["last_err"], "no such thing: terminate task");
    assert_eq!(detail["tries"], 1);
    let whats: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["what"].as_str().unwrap())
        .collect();
    assert!(
        whats.contains(&"created") && whats.contains(&"last tried"),
        "{whats:?}"
    );
    let done = get(addr, &format!("/api/tasks/{}", good.id)).await;
    assert_eq!(done["result"]["payload"], json!({"done": true}));

    // Retry: the task is enqueued again, the store and the listing show it at once.
    let retried = post(addr, &format!("/api/tasks/{}/retry", bad.id), None).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.json()["state"], "retry");
    assert_eq!(
        client.load_task(&bad.id).await.unwrap().state,
        TaskState::Retry
    );
    let listed = get(addr, "/api/tasks?state=retry").await;
    assert_eq!(listed["tasks"][0]["id"], bad.id);
    let detail = eventually("the retry event in the timeline", || async {
        let detail = get(addr, &format!("/api/tasks/{}", bad.id)).await;
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["source"] == "event" && t["state"] == "retry")
            .then_some(detail)
    })
    .await;
    assert_eq!(detail["tries"], 0);
    let queue = client.admin().queue_info("ACT").await.unwrap();
    assert_eq!(queue.items, 1, "the retried task's work item waits");

    // Purge: the work item goes, the task document stays.
    let purged = post(addr, "/api/queues/ACT/purge", None).await;
    assert_eq!(purged.status, 200, "{}", purged.body);
    assert_eq!(purged.json()["items_removed"], 1);
    assert_eq!(client.admin().queue_info("ACT").await.unwrap().items, 0);
    let missing = post(addr, "/api/queues/NOPE/purge", None).await;
    assert_eq!(missing.status, 404, "{}", missing.body);

    // Delete: gone from the store and the listing.
    let deleted = http(
        addr,
        "DELETE",
        &format!("/api/tasks/{}", good.id),
        &[ACTION],
        None,
    )
    .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let err = client.load_task(&good.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TaskNotFound);
    assert_eq!(get(addr, "/api/tasks").await["matching"], 1);
    let gone = http(addr, "GET", &format!("/api/tasks/{}", good.id), &[], None).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["kind"], "TaskNotFound");
    let again = post(addr, &format!("/api/tasks/{}/retry", good.id), None).await;
    assert_eq!(again.status, 404);
    dashboard.stop().await;
}

#[tokio::test]
async fn schedules_governors_and_pools() {
    let server = DevServer::start().expect("nats-server (make setup)");
    let client = connect(&server, "SCHED").await;
    let dashboard = Running::start(&client, loopback()).await;
    let addr = dashboard.addr;

    let added = post(
        addr,
        "/api/schedules",
        Some(&json!({
            "name": "nightly", "schedule": "@daily", "queue": "SCHED",
            "task_type": "report:nightly", "payload": "{\"to\": \"ops\"}",
            "deadline_secs": 60, "max_tries": 3,
        })),
    )
    .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let listed = get(addr, "/api/schedules").await;
    let schedule = &listed["schedules"][0];
    assert_eq!(schedule["name"], "nightly");
    assert_eq!(schedule["payload"]["json"], json!({"to": "ops"}));
    assert_eq!(schedule["deadline_secs"], 60);
    assert!(schedule["next"].is_string());
    assert_eq!(client.load_schedule("nightly").await.unwrap().max_tries, 3);
    let twice = post(
        addr,
        "/api/schedules",
        Some(&json!({"name": "nightly", "schedule": "@daily", "queue": "SCHED", "task_type": "x"})),
    )
    .await;
    assert_eq!(twice.status, 409);
    let bad_cron = post(
        addr,
        "/api/schedules",
        Some(&json!({"name": "x", "schedule": "@fortnightly", "queue": "SCHED", "task_type": "x"})),
    )
    .await;
    assert_eq!(bad_cron.status, 400);
    let bad_payload = post(addr, "/api/schedules", Some(&json!({"name": "y", "schedule": "@daily", "queue": "SCHED", "task_type": "x", "payload": "{nope"}))).await;
    assert_eq!(bad_payload.status, 400);
    let removed = http(addr, "DELETE", "/api/schedules/nightly", &[ACTION], None).await;
    assert_eq!(removed.status, 200, "{}", removed.body);
    assert!(client.schedules().await.unwrap().is_empty());

    // A choria-collective governor with two holders; evict one.
    let subject = jetjobs::collective_subject("choria", "deploys");
    GovernorManager::create(&client, "deploys", 3, Duration::ZERO, 1, Some(&subject))
        .await
        .unwrap();
    let governor = jetjobs::Governor::new(&client, "deploys")
        .unwrap()
        .subject(subject);
    let first = governor.try_start("web-1").await.unwrap().expect("a slot");
    let _second = governor.try_start("web-2").await.unwrap().expect("a slot");
    let listing = get(addr, "/api/governors?collective=choria").await;
    assert_eq!(listing["governors"][0]["name"], "deploys");
    assert_eq!(listing["governors"][0]["limit"], 3);
    assert_eq!(listing["governors"][0]["active"], 2);
    let view = get(addr, "/api/governors/deploys").await;
    assert_eq!(view["active"], 2);
    let holders: Vec<&str> = view["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["holder"].as_str().unwrap())
        .collect();
    assert_eq!(holders, ["web-1", "web-2"]);
    let evicted = post(
        addr,
        "/api/governors/deploys/evict",
        Some(&json!({"seq": first.seq()})),
    )
    .await;
    assert_eq!(evicted.status, 200, "{}", evicted.body);
    assert_eq!(evicted.json()["holder"], "web-1");
    assert_eq!(get(addr, "/api/governors/deploys").await["active"], 1);
    let unknown = http(addr, "GET", "/api/governors/none", &[], None).await;
    assert_eq!(unknown.status, 404);

    let no_pool = http(addr, "GET", "/api/pools/nothing", &[], None).await;
    assert_eq!(no_pool.status, 404, "{}", no_pool.body);
    dashboard.stop().await;
}

#[tokio::test]
async fn the_event_stream_passes_lifecycle_events_on() {
    let server = DevServer::start().expect("nats-server (make setup)");
    let client = connect(&server, "LIVE").await;
    let dashboard = Running::start(&client, loopback()).await;
    let mut stream = tokio::net::TcpStream::connect(dashboard.addr)
        .await
        .unwrap();
    let request = format!(
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        dashboard.addr
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Headers first, then enqueue: the event arrives on the open stream.
    while !seen.contains("\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    let task = client
        .enqueue(Task::new("live", &1).unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(seen.contains("event: task_state") && seen.contains(&task.id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("the event in time")
            .unwrap();
        assert!(n > 0, "the stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // Stopping ends open streams too.
    dashboard.stop().await;
}

#[tokio::test]
async fn access_rules() {
    let server = DevServer::start().expect("nats-server (make setup)");
    let client = connect(&server, "AUTH").await;

    // Anywhere but loopback needs a token; a token is never empty.
    let open = DashboardOptions::new().listen("0.0.0.0:0".parse().unwrap());
    let refused = Dashboard::bind(client.clone(), open.clone())
        .await
        .err()
        .unwrap();
    assert_eq!(refused.kind(), ErrorKind::InvalidOption);
    assert!(
        refused.to_string().contains("without an access token"),
        "{refused}"
    );
    let err = jetjobs_dashboard::serve(client.clone(), open, CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOption);
    let empty = loopback().token("");
    assert_eq!(
        empty.validate().unwrap_err().kind(),
        ErrorKind::InvalidOption
    );
    assert_eq!(
        DashboardOptions::new().listen,
        jetjobs_dashboard::DEFAULT_LISTEN
    );

    // With a token, every request carries it.
    let dashboard = Running::start(&client, loopback().token("s3cret")).await;
    let addr = dashboard.addr;
    let bare = http(addr, "GET", "/api/overview", &[], None).await;
    assert_eq!(bare.status, 401);
    assert_eq!(http(addr, "GET", "/", &[], None).await.status, 401);
    assert_eq!(
        http(addr, "GET", "/api/events", &[], None).await.status,
        401
    );
    let wrong = http(
        addr,
        "GET",
        "/api/overview",
        &[("Authorization", "Bearer nope")],
        None,
    )
    .await;
    assert_eq!(wrong.status, 401);
    let bearer = http(
        addr,
        "GET",
        "/api/overview",
        &[("Authorization", "Bearer s3cret")],
        None,
    )
    .await;
    assert_eq!(bearer.status, 200);
    // ?token= on a page: a redirect without it, and an HttpOnly cookie.
    let login = http(addr, "GET", "/?token=s3cret", &[], None).await;
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location"), Some("/"));
    let cookie = login.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let with_cookie = http(addr, "GET", "/api/overview", &[("Cookie", pair)], None).await;
    assert_eq!(with_cookie.status, 200);
    assert_eq!(
        http(addr, "GET", "/api/tasks?token=s3cret", &[], None)
            .await
            .status,
        200
    );
    // Changes by cookie need the dashboard's header (a cross-site form cannot send it).
    let forged = http(
        addr,
        "POST",
        "/api/queues/AUTH/purge",
        &[("Cookie", pair)],
        None,
    )
    .await;
    assert_eq!(forged.status, 403);
    let real = http(
        addr,
        "POST",
        "/api/queues/AUTH/purge",
        &[("Cookie", pair), ACTION],
        None,
    )
    .await;
    assert_eq!(real.status, 200, "{}", real.body);
    let scripted = http(
        addr,
        "POST",
        "/api/queues/AUTH/purge",
        &[("Authorization", "Bearer s3cret")],
        None,
    )
    .await;
    assert_eq!(scripted.status, 200);
    dashboard.stop().await;

    // Without a token: loopback host names only, and changes need the header.
    let dashboard = Running::start(&client, loopback()).await;
    let addr = dashboard.addr;
    assert_eq!(
        http(addr, "GET", "/api/overview", &[], None).await.status,
        200
    );
    let localhost = format!("localhost:{}", addr.port());
    let named = http(addr, "GET", "/api/overview", &[("Host", &localhost)], None).await;
    assert_eq!(named.status, 200);
    let rebound = http(
        addr,
        "GET",
        "/api/overview",
        &[("Host", "evil.example:80")],
        None,
    )
    .await;
    assert_eq!(rebound.status, 403);
    let forged = http(addr, "POST", "/api/queues/AUTH/purge", &[], None).await;
    assert_eq!(forged.status, 403);
    assert_eq!(post(addr, "/api/queues/AUTH/purge", None).await.status, 200);
    dashboard.stop().await;
}

#[tokio::test]
async fn pages_stay_fast_over_a_large_store() {
    // 20 000 by default (`DASHBOARD_SCALE_TASKS=100000` for the figure).
    let total: usize = std::env::var("DASHBOARD_SCALE_TASKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let server = DevServer::start().expect("nats-server (make setup)");
    let client = connect(&server, "SCALE").await;
    let mut stored = 0;
    while stored < total {
        let batch = (total - stored).min(5000);
        let tasks = (0..batch).map(|n| Task::new(["s:a", "s:b"][n % 2], &n).unwrap());
        for result in client.enqueue_many(tasks.collect::<Vec<_>>()).await {
            result.unwrap();
        }
        stored += batch;
    }
    let started = Instant::now();
    let dashboard = Running::start(&client, loopback()).await;
    let addr = dashboard.addr;
    let overview = ready_overview(addr, total as u64).await;
    let indexed_in = started.elapsed();
    assert_eq!(count(&overview, "SCALE", "new"), total as u64);

    // Deep pages by cursor, filtered and not, each read from the index.
    let mut cursor = String::new();
    let mut slowest = Duration::ZERO;
    let mut seen = 0;
    for _ in 0..20 {
        let asked = Instant::now();
        let page = get(
            addr,
            &format!("/api/tasks?type=s:b&limit=200&cursor={cursor}"),
        )
        .await;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(page["matching"], total as u64 / 2);
        seen += page["tasks"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(seen, 4000);
    let asked = Instant::now();
    let overview = get(addr, "/api/overview").await;
    slowest = slowest.max(asked.elapsed());
    assert_eq!(overview["total"], total as u64);
    eprintln!("{total} tasks: indexed in {indexed_in:.1?}, slowest request {slowest:.1?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");
    dashboard.stop().await;
}
