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
        })
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
            None => Ok(String::from_utf8_lossy(&message.payload).to_string()),
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
        })
    }

    /// Campaigns for `key` of the per-key governor `name` (see
    /// [`GovernorManager::create_per_key`]); `key` is one subject token (no `.`, `*`, `>`,
    /// spaces).
    pub fn per_key(client: &Client, name: &str, key: &str) -> Result<Self> {
        if key.is_empty() || key.contains(['.', '*', '>', ' ', '\t', '\n', '\r']) {
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
            None => Ok(Some(Lease {
                inner: Arc::new(LeaseInner {
                    client: self.client.clone(),
                    stream: governor_stream(&self.name),
                    seq: ack.seq,
                    leave: self.leave,
                    released: AtomicBool::new(false),
                }),
            })),
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
        tokio::select! {
            result = campaign => result,
            _ = waited => Err(Error::new(ErrorKind::Timeout, format!("no slot on governor {} in time", self.name))),
            _ = cancel.cancelled() => Err(Error::new(ErrorKind::Timeout, format!("campaign on governor {} cancelled", self.name))),
        }
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
    async fn release(&self) -> Result<()> {
        if self.released.swap(true, Ordering::AcqRel) || !self.leave || self.seq == 0 {
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
        if self.released.load(Ordering::Acquire) || !self.leave {
            return;
        }
        // A lease dropped without release() is given back in the background.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = LeaseInner {
                client: self.client.clone(),
                stream: self.stream.clone(),
                seq: self.seq,
                leave: self.leave,
                released: AtomicBool::new(false),
            };
            self.released.store(true, Ordering::Release);
            runtime.spawn(async move {
                if let Err(e) = inner.release().await {
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
