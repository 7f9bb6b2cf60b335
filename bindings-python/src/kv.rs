// SPDX-License-Identifier: Apache-2.0
//! `KvBucket`, `Kv`, `KvEntry`, `KvWatch`: the core's key-value layer, converted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDelta};

use crate::convert;
use crate::error::IntoPyResult as _;
use crate::runtime;

/// How a bucket is created when it does not exist yet (an existing bucket is used as it is).
#[pyclass(module = "jetjobs._native", name = "KvBucket", frozen)]
#[derive(Clone)]
pub(crate) struct PyKvBucket {
    name: String,
    description: String,
    max_age: Duration,
    history: i64,
    per_key_ttl: bool,
}

impl PyKvBucket {
    pub(crate) fn to_core(&self) -> jetjobs::KvBucket {
        let mut bucket = jetjobs::KvBucket::new(self.name.clone())
            .description(self.description.clone())
            .max_age(self.max_age)
            .history(self.history);
        if self.per_key_ttl {
            bucket = bucket.per_key_ttl();
        }
        bucket
    }
}

#[pymethods]
impl PyKvBucket {
    /// A bucket keeping `history` values per key (1 to 64), values older than `max_age` removed
    /// (none: kept), and `per_key_ttl` allowing `Kv.create_with_ttl`.
    #[new]
    #[pyo3(signature = (name, *, description="", max_age=None, history=1, per_key_ttl=false))]
    fn py_new(
        name: String,
        description: &str,
        max_age: Option<&Bound<'_, PyAny>>,
        history: i64,
        per_key_ttl: bool,
    ) -> PyResult<Self> {
        Ok(Self {
            name,
            description: description.to_owned(),
            max_age: max_age
                .map(convert::duration)
                .transpose()?
                .unwrap_or_default(),
            history,
            per_key_ttl,
        })
    }

    /// The bucket name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// A description stored with the bucket.
    #[getter]
    fn description(&self) -> &str {
        &self.description
    }

    /// Values older than this are removed; zero keeps them.
    #[getter]
    fn max_age<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.max_age)
    }

    /// Values kept per key.
    #[getter]
    fn history(&self) -> i64 {
        self.history
    }

    /// True if each key may carry its own time to live.
    #[getter]
    fn per_key_ttl(&self) -> bool {
        self.per_key_ttl
    }

    fn __repr__(&self) -> String {
        format!(
            "KvBucket(name={:?}, max_age={:?}, history={}, per_key_ttl={})",
            self.name, self.max_age, self.history, self.per_key_ttl
        )
    }
}

/// One revision of a key.
#[pyclass(module = "jetjobs._native", name = "KvEntry", frozen)]
pub(crate) struct PyKvEntry {
    inner: jetjobs::KvEntry,
}

#[pymethods]
impl PyKvEntry {
    /// The key.
    #[getter]
    fn key(&self) -> &str {
        &self.inner.key
    }

    /// The value; empty for deletes and purges.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.value)
    }

    /// The bucket-wide revision of this entry, the handle for compare-and-swap.
    #[getter]
    fn revision(&self) -> u64 {
        self.inner.revision
    }

    /// What this entry records: `"put"`, `"delete"` or `"purge"`.
    #[getter]
    fn operation(&self) -> &'static str {
        match self.inner.operation {
            jetjobs::KvOperation::Put => "put",
            jetjobs::KvOperation::Delete => "delete",
            jetjobs::KvOperation::Purge => "purge",
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "KvEntry(key={:?}, revision={}, operation={:?}, value={} bytes)",
            self.inner.key,
            self.inner.revision,
            self.operation(),
            self.inner.value.len()
        )
    }
}

/// A key-value bucket; cheap to share between tasks and threads.
#[pyclass(module = "jetjobs._native", name = "Kv", frozen)]
pub(crate) struct PyKv {
    inner: jetjobs::Kv,
    /// The process that connected it; a forked child must connect again.
    pid: u32,
}

impl PyKv {
    pub(crate) fn new(inner: jetjobs::Kv, pid: u32) -> Self {
        Self { inner, pid }
    }

    fn live(&self) -> PyResult<jetjobs::Kv> {
        runtime::same_process(self.pid).map(|()| self.inner.clone())
    }
}

#[pymethods]
impl PyKv {
    /// The bucket name.
    #[getter]
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }

    /// The latest value of `key`; `None` if it was never set, deleted or purged.
    fn get<'py>(&self, py: Python<'py>, key: String) -> PyResult<Bound<'py, PyAny>> {
        let kv = self.live()?;
        runtime::future_into_py(py, async move {
            kv.get(&key)
                .await
                .py()
                .map(|e| e.map(|inner| PyKvEntry { inner }))
        })
    }

    /// Stores `value` unless `key` holds a value; returns the new revision. Raises `KeyExists`.
    fn create<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let (kv, value) = (self.live()?, Bytes::copy_from_slice(value));
        runtime::future_into_py(py, async move { kv.create(&key, value).await.py() })
    }

    /// Like `create`, and the key is removed after `ttl` (whole seconds, at least one) unless
    /// updated. The bucket must allow it (`KvBucket(per_key_ttl=True)`).
    fn create_with_ttl<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: &[u8],
        ttl: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (kv, value, ttl) = (
            self.live()?,
            Bytes::copy_from_slice(value),
            convert::duration(ttl)?,
        );
        runtime::future_into_py(py, async move {
            kv.create_with_ttl(&key, value, ttl).await.py()
        })
    }

    /// Stores `value` whatever the key holds; returns the new revision.
    fn put<'py>(&self, py: Python<'py>, key: String, value: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let (kv, value) = (self.live()?, Bytes::copy_from_slice(value));
        runtime::future_into_py(py, async move { kv.put(&key, value).await.py() })
    }

    /// Stores `value` only if the key's latest revision is `revision` (compare-and-swap); returns
    /// the new revision. Raises `RevisionMismatch` if someone wrote first.
    fn update<'py>(
        &self,
        py: Python<'py>,
        key: String,
        value: &[u8],
        revision: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (kv, value) = (self.live()?, Bytes::copy_from_slice(value));
        runtime::future_into_py(
            py,
            async move { kv.update(&key, value, revision).await.py() },
        )
    }

    /// Deletes `key` (a delete marker remains), only if its latest revision is
    /// `expected_revision`, when given. Raises `RevisionMismatch` otherwise.
    #[pyo3(signature = (key, expected_revision=None))]
    fn delete<'py>(
        &self,
        py: Python<'py>,
        key: String,
        expected_revision: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kv = self.live()?;
        runtime::future_into_py(
            py,
            async move { kv.delete(&key, expected_revision).await.py() },
        )
    }

    /// Removes every revision of `key`, only if its latest revision is `expected_revision`, when
    /// given. Raises `RevisionMismatch` otherwise.
    #[pyo3(signature = (key, expected_revision=None))]
    fn purge<'py>(
        &self,
        py: Python<'py>,
        key: String,
        expected_revision: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let kv = self.live()?;
        runtime::future_into_py(
            py,
            async move { kv.purge(&key, expected_revision).await.py() },
        )
    }

    /// Current keys.
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let kv = self.live()?;
        runtime::future_into_py(py, async move { kv.keys().await.py() })
    }

    /// Changes of keys matching `filter` (`>` for all, `*` matches one token), as an async
    /// iterator of `KvEntry`: from `revision` on when given, otherwise the latest entry of each
    /// key and then every change. Resolves once the watch is established.
    #[pyo3(signature = (filter=">", revision=None))]
    fn watch<'py>(
        &self,
        py: Python<'py>,
        filter: &str,
        revision: Option<u64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (kv, filter) = (self.live()?, filter.to_owned());
        runtime::future_into_py(py, async move {
            kv.watch(&filter, revision).await.py().map(PyKvWatch::new)
        })
    }

    fn __repr__(&self) -> String {
        format!("Kv(bucket={:?})", self.inner.bucket())
    }
}

type Entries = BoxStream<'static, jetjobs::Result<jetjobs::KvEntry>>;

/// A watch on a bucket, as an async iterator of `KvEntry`; `close()` ends it.
#[pyclass(module = "jetjobs._native", name = "KvWatch", frozen)]
pub(crate) struct PyKvWatch {
    stream: Arc<tokio::sync::Mutex<Option<Entries>>>,
    closed: jetjobs::CancellationToken,
}

impl PyKvWatch {
    fn new(stream: Entries) -> Self {
        Self {
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
            closed: jetjobs::CancellationToken::new(),
        }
    }
}

#[pymethods]
impl PyKvWatch {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next entry; raises the storage error if the watch fails.
    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (stream, closed) = (self.stream.clone(), self.closed.clone());
        runtime::future_into_py(py, async move {
            let mut guard = stream.lock().await;
            let next = match guard.as_mut() {
                None => None,
                Some(entries) => tokio::select! {
                    next = entries.next() => next,
                    _ = closed.cancelled() => None,
                },
            };
            match next {
                Some(entry) => entry.py().map(|inner| PyKvEntry { inner }),
                None => {
                    *guard = None;
                    Err(PyStopAsyncIteration::new_err(()))
                }
            }
        })
    }

    /// Ends the watch; iteration stops.
    fn close(&self) {
        self.closed.cancel();
        if let Ok(mut guard) = self.stream.try_lock() {
            *guard = None;
        }
    }
}
