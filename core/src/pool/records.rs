// SPDX-License-Identifier: Apache-2.0
//! The pool's storage layout, defined once (written down in `docs/pool-wire.md`): one KV bucket
//! `JETJOBS_POOL_<pool>` with per-key TTLs, holding
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `nodes.<node id>` | [`NodeRecord`] | worker TTL, refreshed every TTL/4 |
//! | `workers.<worker id>` | [`WorkerRecord`] | worker TTL, refreshed every TTL/4 |
//! | `jobs.<base64url(job key)>` | [`JobRecord`], the durable record that a job exists | none |
//! | `tickers.<name>` | [`TickerRecord`] | none |
//! | `schedules.<name>` | [`ScheduleRecord`] | none |
//! | `control.shutdown` | [`ShutdownRecord`] | none |
//!
//! and one core-NATS subject per node for notifications, `JETJOBS.pool.<pool>.notify.<node id>`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Longest pool name.
const MAX_POOL_NAME_LEN: usize = 64;
/// Longest job key, in bytes.
pub const MAX_JOB_KEY_LEN: usize = 1024;

pub(crate) const NODES: &str = "nodes.";
pub(crate) const WORKERS: &str = "workers.";
pub(crate) const JOBS: &str = "jobs.";
pub(crate) const TICKERS: &str = "tickers.";
pub(crate) const SCHEDULES: &str = "schedules.";
pub(crate) const SHUTDOWN_KEY: &str = "control.shutdown";

pub(crate) use crate::wire::names::{pool_bucket as bucket, pool_notify_subject as notify_subject};

pub(crate) fn job_kv_key(key: &str) -> String {
    format!("{JOBS}{}", URL_SAFE_NO_PAD.encode(key))
}

pub(crate) fn validate_pool_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_POOL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::InvalidOption,
            format!("a pool name is 1 to {MAX_POOL_NAME_LEN} of [A-Za-z0-9_-], not {name:?}"),
        ))
    }
}

/// Ticker and schedule names share the pool name's alphabet (they are KV key tokens).
pub(crate) fn validate_token(what: &str, name: &str) -> Result<()> {
    validate_pool_name(name).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOption,
            format!("a {what} name is 1 to {MAX_POOL_NAME_LEN} of [A-Za-z0-9_-], not {name:?}"),
        )
    })
}

pub(crate) fn validate_job_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_JOB_KEY_LEN {
        return Err(Error::new(
            ErrorKind::InvalidOption,
            format!("a job key is 1 to {MAX_JOB_KEY_LEN} bytes"),
        ));
    }
    Ok(())
}

/// A node's presence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub(crate) id: String,
    /// Nanoseconds since the Unix epoch.
    pub(crate) created_ns: i64,
    pub(crate) client_only: bool,
}

/// A worker's presence; live workers sorted by `(created_ns, id)` are the hash ring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct WorkerRecord {
    pub(crate) id: String,
    pub(crate) node: String,
    pub(crate) created_ns: i64,
    /// Set while the worker hands its jobs over before leaving: still alive (its jobs are not
    /// orphans) but no longer on the hash ring (no job is routed to it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) leaving: bool,
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    /// `owner` should start it (dispatched, handed over or claimed).
    Assigned,
    /// `owner` started it.
    Running,
    /// `owner` should stop it and delete the record.
    Stopping,
}

impl JobState {
    /// The name on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Assigned => "assigned",
            Self::Running => "running",
            Self::Stopping => "stopping",
        }
    }
}

/// A job: the durable record that it exists and, in `owner`, the one worker allowed to run it.
/// Only compare-and-swap writes change `owner`, each raising `generation` (the fencing token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    pub(crate) key: String,
    #[serde(with = "crate::wire::base64_bytes", default)]
    pub(crate) payload: Option<Bytes>,
    /// A worker id; empty while no worker is assigned.
    pub(crate) owner: String,
    pub(crate) generation: u64,
    pub(crate) state: JobState,
    pub(crate) created_ns: i64,
    /// The node that dispatched it.
    pub(crate) node: String,
    /// Where the dispatcher (or the stopper) waits for the outcome; empty once answered.
    #[serde(default)]
    pub(crate) reply: String,
}

/// A cluster-wide ticker: the next tick, advanced by compare-and-swap; the winner ticks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TickerRecord {
    /// Nanoseconds since the Unix epoch.
    pub(crate) next_ns: i64,
    pub(crate) every_ns: i64,
}

/// The job keys a schedule started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct ScheduleRecord {
    pub(crate) keys: Vec<String>,
}

/// Present while the pool shuts down.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ShutdownRecord {
    pub(crate) node: String,
}

/// The outcome of a start or stop, sent to [`JobRecord::reply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Outcome {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) error: String,
}

/// A notification for the job `key`, sent to its owner's node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Notification {
    pub(crate) key: String,
    #[serde(with = "crate::wire::base64_bytes", default)]
    pub(crate) payload: Option<Bytes>,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::with_source(ErrorKind::InvalidDocument, "encoding a pool record", e))
}

pub(crate) fn decode<'a, T: Deserialize<'a>>(what: &str, bytes: &'a [u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidDocument,
            format!("decoding pool {what}"),
            e,
        )
    })
}

pub(crate) fn now_ns() -> i64 {
    crate::wire::Timestamp::now().unix_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_keys_become_valid_kv_keys() {
        let k = job_kv_key("tenant 7/ä.*>");
        assert!(k.starts_with("jobs."));
        assert!(
            k[5..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn records_round_trip_and_garbage_is_a_typed_error() -> Result<()> {
        let rec = JobRecord {
            key: "k".into(),
            payload: Some(Bytes::from_static(b"p")),
            owner: "w".into(),
            generation: 3,
            state: JobState::Running,
            created_ns: 1,
            node: "n".into(),
            reply: String::new(),
        };
        let back: JobRecord = decode("job", &encode(&rec)?)?;
        assert_eq!(back, rec);
        let err = decode::<JobRecord>("job", b"{\"key\": 1}").err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidDocument));
        assert!(validate_pool_name("a.b").is_err() && validate_pool_name("ok_1-2").is_ok());
        assert!(validate_job_key("").is_err());
        for state in [JobState::Assigned, JobState::Running, JobState::Stopping] {
            let wire = serde_json::to_string(&state).map_err(|e| {
                Error::with_source(ErrorKind::InvalidDocument, "encoding a state", e)
            })?;
            assert_eq!(wire, format!("\"{}\"", state.as_str()));
        }
        Ok(())
    }
}
