// SPDX-License-Identifier: Apache-2.0
//! Backoff between tries: asyncjobs' named linear policies, custom interval lists and exponential
//! backoff, behind one [`RetryPolicy::delay`].

use std::time::Duration;

use rand::Rng as _;

use crate::error::{Error, ErrorKind, Result};

/// How long to wait before try `n + 1`.
///
/// # Examples
/// ```
/// let p = jetjobs::RetryPolicy::named("1m")?;
/// let d = p.delay(1);
/// // Intervals[1] is 3.95s; asyncjobs' jitter 0.5 puts the delay in [0.5·d, 1.5·d).
/// assert!(d >= std::time::Duration::from_millis(1975) && d < std::time::Duration::from_millis(5925));
/// # Ok::<(), jetjobs::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum RetryPolicy {
    /// asyncjobs' `RetryPolicy`: `Intervals[min(n, len-1)]`, scaled into `[J·d, (1+J)·d)`.
    Intervals {
        /// One interval per try; the last repeats.
        intervals: Vec<Duration>,
        /// Additive jitter factor as asyncjobs defines it.
        jitter: f64,
    },
    /// `initial · 2ⁿ⁻¹` for try `n + 1` (the first retry waits `initial`), capped at `max`, with up
    /// to `jitter · d` taken off at random.
    Exponential {
        /// Delay after the first failure.
        initial: Duration,
        /// Upper bound.
        max: Duration,
        /// Fraction of the delay that is randomised, 0 to 1.
        jitter: f64,
    },
}

/// Names accepted by [`RetryPolicy::named`], sorted as asyncjobs' `RetryPolicyNames()`.
pub const RETRY_POLICY_NAMES: [&str; 4] = ["10m", "1h", "1m", "default"];

impl RetryPolicy {
    /// One of asyncjobs' named policies: `default` (= `10m`), `10m`, `1h`, `1m`.
    pub fn named(name: &str) -> Result<Self> {
        const MINUTE: Duration = Duration::from_secs(60);
        match name {
            "default" | "10m" => Ok(Self::linear(50, MINUTE, 10 * MINUTE, 0.9)),
            "1h" => Ok(Self::linear(20, 10 * MINUTE, 60 * MINUTE, 0.9)),
            "1m" => Ok(Self::linear(20, Duration::from_secs(1), MINUTE, 0.5)),
            other => Err(Error::new(
                ErrorKind::UnknownRetryPolicy,
                format!("unknown retry policy: {other}"),
            )),
        }
    }

    /// asyncjobs' `linearPolicy`: `steps` intervals from `min` in equal integer-nanosecond steps
    /// (`max` itself is never reached).
    pub fn linear(steps: u32, min: Duration, max: Duration, jitter: f64) -> Self {
        let (min, max) = if max < min { (max, min) } else { (min, max) };
        let steps = steps.max(1);
        let step = (max - min).as_nanos() / u128::from(steps);
        let intervals = (0..steps)
            .map(|i| min + Duration::from_nanos((u128::from(i) * step) as u64))
            .collect();
        Self::Intervals { intervals, jitter }
    }

    /// A custom list of intervals with asyncjobs' jitter semantics.
    pub fn intervals(intervals: Vec<Duration>, jitter: f64) -> Result<Self> {
        if intervals.is_empty() || !(0.0..=10.0).contains(&jitter) {
            return Err(Error::new(
                ErrorKind::InvalidRetryPolicy,
                "a retry policy needs at least one interval and a jitter between 0 and 10",
            ));
        }
        Ok(Self::Intervals { intervals, jitter })
    }

    /// Exponential backoff from `initial`, doubling per try up to `max`.
    pub fn exponential(initial: Duration, max: Duration, jitter: f64) -> Result<Self> {
        if initial.is_zero() || max < initial || !(0.0..=1.0).contains(&jitter) {
            return Err(Error::new(
                ErrorKind::InvalidRetryPolicy,
                "exponential backoff needs 0 < initial <= max and a jitter between 0 and 1",
            ));
        }
        Ok(Self::Exponential {
            initial,
            max,
            jitter,
        })
    }

    /// The same `delay` before every try, in whole milliseconds (runutil's `StaticBackoff`).
    ///
    /// It is an exponential policy that starts at its cap, so the bindings' exhaustive matches
    /// over the variants stay valid.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let p = jetjobs::RetryPolicy::fixed(Duration::from_millis(250));
    /// assert_eq!(p.delay(1), Duration::from_millis(250));
    /// assert_eq!(p.delay(40), Duration::from_millis(250));
    /// ```
    pub fn fixed(delay: Duration) -> Self {
        Self::Exponential {
            initial: delay,
            max: delay,
            jitter: 0.0,
        }
    }

    /// The delay before the next try after `n` deliveries, with asyncjobs' rounding to whole ms.
    pub fn delay(&self, n: u32) -> Duration {
        let mut rng = rand::rng();
        match self {
            Self::Intervals { intervals, jitter } => {
                let Some(&d) = intervals.get((n as usize).min(intervals.len().saturating_sub(1)))
                else {
                    return Duration::ZERO;
                };
                let nanos = d.as_nanos() as f64;
                let random = if nanos >= 1.0 {
                    rng.random_range(0.0..nanos)
                } else {
                    0.0
                };
                let delay = round_to_ms(nanos * jitter + random);
                if delay.is_zero() { intervals[0] } else { delay }
            }
            Self::Exponential {
                initial,
                max,
                jitter,
            } => {
                // `n` counts deliveries, so the first retry (n = 1) waits `initial`.
                let factor = 2f64.powi(n.saturating_sub(1).min(62) as i32);
                let d = (initial.as_nanos() as f64 * factor).min(max.as_nanos() as f64);
                let off = if *jitter > 0.0 {
                    rng.random_range(0.0..=d * jitter)
                } else {
                    0.0
                };
                // A zero `initial` only comes from `fixed(Duration::ZERO)`, which means no wait.
                if initial.is_zero() {
                    return Duration::ZERO;
                }
                round_to_ms(d - off).max(Duration::from_millis(1))
            }
        }
    }
}

/// choria's `backoff` tables (go-choria `backoff`), each step jittered to 0.5–1.5 × its value.
impl RetryPolicy {
    /// choria's `backoff.FiveSec`: 0.5 s up to 5 s.
    pub fn five_sec() -> Self {
        Self::choria(&[
            500, 750, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000,
        ])
    }

    /// choria's `backoff.FiveSecStartGrace`: a few quick tries, then up to 5 s.
    pub fn five_sec_start_grace() -> Self {
        Self::choria(&[
            0, 25, 50, 75, 100, 125, 150, 200, 250, 500, 750, 1000, 1500, 2000, 2500, 3000, 3500,
            4000, 4500, 5000,
        ])
    }

    /// choria's `backoff.TwentySec`: 0.5 s up to 20 s.
    pub fn twenty_sec() -> Self {
        Self::choria(&[
            500, 750, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 5500, 5750, 6000, 6500,
            7000, 7500, 8000, 8500, 9000, 9500, 10000, 10500, 10750, 11000, 11500, 12000, 12500,
            13000, 13500, 14000, 14500, 15000, 15500, 15750, 16000, 16500, 17000, 17500, 18000,
            18500, 19000, 19500, 20000,
        ])
    }

    /// asyncjobs' jitter formula with 0.5 is choria's: `m/2 + rand(m)`.
    fn choria(millis: &[u64]) -> Self {
        Self::Intervals {
            intervals: millis.iter().map(|&m| Duration::from_millis(m)).collect(),
            jitter: 0.5,
        }
    }
}

impl Default for RetryPolicy {
    /// asyncjobs' `RetryDefault`, the 10-minute linear policy.
    fn default() -> Self {
        Self::linear(50, Duration::from_secs(60), Duration::from_secs(600), 0.9)
    }
}

fn round_to_ms(nanos: f64) -> Duration {
    Duration::from_millis((nanos / 1e6).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intervals(p: &RetryPolicy) -> &[Duration] {
        match p {
            RetryPolicy::Intervals { intervals, .. } => intervals,
            RetryPolicy::Exponential { .. } => &[],
        }
    }

    #[test]
    fn named_policies_have_asyncjobs_intervals() -> Result<()> {
        let p = RetryPolicy::named("10m")?;
        let iv = intervals(&p);
        assert_eq!(
            (iv.len(), iv[0], iv[1], iv[49]),
            (
                50,
                Duration::from_secs(60),
                Duration::from_millis(70_800),
                Duration::from_millis(589_200)
            )
        );
        let p = RetryPolicy::named("1h")?;
        let iv = intervals(&p);
        assert_eq!(
            (iv[0], iv[1], iv[19]),
            (
                Duration::from_secs(600),
                Duration::from_secs(750),
                Duration::from_secs(3450)
            )
        );
        let p = RetryPolicy::named("1m")?;
        let iv = intervals(&p);
        assert_eq!(
            (iv[0], iv[1], iv[19]),
            (
                Duration::from_secs(1),
                Duration::from_millis(3950),
                Duration::from_millis(57_050)
            )
        );
        assert_eq!(RetryPolicy::named("default")?, RetryPolicy::default());
        assert_eq!(
            RetryPolicy::named("nope").err().map(|e| e.kind()),
            Some(ErrorKind::UnknownRetryPolicy)
        );
        Ok(())
    }

    #[test]
    fn jitter_bounds_follow_asyncjobs() -> Result<()> {
        // asyncjobs retrypolicy_test: 1m[10] lies in [J·d, (1+J)·d).
        let p = RetryPolicy::named("1m")?;
        let d = intervals(&p)[10];
        for _ in 0..1000 {
            let got = p.delay(10);
            assert!(got >= d.mul_f64(0.5) && got <= d.mul_f64(1.5), "{got:?}");
        }
        // n past the end repeats the last interval.
        let last = intervals(&p)[19];
        assert!(p.delay(500) >= last.mul_f64(0.5));
        Ok(())
    }

    #[test]
    fn exponential_doubles_and_caps() -> Result<()> {
        let p = RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(1), 0.0)?;
        // The processor passes the delivery count: the first retry (n = 1) waits `initial`.
        let got: Vec<_> = (1..7).map(|n| p.delay(n).as_millis()).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(0).as_millis(), 100);
        let p = RetryPolicy::exponential(Duration::from_millis(100), Duration::from_secs(1), 0.5)?;
        for _ in 0..200 {
            let d = p.delay(3).as_millis();
            assert!((200..=400).contains(&d), "{d}");
        }
        assert!(RetryPolicy::exponential(Duration::ZERO, Duration::from_secs(1), 0.1).is_err());
        Ok(())
    }
}
