// SPDX-License-Identifier: Apache-2.0
//! `Governor`, `Lease`, `GovernorManager`: choria's network-wide concurrency governor, converted.
//! `Governor.slot()` (an `async with` that always releases) is sugar in `jetjobs/_governor.py`.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyDelta, PyString};

use crate::client::{PyCancellationToken, PyClient};
use crate::convert::{self, Time};
use crate::error::IntoPyResult as _;
use crate::retry::PyRetryPolicy;
use crate::runtime;

/// A held slot of a governor; `release()` gives it back.
#[pyclass(module = "jetjobs._native", name = "Lease", frozen)]
pub(crate) struct PyLease {
    /// `None` only while dropping.
    inner: Option<jetjobs::Lease>,
    pid: u32,
}

impl PyLease {
    fn new(inner: jetjobs::Lease) -> Self {
        Self {
            inner: Some(inner),
            pid: std::process::id(),
        }
    }
}

impl Drop for PyLease {
    fn drop(&mut self) {
        // The core gives a dropped lease back in the background on the current tokio runtime;
        // Python drops it on a thread without one, so enter ours (not in a forked child, where
        // the connection is the parent's).
        let lease = self.inner.take();
        if runtime::same_process(self.pid).is_ok() {
            let _runtime = runtime::runtime().enter();
            drop(lease);
        }
    }
}

#[pymethods]
impl PyLease {
    /// The lease's id: its message's stream sequence.
    #[getter]
    fn seq(&self) -> u64 {
        self.inner.as_ref().map_or(0, jetjobs::Lease::seq)
    }

    /// Gives the slot back (unless the governor keeps leases for the period); a second call does
    /// nothing. Raises `LeaseNotFound` if it was evicted meanwhile.
    fn release<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        runtime::same_process(self.pid)?;
        let lease = self.inner.clone();
        runtime::future_into_py(py, async move {
            match lease {
                Some(lease) => lease.release().await.py(),
                None => Ok(()),
            }
        })
    }

    fn __repr__(&self) -> String {
        format!("Lease(seq={})", self.seq())
    }
}

/// Campaigns for slots of one governor (choria's `Governor`).
#[pyclass(module = "jetjobs._native", name = "Governor", frozen, subclass)]
pub(crate) struct PyGovernor {
    inner: jetjobs::Governor,
    name: String,
    pid: u32,
}

impl PyGovernor {
    /// The core governor, refused in a forked child (its connection is the parent's).
    pub(crate) fn live(&self) -> PyResult<jetjobs::Governor> {
        runtime::same_process(self.pid).map(|()| self.inner.clone())
    }
}

#[pymethods]
impl PyGovernor {
    /// Campaigns for governor `name` on `subject` (default: `$GOVERNOR.campaign.<name>`),
    /// trying every `interval` (default 250 ms) while it is full, or by `backoff` (a
    /// `RetryPolicy` or its name) after the first retry; `without_leaving` keeps leases until
    /// the governor's max age ("max per period"). With `lifecycle_component`, choria's lifecycle
    /// events `enter`, `exit` and `timeouts` are published on
    /// `choria.lifecycle.event.governor.<component>`, with `lifecycle_identity` (default: each
    /// holder's name) as their identity.
    #[new]
    #[pyo3(signature = (
        client, name, *, subject=None, interval=None, backoff=None, without_leaving=false,
        lifecycle_component=None, lifecycle_identity=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        client: &PyClient,
        name: &str,
        subject: Option<String>,
        interval: Option<&Bound<'_, PyAny>>,
        backoff: Option<&Bound<'_, PyAny>>,
        without_leaving: bool,
        lifecycle_component: Option<String>,
        lifecycle_identity: Option<String>,
    ) -> PyResult<Self> {
        let mut inner = jetjobs::Governor::new(client.live()?, name).py()?;
        if let Some(subject) = subject {
            inner = inner.subject(subject);
        }
        if let Some(interval) = interval {
            inner = inner.interval(convert::duration(interval)?);
        }
        if let Some(policy) = backoff {
            inner = inner.backoff(PyRetryPolicy::extract_any(policy)?);
        }
        if without_leaving {
            inner = inner.without_leaving();
        }
        if let Some(component) = lifecycle_component {
            inner = inner.lifecycle(component).py()?;
        }
        if let Some(identity) = lifecycle_identity {
            inner = inner.lifecycle_identity(identity);
        }
        Ok(Self {
            inner,
            name: name.to_owned(),
            pid: client.pid,
        })
    }

    /// The governor's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// One try: a `Lease`, or `None` while the governor is full.
    fn try_start<'py>(&self, py: Python<'py>, holder: String) -> PyResult<Bound<'py, PyAny>> {
        let governor = self.live()?;
        runtime::future_into_py(py, async move {
            Ok(governor.try_start(&holder).await.py()?.map(PyLease::new))
        })
    }

    /// Campaigns until a slot is free; raises `Timeout` once `max_wait` passes or `cancel` is
    /// cancelled. Only "full" is tried again; any other error is final.
    #[pyo3(signature = (holder, *, max_wait=None, cancel=None))]
    fn start<'py>(
        &self,
        py: Python<'py>,
        holder: String,
        max_wait: Option<&Bound<'_, PyAny>>,
        cancel: Option<&PyCancellationToken>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let governor = self.live()?;
        let max_wait = max_wait.map(convert::duration).transpose()?;
        let cancel = cancel.map(|c| c.inner.clone()).unwrap_or_default();
        runtime::future_into_py(py, async move {
            governor
                .start(&holder, max_wait, &cancel)
                .await
                .py()
                .map(PyLease::new)
        })
    }

    fn __repr__(&self) -> String {
        format!("Governor(name={:?})", self.name)
    }
}

/// Creates, changes and inspects a governor (choria's `Manager`).
#[pyclass(module = "jetjobs._native", name = "GovernorManager", frozen)]
pub(crate) struct PyGovernorManager {
    inner: Arc<Mutex<jetjobs::GovernorManager>>,
    pid: u32,
}

impl PyGovernorManager {
    fn new(inner: jetjobs::GovernorManager, pid: u32) -> Self {
        Self {
            inner: Arc::new(Mutex::new(inner)),
            pid,
        }
    }

    /// `manager` reporting evictions as `lifecycle_component`, if given.
    fn reporting(
        manager: jetjobs::GovernorManager,
        lifecycle_component: Option<String>,
        pid: u32,
    ) -> jetjobs::Result<Self> {
        let manager = match lifecycle_component {
            Some(component) => manager.lifecycle(component)?,
            None => manager,
        };
        Ok(Self::new(manager, pid))
    }

    fn get(&self) -> jetjobs::GovernorManager {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn live(&self) -> PyResult<jetjobs::GovernorManager> {
        runtime::same_process(self.pid).map(|()| self.get())
    }

    /// Runs a setting change on a copy, then keeps the updated manager.
    fn change<'py, F, Fut>(&self, py: Python<'py>, f: F) -> PyResult<Bound<'py, PyAny>>
    where
        F: FnOnce(jetjobs::GovernorManager) -> Fut + Send + 'static,
        Fut: Future<Output = jetjobs::Result<jetjobs::GovernorManager>> + Send + 'static,
    {
        let (manager, slot) = (self.live()?, self.inner.clone());
        runtime::future_into_py(py, async move {
            let updated = f(manager).await.py()?;
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = updated;
            Ok(())
        })
    }
}

#[pymethods]
impl PyGovernorManager {
    /// Governor `name` with at most `limit` holders, leases evicted after `max_age` (zero:
    /// never, else at least 100 ms), on `subject` (default `$GOVERNOR.campaign.<name>`). Created
    /// if it does not exist; an existing one is updated to these settings. With
    /// `lifecycle_component`, `evict` publishes choria's `eviction` lifecycle event.
    #[staticmethod]
    #[pyo3(signature = (
        client, name, limit, *, max_age=None, replicas=1, subject=None, lifecycle_component=None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create<'py>(
        py: Python<'py>,
        client: &PyClient,
        name: String,
        limit: u64,
        max_age: Option<&Bound<'_, PyAny>>,
        replicas: usize,
        subject: Option<String>,
        lifecycle_component: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (client, pid) = (client.live()?.clone(), client.pid);
        let max_age = max_age
            .map(convert::duration)
            .transpose()?
            .unwrap_or_default();
        runtime::future_into_py(py, async move {
            jetjobs::GovernorManager::create(
                &client,
                &name,
                limit,
                max_age,
                replicas,
                subject.as_deref(),
            )
            .await
            .and_then(|m| Self::reporting(m, lifecycle_component, pid))
            .py()
        })
    }

    /// A per-key governor (a jetjobs extension, not choria's): at most `per_key` holders for
    /// each key, e.g. per tenant, in one stream. Routes use it with `governor_key=`. An existing
    /// governor of that name is used as it is.
    #[staticmethod]
    #[pyo3(signature = (
        client, name, per_key, *, max_age=None, replicas=1, lifecycle_component=None,
    ))]
    fn create_per_key<'py>(
        py: Python<'py>,
        client: &PyClient,
        name: String,
        per_key: u64,
        max_age: Option<&Bound<'_, PyAny>>,
        replicas: usize,
        lifecycle_component: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (client, pid) = (client.live()?.clone(), client.pid);
        let max_age = max_age
            .map(convert::duration)
            .transpose()?
            .unwrap_or_default();
        runtime::future_into_py(py, async move {
            jetjobs::GovernorManager::create_per_key(&client, &name, per_key, max_age, replicas)
                .await
                .and_then(|m| Self::reporting(m, lifecycle_component, pid))
                .py()
        })
    }

    /// The existing governor `name`, never created; raises `GovernorNotFound`.
    #[staticmethod]
    #[pyo3(signature = (client, name, *, lifecycle_component=None))]
    fn load<'py>(
        py: Python<'py>,
        client: &PyClient,
        name: String,
        lifecycle_component: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (client, pid) = (client.live()?.clone(), client.pid);
        runtime::future_into_py(py, async move {
            jetjobs::GovernorManager::load(&client, &name)
                .await
                .and_then(|m| Self::reporting(m, lifecycle_component, pid))
                .py()
        })
    }

    /// Names of the governors of `collective` (subjects `<collective>.governor.*`), sorted.
    #[staticmethod]
    fn list<'py>(
        py: Python<'py>,
        client: &PyClient,
        collective: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = client.live()?.clone();
        runtime::future_into_py(py, async move {
            jetjobs::GovernorManager::list(&client, &collective)
                .await
                .py()
        })
    }

    /// The subject choria uses for governor `name` of `collective`:
    /// `<collective>.governor.<name>`.
    #[staticmethod]
    fn collective_subject(collective: &str, name: &str) -> String {
        jetjobs::collective_subject(collective, name)
    }

    /// The governor's name.
    #[getter]
    fn name(&self) -> String {
        self.get().name().to_owned()
    }

    /// Most holders at once.
    #[getter]
    fn limit(&self) -> u64 {
        self.get().limit()
    }

    /// How long a lease lasts at most (zero: until released).
    #[getter]
    fn max_age<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDelta>> {
        convert::timedelta(py, self.get().max_age())
    }

    /// The campaign subject.
    #[getter]
    fn subject<'py>(&self, py: Python<'py>) -> Bound<'py, PyString> {
        PyString::new(py, self.get().subject())
    }

    /// The stream's replicas.
    #[getter]
    fn replicas(&self) -> usize {
        self.get().replicas()
    }

    /// Changes the limit for every holder at once.
    fn set_limit<'py>(&self, py: Python<'py>, limit: u64) -> PyResult<Bound<'py, PyAny>> {
        self.change(py, move |mut m| async move {
            m.set_limit(limit).await.map(|()| m)
        })
    }

    /// Changes how long leases last at most.
    fn set_max_age<'py>(
        &self,
        py: Python<'py>,
        max_age: &Bound<'_, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let max_age = convert::duration(max_age)?;
        self.change(py, move |mut m| async move {
            m.set_max_age(max_age).await.map(|()| m)
        })
    }

    /// Changes the campaign subject.
    fn set_subject<'py>(&self, py: Python<'py>, subject: String) -> PyResult<Bound<'py, PyAny>> {
        self.change(py, move |mut m| async move {
            m.set_subject(&subject).await.map(|()| m)
        })
    }

    /// Removes every lease.
    fn reset<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.live()?;
        runtime::future_into_py(py, async move { manager.reset().await.py() })
    }

    /// Leases held now.
    fn active<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.live()?;
        runtime::future_into_py(py, async move { manager.active().await.py() })
    }

    /// When the newest lease was taken; `None` if none ever was.
    fn last_active<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.live()?;
        runtime::future_into_py(py, async move {
            Ok(manager.last_active().await.py()?.map(|t| Time(t.into())))
        })
    }

    /// Every lease as `(seq, holder, taken_at)`.
    fn leases<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.live()?;
        runtime::future_into_py(py, async move {
            Ok(manager
                .leases()
                .await
                .py()?
                .into_iter()
                .map(|(seq, holder, at)| (seq, holder, Time(at.into())))
                .collect::<Vec<_>>())
        })
    }

    /// Removes lease `seq`, returning its holder's name; raises `LeaseNotFound` if there is none.
    /// Publishes choria's `eviction` event if the manager has a lifecycle component.
    fn evict<'py>(&self, py: Python<'py>, seq: u64) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.live()?;
        runtime::future_into_py(py, async move { manager.evict(seq).await.py() })
    }

    /// Deletes the governor and its leases.
    fn delete<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let manager = self.live()?;
        runtime::future_into_py(py, async move { manager.delete().await.py() })
    }

    fn __repr__(&self) -> String {
        let m = self.get();
        format!(
            "GovernorManager(name={:?}, limit={}, max_age={:?}, subject={:?})",
            m.name(),
            m.limit(),
            m.max_age(),
            m.subject()
        )
    }
}
