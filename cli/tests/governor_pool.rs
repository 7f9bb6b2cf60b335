// SPDX-License-Identifier: Apache-2.0
//! `governor …` with choria's behaviour and `pool nodes|workers|jobs`, run as the built binary
//! against a real server; effects read back through the core's `GovernorManager` and pools.

mod common;

use std::time::Duration;

use common::Server;
use futures::future::BoxFuture;
use jetjobs::{
    ErrorKind, Governor, GovernorManager, JobHandler, PoolJob, PoolNode, PoolOptions,
    collective_subject,
};

/// A lease taken by the core, as another process holding a slot would.
async fn hold(client: &jetjobs::Client, name: &str, holder: &str) -> jetjobs::Lease {
    Governor::new(client, name)
        .expect("governor")
        .subject(collective_subject("choria", name))
        .try_start(holder)
        .await
        .expect("campaign")
        .expect("a free slot")
}

#[tokio::test]
async fn governor_add_view_list_evict_reset_delete() {
    let server = Server::start();
    let client = server.client().await;

    let added = server.json(&["governor", "add", "PUPPET", "2", "1m"]).await;
    assert_eq!(added["capacity"], 2);
    assert_eq!(added["max_age_seconds"], 60.0);
    assert_eq!(added["subject"], "choria.governor.PUPPET");
    let manager = GovernorManager::load(&client, "PUPPET")
        .await
        .expect("created");
    assert_eq!(
        (manager.limit(), manager.max_age()),
        (2, Duration::from_secs(60))
    );
    // The same settings again change nothing and ask nothing.
    server.json(&["governor", "add", "PUPPET", "2", "1m"]).await;
    // Different settings ask first (choria's "Update configuration for …?").
    server
        .run(&["governor", "add", "PUPPET", "3", "1m"])
        .await
        .fails(
            2,
            "Update configuration for PUPPET? Refusing without confirmation",
        );
    let updated = server
        .json(&["governor", "add", "PUPPET", "3", "2m", "--force"])
        .await;
    assert_eq!(updated["capacity"], 3);
    let manager = GovernorManager::load(&client, "PUPPET")
        .await
        .expect("load");
    assert_eq!(
        (manager.limit(), manager.max_age()),
        (3, Duration::from_secs(120))
    );

    // Only governors on the collective's subjects are listed, as in choria.
    GovernorManager::create(&client, "LIBRARY", 1, Duration::ZERO, 1, None)
        .await
        .expect("create");
    assert_eq!(
        server.json(&["governor", "list"]).await,
        serde_json::json!(["PUPPET"])
    );
    assert_eq!(
        server.json(&["gov", "ls", "--collective", "other"]).await,
        serde_json::json!([])
    );

    let first = hold(&client, "PUPPET", "web1.example.net").await;
    let _second = hold(&client, "PUPPET", "web2.example.net").await;
    let view = server.json(&["governor", "view", "PUPPET"]).await;
    assert_eq!(view["active"], 2);
    assert_eq!(view["leases"][0]["seq"], first.seq());
    assert_eq!(view["leases"][0]["holder"], "web1.example.net");
    let human = server
        .run(&["governor", "view", "PUPPET"])
        .await
        .ok()
        .stdout;
    assert!(
        human.contains("Active Leases: 2") && human.contains("web2.example.net"),
        "{human}"
    );

    let seq = first.seq().to_string();
    server
        .run(&["governor", "evict", "PUPPET", &seq])
        .await
        .fails(2, "pass --force");
    let evicted = server
        .json(&["governor", "evict", "PUPPET", &seq, "--force"])
        .await;
    assert_eq!(evicted["holder"], "web1.example.net");
    assert_eq!(manager.active().await.expect("active"), 1);
    server
        .run(&["governor", "evict", "PUPPET", &seq, "--force"])
        .await
        .fails(3, "(LeaseNotFound)");

    server
        .run(&["governor", "reset", "PUPPET"])
        .await
        .fails(2, "pass --force");
    let reset = server
        .json(&["governor", "reset", "PUPPET", "--force"])
        .await;
    assert_eq!(reset["removed"], 1);
    assert_eq!(manager.active().await.expect("active"), 0);
    let nothing = server
        .run(&["governor", "reset", "PUPPET"])
        .await
        .ok()
        .stdout;
    assert!(nothing.contains("No lease entries to remove"), "{nothing}");

    server
        .run(&["governor", "delete", "PUPPET"])
        .await
        .fails(2, "pass --force");
    server.json(&["governor", "rm", "PUPPET", "--force"]).await;
    let gone = GovernorManager::load(&client, "PUPPET")
        .await
        .err()
        .expect("deleted");
    assert_eq!(gone.kind(), ErrorKind::GovernorNotFound);
    server
        .run(&["governor", "view", "PUPPET"])
        .await
        .fails(3, "unknown governor PUPPET (GovernorNotFound)");
}

#[tokio::test]
async fn governor_run_holds_a_slot_for_the_command() {
    let server = Server::start();
    let client = server.client().await;
    server
        .run(&["governor", "add", "ONE", "1", "1m"])
        .await
        .ok();
    let manager = GovernorManager::load(&client, "ONE").await.expect("load");

    // The command runs while holding the slot; its exit code becomes ours; the slot goes back.
    let ran = server
        .run(&[
            "governor",
            "run",
            "ONE",
            "--interval",
            "1s",
            "--",
            "sh",
            "-c",
            "echo in-slot; exit 7",
        ])
        .await;
    assert_eq!(ran.code, 7, "{ran:#?}");
    assert_eq!(ran.stdout, "in-slot\n");
    assert_eq!(manager.active().await.expect("active"), 0, "released");
    // One argument is split as a shell would.
    let split = server
        .run(&["governor", "run", "ONE", "--", "sh -c 'exit 3'"])
        .await;
    assert_eq!(split.code, 3, "{split:#?}");

    // While another holds the only slot: no slot within --max-wait is a clear failure.
    let lease = hold(&client, "ONE", "other-host").await;
    let started = std::time::Instant::now();
    let full = server
        .run(&[
            "governor",
            "run",
            "ONE",
            "--max-wait",
            "2s",
            "--interval",
            "1s",
            "--",
            "sh",
            "-c",
            "echo ran",
        ])
        .await
        .fails(1, "could not get an execution slot");
    assert!(
        full.stderr.contains("(Timeout)") && full.stdout.is_empty(),
        "{full:#?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // With --max-per-period a full period is no failure: the run is skipped.
    let skipped = server
        .run(&[
            "governor",
            "run",
            "ONE",
            "--max-per-period",
            "--max-wait",
            "1s",
            "--interval",
            "1s",
            "--",
            "sh",
            "-c",
            "echo ran",
        ])
        .await
        .ok();
    assert!(skipped.stdout.is_empty(), "{skipped:#?}");
    lease.release().await.expect("release");
    // With a free slot, --max-per-period keeps the lease until it expires.
    let kept = server
        .run(&["governor", "run", "ONE", "--max-per-period", "--", "true"])
        .await
        .ok();
    assert!(kept.stderr.is_empty(), "{kept:#?}");
    assert_eq!(
        manager.active().await.expect("active"),
        1,
        "kept for the period"
    );

    server
        .run(&[
            "governor",
            "run",
            "ONE",
            "--interval",
            "500ms",
            "--",
            "true",
        ])
        .await
        .fails(2, "interval should be >=1s");
    server
        .run(&["governor", "run", "NOPE", "--", "true"])
        .await
        .fails(3, "(GovernorNotFound)");
    server
        .run(&["governor", "run", "ONE"])
        .await
        .fails(2, "COMMAND");
}

struct Idle;

impl JobHandler for Idle {
    fn start(&self, _job: PoolJob) -> BoxFuture<'static, jetjobs::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn stop(&self, _key: String) -> BoxFuture<'static, jetjobs::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn pool_commands_list_nodes_workers_and_jobs() {
    let server = Server::start();
    let client = server.client().await;
    let node = PoolNode::join(&client, "RENDER", PoolOptions::new())
        .await
        .expect("join");
    let worker = node.add_worker(Idle).await.expect("worker");
    node.dispatch_job("frame-1", bytes::Bytes::from_static(b"abc"))
        .await
        .expect("dispatch");

    let nodes = server.json(&["pool", "nodes", "RENDER"]).await;
    assert_eq!(nodes.as_array().map(Vec::len), Some(1));
    assert_eq!(nodes[0]["id"], node.id());
    let workers = server.json(&["pool", "workers", "RENDER"]).await;
    assert_eq!(workers[0]["id"], worker.id.as_str());
    assert_eq!(workers[0]["node"], node.id());
    let jobs = server.json(&["pool", "jobs", "RENDER"]).await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(1));
    assert_eq!(jobs[0]["key"], "frame-1");
    assert_eq!(jobs[0]["owner"], worker.id.as_str());
    assert_eq!(jobs[0]["payload_bytes"], 3);
    let human = server.run(&["pool", "jobs", "RENDER"]).await.ok().stdout;
    assert!(human.lines().any(|l| l.starts_with("frame-1")), "{human}");

    server
        .run(&["pool", "jobs", "NOPE"])
        .await
        .fails(3, "no pool NOPE (KeyNotFound)");
    node.shutdown().await.expect("shutdown");
}
