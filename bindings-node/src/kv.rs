// SPDX-License-Identifier: Apache-2.0
//! `Kv`, `KvBucket` options, `KvEntry` and `KvWatch`: the core's key-value buckets. Values are
//! `Buffer`s; revisions are JS numbers (JetStream stream sequences, exact up to 2^53 - 1).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use jetjobs::CancellationToken;
use napi::Env;
use napi::bindgen_prelude::{Buffer, PromiseRaw};
use napi_derive::napi;
use tokio::sync::Mutex;

use crate::error::{check, duration_ms, integer, invalid_option, promise};

/// How a bucket is created when it does not exist yet (`jetjobs::KvBucket`); an existing bucket
/// is used as it is.
#[napi(object, object_to_js = false)]
pub struct KvBucketOptions {
    pub name: String,
    pub description: Option<String>,
    /// Values older than this are removed; 0 keeps them.
    pub max_age_ms: Option<f64>,
    /// Values kept per key, 1 to 64.
    pub history: Option<f64>,
    /// Allow `createWithTtl`: each key may carry its own time to live.
    pub per_key_ttl: Option<bool>,
}

impl KvBucketOptions {
    pub(crate) fn into_bucket(self) -> jetjobs::Result<jetjobs::KvBucket> {
        let mut bucket = jetjobs::KvBucket::new(self.name);
        if let Some(text) = self.description {
            bucket = bucket.description(text);
        }
        if let Some(ms) = self.max_age_ms {
            bucket = bucket.max_age(duration_ms("maxAgeMs", ms)?);
        }
        if let Some(n) = self.history {
            bucket = bucket.history(integer("history", n)?);
        }
        if self.per_key_ttl == Some(true) {
            bucket = bucket.per_key_ttl();
        }
        Ok(bucket)
    }
}

/// One revision of a key.
#[napi(object, object_from_js = false)]
pub struct KvEntry {
    pub key: String,
    /// Empty for deletes and purges.
    pub value: Buffer,
    /// The bucket-wide revision of this entry, the handle for compare-and-swap.
    pub revision: f64,
    #[napi(ts_type = "'put' | 'delete' | 'purge'")]
    pub operation: String,
}

impl From<jetjobs::KvEntry> for KvEntry {
    fn from(e: jetjobs::KvEntry) -> Self {
        Self {
            key: e.key,
            value: Buffer::from(e.value.to_vec()),
            revision: e.revision as f64,
            operation: match e.operation {
                jetjobs::KvOperation::Put => "put",
                jetjobs::KvOperation::Delete => "delete",
                jetjobs::KvOperation::Purge => "purge",
            }
            .into(),
        }
    }
}

/// A revision from JS: a whole number of at least 0.
fn to_revision(what: &str, n: f64) -> jetjobs::Result<u64> {
    u64::try_from(integer(what, n)?)
        .map_err(|_| invalid_option(format!("{what} must not be negative, got {n}")))
}

fn optional_revision(n: Option<f64>) -> jetjobs::Result<Option<u64>> {
    n.map(|n| to_revision("expectedRevision", n)).transpose()
}

/// A key-value bucket.
#[napi]
pub struct Kv {
    inner: jetjobs::Kv,
}

impl From<jetjobs::Kv> for Kv {
    fn from(inner: jetjobs::Kv) -> Self {
        Self { inner }
    }
}

#[napi]
impl Kv {
    /// The bucket name.
    #[napi(getter)]
    pub fn bucket(&self) -> String {
        self.inner.bucket().to_owned()
    }

    /// The latest value of `key`; null if it was never set, deleted or purged.
    #[napi(ts_return_type = "Promise<KvEntry | null>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        key: String,
    ) -> napi::Result<PromiseRaw<'env, Option<KvEntry>>> {
        let kv = self.inner.clone();
        promise(env, async move { kv.get(&key).await }, |e| {
            e.map(KvEntry::from)
        })
    }

    /// Stores `value` unless `key` holds a value; resolves to the new revision. `KeyExists`
    /// otherwise.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn create<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Buffer,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let (kv, value) = (self.inner.clone(), Bytes::copy_from_slice(&value));
        promise(env, async move { kv.create(&key, value).await }, |r| {
            r as f64
        })
    }

    /// Like `create`, and the key is removed after `ttlMs` (whole seconds, at least one) unless
    /// updated. The bucket must allow it (`perKeyTtl`).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn create_with_ttl<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Buffer,
        ttl_ms: f64,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let ttl = check(env, duration_ms("ttlMs", ttl_ms))?;
        let (kv, value) = (self.inner.clone(), Bytes::copy_from_slice(&value));
        promise(
            env,
            async move { kv.create_with_ttl(&key, value, ttl).await },
            |r| r as f64,
        )
    }

    /// Stores `value` whatever the key holds; resolves to the new revision.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn put<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Buffer,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let (kv, value) = (self.inner.clone(), Bytes::copy_from_slice(&value));
        promise(env, async move { kv.put(&key, value).await }, |r| r as f64)
    }

    /// Stores `value` only if the key's latest revision is `revision` (compare-and-swap);
    /// resolves to the new revision. `RevisionMismatch` if someone wrote first.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn update<'env>(
        &self,
        env: &'env Env,
        key: String,
        value: Buffer,
        revision: f64,
    ) -> napi::Result<PromiseRaw<'env, f64>> {
        let revision = check(env, to_revision("revision", revision))?;
        let (kv, value) = (self.inner.clone(), Bytes::copy_from_slice(&value));
        promise(
            env,
            async move { kv.update(&key, value, revision).await },
            |r| r as f64,
        )
    }

    /// Deletes `key` (a delete marker remains), only if its latest revision is
    /// `expectedRevision`, when given; `RevisionMismatch` otherwise.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(
        &self,
        env: &'env Env,
        key: String,
        expected_revision: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let expected = check(env, optional_revision(expected_revision))?;
        let kv = self.inner.clone();
        promise(env, async move { kv.delete(&key, expected).await }, |()| ())
    }

    /// Removes every revision of `key`, only if its latest revision is `expectedRevision`, when
    /// given.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn purge<'env>(
        &self,
        env: &'env Env,
        key: String,
        expected_revision: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let expected = check(env, optional_revision(expected_revision))?;
        let kv = self.inner.clone();
        promise(env, async move { kv.purge(&key, expected).await }, |()| ())
    }

    /// Current keys.
    #[napi(ts_return_type = "Promise<Array<string>>")]
    pub fn keys<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Vec<String>>> {
        let kv = self.inner.clone();
        promise(env, async move { kv.keys().await }, |keys| keys)
    }

    /// Changes of keys matching `filter` (`>` for all, `*` one token): from `revision` on when
    /// given, otherwise the latest entry of each key and then every change.
    #[napi(ts_return_type = "Promise<KvWatch>")]
    pub fn watch<'env>(
        &self,
        env: &'env Env,
        filter: String,
        revision: Option<f64>,
    ) -> napi::Result<PromiseRaw<'env, KvWatch>> {
        let from = check(
            env,
            revision.map(|n| to_revision("revision", n)).transpose(),
        )?;
        let kv = self.inner.clone();
        promise(
            env,
            async move { kv.watch(&filter, from).await },
            KvWatch::from,
        )
    }
}

type Entries = BoxStream<'static, jetjobs::Result<jetjobs::KvEntry>>;

/// A watch on a bucket, pulled one entry per `next()`; `lib/` makes it an async iterator.
#[napi]
pub struct KvWatch {
    stream: Arc<Mutex<Option<Entries>>>,
    closed: CancellationToken,
}

impl From<Entries> for KvWatch {
    fn from(stream: Entries) -> Self {
        Self {
            stream: Arc::new(Mutex::new(Some(stream))),
            closed: CancellationToken::new(),
        }
    }
}

#[napi]
impl KvWatch {
    /// The next entry, or null once the watch is closed.
    #[napi(ts_return_type = "Promise<KvEntry | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<KvEntry>>> {
        let (stream, closed) = (self.stream.clone(), self.closed.clone());
        let next = async move {
            let mut guard = stream.lock().await;
            let Some(entries) = guard.as_mut() else {
                return Ok(None);
            };
            let next = tokio::select! {
                biased;
                _ = closed.cancelled() => None,
                next = entries.next() => next,
            };
            if next.is_none() {
                // Stop watching now rather than when JS collects this object.
                *guard = None;
            }
            next.transpose().map(|e| e.map(KvEntry::from))
        };
        promise(env, next, |e| e)
    }

    /// Ends the watch; a pending and every later `next()` resolve to null.
    #[napi]
    pub fn close(&self) {
        self.closed.cancel();
        if let Ok(mut guard) = self.stream.try_lock() {
            *guard = None;
        }
    }
}
