// SPDX-License-Identifier: Apache-2.0
//! [`PoolNode`]: joining a pool, its workers, and the calls any node can make (dispatch, stop,
//! notify, listings, close and shutdown).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::host::{Local, LocalWorker};
use crate::pool::records::{
    self, JobRecord, JobState, NodeRecord, Outcome, SHUTDOWN_KEY, ShutdownRecord, WorkerRecord,
    job_kv_key,
};
use crate::pool::view::View;
use crate::pool::{JobHandler, PoolMember, PoolOptions};
use crate::store::{Kv, KvBucket, Storage};
use crate::wire::{Timestamp, new_id};

/// This node's membership of one pool; cheap to clone.
///
/// # Examples
/// ```no_run
/// # async fn demo(client: &jetjobs::Client, handler: impl jetjobs::JobHandler) -> jetjobs::Result<()> {
/// use jetjobs::{PoolNode, PoolOptions};
/// let node = PoolNode::join(client, "streams", PoolOptions::new()).await?;
/// node.add_worker(handler).await?;
/// node.dispatch_job("tenant-7", b"{}".to_vec().into()).await?;
/// node.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PoolNode {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: String,
    pub(crate) id: String,
    pub(crate) options: PoolOptions,
    pub(crate) kv: Kv,
    pub(crate) storage: Storage,
    pub(crate) view: Mutex<View>,
    /// Woken on every view change and every finished action.
    pub(crate) changed: Notify,
    pub(crate) local: Mutex<Local>,
    /// Stops this node's loops.
    pub(crate) stop: CancellationToken,
    pub(crate) closed: AtomicBool,
    /// The pool's shutdown flag was seen: this node stops its jobs and leaves.
    pub(crate) shutdown_seen: AtomicBool,
    /// ... and has done so.
    pub(crate) shut_down: AtomicBool,
    /// This node asked for the shutdown.
    pub(crate) shutting_down: AtomicBool,
    pub(crate) node_record: NodeRecord,
    pub(crate) node_revision: Mutex<u64>,
    loops: tokio::sync::Mutex<Option<tokio::task::JoinHandle<Result<()>>>>,
}

impl Inner {
    pub(crate) fn view(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn local(&self) -> MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure_open(&self) -> Result<()> {
        if self.shutdown_seen.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("pool {} is shut down", self.pool),
            ));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::new(ErrorKind::Closed, "the pool node is closed"));
        }
        Ok(())
    }

    /// Waits until the view holds at least everything up to `revision`.
    pub(crate) async fn wait_for_revision(&self, revision: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if self.view().revision >= revision {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stop.is_cancelled() {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    "the pool's records did not arrive in time",
                ));
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }

    async fn job_entry(&self, key: &str) -> Result<Option<(JobRecord, u64)>> {
        match self.kv.get(&job_kv_key(key)).await? {
            Some(entry) => Ok(Some((
                records::decode("job", &entry.value)?,
                entry.revision,
            ))),
            None => Ok(None),
        }
    }
}

impl PoolNode {
    /// Joins pool `pool` (creating its bucket on first use). Fails with `Closed` while the pool
    /// shuts down.
    pub async fn join(client: &Client, pool: &str, options: PoolOptions) -> Result<Self> {
        records::validate_pool_name(pool)?;
        options.validate()?;
        let kv = client
            .kv(&KvBucket::new(records::bucket(pool))
                .description(format!("jetjobs pool {pool}"))
                .per_key_ttl())
            .await?;
        if kv.get(SHUTDOWN_KEY).await?.is_some() {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("pool {pool} is shutting down"),
            ));
        }
        let id = new_id();
        let node_record = NodeRecord {
            id: id.clone(),
            created_ns: records::now_ns(),
            client_only: options.client_only,
        };
        let revision = kv
            .create_with_ttl(
                &format!("{}{id}", records::NODES),
                records::encode(&node_record)?,
                options.worker_ttl,
            )
            .await?;
        let inner = Arc::new(Inner {
            pool: pool.to_string(),
            id,
            options,
            kv,
            storage: client.storage().clone(),
            view: Mutex::new(View::default()),
            changed: Notify::new(),
            local: Mutex::new(Local::default()),
            stop: CancellationToken::new(),
            closed: AtomicBool::new(false),
            shutdown_seen: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            node_record,
            node_revision: Mutex::new(revision),
            loops: tokio::sync::Mutex::new(None),
        });
        let loops = tokio::spawn(crate::pool::host::run_loops(inner.clone()).await?);
        *inner.loops.lock().await = Some(loops);
        inner
            .wait_for_revision(revision, inner.options.dispatch_timeout)
            .await?;
        Ok(Self { inner })
    }

    /// The pool name.
    pub fn pool(&self) -> &str {
        &self.inner.pool
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Adds a worker that runs the jobs routed to it with `handler`; jobs start moving to it at
    /// once. Not on a client-only node.
    pub async fn add_worker(&self, handler: impl JobHandler) -> Result<PoolMember> {
        self.inner.ensure_open()?;
        if self.inner.options.client_only {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                "a client-only pool node hosts no workers",
            ));
        }
        let record = WorkerRecord {
            id: new_id(),
            node: self.inner.id.clone(),
            created_ns: records::now_ns(),
            leaving: false,
        };
        let sent = Instant::now();
        let revision = self
            .inner
            .kv
            .create_with_ttl(
                &format!("{}{}", records::WORKERS, record.id),
                records::encode(&record)?,
                self.inner.options.worker_ttl,
            )
            .await?;
        let member = member(&record.id, &record.node, record.created_ns);
        self.inner.local().workers.insert(
            record.id.clone(),
            LocalWorker {
                handler: Arc::new(handler),
                record,
                revision,
                refreshed: sent,
                fenced: false,
            },
        );
        self.inner
            .wait_for_revision(revision, self.inner.options.dispatch_timeout)
            .await?;
        self.inner.changed.notify_waiters();
        Ok(member)
    }

    /// Removes worker `id` of this node: its jobs are handed to the other workers first.
    pub async fn remove_worker(&self, id: &str) -> Result<()> {
        if !self.inner.local().workers.contains_key(id) {
            return Err(Error::new(
                ErrorKind::InvalidOption,
                format!("no worker {id} on this node"),
            ));
        }
        crate::pool::host::leave(&self.inner, &[id.to_string()]).await
    }

    /// Starts the job `key` on the worker it hashes to and returns once that worker started it.
    /// Fails with `NoWorkers`, `JobExists` (the key is running), `JobStartFailed` (the start
    /// handler refused it; nothing is kept) or `Timeout` (the job stays and starts later).
    pub async fn dispatch_job(&self, key: &str, payload: Bytes) -> Result<()> {
        records::validate_job_key(key)?;
        self.inner.ensure_open()?;
        let Some(owner) = self.inner.view().desired_owner(key).map(str::to_string) else {
            return Err(Error::new(
                ErrorKind::NoWorkers,
                format!("pool {} has no live worker", self.inner.pool),
            ));
        };
        let nats = &self.inner.storage.nats;
        let reply = nats.new_inbox();
        let mut outcome = nats
            .subscribe(reply.clone())
            .await
            .map_err(|e| Error::storage("subscribing for a dispatch", e))?;
        let record = JobRecord {
            key: key.to_string(),
            payload: Some(payload),
            owner,
            generation: 1,
            state: JobState::Assigned,
            created_ns: records::now_ns(),
            node: self.inner.id.clone(),
            reply,
        };
        match self
            .inner
            .kv
            .create(&job_kv_key(key), records::encode(&record)?)
            .await
        {
            Err(e) if e.kind() == ErrorKind::KeyExists => {
                return Err(Error::new(
                    ErrorKind::JobExists,
                    format!("job {key} is already running in pool {}", self.inner.pool),
                ));
            }
            other => other?,
        };
        let outcome = tokio::time::timeout(self.inner.options.dispatch_timeout, outcome.next())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("no worker started job {key} in time; it stays dispatched"),
                )
            })?;
        let outcome: Outcome = match outcome {
            Some(msg) => records::decode("outcome", &msg.payload)?,
            None => return Err(Error::new(ErrorKind::Closed, "the connection closed")),
        };
        match outcome.error.is_empty() {
            true => Ok(()),
            false => Err(Error::new(ErrorKind::JobStartFailed, outcome.error)),
        }
    }

    /// Stops the job `key` wherever it runs and forgets it; `JobNotFound` if there is none.
    pub async fn stop_job(&self, key: &str) -> Result<()> {
        records::validate_job_key(key)?;
        self.inner.ensure_open()?;
        let deadline = Instant::now() + self.inner.options.dispatch_timeout;
        let nats = &self.inner.storage.nats;
        while Instant::now() < deadline {
            let Some((mut record, revision)) = self.inner.job_entry(key).await? else {
                return Err(job_not_found(key, &self.inner.pool));
            };
            let live = self.inner.view().is_live(&record.owner);
            if !live {
                // Nobody runs it: forgetting it is all there is to do.
                match self.inner.kv.delete(&job_kv_key(key), Some(revision)).await {
                    Err(e) if e.kind() == ErrorKind::RevisionMismatch => continue,
                    other => return other,
                }
            }
            let reply = nats.new_inbox();
            let mut outcome = nats
                .subscribe(reply.clone())
                .await
                .map_err(|e| Error::storage("subscribing for a stop", e))?;
            record.state = JobState::Stopping;
            record.reply = reply;
            match self
                .inner
                .kv
                .update(&job_kv_key(key), records::encode(&record)?, revision)
                .await
            {
                Err(e) if e.kind() == ErrorKind::RevisionMismatch => continue,
                other => other?,
            };
            // The owner answers; if it dies first, the record is deleted by whoever cleans up.
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left.min(Duration::from_millis(500)), outcome.next())
                    .await
                {
                    Ok(Some(_)) => return Ok(()),
                    Ok(None) => return Err(Error::new(ErrorKind::Closed, "the connection closed")),
                    Err(_) if left.is_zero() => break,
                    Err(_) => {
                        if self.inner.job_entry(key).await?.is_none() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Err(Error::new(
            ErrorKind::Timeout,
            format!("job {key} did not stop in time"),
        ))
    }

    /// Delivers `payload` to the notification handler of the worker running `key`.
    pub async fn notify_worker(&self, key: &str, payload: Bytes) -> Result<()> {
        records::validate_job_key(key)?;
        self.inner.ensure_open()?;
        crate::pool::host::notify(&self.inner, key, payload).await
    }

    /// Keys of the jobs in the pool (not those being stopped).
    pub fn job_keys(&self) -> Vec<String> {
        let view = self.inner.view();
        let mut keys: Vec<String> = view
            .jobs
            .values()
            .filter(|(r, _)| r.state != JobState::Stopping)
            .map(|(r, _)| r.key.clone())
            .collect();
        keys.sort();
        keys
    }

    /// The payload of job `key`: `None` if there is no such job, an empty payload if it has none.
    pub async fn job_payload(&self, key: &str) -> Result<Option<Bytes>> {
        records::validate_job_key(key)?;
        Ok(self
            .inner
            .job_entry(key)
            .await?
            .map(|(r, _)| r.payload.unwrap_or_default()))
    }

    /// This node's workers.
    pub fn workers(&self) -> Vec<PoolMember> {
        let local = self.inner.local();
        let mut records: Vec<&WorkerRecord> = local.workers.values().map(|w| &w.record).collect();
        records.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
        records
            .into_iter()
            .map(|w| member(&w.id, &w.node, w.created_ns))
            .collect()
    }

    /// Every live worker of the pool, oldest first.
    pub fn pool_workers(&self) -> Vec<PoolMember> {
        let view = self.inner.view();
        let mut records: Vec<&WorkerRecord> = view.workers.values().collect();
        records.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
        records
            .into_iter()
            .map(|w| member(&w.id, &w.node, w.created_ns))
            .collect()
    }

    /// Every live node of the pool, client-only ones included, oldest first.
    pub fn nodes(&self) -> Vec<PoolMember> {
        let view = self.inner.view();
        let mut records: Vec<&NodeRecord> = view.nodes.values().collect();
        records.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
        records
            .into_iter()
            .map(|n| member(&n.id, &n.id, n.created_ns))
            .collect()
    }

    /// Which worker runs each job, by job key (`""` while a job has no worker).
    pub fn job_owners(&self) -> HashMap<String, String> {
        self.inner
            .view()
            .jobs
            .values()
            .map(|(r, _)| (r.key.clone(), r.owner.clone()))
            .collect()
    }

    /// Leaves the pool: this node's jobs are stopped here and handed to the other workers, which
    /// start them; the rest of the pool keeps running. Idempotent.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let ids: Vec<String> = self.inner.local().workers.keys().cloned().collect();
        let result = crate::pool::host::leave(&self.inner, &ids).await;
        self.finish().await;
        result
    }

    /// Stops every job on every node and removes the pool: each node stops its jobs (nothing is
    /// handed over) and leaves; then the pool's bucket is deleted.
    pub async fn shutdown(&self) -> Result<()> {
        self.inner.ensure_open()?;
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.inner
            .kv
            .put(
                SHUTDOWN_KEY,
                records::encode(&ShutdownRecord {
                    node: self.inner.id.clone(),
                })?,
            )
            .await?;
        let deadline = Instant::now() + self.inner.options.shutdown_timeout;
        // Every node, this one included, sees the flag and stops its jobs.
        loop {
            let notified = self.inner.changed.notified();
            let others = {
                let view = self.inner.view();
                view.shutdown
                    && view.workers.is_empty()
                    && view.nodes.keys().all(|n| n == &self.inner.id)
            };
            if others || Instant::now() >= deadline {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        self.finish().await;
        self.inner
            .storage
            .js
            .delete_key_value(records::bucket(&self.inner.pool))
            .await
            .map_err(|e| Error::storage("deleting the pool's bucket", e))?;
        Ok(())
    }

    /// True once this node closed (or the pool shut down).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst) || self.is_shutdown()
    }

    /// True once the pool shut down: this node stopped its jobs and left.
    pub fn is_shutdown(&self) -> bool {
        self.inner.shut_down.load(Ordering::SeqCst)
    }

    /// Stops this node's loops and removes its key.
    async fn finish(&self) {
        self.inner.stop.cancel();
        if let Some(loops) = self.inner.loops.lock().await.take() {
            let _ = loops.await;
        }
        let node_key = format!("{}{}", records::NODES, self.inner.id);
        if let Err(e) = self.inner.kv.delete(&node_key, None).await {
            tracing::debug!(error = %e, "removing the pool node's key");
        }
    }
}

pub(crate) fn member(id: &str, node: &str, created_ns: i64) -> PoolMember {
    PoolMember {
        id: id.to_string(),
        node: node.to_string(),
        created_at: Timestamp::from(chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(
            created_ns,
        )),
    }
}

pub(crate) fn job_not_found(key: &str, pool: &str) -> Error {
    Error::new(
        ErrorKind::JobNotFound,
        format!("no job {key} in pool {pool}"),
    )
}
