// SPDX-License-Identifier: Apache-2.0
//! `Priority`: how a worker consuming several queues shares its handler slots
//! (`jetjobs::Priority`); given to `WorkerOptions.priority`.

use napi::Env;
use napi_derive::napi;

use crate::error::{check, integer, invalid_option};

/// One queue's weight in a weighted priority.
#[napi(object, object_to_js = false)]
pub struct QueueWeight {
    pub queue: String,
    /// A whole number; the least the worker accepts is 1.
    pub weight: f64,
}

/// Which waiting task gets a freed handler slot when several queues have some; see
/// `jetjobs::Priority`. Queues are checked against the consumed ones when the worker runs
/// (unknown, duplicate, weight 0: `InvalidOption`).
#[napi]
pub struct Priority {
    pub(crate) inner: jetjobs::Priority,
}

fn weight(queue: &str, weight: f64) -> jetjobs::Result<u32> {
    let what = format!("the weight of queue {queue}");
    u32::try_from(integer(&what, weight)?)
        .map_err(|_| invalid_option(format!("{what} must be 0 to {}, got {weight}", u32::MAX)))
}

#[napi]
impl Priority {
    /// A queue listed earlier always goes first; consumed queues not listed come last.
    #[napi(factory)]
    pub fn strict(queues: Vec<String>) -> Self {
        Self {
            inner: jetjobs::Priority::strict(queues),
        }
    }

    /// Freed slots go to the queues with waiting tasks in proportion to their weights;
    /// consumed queues not listed weigh 1.
    #[napi(factory)]
    pub fn weighted(env: &Env, weights: Vec<QueueWeight>) -> napi::Result<Self> {
        let weights = weights
            .into_iter()
            .map(|w| weight(&w.queue, w.weight).map(|n| (w.queue, n)))
            .collect::<jetjobs::Result<Vec<_>>>();
        Ok(Self {
            inner: jetjobs::Priority::weighted(check(env, weights)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_must_be_whole_numbers_a_u32_holds() {
        assert_eq!(weight("Q", 3.0).ok(), Some(3));
        assert_eq!(weight("Q", 0.0).ok(), Some(0));
        for bad in [-1.0, 1.5, f64::NAN, 5e9] {
            let kind = weight("Q", bad).err().map(|e| e.kind());
            assert_eq!(kind, Some(jetjobs::ErrorKind::InvalidOption), "{bad}");
        }
    }
}
