// SPDX-License-Identifier: Apache-2.0
//! choria's governor (go-choria `providers/governor/streams`, the same on the wire): a
//! network-wide cap on concurrent holders. A governor is the stream `GOVERNOR_<name>` with
//! `max_msgs = limit` and `discard: new`; a campaign is a core NATS request on its subject whose
//! body is the holder's name, and the server's acknowledgement carries the lease's sequence. A
//! full governor answers with JetStream error 10077, the only error worth trying again: any other
//! (a timeout included) may have stored a lease whose reply was lost, and retrying could fill the
//! governor with orphans. A lease is released by deleting its message by sequence; `max_age`
//! evicts forgotten ones. Go's `choria governor` and this module share governors both ways.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::coord::lifecycle::{GovernorEventType, LifecyclePublisher};
use crate::error::{Error, ErrorKind, Result};
use crate::retry::RetryPolicy;

/// Pause between campaign tries without a backoff policy (choria's `DefaultInterval`).
pub const GOVERNOR_INTERVAL: Duration = Duration::from_millis(250);
/// How long one campaign try waits for the server.
const TRY_TIMEOUT: Duration = Duration::from_secs(1);
/// JetStream's "maximum messages exceeded": the governor is full.
const FULL: u64 = 10077;
/// JetStream's "no message found", reading a message (10037) or deleting one (10057).
const NO_MESSAGE: [u64; 2] = [10037, 10057];
/// JetStream's "stream not found".
const NO_STREAM: u64 = 10059;

/// The stream of governor `name`.
pub fn governor_stream(name: &str) -> String {
    format!("GOVERNOR_{name}")
}

/// The library default campaign subject of governor `name`.
fn default_subject(name: &str) -> String {
    format!("$GOVERNOR.campaign.{name}")
}

/// The campaign subject of `key` in per-key governor `name` (a jetjobs extension).
fn per_key_subject(name: &str, key: &str) -> String {
    format!("$GOVERNOR.keyed.{name}.{key}")
}

/// Whether `key` can be a per-key governor's key: one subject token.
fn is_key(key: &str) -> bool {
    !key.is_empty() && !key.contains(['.', '*', '>', ' ', '\t', '\n', '\r'])
}

/// The subject choria uses for governor `name` of `collective`.
pub fn collective_subject(collective: &str, name: &str) -> String {
    format!("{collective}.governor.{name}")
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(['.', '*', '>', ' ', '\t', '\n', '\r', '/', '\\']) {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("{name:?} is not a governor name (it becomes a stream name)"),
        ));
    }
    Ok(())
}

/// A JetStream API error as the server sends it.
#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ApiReply {
    #[serde(default)]
    error: Option<ApiError>,
    #[serde(default)]
    seq: u64,
}

/// Creates, changes and inspects governors (choria's `Manager`).
#[derive(Clone)]
pub struct GovernorManager {
    client: Client,
    name: String,
    config: stream::Config,
    /// Where [`GovernorManager::evict`] reports evictions, if anywhere.
    lifecycle: Option<LifecyclePublisher>,
}

impl GovernorManager {
    /// Governor `name` with at most `limit` holders, leases evicted after `max_age` (zero:
    /// never, else at least 100 ms), on `subject` (`None`: `$GOVERNOR.campaign.<name>`; see
    /// [`collective_subject`]). Created if it does not exist; an existing one is updated to these
    /// settings.
    pub async fn create(
        client: &Client,
        name: &str,
        limit: u64,
        max_age: Duration,
        replicas: usize,
        subject: Option<&str>,
    ) -> Result<Self> {
        validate_name(name)?;
        if limit == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a governor's limit is at least 1",
            ));
        }
        if !max_age.is_zero() && max_age < Duration::from_millis(100) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a governor's max age is zero or at least 100ms",
            ));
        }
        let wanted = stream::Config {
            name: governor_stream(name),
            description: Some(format!("Concurrency Governor {name}")),
            subjects: vec![subject.map_or_else(|| default_subject(name), str::to_string)],
            retention: RetentionPolicy::Limits,
            max_messages: limit as i64,
            max_age,
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: replicas.max(1),
            duplicate_window: Duration::ZERO,
            max_consumers: -1,
            max_bytes: -1,
            max_message_size: -1,
            max_messages_per_subject: -1,
            ..Default::default()
        };
        let js = &client.storage().js;
        let stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| Error::storage(format!("preparing governor {name}"), e))?;
        let current = &stream.cached_info().config;
        let manager = Self {
            client: client.clone(),
            name: name.to_string(),
            config: current.clone(),
            lifecycle: None,
        };
        if current.max_messages != wanted.max_messages
            || current.max_age != wanted.max_age
            || current.subjects != wanted.subjects
        {
            let mut config = current.clone();
            config.max_messages = wanted.max_messages;
            config.max_age = wanted.max_age;
            config.subjects = wanted.subjects;
            return manager.update(config).await;
        }
        Ok(manager)
    }

    /// A per-key governor (a jetjobs extension; choria has none): at most `per_key` holders for
    /// each key, in one stream whose subjects are `$GOVERNOR.keyed.<name>.<key>`, with per-subject
    /// limits and discard-new per subject (nats-server 2.9.2+). Campaign with
    /// [`Governor::per_key`]. An existing governor of that name is used as it is.
    pub async fn create_per_key(
        client: &Client,
        name: &str,
        per_key: u64,
        max_age: Duration,
        replicas: usize,
    ) -> Result<Self> {
        validate_name(name)?;
        if per_key == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a per-key limit is at least 1",
            ));
        }
        let config = stream::Config {
            name: governor_stream(name),
            description: Some(format!("Per-key Concurrency Governor {name}")),
            subjects: vec![per_key_subject(name, "*")],
            retention: RetentionPolicy::Limits,
            max_messages_per_subject: per_key as i64,
            discard_new_per_subject: true,
            max_age,
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: replicas.max(1),
            ..Default::default()
        };
        let stream = client
            .storage()
            .js
            .get_or_create_stream(config)
            .await
            .map_err(|e| Error::storage(format!("preparing governor {name}"), e))?;
        Ok(Self {
            client: client.clone(),
            name: name.to_string(),
            config: stream.cached_info().config.clone(),
            lifecycle: None,
        })
    }

    /// The existing governor `name`, never created (choria's `NewManager` with limit 0); fails
    /// with `GovernorNotFound`.
    pub async fn load(client: &Client, name: &str) -> Result<Self> {
        validate_name(name)?;
        let config = info(client, name).await?.config;
        Ok(Self {
            client: client.clone(),
            name: name.to_string(),
            config,
            lifecycle: None,
        })
    }

    /// Publishes choria's `eviction` lifecycle event (see [`GovernorEvent`](crate::GovernorEvent))
    /// on `choria.lifecycle.event.governor.<component>` for each [`evict`](Self::evict), as
    /// `choria governor evict` does (component `CLI`), with the evicted holder's name as
    /// identity. `InvalidOption` if `component` cannot end a subject. A failed publish is logged,
    /// the eviction stands.
    pub fn lifecycle(mut self, component: impl Into<String>) -> Result<Self> {
        let nats = self.client.storage().nats.clone();
        self.lifecycle = Some(LifecyclePublisher::new(nats, component.into())?);
        Ok(self)
    }

    /// The governor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Most holders at once.
    pub fn limit(&self) -> u64 {
        self.config.max_messages.max(0) as u64
    }

    /// How long a lease lasts at most (zero: until released).
    pub fn max_age(&self) -> Duration {
        self.config.max_age
    }

    /// The campaign subject.
    pub fn subject(&self) -> &str {
        self.config.subjects.first().map_or("", String::as_str)
    }

    /// The stream's replicas.
    pub fn replicas(&self) -> usize {
        self.config.num_replicas
    }

    /// Changes the limit for every holder at once. Lowered below the current count, the server
    /// evicts the oldest leases.
    pub async fn set_limit(&mut self, limit: u64) -> Result<()> {
        if limit == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a governor's limit is at least 1",
            ));
        }
        let mut config = self.config.clone();
        config.max_messages = limit as i64;
        *self = self.clone().update(config).await?;
        Ok(())
    }

    /// Changes how long leases last at most.
    pub async fn set_max_age(&mut self, max_age: Duration) -> Result<()> {
        let mut config = self.config.clone();
        config.max_age = max_age;
        *self = self.clone().update(config).await?;
        Ok(())
    }

    /// Changes the campaign subject.
    pub async fn set_subject(&mut self, subject: &str) -> Result<()> {
        let mut config = self.config.clone();
        config.subjects = vec![subject.to_string()];
        *self = self.clone().update(config).await?;
        Ok(())
    }

    async fn update(mut self, mut config: stream::Config) -> Result<Self> {
        // The server filled in a duplicate window of min(2m, max age); kept, it would refuse a max
        // age below it. choria sends 0 on every update too.
        config.duplicate_window = Duration::ZERO;
        let info = self
            .client
            .storage()
            .js
            .update_stream(config)
            .await
            .map_err(|e| {
                Error::storage(
                    format!("stream update failed for governor {}", self.name),
                    e,
                )
            })?;
        self.config = info.config;
        Ok(self)
    }

    /// Removes every lease.
    pub async fn reset(&self) -> Result<()> {
        self.stream()
            .await?
            .purge()
            .await
            .map(|_| ())
            .map_err(|e| Error::storage(format!("resetting governor {}", self.name), e))
    }

    /// Leases held now.
    pub async fn active(&self) -> Result<u64> {
        Ok(info(&self.client, &self.name).await?.state.messages)
    }

    /// When the newest lease was taken; `None` if none ever was.
    pub async fn last_active(&self) -> Result<Option<DateTime<Utc>>> {
        let last = info(&self.client, &self.name).await?.state.last_timestamp;
        let seconds = last.unix_timestamp();
        if seconds <= 0 {
            return Ok(None);
        }
        Ok(DateTime::from_timestamp(seconds, last.nanosecond()))
    }

    /// Every lease: its sequence, holder name and when it was taken.
    pub async fn leases(&self) -> Result<Vec<(u64, String, DateTime<Utc>)>> {
        let stream = self.stream().await?;
        let state = info(&self.client, &self.name).await?.state;
        let mut out = Vec::new();
        for seq in state.first_sequence..=state.last_sequence {
            if seq == 0 {
                continue;
            }
            match stream.get_raw_message(seq).await {
                Ok(message) => out.push((
                    seq,
                    String::from_utf8_lossy(&message.payload).to_string(),
                    DateTime::from_timestamp(
                        message.time.unix_timestamp(),
                        message.time.nanosecond(),
                    )
                    .unwrap_or_default(),
                )),
                Err(e) if e.kind() == stream::RawMessageErrorKind::NoMessageFound => {}
                Err(e) => return Err(Error::storage("reading a lease", e)),
            }
        }
        Ok(out)
    }

    /// Removes the lease `seq`, returning its holder's name; `LeaseNotFound` if there is none.
    pub async fn evict(&self, seq: u64) -> Result<String> {
        let stream = self.stream().await?;
        let message = stream
            .get_raw_message(seq)
            .await
            .map_err(|e| match e.kind() {
                stream::RawMessageErrorKind::NoMessageFound => lease_not_found(&self.name, seq),
                _ => Error::storage("reading a lease", e),
            })?;
        let reply: ApiReply = self
            .client
            .storage()
            .js
            .request(
                format!("STREAM.MSG.DELETE.{}", governor_stream(&self.name)),
                &json!({"seq": seq}),
            )
            .await
            .map_err(|e| Error::storage("evicting a lease", e))?;
        match reply.error {
            None => {
                let holder = String::from_utf8_lossy(&message.payload).to_string();
                if let Some(events) = &self.lifecycle {
                    events
                        .publish(GovernorEventType::Eviction, &self.name, seq, &holder)
                        .await;
                }
                Ok(holder)
            }
            Some(e) if NO_MESSAGE.contains(&e.err_code) => Err(lease_not_found(&self.name, seq)),
            Some(e) => Err(Error::new(
                ErrorKind::Storage,
                format!("evicting a lease: {}", e.description),
            )),
        }
    }

    /// Deletes the governor and its leases.
    pub async fn delete(self) -> Result<()> {
        self.client
            .storage()
            .js
            .delete_stream(governor_stream(&self.name))
            .await
            .map(|_| ())
            .map_err(|e| Error::storage(format!("deleting governor {}", self.name), e))
    }

    async fn stream(&self) -> Result<stream::Stream> {
        self.client
            .storage()
            .js
            .get_stream(governor_stream(&self.name))
            .await
            .map_err(|e| Error::storage(format!("loading governor {}", self.name), e))
    }

    /// Names of the governors of `collective` (subjects `<collective>.governor.*`), sorted; those
    /// on the library default subject are not listed, as in choria.
    pub async fn list(client: &Client, collective: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Names {
            #[serde(default)]
            streams: Option<Vec<String>>,
            #[serde(default)]
            total: usize,
        }
        let js = &client.storage().js;
        let mut names = Vec::new();
        loop {
            let page: Names = js
                .request(
                    "STREAM.NAMES",
                    &json!({"subject": format!("{collective}.governor.*"), "offset": names.len()}),
                )
                .await
                .map_err(|e| Error::storage("listing governors", e))?;
            let streams = page.streams.unwrap_or_default();
            let got = streams.len();
            names.extend(streams);
            if got == 0 || names.len() >= page.total {
                break;
            }
        }
        let mut out: Vec<String> = names
            .into_iter()
            .filter_map(|s| s.strip_prefix("GOVERNOR_").map(str::to_string))
            .collect();
        out.sort();
        Ok(out)
    }
}

async fn info(client: &Client, name: &str) -> Result<stream::Info> {
    let reply: serde_json::Value = client
        .storage()
        .js
        .request(format!("STREAM.INFO.{}", governor_stream(name)), &json!({}))
        .await
        .map_err(|e| Error::storage(format!("loading governor {name}"), e))?;
    if let Some(error) = reply.get("error") {
        let code = error
            .get("err_code")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if code == NO_STREAM {
            return Err(Error::new(
                ErrorKind::GovernorNotFound,
                format!("unknown governor {name}"),
            ));
        }
        return Err(Error::new(
            ErrorKind::Storage,
            format!("loading governor {name}: {error}"),
        ));
    }
    serde_json::from_value(reply)
        .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "invalid stream info", e))
}

fn lease_not_found(name: &str, seq: u64) -> Error {
    Error::new(
        ErrorKind::LeaseNotFound,
        format!("no lease {seq} on governor {name}"),
    )
}

/// Campaigns for slots of one governor (choria's `Governor`). Unlike choria's, a failed campaign
/// leaves the instance usable, and campaigns may run on one instance at once.
#[derive(Clone)]
pub struct Governor {
    nats: async_nats::Client,
    client: Client,
    name: String,
    subject: String,
    interval: Duration,
    backoff: Option<RetryPolicy>,
    leave: bool,
    lifecycle: Option<LifecyclePublisher>,
    /// The identity of lifecycle events; `None`: each holder's name.
    lifecycle_identity: Option<String>,
}

impl Governor {
    /// Campaigns for governor `name` on its library default subject.
    pub fn new(client: &Client, name: &str) -> Result<Self> {
        validate_name(name)?;
        Ok(Self {
            nats: client.storage().nats.clone(),
            client: client.clone(),
            name: name.to_string(),
            subject: default_subject(name),
            interval: GOVERNOR_INTERVAL,
            backoff: None,
            leave: true,
            lifecycle: None,
            lifecycle_identity: None,
        })
    }

    /// Campaigns for `key` of the per-key governor `name` (see
    /// [`GovernorManager::create_per_key`]); `key` is one subject token (no `.`, `*`, `>`,
    /// spaces).
    pub fn per_key(client: &Client, name: &str, key: &str) -> Result<Self> {
        if !is_key(key) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("{key:?} is not a governor key (it becomes a subject token)"),
            ));
        }
        Ok(Self::new(client, name)?.subject(per_key_subject(name, key)))
    }

    /// Campaigns on `subject` instead (choria uses [`collective_subject`]).
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Waits `interval` between tries while the governor is full (default 250 ms).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Waits by `policy` between tries instead (e.g. [`RetryPolicy::named`]`("five_sec")`, choria's
    /// `backoff.FiveSec`); the first retry still waits the interval.
    pub fn backoff(mut self, policy: RetryPolicy) -> Self {
        self.backoff = Some(policy);
        self
    }

    /// Leases are not released when done: they last until the governor's max age, so at most
    /// `limit` runs start per max age ("max per period", a fleet-wide rate limit).
    pub fn without_leaving(mut self) -> Self {
        self.leave = false;
        self
    }

    /// Publishes choria's lifecycle events (see [`GovernorEvent`](crate::GovernorEvent)) on
    /// `choria.lifecycle.event.governor.<component>`, as choria's CLI (component `CLI`) and
    /// autonomous agents (the machine's name) do: `enter` when a lease is obtained ([`start`],
    /// [`try_start`], a governed route's admission), `exit` when it is released ([`Lease::release`]
    /// or dropped; also for a lease kept until max age by [`without_leaving`], as choria), and
    /// `timeouts` when [`start`] gives up (its wait passed, it was cancelled or it failed). The
    /// events' identity is the holder's name unless [`lifecycle_identity`] sets one.
    /// `InvalidOption` if `component` cannot end a subject. Publishing is best effort: a failure
    /// is logged and never fails the campaign or the release.
    ///
    /// # Examples
    /// ```no_run
    /// # async fn demo(client: jetjobs::Client) -> jetjobs::Result<()> {
    /// let governor = jetjobs::Governor::new(&client, "PUPPET")?
    ///     .lifecycle("CLI")?
    ///     .lifecycle_identity("host-1.example.net");
    /// let cancel = jetjobs::CancellationToken::new();
    /// let lease = governor.start("puppet run", None, &cancel).await?; // `enter`
    /// lease.release().await?; // `exit`
    /// # Ok(()) }
    /// ```
    ///
    /// [`start`]: Self::start
    /// [`try_start`]: Self::try_start
    /// [`without_leaving`]: Self::without_leaving
    /// [`lifecycle_identity`]: Self::lifecycle_identity
    pub fn lifecycle(mut self, component: impl Into<String>) -> Result<Self> {
        let nats = self.nats.clone();
        self.lifecycle = Some(LifecyclePublisher::new(nats, component.into())?);
        Ok(self)
    }

    /// The identity of this governor's lifecycle events (choria uses the host's identity), in
    /// place of each holder's name; only used with [`lifecycle`](Self::lifecycle).
    pub fn lifecycle_identity(mut self, identity: impl Into<String>) -> Self {
        self.lifecycle_identity = Some(identity.into());
        self
    }

    fn event_identity<'a>(&'a self, holder: &'a str) -> &'a str {
        self.lifecycle_identity.as_deref().unwrap_or(holder)
    }

    /// One try: a lease, or `None` while the governor is full. Any other error is final.
    pub async fn try_start(&self, holder: &str) -> Result<Option<Lease>> {
        let request = self
            .nats
            .request(self.subject.clone(), holder.to_string().into_bytes().into());
        let reply = match tokio::time::timeout(TRY_TIMEOUT, request).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => {
                return Err(Error::storage(
                    format!("campaigning on governor {}", self.name),
                    e,
                ));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!(
                        "campaigning on governor {}: no answer within {TRY_TIMEOUT:?} (the lease may \
                         have been stored, so this is not tried again)",
                        self.name
                    ),
                ));
            }
        };
        let ack: ApiReply = serde_json::from_slice(&reply.payload).map_err(|e| {
            Error::with_source(
                ErrorKind::Storage,
                format!("campaigning on governor {}", self.name),
                e,
            )
        })?;
        match ack.error {
            Some(e) if e.err_code == FULL => Ok(None),
            Some(e) => Err(Error::new(
                ErrorKind::Storage,
                format!("campaigning on governor {}: {}", self.name, e.description),
            )),
            None => {
                let events = self.lifecycle.clone().map(|publisher| LeaseEvents {
                    publisher,
                    governor: self.name.clone(),
                    identity: self.event_identity(holder).to_string(),
                });
                if let Some(events) = &events {
                    events.publish(GovernorEventType::Enter, ack.seq).await;
                }
                Ok(Some(Lease {
                    inner: Arc::new(LeaseInner {
                        client: self.client.clone(),
                        stream: governor_stream(&self.name),
                        seq: ack.seq,
                        leave: self.leave,
                        released: AtomicBool::new(false),
                        events,
                    }),
                }))
            }
        }
    }

    /// Campaigns until a slot is free, `max_wait` passes (`Timeout`) or `cancel` fires (`Timeout`).
    pub async fn start(
        &self,
        holder: &str,
        max_wait: Option<Duration>,
        cancel: &CancellationToken,
    ) -> Result<Lease> {
        let campaign = async {
            let mut tries = 0u32;
            loop {
                if let Some(lease) = self.try_start(holder).await? {
                    return Ok(lease);
                }
                let pause = match (&self.backoff, tries) {
                    (Some(policy), n) if n > 0 => policy.delay(n),
                    _ => self.interval,
                };
                tries += 1;
                tokio::time::sleep(pause).await;
            }
        };
        let waited = async {
            match max_wait {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            result = campaign => result,
            _ = waited => Err(Error::new(ErrorKind::Timeout, format!("no slot on governor {} in time", self.name))),
            _ = cancel.cancelled() => Err(Error::new(ErrorKind::Timeout, format!("campaign on governor {} cancelled", self.name))),
        };
        if let (Err(_), Some(events)) = (&result, &self.lifecycle) {
            let identity = self.event_identity(holder);
            events
                .publish(GovernorEventType::Timeout, &self.name, 0, identity)
                .await;
        }
        result
    }
}

/// A held slot; [`Lease::release`] (or dropping it) gives it back.
#[derive(Clone)]
pub struct Lease {
    inner: Arc<LeaseInner>,
}

struct LeaseInner {
    client: Client,
    stream: String,
    seq: u64,
    leave: bool,
    released: AtomicBool,
    events: Option<LeaseEvents>,
}

/// Where a lease reports its `exit`.
#[derive(Clone)]
struct LeaseEvents {
    publisher: LifecyclePublisher,
    governor: String,
    identity: String,
}

impl LeaseEvents {
    async fn publish(&self, event_type: GovernorEventType, seq: u64) {
        self.publisher
            .publish(event_type, &self.governor, seq, &self.identity)
            .await;
    }
}

impl Lease {
    /// The lease's id: its message's stream sequence, which only grows.
    pub fn seq(&self) -> u64 {
        self.inner.seq
    }

    /// Gives the slot back (unless the governor keeps leases for the period); a second call does
    /// nothing. `LeaseNotFound` if it was evicted meanwhile.
    pub async fn release(&self) -> Result<()> {
        self.inner.release().await
    }
}

impl LeaseInner {
    /// The first call gives the slot back and reports `exit` (whatever the outcome, as choria);
    /// later calls do nothing.
    async fn release(&self) -> Result<()> {
        if self.released.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.give_back().await
    }

    async fn give_back(&self) -> Result<()> {
        let result = self.delete().await;
        if let Some(events) = &self.events {
            events.publish(GovernorEventType::Exit, self.seq).await;
        }
        result
    }

    async fn delete(&self) -> Result<()> {
        if !self.leave || self.seq == 0 {
            return Ok(());
        }
        let reply: ApiReply = self
            .client
            .storage()
            .js
            .request(
                format!("STREAM.MSG.DELETE.{}", self.stream),
                &json!({"seq": self.seq, "no_erase": true}),
            )
            .await
            .map_err(|e| Error::storage(format!("could not remove seq {}", self.seq), e))?;
        match reply.error {
            None => Ok(()),
            Some(e) if NO_MESSAGE.contains(&e.err_code) => Err(Error::new(
                ErrorKind::LeaseNotFound,
                format!("could not remove seq {}: {}", self.seq, e.description),
            )),
            Some(e) => Err(Error::new(
                ErrorKind::Storage,
                format!("could not remove seq {}: {}", self.seq, e.description),
            )),
        }
    }
}

impl Drop for LeaseInner {
    fn drop(&mut self) {
        if self.released.load(Ordering::Acquire) || (!self.leave && self.events.is_none()) {
            return;
        }
        // A lease dropped without release() is given back in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Marked released: if the runtime drops the task unrun (shutting down), this copy's
            // own drop does not spawn again.
            let inner = LeaseInner {
                client: self.client.clone(),
                stream: self.stream.clone(),
                seq: self.seq,
                leave: self.leave,
                released: AtomicBool::new(true),
                events: self.events.clone(),
            };
            self.released.store(true, Ordering::Release);
            runtime.spawn(async move {
                if let Err(e) = inner.give_back().await {
                    tracing::debug!(error = %e, "releasing a dropped governor lease failed");
                }
            });
        }
    }
}

/// A governed route's admission: one campaign try per ask, holding the lease while the handler
/// runs; a full governor means "later" (after the campaign interval).
impl crate::Admission for Governor {
    fn admit<'a>(
        &'a self,
        task: &'a crate::Task,
    ) -> futures::future::BoxFuture<'a, Result<crate::Admit>> {
        Box::pin(async move {
            Ok(match self.try_start(&task.id).await? {
                Some(lease) => crate::Admit::Granted(crate::Permit::holding(lease)),
                None => crate::Admit::RetryAfter(self.interval),
            })
        })
    }
}

/// A route governed per key: each task campaigns on its key's slots of a per-key governor.
pub(crate) struct PerKeyAdmission {
    pub(crate) client: Client,
    pub(crate) name: String,
    pub(crate) key: Box<dyn Fn(&crate::Task) -> String + Send + Sync>,
}

impl crate::Admission for PerKeyAdmission {
    fn admit<'a>(
        &'a self,
        task: &'a crate::Task,
    ) -> futures::future::BoxFuture<'a, Result<crate::Admit>> {
        Box::pin(async move {
            let governor = Governor::per_key(&self.client, &self.name, &(self.key)(task))?;
            governor.admit(task).await
        })
    }
}

/// A route governed per key, the key read from the task's JSON payload at a JSON pointer
/// ([`Mux::governed_per_key_field`](crate::Mux::governed_per_key_field)).
pub(crate) struct KeyField {
    client: Client,
    name: String,
    pointer: String,
}

impl KeyField {
    /// Checks the governor name and the pointer (RFC 6901: `""` or starting with `/`).
    pub(crate) fn new(client: &Client, name: &str, pointer: &str) -> Result<Self> {
        validate_name(name)?;
        if !(pointer.is_empty() || pointer.starts_with('/')) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!(
                    "{pointer:?} is not a JSON pointer (RFC 6901: \"\" for the whole payload, or \
                     starting with '/', e.g. \"/tenant\")"
                ),
            ));
        }
        Ok(Self {
            client: client.clone(),
            name: name.to_string(),
            pointer: pointer.to_string(),
        })
    }

    /// The task's key: a string as it is, a number as its JSON text; else why there is none.
    pub(crate) fn key(&self, task: &crate::Task) -> std::result::Result<String, String> {
        let (name, pointer) = (&self.name, &self.pointer);
        let payload: serde_json::Value = task.payload_json().map_err(|_| {
            format!("governor {name}: the payload is not JSON, so it has no key at {pointer:?}")
        })?;
        let key = match payload.pointer(pointer) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(format!(
                    "governor {name}: the key at {pointer:?} in the payload is not a string or a number"
                ));
            }
            None => {
                return Err(format!(
                    "governor {name}: the payload has no key at {pointer:?}"
                ));
            }
        };
        if !is_key(&key) {
            return Err(format!(
                "governor {name}: the key {key:?} at {pointer:?} is not a subject token (non-empty, \
                 no '.', '*', '>' or whitespace)"
            ));
        }
        Ok(key)
    }

    /// The innermost wrapper of the route's handler: a task without a usable key is terminated
    /// (with the reason as its error) instead of run.
    pub(crate) fn guard(self: &Arc<Self>) -> crate::Middleware {
        let field = self.clone();
        Arc::new(move |next: Arc<dyn crate::Handler>| {
            Arc::new(KeyChecked {
                field: field.clone(),
                next,
            }) as Arc<dyn crate::Handler>
        })
    }
}

/// A task without a usable key is let through without a slot, for [`KeyChecked`] to terminate:
/// asking again could never succeed.
impl crate::Admission for KeyField {
    fn admit<'a>(
        &'a self,
        task: &'a crate::Task,
    ) -> futures::future::BoxFuture<'a, Result<crate::Admit>> {
        Box::pin(async move {
            match self.key(task) {
                Ok(key) => {
                    Governor::per_key(&self.client, &self.name, &key)?
                        .admit(task)
                        .await
                }
                Err(_) => Ok(crate::Admit::Granted(crate::Permit::unit())),
            }
        })
    }
}

struct KeyChecked {
    field: Arc<KeyField>,
    next: Arc<dyn crate::Handler>,
}

impl crate::Handler for KeyChecked {
    fn call(
        &self,
        ctx: crate::TaskContext,
        task: crate::Task,
    ) -> futures::future::BoxFuture<'static, crate::HandlerResult> {
        match self.field.key(&task) {
            Ok(_) => self.next.call(ctx, task),
            Err(reason) => Box::pin(async move { Err(crate::HandlerError::terminate(reason)) }),
        }
    }
}
