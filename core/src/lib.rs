// SPDX-License-Identifier: Apache-2.0
//! # jetjobs
//!
//! A distributed job queue on NATS JetStream, wire-compatible with
//! [choria-io/asyncjobs](https://github.com/choria-io/asyncjobs): the same streams, subjects, KV
//! buckets, JSON documents and headers, so Go asyncjobs producers and jetjobs workers share queues.
//!
//! ```no_run
//! use jetjobs::{ClientOptions, HandlerError, Mux, Queue, Task};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> jetjobs::Result<()> {
//! let client = ClientOptions::new()
//!     .queue(Queue::new("EMAIL"))
//!     .connect("nats://127.0.0.1:4222")
//!     .await?;
//! client.enqueue(Task::new("email:new", &serde_json::json!({"to": "a@example.net"}))?).await?;
//!
//! let mut mux = Mux::new();
//! mux.handle("email:new", |_ctx, task: Task| async move {
//!     let body: serde_json::Value = task.payload_json()?;
//!     Ok::<_, HandlerError>(serde_json::json!({"sent_to": body["to"]}))
//! })?;
//! let shutdown = CancellationToken::new();
//! client.run(mux, shutdown).await?;
//! # Ok(()) }
//! ```
#![deny(unreachable_pub, rustdoc::broken_intra_doc_links, missing_docs)]

mod client;
mod coord;
#[cfg(test)]
mod decoder_properties;
mod delegated;
mod dev_cluster;
mod dev_server;
mod embedding;
mod error;
mod events;
mod handler;
mod log_forwarding;
mod metrics;
mod mux;
mod pool;
mod queue;
mod retry;
mod scheduler;
pub mod signing;
mod store;
pub mod supervisor;
mod task;
mod trace;
pub mod wire;
mod worker;

pub use client::{
    Client, ClientOptions, DeadLetterFilter, QueueHandle, ScheduleChange, StorageAdmin, TaskFilter,
    connect,
};
pub use coord::barrier::{Barrier, JobState};
pub use coord::governor::{
    GOVERNOR_INTERVAL, Governor, GovernorManager, Lease, collective_subject, governor_stream,
};
pub use coord::lifecycle::{
    GOVERNOR_LIFECYCLE_PROTOCOL, GovernorEvent, GovernorEventType, governor_lifecycle_subject,
};
pub use delegated::Responder;
pub use dev_cluster::DevCluster;
pub use dev_server::DevServer;
pub use embedding::embedded_runtime;
pub use error::{Error, ErrorKind, Result};
pub use events::{
    EVENTS_SUBJECT_WILDCARD, Event, LEADER_ELECTED_EVENT_TYPE, LeaderElectedEvent,
    TASK_STATE_EVENT_TYPE, TaskStateChangeEvent,
};
pub use handler::{Handler, HandlerError, HandlerResult, TaskContext};
pub use log_forwarding::{LogRecord, LogSink, LogStats, forward_logs, log_stats, set_log_level};
pub use metrics::render_metrics;
pub use mux::{Middleware, Mux, chain};
pub use pool::{
    JobHandler, JobPlan, JobProducer, MAX_JOB_KEY_LEN, PoolJob, PoolJobInfo, PoolMember, PoolNode,
    PoolOptions, PoolSnapshot, Ticker, inspect_pool, pool_worker_index,
};
pub use queue::{
    DEFAULT_MAX_CONCURRENT, DEFAULT_MAX_RUN_TIME, DEFAULT_QUEUE_NAME, MAX_QUEUE_NAME_LEN, Queue,
};
pub use retry::{RETRY_POLICY_NAMES, RetryPolicy};
pub use scheduler::cron::{CronSchedule, parse_go_duration};
pub use scheduler::runner::TaskScheduler;
pub use scheduler::{MIN_SCHEDULE_DEADLINE, ScheduledTask, validate_schedule_name};
pub use signing::{TaskSigner, TaskVerifier};
pub use store::{Kv, KvBucket, KvEntry, KvOperation, QueueInfo, TasksInfo};
pub use task::{
    DEFAULT_MAX_TRIES, MAX_NAME_LEN, MAX_ORDER_KEY_LEN, MAX_UNIQUE_KEY_LEN, Task, TaskResult,
    TaskState, validate_task_type,
};
pub use tokio_util::sync::CancellationToken;
pub use trace::{TRACEPARENT_HEADER, TRACESTATE_HEADER, TraceContext};
pub use wire::{Timestamp, is_valid_name, new_id};
pub use worker::Worker;
pub use worker::admission::{Admission, Admit, Permit};
pub use worker::options::{DEFAULT_CONCURRENCY, DEFAULT_SHUTDOWN_GRACE, WorkerOptions};
pub use worker::priority::Priority;

/// The README's code blocks, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
