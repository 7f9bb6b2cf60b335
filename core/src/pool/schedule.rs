// SPDX-License-Identifier: Apache-2.0
//! Planned schedules (pulse's `Schedule`): a producer's plan, computed on one node per period,
//! reconciled against the jobs the schedule started (kept in `schedules.<name>`).

use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, Result};
use crate::pool::node::PoolNode;
use crate::pool::records::{self, SCHEDULES, ScheduleRecord};
use crate::pool::ticker::{Ticker, ticker_key};
use crate::pool::{JobPlan, JobProducer};

impl PoolNode {
    /// Opens the pool-wide ticker `name` with period `every`; each tick reaches one of the nodes
    /// that opened it.
    pub async fn new_ticker(&self, name: &str, every: Duration) -> Result<Ticker> {
        records::validate_token("ticker", name)?;
        Ticker::open(self.inner.clone(), ticker_key(name), every).await
    }

    /// Runs `producer`'s plan now on this node, then every `every` on one of the nodes that
    /// scheduled `name`: it starts the plan's jobs (a key already running counts as started)
    /// and stops the ones it drops. A plan of `None` ends the schedule on every node.
    pub async fn schedule(
        &self,
        name: &str,
        every: Duration,
        producer: impl JobProducer,
    ) -> Result<()> {
        records::validate_token("schedule", name)?;
        let producer: Arc<dyn JobProducer> = Arc::new(producer);
        let ticker = Ticker::open(
            self.inner.clone(),
            ticker_key(&format!("schedule.{name}")),
            every,
        )
        .await?;
        let plan = producer.plan().await?;
        if !self.apply(name, plan, &ticker).await? {
            return Ok(());
        }
        let node = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            while ticker.next().await.is_some() {
                let applied = match producer.plan().await {
                    Ok(plan) => node.apply(&name, plan, &ticker).await,
                    Err(e) => {
                        tracing::warn!(error = %e, schedule = name, "a schedule's plan failed");
                        continue;
                    }
                };
                match applied {
                    Ok(true) => {}
                    Ok(false) => return,
                    Err(e) => tracing::warn!(error = %e, schedule = name, "applying a plan"),
                }
            }
        });
        Ok(())
    }

    /// Applies one plan; false when it ended the schedule.
    async fn apply(&self, name: &str, plan: Option<JobPlan>, ticker: &Ticker) -> Result<bool> {
        let key = format!("{SCHEDULES}{name}");
        let Some(plan) = plan else {
            self.inner.kv.delete(&key, None).await?;
            ticker.stop().await?;
            return Ok(false);
        };
        let mut started: ScheduleRecord = match self.inner.kv.get(&key).await? {
            Some(entry) => records::decode("schedule", &entry.value)?,
            None => ScheduleRecord::default(),
        };
        for (job, payload) in &plan.start {
            match self.dispatch_job(job, payload.clone()).await {
                // Already running counts as started (pulse PR #85).
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::JobExists => {}
                Err(e) => {
                    tracing::warn!(error = %e, job, schedule = name, "starting a planned job");
                    continue;
                }
            }
            if !started.keys.contains(job) {
                started.keys.push(job.clone());
            }
        }
        let stop: Vec<String> = match plan.stop_all {
            true => started
                .keys
                .iter()
                .filter(|k| !plan.start.iter().any(|(s, _)| s == *k))
                .cloned()
                .collect(),
            false => plan.stop.clone(),
        };
        for job in &stop {
            match self.stop_job(job).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::JobNotFound => {}
                Err(e) => {
                    tracing::warn!(error = %e, job, schedule = name, "stopping a planned job");
                    continue;
                }
            }
            started.keys.retain(|k| k != job);
        }
        self.inner.kv.put(&key, records::encode(&started)?).await?;
        Ok(true)
    }
}
