// SPDX-License-Identifier: Apache-2.0
//! The `jetjobs` Node addon: type conversion and async bridging over the `jetjobs` crate's
//! facade, one file per exposed core type. Engine behaviour lives in the core; ergonomics
//! (option objects, `AbortSignal`, async iterators, middleware) in `lib/*.ts`.

/// The engine's allocations go to mimalloc: about 10–25 % less CPU per task in the worker than
/// the system allocator (`make bench-scale` reports worker CPU per task).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod cancellation_token;
pub mod client;
pub mod dev_server;
pub mod error;
pub mod events;
pub mod governor;
pub mod handler;
pub mod kv;
pub mod log;
pub mod metrics;
pub mod mux;
pub mod pool;
pub mod priority;
pub mod queue;
pub mod queue_handle;
pub mod responder;
pub mod retry;
mod runtime;
pub mod scheduler;
pub mod settler;
pub mod signing;
pub mod supervisor;
pub mod task;
pub mod trace;
pub mod worker;

use napi_derive::napi;

/// The jetjobs version.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Runs the `jetjobs` operator CLI (the `jetjobs-cli` crate, the same code as the Rust binary) on
/// `args`, whose first item is the program name, and returns its exit code. Output goes straight
/// to the process's stdout and stderr. Blocks the JS thread until the command ends: the package's
/// `jetjobs` bin calls it.
#[napi]
pub fn run_cli(args: Vec<String>) -> i32 {
    jetjobs_cli::run_with_panic_hook(args.into_iter().map(Into::into).collect())
}

/// A new KSUID, as task ids are.
#[napi]
pub fn new_id() -> String {
    jetjobs::new_id()
}

/// True if `name` is usable as a task type or id (`^[a-zA-Z0-9_:-]+$`).
#[napi]
pub fn is_valid_name(name: String) -> bool {
    jetjobs::is_valid_name(&name)
}

/// Throws the core's `InvalidTaskType` error unless `taskType` is a type a task can have (what
/// `enqueue` checks), so a handler route that could never match is refused when it is registered.
#[napi]
pub fn validate_task_type(env: &napi::Env, task_type: String) -> napi::Result<()> {
    error::check(env, jetjobs::validate_task_type(&task_type))
}

/// True if `state` (a wire string such as `complete`) is final: no worker moves a task out of it.
/// An unknown string is not final.
#[napi]
pub fn is_final_state(state: String) -> bool {
    state
        .parse::<jetjobs::TaskState>()
        .is_ok_and(jetjobs::TaskState::is_final)
}

/// The core's defaults and wire constants.
#[napi(object, object_from_js = false)]
pub struct Constants {
    pub default_concurrency: u32,
    pub default_max_tries: i64,
    pub default_max_concurrent: i64,
    pub default_max_run_time_ms: f64,
    pub default_queue_name: String,
    pub task_state_event_type: String,
    pub leader_elected_event_type: String,
    pub events_subject_wildcard: String,
}

#[napi]
pub fn constants() -> Constants {
    Constants {
        default_concurrency: u32::try_from(jetjobs::DEFAULT_CONCURRENCY).unwrap_or(u32::MAX),
        default_max_tries: jetjobs::DEFAULT_MAX_TRIES,
        default_max_concurrent: jetjobs::DEFAULT_MAX_CONCURRENT,
        default_max_run_time_ms: error::to_ms(jetjobs::DEFAULT_MAX_RUN_TIME),
        default_queue_name: jetjobs::DEFAULT_QUEUE_NAME.into(),
        task_state_event_type: jetjobs::TASK_STATE_EVENT_TYPE.into(),
        leader_elected_event_type: jetjobs::LEADER_ELECTED_EVENT_TYPE.into(),
        events_subject_wildcard: jetjobs::EVENTS_SUBJECT_WILDCARD.into(),
    }
}
