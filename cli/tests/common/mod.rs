// SPDX-License-Identifier: Apache-2.0
//! Harness for the CLI tests: a real nats-server per test ([`jetjobs::DevServer`], needs
//! `NATS_SERVER_BIN` or `make setup`), the built `jetjobs` binary run against it with stdin
//! closed (so it is never a TTY), and core clients to read back what a command did.
#![allow(dead_code, unreachable_pub)]

#[path = "../../../core/tests/common/go.rs"]
pub mod go;

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The built binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_jetjobs");

pub struct Server {
    inner: jetjobs::DevServer,
    pub url: String,
}

impl Server {
    pub fn start() -> Self {
        let inner = jetjobs::DevServer::start().expect("nats-server starts (set NATS_SERVER_BIN)");
        Self {
            url: inner.url().to_string(),
            inner,
        }
    }

    /// A core client of this server (its default queue is asyncjobs' `DEFAULT`).
    pub async fn client(&self) -> jetjobs::Client {
        jetjobs::connect(&self.url).await.expect("client connects")
    }

    /// Runs `jetjobs ARGS` against this server to completion.
    pub async fn run(&self, args: &[&str]) -> Run {
        run_with(&self.url, args).await
    }

    /// Runs `jetjobs ARGS --json`, asserts it succeeded and parses its one JSON document.
    pub async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        self.run(&all).await.ok().json()
    }

    /// Starts `jetjobs ARGS` in the background; killed on drop.
    pub fn spawn(&self, args: &[&str]) -> Child {
        spawn_with(&[("NATS_URL", &self.url)], args)
    }
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0.
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// Asserts exit code `code` and that stderr mentions `text`.
    pub fn fails(self, code: i32, text: &str) -> Self {
        assert_eq!(self.code, code, "expected exit {code}: {self:#?}");
        assert!(
            self.stderr.contains(text),
            "expected {text:?} on stderr: {self:#?}"
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "a panic: {self:#?}"
        );
        self
    }

    /// stdout parsed as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
}

/// Runs `jetjobs ARGS` with `NATS_URL=url`.
pub async fn run_with(url: &str, args: &[&str]) -> Run {
    let output = command(&[("NATS_URL", url)], args)
        .output()
        .await
        .expect("jetjobs runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn command(env: &[(&str, &str)], args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NATS_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command
}

/// `jetjobs ARGS` in the background, with its output read line by line.
pub struct Child {
    pub child: tokio::process::Child,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
}

pub fn spawn_with(env: &[(&str, &str)], args: &[&str]) -> Child {
    let mut child = command(env, args).spawn().expect("jetjobs starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    Child {
        child,
        stdout,
        stderr,
    }
}

impl Child {
    /// The next line on stdout, within `timeout`.
    pub async fn stdout_line(&mut self, timeout: Duration) -> String {
        tokio::time::timeout(timeout, self.stdout.next_line())
            .await
            .expect("a line on stdout in time")
            .expect("stdout readable")
            .expect("stdout still open")
    }

    /// Reads stderr until a line contains `text`, within `timeout`.
    pub async fn stderr_until(&mut self, text: &str, timeout: Duration) -> String {
        let seen = async {
            let mut all = String::new();
            while let Ok(Some(line)) = self.stderr.next_line().await {
                all.push_str(&line);
                all.push('\n');
                if line.contains(text) {
                    return line;
                }
            }
            panic!("stderr ended without {text:?}: {all}");
        };
        tokio::time::timeout(timeout, seen)
            .await
            .unwrap_or_else(|_| panic!("no {text:?} on stderr in time"))
    }

    /// The rest of stdout, once the process closed it.
    pub async fn rest_of_stdout(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(Some(line)) = self.stdout.next_line().await {
            lines.push(line);
        }
        lines
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub fn interrupt(&self) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the exit code, within `timeout`.
    pub async fn exit_code(&mut self, timeout: Duration) -> i32 {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait works")
            .code()
            .unwrap_or(-1)
    }
}

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The `name` fields of a JSON array, sorted.
pub fn names(value: &Value, field: &str) -> Vec<String> {
    let mut out: Vec<String> = value
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|v| v[field].as_str().expect("a string field").to_string())
        .collect();
    out.sort();
    out
}
