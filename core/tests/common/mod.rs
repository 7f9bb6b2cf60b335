// SPDX-License-Identifier: Apache-2.0
//! Test harness: a real `nats-server` with JetStream on a free loopback port and a temp store dir,
//! stopped (and its store removed) on drop.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    pub url: String,
}

fn server_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        if Path::new(&bin).exists() {
            return PathBuf::from(bin);
        }
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("nats-server")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl NatsServer {
    pub fn start() -> Self {
        let store = tempfile::tempdir().expect("temp store dir");
        let port = free_port();
        let mut server = Self { child: None, port, url: format!("nats://127.0.0.1:{port}"), store };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let log = self.store.path().join("server.log");
        let _ = std::fs::remove_file(&log);
        let child = Command::new(server_binary())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (run `make setup`, or set NATS_SERVER_BIN)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") {
                return;
            }
            assert!(Instant::now() < deadline, "nats-server did not become ready:\n{text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server gracefully, keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until every task reaches a final state and returns them.
pub async fn wait_final(client: &jetjobs::Client, ids: &[String], timeout: Duration) -> Vec<jetjobs::Task> {
    wait_for("tasks to reach a final state", timeout, || async {
        let mut out = Vec::new();
        for id in ids {
            let task = client.load_task(id).await.ok()?;
            if !task.state.is_final() {
                return None;
            }
            out.push(task);
        }
        Some(out)
    })
    .await
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}
