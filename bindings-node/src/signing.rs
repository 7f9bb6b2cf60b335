// SPDX-License-Identifier: Apache-2.0
//! `TaskSigner` and `TaskVerifier`: the core's ed25519 keys, byte-compatible with asyncjobs.

use napi::Env;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::error::check;
use crate::task::Task;

/// A private key that signs tasks on enqueue.
#[napi]
pub struct TaskSigner {
    pub(crate) inner: jetjobs::TaskSigner,
}

#[napi]
impl TaskSigner {
    /// From a 32-byte seed or Go's 64-byte `ed25519.PrivateKey`.
    #[napi(factory)]
    pub fn from_bytes(env: &Env, key: Buffer) -> napi::Result<Self> {
        check(env, jetjobs::TaskSigner::from_bytes(&key)).map(|inner| Self { inner })
    }

    /// From hex text (a seed or a private key); surrounding whitespace is ignored.
    #[napi(factory)]
    pub fn from_hex(env: &Env, hex: String) -> napi::Result<Self> {
        check(env, jetjobs::TaskSigner::from_hex(&hex)).map(|inner| Self { inner })
    }

    /// From a file holding the hex seed, as asyncjobs' `TaskSigningSeedFile`.
    #[napi(factory)]
    pub fn from_seed_file(env: &Env, path: String) -> napi::Result<Self> {
        check(env, jetjobs::TaskSigner::from_seed_file(path)).map(|inner| Self { inner })
    }

    /// The matching public key.
    #[napi]
    pub fn verifier(&self) -> TaskVerifier {
        TaskVerifier {
            inner: self.inner.verifier(),
        }
    }

    /// Signs `task` in place; its queue must be set and it must be unsigned.
    #[napi]
    pub fn sign(&self, env: &Env, task: &mut Task) -> napi::Result<()> {
        check(env, self.inner.sign(&mut task.inner))
    }
}

/// A public key that tasks must be signed with.
#[napi]
pub struct TaskVerifier {
    pub(crate) inner: jetjobs::TaskVerifier,
}

#[napi]
impl TaskVerifier {
    /// From the 32 raw public key bytes.
    #[napi(factory)]
    pub fn from_bytes(env: &Env, key: Buffer) -> napi::Result<Self> {
        check(env, jetjobs::TaskVerifier::from_bytes(&key)).map(|inner| Self { inner })
    }

    /// From hex text; surrounding whitespace is ignored.
    #[napi(factory)]
    pub fn from_hex(env: &Env, hex: String) -> napi::Result<Self> {
        check(env, jetjobs::TaskVerifier::from_hex(&hex)).map(|inner| Self { inner })
    }

    /// From a file holding the hex public key.
    #[napi(factory)]
    pub fn from_file(env: &Env, path: String) -> napi::Result<Self> {
        check(env, jetjobs::TaskVerifier::from_file(path)).map(|inner| Self { inner })
    }

    /// The key as lower-case hex.
    #[napi]
    pub fn to_hex(&self) -> String {
        self.inner.to_hex()
    }

    /// Checks `task`'s signature; an unsigned task passes only when `optional` is set.
    #[napi]
    pub fn verify(&self, env: &Env, task: &Task, optional: Option<bool>) -> napi::Result<()> {
        check(
            env,
            self.inner.verify(&task.inner, optional.unwrap_or(false)),
        )
    }
}
