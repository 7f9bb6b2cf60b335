// SPDX-License-Identifier: Apache-2.0
//! JetStream I/O, one file per resource: task documents ([`tasks`]), work queues ([`queues`]),
//! key-value buckets ([`kv`]) and listings for administration ([`admin`]).
//!
//! Tasks live one-per-subject in `CHORIA_AJ_TASKS`; each save carries the expected last subject
//! sequence, which is the only mutual exclusion between workers. Work items live in per-queue
//! work-queue streams.

mod admin;
mod delayed;
pub(crate) mod kv;
mod ordered;
mod queues;
mod task_batch;
mod task_pages;
mod tasks;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::error::{Error, ErrorKind, Result};
use crate::wire::names::{CONFIG_BUCKET, ELECTIONS_BUCKET, TASKS_STREAM, TASKS_SUBJECTS};

pub use admin::TasksInfo;
pub use kv::{Kv, KvBucket, KvEntry, KvOperation};
pub(crate) use ordered::{KeyHead, OrderedItems};
pub use queues::QueueInfo;
pub(crate) use queues::{ProcessItem, await_item, finish_item};

/// Where and how the streams are stored when jetjobs creates them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageSettings {
    pub(crate) memory: bool,
    pub(crate) replicas: usize,
    pub(crate) task_retention: Duration,
}

/// A handle on the jetjobs streams of one NATS account.
#[derive(Clone)]
pub(crate) struct Storage {
    pub(crate) nats: async_nats::Client,
    pub(crate) js: jetstream::Context,
    tasks: stream::Stream,
    settings: StorageSettings,
    /// The delayed-items stream, once a delayed task or a worker needed it.
    delayed: Arc<tokio::sync::OnceCell<stream::Stream>>,
    /// Set by `Client::close`: later calls fail with `Closed` instead of a connection error.
    closed: Arc<AtomicBool>,
}

impl Storage {
    /// Loads or creates the tasks stream and the two KV buckets (created, never updated).
    pub(crate) async fn prepare(
        nats: async_nats::Client,
        settings: StorageSettings,
    ) -> Result<Self> {
        let js = jetstream::new(nats.clone());
        let tasks = js
            .get_or_create_stream(stream::Config {
                name: TASKS_STREAM.into(),
                subjects: vec![TASKS_SUBJECTS.into()],
                description: Some("Choria Async Jobs Tasks".into()),
                max_messages_per_subject: 1,
                max_age: settings.task_retention,
                storage: storage_type(settings.memory),
                num_replicas: settings.replicas,
                // Lets loads be served by any replica; asyncjobs' MSG.GET still works on it.
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::storage("preparing the tasks stream", e))?;
        let storage = Self {
            nats,
            js,
            tasks,
            settings,
            delayed: Arc::default(),
            closed: Arc::new(AtomicBool::new(false)),
        };
        storage
            .kv_bucket(kv::BucketConfig {
                name: CONFIG_BUCKET,
                description: "Choria Async Jobs Configuration",
                max_age: Duration::ZERO,
            })
            .await?;
        storage
            .kv_bucket(kv::BucketConfig {
                name: ELECTIONS_BUCKET,
                description: "Choria Async Jobs Leader Elections",
                max_age: Duration::from_secs(10),
            })
            .await?;
        Ok(storage)
    }
}

impl Storage {
    /// Fails with `Closed` once the client was closed.
    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::new(ErrorKind::Closed, "the client was closed"));
        }
        Ok(())
    }

    /// Flushes and closes the connection; every later call fails with `Closed`.
    pub(crate) async fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.nats
            .drain()
            .await
            .map_err(|e| Error::storage("closing the connection", e))
    }
}

pub(crate) fn storage_type(memory: bool) -> stream::StorageType {
    if memory {
        stream::StorageType::Memory
    } else {
        stream::StorageType::File
    }
}
