// SPDX-License-Identifier: Apache-2.0
//! The real Go asyncjobs v0.3.0 for interop tests: the test driver (tests/interop/go/cmd/ajdriver)
//! and `ajc`, built once per test binary into a temp dir. Without `go` on PATH the tests fail (they
//! must run in CI); `JETJOBS_SKIP_GO=1` skips them explicitly, with a message.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

pub struct GoTools {
    pub driver: PathBuf,
    pub ajc: PathBuf,
}

/// Builds the Go driver and `ajc` once per test binary; `None` (after saying so) only when
/// skipping was asked for with `JETJOBS_SKIP_GO=1`.
pub fn go_tools() -> Option<&'static GoTools> {
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
pub fn ajdriver(tools: &GoTools, args: &[&str]) -> Vec<Value> {
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

/// A long-running `ajdriver` subcommand (worker, responder, scheduler), stopped on drop.
pub struct GoProcess(pub Child);

impl GoProcess {
    /// Runs an `ajdriver` subcommand until dropped, once it said it is ready.
    pub fn spawn(tools: &GoTools, args: &[&str]) -> Self {
        let mut child = Command::new(&tools.driver)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("ajdriver starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        assert!(
            line.contains("\"ready\":true"),
            "ajdriver {args:?} said {line:?}"
        );
        Self(child)
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for GoProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Runs `ajc` with a NATS context pointing at `url`, in its own config dir; returns its stdout.
pub fn ajc(tools: &GoTools, url: &str, args: &[&str]) -> String {
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

/// The choria governor driver (tests/interop/go/cmd/govdriver, the real go-choria v0.29.4
/// `providers/governor/streams`), built once per test binary; `None` (after saying so) only with
/// `JETJOBS_SKIP_GO=1`.
pub fn govdriver() -> Option<&'static Path> {
    static DRIVER: OnceLock<Option<PathBuf>> = OnceLock::new();
    DRIVER
        .get_or_init(|| {
            if std::env::var_os("JETJOBS_SKIP_GO").is_some_and(|v| v == "1") {
                eprintln!("SKIP: JETJOBS_SKIP_GO=1; the Go choria governor interop tests did not run");
                return None;
            }
            assert!(
                Command::new("go").arg("version").output().is_ok(),
                "`go` is not on PATH: the Go governor interop tests need it (JETJOBS_SKIP_GO=1 skips them)"
            );
            let module = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/go");
            let driver = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-interop/govdriver");
            let status = Command::new("go")
                .args(["build", "-o"])
                .arg(&driver)
                .arg("./cmd/govdriver")
                .current_dir(&module)
                .status()
                .expect("go build runs");
            assert!(status.success(), "go build ./cmd/govdriver failed");
            Some(driver)
        })
        .as_deref()
}

/// Runs a `govdriver` subcommand to completion: its exit code and its one JSON line.
pub fn govdriver_run(driver: &Path, args: &[&str]) -> (i32, Value) {
    let output = Command::new(driver)
        .args(args)
        .output()
        .expect("govdriver runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!(
            "govdriver {args:?}: {e}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), value)
}
