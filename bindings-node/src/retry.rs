// SPDX-License-Identifier: Apache-2.0
//! `RetryPolicy`: the core's backoff policies, constructed from JS (durations in milliseconds).

use napi::Env;
use napi_derive::napi;

use crate::error::{check, duration_ms, to_ms};

/// How long to wait before the next try; see `jetjobs::RetryPolicy`.
#[napi]
pub struct RetryPolicy {
    pub(crate) inner: jetjobs::RetryPolicy,
}

fn durations(what: &str, ms: &[f64]) -> jetjobs::Result<Vec<std::time::Duration>> {
    ms.iter().map(|&m| duration_ms(what, m)).collect()
}

#[napi]
impl RetryPolicy {
    /// One of asyncjobs' named policies: `default` (= `10m`), `10m`, `1h`, `1m`.
    #[napi(factory)]
    pub fn named(env: &Env, name: String) -> napi::Result<Self> {
        check(env, jetjobs::RetryPolicy::named(&name)).map(|inner| Self { inner })
    }

    /// asyncjobs' linear policy: `steps` intervals from `minMs` towards `maxMs`.
    #[napi(factory)]
    pub fn linear(
        env: &Env,
        steps: u32,
        min_ms: f64,
        max_ms: f64,
        jitter: f64,
    ) -> napi::Result<Self> {
        let bounds =
            duration_ms("minMs", min_ms).and_then(|min| Ok((min, duration_ms("maxMs", max_ms)?)));
        let (min, max) = check(env, bounds)?;
        Ok(Self {
            inner: jetjobs::RetryPolicy::linear(steps, min, max, jitter),
        })
    }

    /// A custom list of intervals (the last repeats) with asyncjobs' jitter semantics.
    #[napi(factory)]
    pub fn intervals(env: &Env, intervals_ms: Vec<f64>, jitter: f64) -> napi::Result<Self> {
        let policy = durations("intervalsMs", &intervals_ms)
            .and_then(|iv| jetjobs::RetryPolicy::intervals(iv, jitter));
        check(env, policy).map(|inner| Self { inner })
    }

    /// `initialMs · 2ⁿ`, capped at `maxMs`, with up to `jitter · d` taken off at random.
    #[napi(factory)]
    pub fn exponential(env: &Env, initial_ms: f64, max_ms: f64, jitter: f64) -> napi::Result<Self> {
        let policy = duration_ms("initialMs", initial_ms).and_then(|initial| {
            jetjobs::RetryPolicy::exponential(initial, duration_ms("maxMs", max_ms)?, jitter)
        });
        check(env, policy).map(|inner| Self { inner })
    }

    /// The same delay every time: `delayMs` (runutil's `StaticBackoff`, for `supervisor.retry`).
    #[napi(factory)]
    pub fn fixed(env: &Env, delay_ms: f64) -> napi::Result<Self> {
        let delay = check(env, duration_ms("delayMs", delay_ms))?;
        Ok(Self {
            inner: jetjobs::RetryPolicy::fixed(delay),
        })
    }

    /// choria's `backoff.FiveSec`: 0.5 s up to 5 s, each jittered by ±50 %.
    #[napi(factory)]
    pub fn five_sec() -> Self {
        Self {
            inner: jetjobs::RetryPolicy::five_sec(),
        }
    }

    /// choria's `backoff.FiveSecStartGrace`: like `fiveSec`, with a few quick first tries.
    #[napi(factory)]
    pub fn five_sec_start_grace() -> Self {
        Self {
            inner: jetjobs::RetryPolicy::five_sec_start_grace(),
        }
    }

    /// choria's `backoff.TwentySec`: 0.5 s up to 20 s, each jittered by ±50 %.
    #[napi(factory)]
    pub fn twenty_sec() -> Self {
        Self {
            inner: jetjobs::RetryPolicy::twenty_sec(),
        }
    }

    /// The delay before the next try after `deliveries` deliveries, in milliseconds.
    #[napi]
    pub fn delay_ms(&self, deliveries: u32) -> f64 {
        to_ms(self.inner.delay(deliveries))
    }
}

/// The names `RetryPolicy.named` accepts.
#[napi]
pub fn retry_policy_names() -> Vec<&'static str> {
    jetjobs::RETRY_POLICY_NAMES.to_vec()
}
