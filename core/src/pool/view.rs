// SPDX-License-Identifier: Apache-2.0
//! Each node's picture of the pool, kept current by one KV watch: live nodes and workers (their
//! keys vanish when their TTL runs out), jobs with their revisions, and the shutdown flag. The
//! watch delivers in stream order, so a job naming a worker never arrives before that worker.

use std::collections::{BTreeMap, HashMap};

use crate::pool::hash::pool_worker_index;
use crate::pool::records::{
    self, JOBS, JobRecord, NODES, NodeRecord, SHUTDOWN_KEY, WORKERS, WorkerRecord,
};
use crate::store::{KvEntry, KvOperation};

#[derive(Default)]
pub(crate) struct View {
    pub(crate) nodes: BTreeMap<String, NodeRecord>,
    pub(crate) workers: BTreeMap<String, WorkerRecord>,
    /// By job key: the record and its revision (the handle for compare-and-swap).
    pub(crate) jobs: HashMap<String, (JobRecord, u64)>,
    pub(crate) shutdown: bool,
    /// The highest revision applied.
    pub(crate) revision: u64,
    /// Worker ids sorted by `(created_ns, id)`: the hash ring; rebuilt on membership changes.
    ring: Vec<String>,
    /// Bucket keys of jobs, to find the job a delete marker is about.
    job_keys: HashMap<String, String>,
}

impl View {
    /// Applies one watched entry; returns false for entries that are not pool records.
    pub(crate) fn apply(&mut self, entry: &KvEntry) -> bool {
        self.revision = self.revision.max(entry.revision);
        let removed = entry.operation != KvOperation::Put || entry.value.is_empty();
        let key = entry.key.as_str();
        if let Some(id) = key.strip_prefix(WORKERS) {
            if removed {
                self.workers.remove(id);
            } else {
                match records::decode::<WorkerRecord>("worker", &entry.value) {
                    Ok(w) => {
                        self.workers.insert(id.to_string(), w);
                    }
                    Err(e) => tracing::warn!(error = %e, key, "ignoring a corrupt pool record"),
                }
            }
            self.rebuild_ring();
        } else if let Some(id) = key.strip_prefix(NODES) {
            if removed {
                self.nodes.remove(id);
            } else if let Ok(n) = records::decode::<NodeRecord>("node", &entry.value) {
                self.nodes.insert(id.to_string(), n);
            }
        } else if key.starts_with(JOBS) {
            if removed {
                if let Some(job) = self.job_keys.remove(key) {
                    self.jobs.remove(&job);
                }
            } else {
                match records::decode::<JobRecord>("job", &entry.value) {
                    Ok(job) => self.note_job(job, entry.revision),
                    Err(e) => tracing::warn!(error = %e, key, "ignoring a corrupt pool job"),
                }
            }
        } else if key == SHUTDOWN_KEY {
            self.shutdown = !removed;
        } else {
            return false;
        }
        true
    }

    /// Records a job's revision unless a newer one is known: this node's own writes are applied
    /// at once, before the watch brings them, so that a decision is never based on a record the
    /// node itself already replaced.
    pub(crate) fn note_job(&mut self, job: JobRecord, revision: u64) {
        if self
            .jobs
            .get(&job.key)
            .is_some_and(|(_, known)| *known > revision)
        {
            return;
        }
        self.job_keys
            .insert(records::job_kv_key(&job.key), job.key.clone());
        self.jobs.insert(job.key.clone(), (job, revision));
    }

    fn rebuild_ring(&mut self) {
        let mut ring: Vec<&WorkerRecord> = self.workers.values().filter(|w| !w.leaving).collect();
        ring.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
        self.ring = ring.into_iter().map(|w| w.id.clone()).collect();
    }

    /// The worker that should run `key`: jump hash over the ring.
    pub(crate) fn desired_owner(&self, key: &str) -> Option<&str> {
        // Called for every job on every reconciliation: no allocation here.
        (!self.ring.is_empty()).then(|| self.ring[pool_worker_index(key, self.ring.len())].as_str())
    }

    /// Like [`View::desired_owner`] over the ring without the workers `leaving` matches.
    pub(crate) fn desired_owner_without(
        &self,
        key: &str,
        leaving: impl Fn(&str) -> bool,
    ) -> Option<&str> {
        let ring: Vec<&String> = self.ring.iter().filter(|w| !leaving(w)).collect();
        if ring.is_empty() {
            return None;
        }
        Some(ring[pool_worker_index(key, ring.len())].as_str())
    }

    pub(crate) fn is_live(&self, worker: &str) -> bool {
        self.workers.contains_key(worker)
    }

    /// Live workers, oldest first.
    #[cfg(test)]
    pub(crate) fn ring(&self) -> &[String] {
        &self.ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::records::{JobState, encode, job_kv_key};
    use bytes::Bytes;

    fn put(key: &str, value: Bytes, revision: u64) -> KvEntry {
        KvEntry {
            key: key.into(),
            value,
            revision,
            operation: KvOperation::Put,
        }
    }

    #[test]
    fn workers_come_and_go_and_the_ring_is_ordered_by_creation() -> crate::Result<()> {
        let mut view = View::default();
        for (id, created) in [("b", 2), ("a", 3), ("c", 1)] {
            let rec = WorkerRecord {
                id: id.into(),
                node: "n".into(),
                created_ns: created,
                leaving: id == "x",
            };
            view.apply(&put(&format!("workers.{id}"), encode(&rec)?, 1));
        }
        assert_eq!(view.ring(), ["c", "b", "a"]);
        view.apply(&KvEntry {
            key: "workers.b".into(),
            value: Bytes::new(),
            revision: 9,
            operation: KvOperation::Purge,
        });
        assert_eq!(view.ring(), ["c", "a"]);
        assert_eq!(view.revision, 9);
        assert!(view.desired_owner_without("k", |w| w != "a") == Some("a"));
        Ok(())
    }

    #[test]
    fn jobs_are_tracked_by_key_and_removed_by_their_bucket_key() -> crate::Result<()> {
        let mut view = View::default();
        let rec = JobRecord {
            key: "tenant/1".into(),
            payload: None,
            owner: "w".into(),
            generation: 1,
            state: JobState::Assigned,
            created_ns: 0,
            node: "n".into(),
            reply: String::new(),
        };
        view.apply(&put(&job_kv_key("tenant/1"), encode(&rec)?, 4));
        assert_eq!(view.jobs.get("tenant/1").map(|(_, r)| *r), Some(4));
        view.apply(&KvEntry {
            key: job_kv_key("tenant/1"),
            value: Bytes::new(),
            revision: 5,
            operation: KvOperation::Delete,
        });
        assert!(view.jobs.is_empty());
        assert!(!view.apply(&put("elsewhere", Bytes::from_static(b"x"), 6)));
        Ok(())
    }
}
