// SPDX-License-Identifier: Apache-2.0
//! A read-only look at a pool, for operators (CLI, dashboard): nodes, workers and jobs as stored,
//! without joining the pool.

use futures::StreamExt as _;

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::records::{self, JobRecord};
use crate::pool::view::View;
use crate::pool::{PoolMember, node::member};
use crate::store::KvBucket;

/// One job as the pool stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolJobInfo {
    /// The job key.
    pub key: String,
    /// The worker allowed to run it; empty while none is.
    pub owner: String,
    /// Raised on every change of owner.
    pub generation: u64,
    /// `assigned`, `running` or `stopping`.
    pub state: String,
    /// The payload's size in bytes.
    pub payload_len: usize,
}

/// What a pool holds right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSnapshot {
    /// Live nodes, oldest first.
    pub nodes: Vec<PoolMember>,
    /// Live workers, oldest first (the hash ring, plus workers that are leaving).
    pub workers: Vec<PoolMember>,
    /// Jobs by key.
    pub jobs: Vec<PoolJobInfo>,
}

/// Reads pool `pool` without joining it; `KeyNotFound` if the pool has no bucket.
pub async fn inspect_pool(client: &Client, pool: &str) -> Result<PoolSnapshot> {
    records::validate_pool_name(pool)?;
    let bucket = records::bucket(pool);
    if client.storage().js.get_key_value(&bucket).await.is_err() {
        return Err(Error::new(
            ErrorKind::KeyNotFound,
            format!("no pool {pool}"),
        ));
    }
    let kv = client.kv(&KvBucket::new(bucket).per_key_ttl()).await?;
    let mut view = View::default();
    let mut watch = kv.watch(">", None).await?;
    let last = kv.last_revision().await?;
    while view.revision < last {
        match tokio::time::timeout(std::time::Duration::from_secs(5), watch.next()).await {
            Ok(Some(entry)) => {
                view.apply(&entry?);
            }
            // Entries at the end may have expired meanwhile: what arrived is the snapshot.
            _ => break,
        }
    }
    let mut nodes: Vec<_> = view.nodes.values().collect();
    nodes.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
    let mut workers: Vec<_> = view.workers.values().collect();
    workers.sort_by(|a, b| (a.created_ns, &a.id).cmp(&(b.created_ns, &b.id)));
    let mut jobs: Vec<&JobRecord> = view.jobs.values().map(|(r, _)| r).collect();
    jobs.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(PoolSnapshot {
        nodes: nodes
            .into_iter()
            .map(|n| member(&n.id, &n.id, n.created_ns))
            .collect(),
        workers: workers
            .into_iter()
            .map(|w| member(&w.id, &w.node, w.created_ns))
            .collect(),
        jobs: jobs
            .into_iter()
            .map(|j| PoolJobInfo {
                key: j.key.clone(),
                owner: j.owner.clone(),
                generation: j.generation,
                state: j.state.as_str().to_string(),
                payload_len: j.payload.as_ref().map_or(0, |p| p.len()),
            })
            .collect(),
    })
}
