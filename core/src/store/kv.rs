// SPDX-License-Identifier: Apache-2.0
//! Key-value buckets with the primitives coordination needs: create-if-absent, compare-and-swap
//! by revision, delete and purge with an expected revision, watches from a revision and per-key
//! TTLs (nats-server 2.11+).

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;

use crate::error::{Error, ErrorKind, Result};
use crate::store::{Storage, storage_type};

/// How a bucket is created when it does not exist yet (an existing bucket is used as it is).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let bucket = jetjobs::KvBucket::new("LOCKS").max_age(Duration::from_secs(60)).per_key_ttl();
/// assert_eq!(bucket.name(), "LOCKS");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KvBucket {
    name: String,
    description: String,
    max_age: Duration,
    history: i64,
    per_key_ttl: bool,
}

impl KvBucket {
    /// A bucket keeping one value per key forever, without per-key TTLs.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            max_age: Duration::ZERO,
            history: 1,
            per_key_ttl: false,
        }
    }

    /// The bucket name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A description stored with the bucket.
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Values older than this are removed; zero keeps them.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }

    /// Values kept per key, 1 to 64.
    pub fn history(mut self, n: i64) -> Self {
        self.history = n;
        self
    }

    /// Allow [`Kv::create_with_ttl`]: each key may carry its own time to live.
    pub fn per_key_ttl(mut self) -> Self {
        self.per_key_ttl = true;
        self
    }
}

/// Internal bucket definitions (asyncjobs' own buckets).
pub(crate) struct BucketConfig {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) max_age: Duration,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOperation {
    /// A value was stored.
    Put,
    /// The key was deleted (a marker remains).
    Delete,
    /// The key's history was purged.
    Purge,
}

/// One revision of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KvEntry {
    /// The key.
    pub key: String,
    /// The value; empty for deletes and purges.
    pub value: Bytes,
    /// The bucket-wide revision of this entry, the handle for compare-and-swap.
    pub revision: u64,
    /// What this entry records.
    pub operation: KvOperation,
}

impl From<kv::Entry> for KvEntry {
    fn from(e: kv::Entry) -> Self {
        Self {
            key: e.key,
            value: e.value,
            revision: e.revision,
            operation: match e.operation {
                Operation::Put => KvOperation::Put,
                Operation::Delete => KvOperation::Delete,
                Operation::Purge => KvOperation::Purge,
            },
        }
    }
}

/// A key-value bucket; cheap to clone.
#[derive(Clone)]
pub struct Kv {
    store: kv::Store,
    bucket: String,
    /// For writes `kv::Store` has no method for: a compare-and-swap that also sets a TTL.
    js: async_nats::jetstream::Context,
}

impl Kv {
    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The latest value of `key`; `None` if it was never set, deleted or purged.
    pub async fn get(&self, key: &str) -> Result<Option<KvEntry>> {
        let entry = self
            .store
            .entry(key)
            .await
            .map_err(|e| self.error(format!("reading {key}"), e))?;
        Ok(entry
            .map(KvEntry::from)
            .filter(|e| e.operation == KvOperation::Put))
    }

    /// Stores `value` unless `key` holds a value; returns the new revision. Fails with `KeyExists`.
    pub async fn create(&self, key: &str, value: Bytes) -> Result<u64> {
        self.store
            .create(key, value)
            .await
            .map_err(|e| self.create_error(key, e))
    }

    /// Like [`Kv::create`], and the key is removed after `ttl` (whole seconds, at least one) unless
    /// updated. The bucket must allow it ([`KvBucket::per_key_ttl`]).
    pub async fn create_with_ttl(&self, key: &str, value: Bytes, ttl: Duration) -> Result<u64> {
        if ttl < Duration::from_secs(1) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a key's time to live is at least one second",
            ));
        }
        self.store
            .create_with_ttl(key, value, ttl)
            .await
            .map_err(|e| self.create_error(key, e))
    }

    /// Stores `value` whatever the key holds; returns the new revision.
    pub async fn put(&self, key: &str, value: Bytes) -> Result<u64> {
        self.store
            .put(key, value)
            .await
            .map_err(|e| self.error(format!("writing {key}"), e))
    }

    /// Stores `value` only if the key's latest revision is `revision` (compare-and-swap); returns
    /// the new revision. Fails with `RevisionMismatch` if someone wrote first.
    pub async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64> {
        self.store
            .update(key, value, revision)
            .await
            .map_err(|e| self.update_error(key, e))
    }

    /// Like [`Kv::update`], and the key is removed after `ttl` (whole seconds, at least one)
    /// unless updated again: a lease that only its holder can extend.
    pub(crate) async fn update_with_ttl(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
        ttl: Duration,
    ) -> Result<u64> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            revision.to_string().as_str(),
        );
        headers.insert(
            async_nats::header::NATS_MESSAGE_TTL,
            ttl.as_secs().max(1).to_string().as_str(),
        );
        let subject = format!("$KV.{}.{key}", self.bucket);
        let ack = self
            .js
            .publish_with_headers(subject, headers, value)
            .await
            .map_err(|e| self.error(format!("writing {key}"), e))?
            .await;
        match ack {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(Error::with_source(
                ErrorKind::RevisionMismatch,
                format!("{key} changed in the {} bucket", self.bucket),
                e,
            )),
            Err(e) => Err(self.error(format!("writing {key}"), e)),
        }
    }

    /// Deletes `key` (a delete marker remains), only if its latest revision is `expected`, when
    /// given. Fails with `RevisionMismatch` otherwise.
    pub async fn delete(&self, key: &str, expected: Option<u64>) -> Result<()> {
        self.store
            .delete_expect_revision(key, expected)
            .await
            .map_err(|e| self.update_error(key, e))
    }

    /// Removes every revision of `key`, only if its latest revision is `expected`, when given.
    pub async fn purge(&self, key: &str, expected: Option<u64>) -> Result<()> {
        self.store
            .purge_expect_revision(key, expected)
            .await
            .map_err(|e| self.update_error(key, e))
    }

    /// The bucket's latest revision (0 when empty).
    pub(crate) async fn last_revision(&self) -> Result<u64> {
        let status = self
            .store
            .status()
            .await
            .map_err(|e| self.error("reading the status", e))?;
        Ok(status.info.state.last_sequence)
    }

    /// Current keys.
    pub async fn keys(&self) -> Result<Vec<String>> {
        let mut keys = self
            .store
            .keys()
            .await
            .map_err(|e| self.error("listing keys", e))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            out.push(key.map_err(|e| self.error("listing keys", e))?);
        }
        Ok(out)
    }

    /// Changes of keys matching `filter` (`>` for all, `*` matches one token): from `revision`
    /// on when given, otherwise the latest entry of each key and then every change.
    pub async fn watch(
        &self,
        filter: &str,
        revision: Option<u64>,
    ) -> Result<BoxStream<'static, Result<KvEntry>>> {
        let watch = match revision {
            Some(revision) => self.store.watch_from_revision(filter, revision).await,
            None => self.store.watch_with_history(filter).await,
        }
        .map_err(|e| self.error(format!("watching {filter}"), e))?;
        let bucket = self.bucket.clone();
        Ok(watch
            .map(move |entry| {
                entry
                    .map(KvEntry::from)
                    .map_err(|e| Error::storage(format!("watching the {bucket} bucket"), e))
            })
            .boxed())
    }

    fn error(&self, what: impl std::fmt::Display, e: impl Into<crate::error::BoxError>) -> Error {
        Error::storage(format!("{what} in the {} bucket", self.bucket), e)
    }

    fn create_error(&self, key: &str, e: kv::CreateError) -> Error {
        match e.kind() {
            CreateErrorKind::AlreadyExists => Error::new(
                ErrorKind::KeyExists,
                format!("key {key} already exists in the {} bucket", self.bucket),
            ),
            CreateErrorKind::InvalidKey => invalid_key(key),
            _ => self.error(format!("creating {key}"), e),
        }
    }

    fn update_error(&self, key: &str, e: kv::UpdateError) -> Error {
        match e.kind() {
            UpdateErrorKind::WrongLastRevision => Error::with_source(
                ErrorKind::RevisionMismatch,
                format!("{key} changed in the {} bucket", self.bucket),
                e,
            ),
            UpdateErrorKind::InvalidKey => invalid_key(key),
            _ => self.error(format!("writing {key}"), e),
        }
    }
}

fn invalid_key(key: &str) -> Error {
    Error::new(ErrorKind::InvalidOption, format!("invalid key {key:?}"))
}

impl Storage {
    /// Opens the bucket, creating it as `config` says if it does not exist.
    pub(crate) async fn open_kv(&self, config: &KvBucket) -> Result<Kv> {
        self.ensure_open()?;
        if let Ok(store) = self.js.get_key_value(&config.name).await {
            return Ok(Kv {
                store,
                bucket: config.name.clone(),
                js: self.js.clone(),
            });
        }
        let store = self
            .js
            .create_key_value(kv::Config {
                bucket: config.name.clone(),
                description: config.description.clone(),
                history: config.history,
                max_age: config.max_age,
                storage: storage_type(self.settings.memory),
                num_replicas: self.settings.replicas,
                limit_markers: config.per_key_ttl.then_some(Duration::from_secs(1)),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::storage(format!("preparing the {} bucket", config.name), e))?;
        Ok(Kv {
            store,
            bucket: config.name.clone(),
            js: self.js.clone(),
        })
    }

    /// Creates one of asyncjobs' buckets unless it exists (never updated).
    pub(crate) async fn kv_bucket(&self, config: BucketConfig) -> Result<Kv> {
        self.open_kv(
            &KvBucket::new(config.name)
                .description(config.description)
                .max_age(config.max_age),
        )
        .await
    }
}
