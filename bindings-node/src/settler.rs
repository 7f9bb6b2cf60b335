// SPDX-License-Identifier: Apache-2.0
//! Settling the promises of many enqueues with one call into JS (as `awaitable.rs` does for
//! Python).
//!
//! napi settles each promise of an async method through a threadsafe function of its own,
//! created, called and released per call, so each settled promise is a wake of the JS thread of
//! its own. An enqueue made with a [`Settler`] instead queues its outcome; the first outcome of a
//! batch calls into JS once, and `lib/settler.ts` settles every promise of the batch by its id.

use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::Function;
use napi::threadsafe_function::{
    ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi_derive::napi;

use crate::queue_handle::EnqueueOutcome;

/// The outcome of the enqueue that `lib/settler.ts` numbered `id`.
#[napi(object, object_from_js = false)]
pub struct Settled {
    pub id: u32,
    pub outcome: EnqueueOutcome,
}

/// Called with no value: the call drains the batch on the JS thread, so outcomes that arrive
/// before it runs join it. Weak: `lib/settler.ts` keeps the process alive while calls wait.
type SettleFn = ThreadsafeFunction<(), UnknownReturnValue, Vec<Settled>, napi::Status, false, true>;

#[derive(Default)]
struct Batch {
    settled: Vec<Settled>,
    waking: bool,
}

/// Where enqueues made with it report their outcomes: `new Settler((batch) => ...)`.
#[napi]
pub struct Settler {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    batch: Arc<Mutex<Batch>>,
    settle: SettleFn,
}

#[napi]
impl Settler {
    /// `settle` is called on the JS thread with every outcome queued since its last call.
    #[napi(constructor, ts_args_type = "settle: (batch: Array<Settled>) => void")]
    pub fn new(settle: Function<'_, Vec<Settled>, UnknownReturnValue>) -> napi::Result<Self> {
        let batch = Arc::new(Mutex::new(Batch::default()));
        let drained = batch.clone();
        let settle = settle
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(move |_| {
                let mut batch = drained.lock().unwrap_or_else(PoisonError::into_inner);
                batch.waking = false;
                Ok(std::mem::take(&mut batch.settled))
            })?;
        Ok(Self {
            shared: Arc::new(Shared { batch, settle }),
        })
    }
}

impl Shared {
    /// Queues the outcome of enqueue `id`; the first of a batch calls into JS.
    pub(crate) fn settle(&self, id: u32, outcome: jetjobs::Result<jetjobs::Task>) {
        let wake = {
            let mut batch = self.batch.lock().unwrap_or_else(PoisonError::into_inner);
            batch.settled.push(Settled {
                id,
                outcome: EnqueueOutcome::from(outcome),
            });
            !std::mem::replace(&mut batch.waking, true)
        };
        if wake {
            // Fails only once the environment is closing, when no promise is awaited any more.
            let _ = self
                .settle
                .call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}
