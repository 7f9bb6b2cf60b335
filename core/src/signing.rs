// SPDX-License-Identifier: Apache-2.0
//! ed25519 task signatures, byte-compatible with asyncjobs: the signature is the lower-case hex of
//! `ed25519(seed, Task::signature_message())`.

use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::error::{Error, ErrorKind, Result};
use crate::task::Task;

/// A private key that signs tasks on enqueue.
#[derive(Clone)]
pub struct TaskSigner(SigningKey);

impl std::fmt::Debug for TaskSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskSigner(..)")
    }
}

impl TaskSigner {
    /// From a 32-byte seed or Go's 64-byte `ed25519.PrivateKey` (seed followed by public key).
    pub fn from_bytes(key: &[u8]) -> Result<Self> {
        let seed: [u8; 32] = key
            .get(..32)
            .filter(|_| key.len() == 32 || key.len() == 64)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| Error::new(ErrorKind::InvalidKey, "invalid private key length"))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// From hex text (a seed or a private key); surrounding whitespace is ignored.
    pub fn from_hex(hex_key: &str) -> Result<Self> {
        Self::from_bytes(&decode_hex(hex_key, "private key")?)
    }

    /// From a file holding the hex seed, as asyncjobs' `TaskSigningSeedFile`.
    pub fn from_seed_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_hex(&read_key_file(path.as_ref())?)
    }

    /// The matching public key.
    pub fn verifier(&self) -> TaskVerifier {
        TaskVerifier(self.0.verifying_key())
    }

    /// Signs `task` in place. The queue must be set and the task unsigned.
    pub fn sign(&self, task: &mut Task) -> Result<()> {
        if !task.signature.is_empty() {
            return Err(Error::new(
                ErrorKind::TaskAlreadySigned,
                "task is already signed",
            ));
        }
        let message = task.signature_message()?;
        task.signature = hex::encode(self.0.sign(message.as_bytes()).to_bytes());
        Ok(())
    }
}

/// A public key that tasks must be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskVerifier(VerifyingKey);

impl TaskVerifier {
    /// From the 32 raw public key bytes.
    pub fn from_bytes(key: &[u8]) -> Result<Self> {
        let key: [u8; 32] = key
            .try_into()
            .map_err(|_| Error::new(ErrorKind::InvalidKey, "invalid public key"))?;
        VerifyingKey::from_bytes(&key)
            .map(Self)
            .map_err(|e| Error::with_source(ErrorKind::InvalidKey, "invalid public key", e))
    }

    /// From hex text; surrounding whitespace is ignored.
    pub fn from_hex(hex_key: &str) -> Result<Self> {
        Self::from_bytes(&decode_hex(hex_key, "public key")?)
    }

    /// From a file holding the hex public key; a trailing newline is fine (asyncjobs rejects it).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_hex(&read_key_file(path.as_ref())?)
    }

    /// The key as lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    /// Checks `task`'s signature. An unsigned task passes only when `optional` is set.
    pub fn verify(&self, task: &Task, optional: bool) -> Result<()> {
        if task.signature.is_empty() {
            return if optional {
                Ok(())
            } else {
                Err(Error::new(ErrorKind::TaskNotSigned, "task is not signed"))
            };
        }
        let invalid = || Error::new(ErrorKind::SignatureInvalid, "invalid task signature");
        let message = task.signature_message().map_err(|e| {
            Error::new(
                ErrorKind::SignatureInvalid,
                format!("invalid task signature: {e}"),
            )
        })?;
        let bytes = hex::decode(&task.signature).map_err(|_| invalid())?;
        let signature = Signature::from_slice(&bytes).map_err(|_| invalid())?;
        self.0
            .verify(message.as_bytes(), &signature)
            .map_err(|_| invalid())
    }
}

fn decode_hex(text: &str, what: &str) -> Result<Vec<u8>> {
    hex::decode(text.trim())
        .map_err(|e| Error::with_source(ErrorKind::InvalidKey, format!("invalid {what} hex"), e))
}

fn read_key_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::with_source(
            ErrorKind::Io,
            format!("reading key file {}", path.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_task(signer: &TaskSigner) -> Result<Task> {
        let mut t = Task::new("email:new", &serde_json::json!({"hello": "world"}))?;
        t.queue = "x".into();
        signer.sign(&mut t)?;
        Ok(t)
    }

    #[test]
    fn sign_then_verify_and_detect_tampering() -> Result<()> {
        let signer = TaskSigner::from_bytes(&[7u8; 32])?;
        let verifier = TaskVerifier::from_hex(&format!(" {}\n", signer.verifier().to_hex()))?;
        let mut t = signed_task(&signer)?;
        assert_eq!(t.signature.len(), 128);
        verifier.verify(&t, false)?;
        assert_eq!(
            signer.sign(&mut t).err().map(|e| e.kind()),
            Some(ErrorKind::TaskAlreadySigned)
        );
        t.payload = Some(bytes::Bytes::from_static(b"{\"hello\":\"mallory\"}"));
        assert_eq!(
            verifier.verify(&t, false).err().map(|e| e.kind()),
            Some(ErrorKind::SignatureInvalid)
        );
        Ok(())
    }

    #[test]
    fn unsigned_tasks_pass_only_in_optional_mode() -> Result<()> {
        let verifier = TaskSigner::from_bytes(&[7u8; 32])?.verifier();
        let t = Task::new("a", &1)?;
        assert_eq!(
            verifier.verify(&t, false).err().map(|e| e.kind()),
            Some(ErrorKind::TaskNotSigned)
        );
        verifier.verify(&t, true)
    }

    #[test]
    fn signature_message_has_asyncjobs_shape() -> Result<()> {
        // asyncjobs task_test.go: a 27-char id, queue "x", type "test", max tries 10, 19-digit
        // nanosecond times and payload {"hello":"world"} give a 102-byte message.
        let mut t = Task::new("test", &serde_json::json!({"hello": "world"}))?;
        t.queue = "x".into();
        t.created = "2022-02-09T17:28:41.943198067Z".parse()?;
        t.deadline = Some("2022-02-09T18:28:41.943198067Z".parse()?);
        assert_eq!(t.signature_message()?.len(), 102);
        Ok(())
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        assert_eq!(
            TaskSigner::from_bytes(&[1; 31]).err().map(|e| e.kind()),
            Some(ErrorKind::InvalidKey)
        );
        assert_eq!(
            TaskVerifier::from_hex("zz").err().map(|e| e.kind()),
            Some(ErrorKind::InvalidKey)
        );
    }
}
