// SPDX-License-Identifier: Apache-2.0
/** `RetryPolicy`: backoff between tries (the engine's policies). */
import * as native from '../native.js'
import { callSync } from './errors.js'
import { kNative } from './internal.js'

/** asyncjobs' named retry policies. */
export type RetryPolicyName = 'default' | '10m' | '1h' | '1m'

/** Backoff between tries. */
export class RetryPolicy {
  /** @internal */
  readonly [kNative]: native.RetryPolicy
  private constructor(inner: native.RetryPolicy) {
    this[kNative] = inner
  }
  /** `default` (= `10m`), `10m`, `1h` or `1m`, with asyncjobs' exact intervals and jitter. */
  static named(name: RetryPolicyName): RetryPolicy {
    return new RetryPolicy(callSync(() => native.RetryPolicy.named(name)))
  }
  /** `steps` intervals from `minMs` towards `maxMs`, as asyncjobs' linear policies. */
  static linear(steps: number, minMs: number, maxMs: number, jitter: number): RetryPolicy {
    return new RetryPolicy(callSync(() => native.RetryPolicy.linear(steps, minMs, maxMs, jitter)))
  }
  /** Custom intervals (the last repeats), with asyncjobs' jitter semantics. */
  static intervals(intervalsMs: readonly number[], jitter = 0): RetryPolicy {
    return new RetryPolicy(callSync(() => native.RetryPolicy.intervals([...intervalsMs], jitter)))
  }
  /** `initialMs · 2ⁿ` capped at `maxMs`, with up to `jitter · delay` taken off at random. */
  static exponential(options: { initialMs: number; maxMs: number; jitter?: number }): RetryPolicy {
    return new RetryPolicy(
      callSync(() => native.RetryPolicy.exponential(options.initialMs, options.maxMs, options.jitter ?? 0)),
    )
  }
  /** The same `delayMs` every time (runutil's `StaticBackoff`, e.g. for `supervisor.retry`). */
  static fixed(delayMs: number): RetryPolicy {
    return new RetryPolicy(callSync(() => native.RetryPolicy.fixed(delayMs)))
  }
  /** choria's `backoff.FiveSec`: 0.5 s up to 5 s, each jittered by ±50 % (for `Governor`). */
  static fiveSec(): RetryPolicy {
    return new RetryPolicy(native.RetryPolicy.fiveSec())
  }
  /** choria's `backoff.FiveSecStartGrace`: like `fiveSec`, with a few quick first tries. */
  static fiveSecStartGrace(): RetryPolicy {
    return new RetryPolicy(native.RetryPolicy.fiveSecStartGrace())
  }
  /** choria's `backoff.TwentySec`: 0.5 s up to 20 s, each jittered by ±50 %. */
  static twentySec(): RetryPolicy {
    return new RetryPolicy(native.RetryPolicy.twentySec())
  }
  /** The delay before the next try after `deliveries` deliveries. */
  delayMs(deliveries: number): number {
    return this[kNative].delayMs(deliveries)
  }
}

/** The names `RetryPolicy.named` accepts. */
export const RETRY_POLICY_NAMES = Object.freeze(native.retryPolicyNames() as RetryPolicyName[])
