// SPDX-License-Identifier: Apache-2.0
//! Bad input ends with a clear message and the documented exit code (1 failed, 2 usage, 3 not
//! found), never a panic; plus `--version`, `completions` and `cron` against a real server.

mod common;

use common::{Server, run_with};
use jetjobs::ErrorKind;

#[tokio::test]
async fn usage_errors_exit_2_with_clap_messages() {
    let url = "nats://127.0.0.1:1";
    run_with(url, &["frobnicate"])
        .await
        .fails(2, "unrecognized subcommand 'frobnicate'");
    run_with(url, &["task", "add", "t", "--deadline", "5x"])
        .await
        .fails(
            2,
            "invalid value '5x' for '--deadline <DEADLINE>': time: unknown unit \"x\"",
        );
    run_with(url, &["task", "list", "--older-than=-1h"])
        .await
        .fails(2, "negative duration");
    run_with(url, &["task", "list", "--state", "done"])
        .await
        .fails(2, "unknown task state \"done\"");
    run_with(url, &["queue", "new", "Q", "--entries", "lots"])
        .await
        .fails(2, "invalid digit");
    run_with(url, &["cron", "add", "only-a-name"])
        .await
        .fails(2, "required arguments were not provided");
    run_with(url, &["queue", "ls", "--tls-cert", "c.pem"])
        .await
        .fails(2, "--tls-key");
    run_with(url, &["governor", "add", "G", "1", "forever"])
        .await
        .fails(2, "invalid duration");
}

#[tokio::test]
async fn version_help_and_completions() {
    let url = "nats://127.0.0.1:1";
    let version = run_with(url, &["--version"]).await.ok();
    assert_eq!(
        version.stdout.trim(),
        format!("jetjobs {}", env!("CARGO_PKG_VERSION"))
    );
    let help = run_with(url, &["--help"]).await.ok();
    for command in [
        "info",
        "queue",
        "task",
        "cron",
        "scheduler",
        "governor",
        "pool",
        "dev-server",
        "completions",
    ] {
        assert!(
            help.stdout.contains(command),
            "{command} missing: {}",
            help.stdout
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let script = run_with(url, &["completions", shell]).await.ok();
        assert!(
            script.stdout.contains("jetjobs") && script.stdout.contains("governor"),
            "{shell}"
        );
    }
    run_with(url, &["completions", "tcsh"])
        .await
        .fails(2, "invalid value 'tcsh'");
}

#[tokio::test]
async fn core_errors_print_their_kind_and_exit_1_or_3() {
    // Nothing listens on port 1: a connection error, not a hang or a panic.
    run_with("nats://127.0.0.1:1", &["queue", "list"])
        .await
        .fails(1, "(Connection)");
    run_with("not a url at all", &["info"])
        .await
        .fails(1, "(InvalidOption)");

    let server = Server::start();
    // The connection flags reach the core's ClientOptions.
    server
        .run(&["queue", "ls", "--creds", "/nonexistent.creds"])
        .await
        .fails(1, "reading /nonexistent.creds");
    server
        .run(&["queue", "ls", "--tls-ca", "/nonexistent-ca.pem"])
        .await
        .fails(1, "TLS error");
    server
        .run(&["task", "add", "bad type!"])
        .await
        .fails(1, "(InvalidTaskType)");
    server
        .run(&[
            "cron",
            "add",
            "nightly",
            "every day at noon",
            "report:run",
            "--queue",
            "Q",
        ])
        .await
        .fails(1, "(InvalidSchedule)");
    server
        .run(&["cron", "add", "bad name!", "@daily", "report:run"])
        .await
        .fails(1, "(InvalidScheduleName)");
    server
        .run(&["cron", "view", "nope"])
        .await
        .fails(3, "scheduled task not found: nope (ScheduleNotFound)");
    server
        .run(&["cron", "delete", "nope", "--force"])
        .await
        .fails(3, "(ScheduleNotFound)");
    server
        .run(&["queue", "purge", "NOPE", "--force"])
        .await
        .fails(3, "(QueueNotFound)");
    server
        .run(&["queue", "info", "bad.name"])
        .await
        .fails(1, "(InvalidQueueName)");
    server
        .run(&["task", "delete", "nope", "--force"])
        .await
        .fails(3, "(TaskNotFound)");
}

#[tokio::test]
async fn cron_commands_add_list_view_and_delete() {
    let server = Server::start();
    let client = server.client().await;
    let added = server
        .json(&[
            "cron",
            "add",
            "nightly",
            "0 2 * * *",
            "report:run",
            r#"{"to":"ops"}"#,
            "--queue",
            "REPORTS",
            "--deadline",
            "1m",
            "--tries",
            "4",
        ])
        .await;
    assert_eq!(added["name"], "nightly");
    assert_eq!(added["schedule"], "0 2 * * *");
    assert_eq!(added["queue"], "REPORTS");
    assert_eq!(added["task_type"], "report:run");
    assert_eq!(added["payload"]["to"], "ops");
    assert_eq!(added["deadline_seconds"], 60.0);
    assert_eq!(added["max_tries"], 4);
    let stored = client.load_schedule("nightly").await.expect("stored");
    assert_eq!((stored.queue.as_str(), stored.max_tries), ("REPORTS", 4));
    server
        .run(&["cron", "add", "hourly", "hourly", "report:ping"])
        .await
        .ok();
    assert_eq!(
        client
            .load_schedule("hourly")
            .await
            .expect("stored")
            .schedule,
        "@hourly"
    );
    server
        .run(&["cron", "add", "nightly", "@daily", "x"])
        .await
        .fails(1, "(ScheduleExists)");

    let list = server.json(&["cron", "list"]).await;
    assert_eq!(common::names(&list, "name"), ["hourly", "nightly"]);
    let names = server.run(&["cron", "ls", "--names"]).await.ok().stdout;
    assert_eq!(names, "hourly\nnightly\n");
    let view = server.json(&["cron", "view", "nightly"]).await;
    assert_eq!(view, added);

    server
        .run(&["cron", "delete", "nightly"])
        .await
        .fails(2, "pass --force");
    let deleted = server.json(&["cron", "rm", "nightly", "-f"]).await;
    assert_eq!(deleted["deleted"], true);
    let gone = client.load_schedule("nightly").await.expect_err("deleted");
    assert_eq!(gone.kind(), ErrorKind::ScheduleNotFound);
}
