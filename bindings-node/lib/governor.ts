// SPDX-License-Identifier: Apache-2.0
/**
 * choria's network-wide concurrency governor (wire-compatible with go-choria
 * `providers/governor/streams`): at most `limit` holders at once across every process.
 *
 * ```ts
 * const governor = await app.governor('PUPPET')
 * await governor.withSlot('host-1', async (lease) => { ... }, { maxWaitMs: 60_000 })
 * ```
 *
 * Lease sequences are plain numbers (JetStream stream sequences, exact up to 2^53 - 1).
 */
import * as native from '../native.js'
import { call, callSync } from './errors.js'
import { kNative } from './internal.js'
import type { RetryPolicy } from './retry.js'

/** How a `Governor` campaigns. */
export interface GovernorOptions {
  /** The campaign subject; default `$GOVERNOR.campaign.<name>` (choria's CLI and agents use `GovernorManager.collectiveSubject(collective, name)`). */
  subject?: string
  /** Pause between tries while the governor is full (default 250). */
  intervalMs?: number
  /** Paces the tries after the first retry instead (e.g. `RetryPolicy.fiveSec()`, choria's `backoff.FiveSec`). */
  backoff?: RetryPolicy
  /** Leases are kept until the governor's max age: at most `limit` runs start per max age ("max per period"). */
  withoutLeaving?: boolean
  /**
   * Publish choria's lifecycle events on `choria.lifecycle.event.governor.<lifecycleComponent>`:
   * `enter` when a slot is obtained, `exit` when it is released, `timeouts` when `start` gives up.
   * Publishing is best effort and never fails a campaign.
   */
  lifecycleComponent?: string
  /** The identity of those events (choria uses the host's identity); default: each holder's name. */
  lifecycleIdentity?: string
}

/** How long `start` and `withSlot` campaign. */
export interface StartOptions {
  /** Give up with `TimeoutError` after this long; default: wait for ever. */
  maxWaitMs?: number
  /** Aborting it gives up with `TimeoutError`. */
  signal?: AbortSignal
}

/** Settings of a governor, used when `App.governorManager` creates or updates one. */
export interface GovernorManagerOptions {
  /** Most holders at once. Without it the governor is only loaded (`GovernorNotFoundError` if it does not exist). */
  limit?: number
  /** Leases are evicted after this; 0 (the default): never, else at least 100. */
  maxAgeMs?: number
  /** Stream replicas (default 1). */
  replicas?: number
  /** The campaign subject; default `$GOVERNOR.campaign.<name>`. */
  subject?: string
  /**
   * A per-key governor (a jetjobs extension, not choria's): at most `limit` holders *per key*
   * (e.g. per tenant), for routes with `governorKey`. An existing one is used as it is; it has no
   * `subject`.
   */
  perKey?: boolean
  /** `evict()` publishes choria's `eviction` lifecycle event on `choria.lifecycle.event.governor.<lifecycleComponent>`. */
  lifecycleComponent?: string
}

/** One lease as `GovernorManager.leases()` lists it. */
export interface GovernorLease {
  readonly seq: number
  readonly holder: string
  readonly takenAt: Date
}

/** A held slot; `release()` (or `await using`) gives it back. */
export class Lease implements AsyncDisposable {
  /** @internal */
  readonly [kNative]: native.Lease
  /** @internal Leases come from `Governor.start()` and `tryStart()`. */
  constructor(inner: native.Lease) {
    this[kNative] = inner
  }
  /** The lease's id: its message's stream sequence. */
  get seq(): number {
    return this[kNative].seq
  }
  /**
   * Gives the slot back (unless the governor keeps leases for the period); a second call does
   * nothing. Rejects with `LeaseNotFoundError` if it was evicted meanwhile.
   */
  async release(): Promise<void> {
    return call(async () => this[kNative].release())
  }
  /** `await using lease = await governor.start(...)` releases at the end of the block. */
  async [Symbol.asyncDispose](): Promise<void> {
    return this.release()
  }
}

/** Campaigns for slots of one governor (choria's `Governor`); from `App.governor()`. */
export class Governor {
  /** @internal */
  readonly [kNative]: native.Governor
  /** @internal */
  constructor(inner: native.Governor) {
    this[kNative] = inner
  }
  get name(): string {
    return this[kNative].name
  }
  /** One try: a lease, or `null` while the governor is full. */
  async tryStart(holder: string): Promise<Lease | null> {
    const lease = await call(async () => this[kNative].tryStart(holder))
    return lease === null ? null : new Lease(lease)
  }
  /**
   * Campaigns as `holder` until a slot is free. Rejects with `TimeoutError` once `maxWaitMs`
   * passes or `signal` aborts. Only "full" is tried again; any other error is final.
   */
  async start(holder: string, options: StartOptions = {}): Promise<Lease> {
    const { maxWaitMs, signal } = options
    const token = new native.CancellationToken()
    const onAbort = (): void => token.cancel()
    if (signal?.aborted) token.cancel()
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return new Lease(await call(async () => this[kNative].start(holder, maxWaitMs, token)))
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }
  /**
   * Campaigns as `holder`, runs `fn` holding the slot and releases it however `fn` ends. If `fn`
   * throws, that error is the one thrown (a failed release is then ignored); otherwise a failed
   * release rejects, e.g. `LeaseNotFoundError` when the lease was evicted while held.
   */
  async withSlot<T>(holder: string, fn: (lease: Lease) => Promise<T> | T, options: StartOptions = {}): Promise<T> {
    const lease = await this.start(holder, options)
    let result: T
    try {
      result = await fn(lease)
    } catch (error) {
      await lease.release().catch(() => undefined)
      throw error
    }
    await lease.release()
    return result
  }
}

/** Creates, changes and inspects a governor (choria's `Manager`); from `App.governorManager()`. */
export class GovernorManager {
  /** @internal */
  readonly [kNative]: native.GovernorManager
  /** @internal */
  constructor(inner: native.GovernorManager) {
    this[kNative] = inner
  }
  /** The subject choria uses for governor `name` of `collective`: `<collective>.governor.<name>`. */
  static collectiveSubject(collective: string, name: string): string {
    return callSync(() => native.GovernorManager.collectiveSubject(collective, name))
  }
  get name(): string {
    return this[kNative].name
  }
  /** Most holders at once. */
  get limit(): number {
    return this[kNative].limit
  }
  /** How long a lease lasts at most (0: until released). */
  get maxAgeMs(): number {
    return this[kNative].maxAgeMs
  }
  /** The campaign subject. */
  get subject(): string {
    return this[kNative].subject
  }
  get replicas(): number {
    return this[kNative].replicas
  }
  /** Changes the limit for every holder at once (lowered, the server evicts the oldest leases). */
  async setLimit(limit: number): Promise<void> {
    return call(async () => this[kNative].setLimit(limit))
  }
  async setMaxAgeMs(maxAgeMs: number): Promise<void> {
    return call(async () => this[kNative].setMaxAgeMs(maxAgeMs))
  }
  async setSubject(subject: string): Promise<void> {
    return call(async () => this[kNative].setSubject(subject))
  }
  /** Removes every lease. */
  async reset(): Promise<void> {
    return call(async () => this[kNative].reset())
  }
  /** Leases held now. */
  async active(): Promise<number> {
    return call(async () => this[kNative].active())
  }
  /** When the newest lease was taken; `null` if none ever was. */
  async lastActive(): Promise<Date | null> {
    const ms = await call(async () => this[kNative].lastActiveMs())
    return ms === null ? null : new Date(ms)
  }
  /** Every lease. */
  async leases(): Promise<GovernorLease[]> {
    const leases = await call(async () => this[kNative].leases())
    return leases.map((l) => ({ seq: l.seq, holder: l.holder, takenAt: new Date(l.takenAtMs) }))
  }
  /** Removes lease `seq`, resolving to its holder's name; `LeaseNotFoundError` if there is none. */
  async evict(seq: number): Promise<string> {
    return call(async () => this[kNative].evict(seq))
  }
  /** Deletes the governor and its leases. */
  async delete(): Promise<void> {
    return call(async () => this[kNative].delete())
  }
}

/** @internal `App.governor()`. */
export function newGovernor(client: native.Client, name: string, options: GovernorOptions): Governor {
  const { backoff, ...rest } = options
  return new Governor(callSync(() => new native.Governor(client, name, rest, backoff?.[kNative])))
}

/** @internal `App.governorManager()`. */
export async function governorManager(
  client: native.Client,
  name: string,
  options: GovernorManagerOptions,
): Promise<GovernorManager> {
  const { limit, perKey, ...rest } = options
  const inner =
    limit === undefined
      ? await call(async () => native.GovernorManager.load(client, name, rest.lifecycleComponent))
      : perKey === true
        ? await call(async () => native.GovernorManager.createPerKey(client, name, limit, rest))
        : await call(async () => native.GovernorManager.create(client, name, limit, rest))
  return new GovernorManager(inner)
}

/** @internal `App.governors()`. */
export async function governorNames(client: native.Client, collective: string): Promise<string[]> {
  return call(async () => native.GovernorManager.list(client, collective))
}
