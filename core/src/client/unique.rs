// SPDX-License-Identifier: Apache-2.0
//! Unique tasks: a key in the KV bucket `JETJOBS_UNIQUE` names the task holding it, claimed with
//! create-if-absent and taken over with compare-and-swap, so concurrent producers with one key
//! make exactly one task.
//!
//! The document is stored before the key is claimed: a producer that finds the key held can
//! then always load the holder, and a holder that is missing was deleted, never "not yet
//! stored". A producer that loses the claim deletes its own document.

use bytes::Bytes;
use chrono::Utc;

use crate::client::QueueHandle;
use crate::error::{Error, ErrorKind, Result};
use crate::store::{Kv, KvBucket};
use crate::task::{Task, TaskState, Unique};
use crate::wire::names::UNIQUE_BUCKET;

/// Claims tried before giving up when other producers keep taking the key over.
const CLAIM_ATTEMPTS: usize = 10;

/// The bucket as jetjobs creates it.
pub(crate) fn unique_bucket() -> KvBucket {
    KvBucket::new(UNIQUE_BUCKET).description("jetjobs unique task keys")
}

impl QueueHandle {
    /// Enqueues `task` unless the task holding its key is pending; returns the one enqueued.
    pub(super) async fn enqueue_unique(&self, mut task: Task, unique: Unique) -> Result<Task> {
        let kv = self.unique_keys().await?;
        // Keys may be any text; KV keys may not.
        let key = hex::encode(unique.key.as_bytes());
        self.storage().save_task(&mut task).await?;
        for _ in 0..CLAIM_ATTEMPTS {
            match self.claim(&kv, &key, &task, &unique).await {
                Ok(Claim::Ours) => {
                    let published = self
                        .storage()
                        .publish_item(self.settings(), &task, true)
                        .await;
                    return self.settle_item(task, published).await;
                }
                Ok(Claim::Held(existing)) => {
                    self.withdraw(&task).await;
                    self.ensure_item(&existing).await;
                    return Ok(*existing);
                }
                Ok(Claim::Contended) => continue,
                Err(e) => {
                    self.withdraw(&task).await;
                    return Err(e);
                }
            }
        }
        self.withdraw(&task).await;
        Err(Error::new(
            ErrorKind::Storage,
            format!("unique key {:?} kept changing hands; try again", unique.key),
        ))
    }

    async fn claim(&self, kv: &Kv, key: &str, task: &Task, unique: &Unique) -> Result<Claim> {
        let id = Bytes::from(task.id.clone());
        let e = match kv.create(key, id.clone()).await {
            Ok(_) => return Ok(Claim::Ours),
            Err(e) => e,
        };
        if e.kind() != ErrorKind::KeyExists {
            return Err(e);
        }
        let Some(entry) = kv.get(key).await? else {
            return Ok(Claim::Contended); // released meanwhile
        };
        let holder = String::from_utf8_lossy(&entry.value).into_owned();
        if holder == task.id {
            return Ok(Claim::Ours);
        }
        let free = match self.storage().load_task(&holder).await {
            Ok(existing) if !released(&existing, unique) => {
                return Ok(Claim::Held(Box::new(existing)));
            }
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::TaskNotFound => true,
            Err(e) => return Err(e),
        };
        debug_assert!(free);
        match kv.update(key, id, entry.revision).await {
            Ok(_) => Ok(Claim::Ours),
            Err(e) if e.kind() == ErrorKind::RevisionMismatch => Ok(Claim::Contended),
            Err(e) => Err(e),
        }
    }

    /// Deletes the document of a task that lost its claim (it was never enqueued).
    async fn withdraw(&self, task: &Task) {
        if let Err(e) = self.storage().delete_task(task).await {
            tracing::warn!(task = %task.id, error = %e, "removing the document of a duplicate task failed");
        }
    }

    /// A pending holder of this queue whose producer stopped before publishing its item gets it
    /// now; the item's deduplication makes this safe when it is there already.
    async fn ensure_item(&self, existing: &Task) {
        if existing.queue != self.name()
            || !matches!(existing.state, TaskState::New | TaskState::Blocked)
        {
            return;
        }
        match self
            .storage()
            .publish_item(self.settings(), existing, true)
            .await
        {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::DuplicateItem => {}
            Err(e) => {
                tracing::warn!(task = %existing.id, error = %e, "publishing a unique task's item failed")
            }
        }
    }

    async fn unique_keys(&self) -> Result<Kv> {
        self.shared()
            .unique_keys
            .get_or_try_init(|| async { self.storage().open_kv(&unique_bucket()).await })
            .await
            .cloned()
    }
}

/// What a claim of a unique key found.
enum Claim {
    /// The key names this task now.
    Ours,
    /// A pending task (or one final within the window) holds it.
    Held(Box<Task>),
    /// Another producer changed it meanwhile: try again.
    Contended,
}

/// Whether `existing` no longer holds its key: final, and longer ago than the window.
fn released(existing: &Task, unique: &Unique) -> bool {
    if !existing.state.is_final() {
        return false;
    }
    let final_at = existing
        .result
        .as_ref()
        .map(|r| r.completed)
        .or(existing.tried)
        .unwrap_or(existing.created);
    let window = chrono::Duration::from_std(unique.window).unwrap_or(chrono::Duration::MAX);
    final_at
        .to_utc()
        .checked_add_signed(window)
        .is_none_or(|until| until <= Utc::now())
}
