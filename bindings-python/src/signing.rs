// SPDX-License-Identifier: Apache-2.0
//! `TaskSigner` and `TaskVerifier`: ed25519 keys, converted.

use std::path::PathBuf;

use pyo3::prelude::*;

use crate::error::IntoPyResult as _;
use crate::task::PyTask;

/// A private key that signs every task a client enqueues.
#[pyclass(module = "jetjobs._native", name = "TaskSigner", frozen)]
pub(crate) struct PyTaskSigner {
    pub(crate) inner: jetjobs::TaskSigner,
}

#[pymethods]
impl PyTaskSigner {
    /// From a 32-byte seed or Go's 64-byte ed25519 private key.
    #[staticmethod]
    fn from_bytes(key: &[u8]) -> PyResult<Self> {
        jetjobs::TaskSigner::from_bytes(key)
            .py()
            .map(|inner| Self { inner })
    }

    /// From hex text (a seed or a private key); surrounding whitespace is ignored.
    #[staticmethod]
    fn from_hex(key: &str) -> PyResult<Self> {
        jetjobs::TaskSigner::from_hex(key)
            .py()
            .map(|inner| Self { inner })
    }

    /// From a file holding the hex seed.
    #[staticmethod]
    fn from_seed_file(path: PathBuf) -> PyResult<Self> {
        jetjobs::TaskSigner::from_seed_file(path)
            .py()
            .map(|inner| Self { inner })
    }

    /// The matching public key.
    fn verifier(&self) -> PyTaskVerifier {
        PyTaskVerifier {
            inner: self.inner.verifier(),
        }
    }

    fn __repr__(&self) -> &'static str {
        "TaskSigner(..)"
    }
}

/// A public key that tasks must be signed with.
#[pyclass(module = "jetjobs._native", name = "TaskVerifier", frozen)]
pub(crate) struct PyTaskVerifier {
    pub(crate) inner: jetjobs::TaskVerifier,
}

#[pymethods]
impl PyTaskVerifier {
    /// From the 32 raw public key bytes.
    #[staticmethod]
    fn from_bytes(key: &[u8]) -> PyResult<Self> {
        jetjobs::TaskVerifier::from_bytes(key)
            .py()
            .map(|inner| Self { inner })
    }

    /// From hex text; surrounding whitespace is ignored.
    #[staticmethod]
    fn from_hex(key: &str) -> PyResult<Self> {
        jetjobs::TaskVerifier::from_hex(key)
            .py()
            .map(|inner| Self { inner })
    }

    /// From a file holding the hex public key.
    #[staticmethod]
    fn from_file(path: PathBuf) -> PyResult<Self> {
        jetjobs::TaskVerifier::from_file(path)
            .py()
            .map(|inner| Self { inner })
    }

    /// The key as lower-case hex.
    fn to_hex(&self) -> String {
        self.inner.to_hex()
    }

    /// Checks the task's signature; raises `TaskNotSigned` or `SignatureInvalid`. An unsigned task
    /// passes only when `optional` is true.
    #[pyo3(signature = (task, optional=false))]
    fn verify(&self, task: &PyTask, optional: bool) -> PyResult<()> {
        self.inner.verify(&task.inner, optional).py()
    }

    fn __repr__(&self) -> String {
        format!("TaskVerifier({:?})", self.inner.to_hex())
    }
}
