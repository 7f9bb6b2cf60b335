// SPDX-License-Identifier: Apache-2.0
//! Parity with the Go tools on one server: the real `ajc` (asyncjobs v0.3.0) and `jetjobs` report
//! the same queues, tasks and schedules whichever tool made them, and governors made by
//! `jetjobs governor` are seen by go-choria's governor library (`govdriver`) and vice versa.
//! Needs `go` (CI has it); `JETJOBS_SKIP_GO=1` skips these tests, saying so.

mod common;

use std::collections::BTreeMap;

use base64::Engine as _;
use common::Server;
use common::go::{ajc, go_tools, govdriver, govdriver_run};
use serde_json::Value;

/// The body rows of one of ajc's boxed tables, as trimmed cells (the title and header left out).
fn ajc_rows(table: &str, header_first_cell: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with('│'))
        .map(|l| {
            l.trim_matches('│')
                .split('│')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells.len() > 1 && cells[0] != header_first_cell)
        .collect()
}

fn same_instant(a: &Value, b: &Value) -> bool {
    let parse = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a time")).expect("RFC 3339")
    };
    parse(a) == parse(b)
}

fn base64_json(v: &Value) -> Value {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 payload"))
        .expect("base64");
    serde_json::from_slice(&bytes).expect("a JSON payload")
}

#[tokio::test]
async fn ajc_and_jetjobs_report_the_same_queues_tasks_and_schedules() {
    let Some(go) = go_tools() else { return };
    let server = Server::start();
    let url = server.url.as_str();

    // Made by both tools.
    server
        .run(&[
            "queue",
            "new",
            "BILLING",
            "--tries",
            "5",
            "--concurrent",
            "7",
        ])
        .await
        .ok();
    ajc(
        go,
        url,
        &[
            "queue",
            "add",
            "REPORTS",
            "--tries",
            "3",
            "--concurrent",
            "2",
        ],
    );
    server
        .run(&[
            "task",
            "add",
            "bill:send",
            r#"{"amount":5}"#,
            "-q",
            "BILLING",
        ])
        .await
        .ok();
    ajc(
        go,
        url,
        &[
            "task",
            "add",
            "report:run",
            r#"{"to":"ops"}"#,
            "-q",
            "REPORTS",
        ],
    );
    server
        .run(&[
            "cron",
            "add",
            "nightly",
            "daily",
            "report:daily",
            r#"{"n":1}"#,
            "--queue",
            "BILLING",
        ])
        .await
        .ok();
    ajc(
        go,
        url,
        &[
            "task",
            "cron",
            "add",
            "fromgo",
            "hourly",
            "go:tick",
            "--payload",
            r#"{"x":2}"#,
            "-q",
            "REPORTS",
            "--tries",
            "4",
        ],
    );

    // Queues.
    let ours = server.json(&["queue", "list"]).await;
    let ours: BTreeMap<String, (u64, i64, i64)> = ours
        .as_array()
        .expect("array")
        .iter()
        .map(|q| {
            let n = |f: &str| q[f].as_i64().expect("number");
            (
                q["name"].as_str().expect("name").to_string(),
                (n("items") as u64, n("max_tries"), n("max_concurrent")),
            )
        })
        .collect();
    let theirs: BTreeMap<String, (u64, i64, i64)> =
        ajc_rows(&ajc(go, url, &["queue", "ls"]), "Name")
            .into_iter()
            .map(|r| {
                let n = |i: usize| r[i].replace(',', "").parse::<i64>().expect("a number");
                (r[0].clone(), (n(1) as u64, n(4), n(6)))
            })
            .collect();
    assert_eq!(ours, theirs);
    assert!(
        ours.contains_key("BILLING") && ours.contains_key("REPORTS"),
        "{ours:?}"
    );

    // Tasks: the listing, then each task's own view.
    let ours = server.json(&["task", "list"]).await;
    let ours_rows: BTreeMap<String, (String, String, String, String)> = ours
        .as_array()
        .expect("array")
        .iter()
        .map(|t| {
            let s = |f: &str| t[f].to_string().trim_matches('"').to_string();
            (s("id"), (s("type"), s("state"), s("queue"), s("tries")))
        })
        .collect();
    let theirs: BTreeMap<String, (String, String, String, String)> =
        ajc_rows(&ajc(go, url, &["task", "ls"]), "ID")
            .into_iter()
            .map(|r| {
                (
                    r[0].clone(),
                    (r[1].clone(), r[3].clone(), r[4].clone(), r[5].clone()),
                )
            })
            .collect();
    assert_eq!(ours_rows, theirs);
    assert_eq!(ours_rows.len(), 2);
    for id in ours_rows.keys() {
        let mine = server.json(&["task", "view", id]).await;
        let go_view: Value =
            serde_json::from_str(&ajc(go, url, &["task", "view", id, "--json"])).expect("ajc JSON");
        for field in ["id", "type", "queue", "state", "max_tries"] {
            assert_eq!(mine[field], go_view[field], "{field} of {id}");
        }
        assert_eq!(
            mine["tries"].as_i64(),
            Some(go_view["tries"].as_i64().unwrap_or(0))
        );
        assert!(
            same_instant(&mine["created"], &go_view["created"]),
            "created of {id}"
        );
        assert_eq!(
            mine["payload"],
            base64_json(&go_view["payload"]),
            "payload of {id}"
        );
    }

    // Schedules.
    let ours = server.json(&["cron", "list"]).await;
    let mut go_names: Vec<String> = ajc(go, url, &["task", "cron", "ls", "--names"])
        .lines()
        .map(str::to_string)
        .collect();
    go_names.sort();
    assert_eq!(common::names(&ours, "name"), go_names);
    assert_eq!(go_names, ["fromgo", "nightly"]);
    for name in &go_names {
        let mine = server.json(&["cron", "view", name]).await;
        let go_view: Value =
            serde_json::from_str(&ajc(go, url, &["task", "cron", "view", name, "--json"]))
                .expect("ajc JSON");
        for field in ["name", "schedule", "queue", "task_type", "max_tries"] {
            assert_eq!(mine[field], go_view[field], "{field} of {name}");
        }
        assert!(
            same_instant(&mine["created_at"], &go_view["created_at"]),
            "created_at of {name}"
        );
        assert_eq!(
            mine["payload"],
            base64_json(&go_view["payload"]),
            "payload of {name}"
        );
    }
}

#[tokio::test]
async fn governors_are_shared_with_the_go_choria_governor() {
    let Some(driver) = govdriver() else { return };
    let server = Server::start();
    let url = server.url.as_str();
    let go = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-url", url]);
        govdriver_run(driver, &all)
    };

    // Made by `jetjobs governor add`, seen and used by choria's library.
    server
        .run(&["governor", "add", "FLEET", "2", "1m"])
        .await
        .ok();
    let (code, info) = go(&["info", "-name", "FLEET"]);
    assert_eq!(code, 0, "{info}");
    assert_eq!(info["limit"], 2);
    assert_eq!(info["max_age_ms"], 60_000);
    assert_eq!(info["subject"], "choria.governor.FLEET");
    assert_eq!(info["active"], 0);
    let (_, listed) = go(&["list"]);
    assert_eq!(listed["governors"], serde_json::json!(["FLEET"]));
    let (code, lease) = go(&[
        "start",
        "-name",
        "FLEET",
        "-subject",
        "choria.governor.FLEET",
        "-holder",
        "go-host",
    ]);
    assert_eq!(code, 0, "{lease}");
    let view = server.json(&["governor", "view", "FLEET"]).await;
    assert_eq!(view["active"], 1);
    assert_eq!(view["leases"][0]["holder"], "go-host");
    assert_eq!(view["leases"][0]["seq"], lease["seq"]);
    let seq = lease["seq"].to_string();
    let evicted = server
        .json(&["governor", "evict", "FLEET", &seq, "--force"])
        .await;
    assert_eq!(evicted["holder"], "go-host");
    assert_eq!(go(&["info", "-name", "FLEET"]).1["active"], 0);

    // Made by choria's library, seen and used by `jetjobs governor`.
    let (code, made) = go(&[
        "new",
        "-name",
        "BATCH",
        "-limit",
        "1",
        "-max-age",
        "2m",
        "-subject",
        "choria.governor.BATCH",
    ]);
    assert_eq!(code, 0, "{made}");
    assert_eq!(
        server.json(&["governor", "list"]).await,
        serde_json::json!(["BATCH", "FLEET"])
    );
    let view = server.json(&["governor", "view", "BATCH"]).await;
    assert_eq!(
        (view["capacity"].as_u64(), view["max_age_seconds"].as_f64()),
        (Some(1), Some(120.0))
    );
    // A Go holder fills it: `governor run` gives up after --max-wait, as choria's would.
    go(&[
        "start",
        "-name",
        "BATCH",
        "-subject",
        "choria.governor.BATCH",
        "-holder",
        "go-holder",
    ]);
    server
        .run(&[
            "governor",
            "run",
            "BATCH",
            "--max-wait",
            "2s",
            "--interval",
            "1s",
            "--",
            "true",
        ])
        .await
        .fails(1, "could not get an execution slot");
    assert_eq!(
        server
            .json(&["governor", "reset", "BATCH", "--force"])
            .await["removed"],
        1
    );
    let ran = server
        .run(&["governor", "run", "BATCH", "--", "sh", "-c", "exit 0"])
        .await
        .ok();
    assert!(ran.stderr.is_empty(), "{ran:#?}");
    assert_eq!(
        go(&["info", "-name", "BATCH"]).1["active"],
        0,
        "jetjobs released its slot"
    );
    let (code, campaign) = go(&[
        "campaign",
        "-name",
        "BATCH",
        "-subject",
        "choria.governor.BATCH",
        "-count",
        "2",
        "-hold-ms",
        "20",
        "-interval-ms",
        "50",
    ]);
    assert_eq!(code, 0, "{campaign}");
    assert_eq!(
        (campaign["done"].as_i64(), campaign["peak"].as_i64()),
        (Some(2), Some(1))
    );
    server
        .run(&["governor", "delete", "BATCH", "--force"])
        .await
        .ok();
    let (code, gone) = go(&["info", "-name", "BATCH"]);
    assert_eq!(
        (code, gone["error"].as_str()),
        (2, Some("unknown governor"))
    );
}
