// SPDX-License-Identifier: Apache-2.0
//! # jetjobs-dashboard
//!
//! The jetjobs web dashboard: an HTTP server showing one NATS account's queues, tasks,
//! schedules, governors and pools, with live updates from the lifecycle events. Its page, script
//! and styles are compiled into the binary (no CDN, works offline).
//!
//! It listens on loopback by default ([`DEFAULT_LISTEN`]); any other address needs an access
//! token, which every request must then carry: an `Authorization: Bearer TOKEN` header, or a
//! `?token=TOKEN` query once (the dashboard then keeps it in an HttpOnly cookie and drops it from
//! the address bar).
//!
//! ```no_run
//! # async fn demo() -> jetjobs::Result<()> {
//! let client = jetjobs::connect("nats://127.0.0.1:4222").await?;
//! let shutdown = jetjobs::CancellationToken::new();
//! let dashboard =
//!     jetjobs_dashboard::Dashboard::bind(client, jetjobs_dashboard::DashboardOptions::new()).await?;
//! println!("dashboard: {}", dashboard.url());
//! dashboard.run(shutdown).await
//! # }
//! ```
//!
//! The JSON API the page uses (errors are `{"error": message, "kind": code}` with a 4xx/5xx
//! status; requests that change anything need the `X-Jetjobs-Dashboard` header unless they send
//! `Authorization`):
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/overview` | per-queue counts by state, queue items, rates and their series from the events, workers' waiting pulls, the scheduler's leader |
//! | `GET /api/tasks?state=&queue=&type=&id=&cursor=&limit=` | a page of tasks, newest id first; `state` may be a list or `failed`; `id` matches a prefix; `next_cursor` continues |
//! | `GET /api/tasks/{id}` | a task: payload, result, last error, tries, dependencies, timeline |
//! | `POST /api/tasks/{id}/retry`, `DELETE /api/tasks/{id}` | retry (on its own queue), delete |
//! | `GET /api/queues`, `POST /api/queues/{name}/purge` | queues; remove a queue's work items |
//! | `GET`/`POST /api/schedules`, `DELETE /api/schedules/{name}` | schedules |
//! | `GET /api/governors?collective=`, `GET /api/governors/{name}`, `POST /api/governors/{name}/evict` (`{"seq": N}`) | governors and their holders |
//! | `GET /api/pools/{name}` | a pool's nodes, workers and jobs |
//! | `GET /api/events` | the lifecycle events as Server-Sent Events (`task_state`, `leader_elected`) |
//!
//! Counts, filters and pages come from an in-memory index of the tasks store (id, queue, type,
//! state, tries, creation time), built page by page with [`jetjobs::Client::tasks_page`] and kept
//! current from the events, so they stay fast over 100k tasks.
#![deny(missing_docs)]

mod api;
mod assets;
mod auth;
mod index;
mod live;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use jetjobs::{CancellationToken, Client, Error, ErrorKind, Result};

/// Where the dashboard listens unless told otherwise: `127.0.0.1:8222`.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8222));

/// How the dashboard listens and who may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardOptions {
    /// The address to listen on (port 0: any free port, see [`Dashboard::local_addr`]).
    pub listen: SocketAddr,
    /// The access token every request must carry; required unless `listen` is a loopback
    /// address.
    pub token: Option<String>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            token: None,
        }
    }
}

impl DashboardOptions {
    /// Loopback port 8222, no token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Requires `token` on every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// `InvalidOption` for an empty token, or a non-loopback address without a token.
    ///
    /// # Examples
    /// ```
    /// use jetjobs_dashboard::DashboardOptions;
    /// let open = DashboardOptions::new().listen("0.0.0.0:8222".parse().expect("addr"));
    /// assert_eq!(open.validate().unwrap_err().kind(), jetjobs::ErrorKind::InvalidOption);
    /// assert!(open.token("s3cret").validate().is_ok());
    /// assert!(DashboardOptions::new().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<()> {
        match &self.token {
            Some(token) if token.is_empty() => Err(Error::new(
                ErrorKind::InvalidOption,
                "the dashboard's access token must not be empty",
            )),
            Some(_) => Ok(()),
            None if self.listen.ip().is_loopback() => Ok(()),
            None => Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "refusing to serve the dashboard on {} without an access token: anyone who \
                     can reach that address could retry, delete and purge tasks; give a token, \
                     or listen on a loopback address such as {DEFAULT_LISTEN}",
                    self.listen
                ),
            )),
        }
    }
}

/// A dashboard bound to its address, not serving yet.
pub struct Dashboard {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    state: Arc<api::AppState>,
    events: futures::stream::BoxStream<'static, Result<jetjobs::Event>>,
}

impl Dashboard {
    /// Checks `options` (see [`DashboardOptions::validate`]), binds the address and subscribes to
    /// the lifecycle events (so the timelines and rates start now).
    pub async fn bind(client: Client, options: DashboardOptions) -> Result<Self> {
        options.validate()?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Io,
                    format!("the dashboard cannot listen on {}", options.listen),
                    e,
                )
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::with_source(ErrorKind::Io, "reading the dashboard's address", e))?;
        let events = client.events().await?;
        let auth = auth::Auth::new(options.token, addr);
        Ok(Self {
            listener,
            addr,
            state: Arc::new(api::AppState::new(client, auth)),
            events,
        })
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dashboard's address as a URL, e.g. `http://127.0.0.1:8222/` (without the token).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Serves until `shutdown` is cancelled, then stops (open event streams end too).
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let stop = shutdown.child_token();
        let background = [
            tokio::spawn(live::follow_events(
                self.state.clone(),
                self.events,
                stop.clone(),
            )),
            tokio::spawn(index::keep_current(self.state.clone(), stop.clone())),
        ];
        let router = api::router(self.state.clone(), stop.clone());
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .await
            .map_err(|e| Error::with_source(ErrorKind::Io, "serving the dashboard", e));
        stop.cancel();
        for task in background {
            let _ = task.await;
        }
        served
    }
}

/// Binds as [`Dashboard::bind`] does and serves until `shutdown` is cancelled.
pub async fn serve(
    client: Client,
    options: DashboardOptions,
    shutdown: CancellationToken,
) -> Result<()> {
    Dashboard::bind(client, options).await?.run(shutdown).await
}
