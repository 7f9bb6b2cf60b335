// SPDX-License-Identifier: Apache-2.0
/**
 * A keyed pool of long-running jobs (goa pulse's `pool`, on NATS only): nodes join a named pool
 * and host workers; `dispatchJob(key, payload)` starts the job on the one worker the key hashes
 * to; jobs move when workers join or leave, and a dead worker's jobs start elsewhere. At most one
 * worker runs a key at any time.
 *
 * ```ts
 * const node = await PoolNode.join(app, 'streams')
 * await node.addWorker({
 *   async start(job) { streams.open(job.key, job.payload) },
 *   async stop(key) { streams.close(key) },
 * })
 * await node.dispatchJob('tenant-7', JSON.stringify({ region: 'eu' }))
 * await node.close()
 * ```
 *
 * A node hosting workers keeps the process alive (as a server socket does) until its workers are
 * removed, it closes, or the pool shuts down. Close pool nodes before `app.close()`.
 */
import * as native from '../native.js'
import type { App } from './app.js'
import { call, callSync, InvalidOptionError } from './errors.js'
import { kClient, kNative } from './internal.js'

/** How a node takes part in a pool; the defaults are pulse's. */
export interface PoolOptions {
  /** A worker whose key is not refreshed for this long is dead: whole seconds, at least 1000 (default 10 000). */
  workerTtlMs?: number
  /** How long after a worker's key expired its jobs wait before another worker claims them (default 2000). */
  graceMs?: number
  /** How long `dispatchJob`, `stopJob` and `notifyWorker` wait for the worker (default 40 000). */
  dispatchTimeoutMs?: number
  /** How long `close` and `shutdown` wait for jobs to stop (default 120 000). */
  shutdownTimeoutMs?: number
  /** Only dispatch: host no workers (`addWorker` rejects with `InvalidOptionError`). */
  clientOnly?: boolean
}

/** A job handed to a worker's `start`. */
export interface PoolJob {
  readonly key: string
  /** The payload given to `dispatchJob` (empty if none). */
  readonly payload: Buffer
  /** Raised on every change of owner: a fencing token (a later start of the key has a higher one). */
  readonly generation: number
  /** The worker starting it. */
  readonly worker: string
  /** The node that dispatched it. */
  readonly node: string
  /** When it was dispatched. */
  readonly createdAt: Date
}

/** A worker or a node as the pool lists it. */
export interface PoolMember {
  readonly id: string
  /** The node it belongs to (a node's own id for a node). */
  readonly node: string
  /** When it joined. */
  readonly createdAt: Date
}

/**
 * Starts and stops the jobs of one worker. `start` and `stop` are control calls: start the work
 * (without awaiting it) and return. A start may be repeated for a key after a crash elsewhere, so
 * both should be idempotent. A `start` that throws refuses the job (`dispatchJob` rejects with
 * `JobStartFailedError`).
 */
export interface JobHandler {
  start(job: PoolJob): Promise<void>
  stop(key: string): Promise<void>
  /** Delivers `notifyWorker`'s payload for the running job `key`; without it, notifications are refused. */
  notify?(key: string, payload: Buffer): Promise<void>
}

/** A payload: a string is sent as its UTF-8 bytes. */
export type JobPayload = Buffer | Uint8Array | string

/** What a schedule wants running. */
export interface JobPlan {
  /** Jobs to start (a key already running counts as started). */
  start?: ReadonlyArray<{ key: string; payload?: JobPayload }>
  /** Keys to stop; ignored with `stopAll`. */
  stop?: readonly string[]
  /** Stop every job this schedule started that is not in `start`. */
  stopAll?: boolean
}

function bytes(payload: JobPayload | undefined): Buffer {
  if (payload === undefined) return Buffer.alloc(0)
  return typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload)
}

function member(m: native.PoolMember): PoolMember {
  return { id: m.id, node: m.node, createdAt: new Date(m.createdAtMs) }
}

function poolJob(j: native.PoolJob): PoolJob {
  return {
    key: j.key,
    payload: j.payload,
    generation: j.generation,
    worker: j.worker,
    node: j.node,
    createdAt: new Date(j.createdAtMs),
  }
}

function nativePlan(plan: JobPlan): native.JobPlan {
  return {
    start: plan.start?.map((j) => ({ key: j.key, payload: bytes(j.payload) })),
    stop: plan.stop === undefined ? undefined : [...plan.stop],
    stopAll: plan.stopAll,
  }
}

/**
 * Ticks of a pool-wide ticker delivered to this node: each tick reaches one of the nodes that
 * opened the ticker. `for await (const at of ticker)` iterates them (leaving the loop closes this
 * node's share). A tick nobody is waiting for is dropped.
 */
export class Ticker implements AsyncIterable<Date> {
  /** @internal */
  readonly [kNative]: native.Ticker

  /** @internal Tickers come from `PoolNode.newTicker()`. */
  constructor(inner: native.Ticker) {
    this[kNative] = inner
  }
  /** The next tick delivered here; `null` once the ticker stopped (here or everywhere). */
  async next(): Promise<Date | null> {
    const ms = await call(async () => this[kNative].next())
    return ms === null ? null : new Date(ms)
  }
  /** Stops the ticker on every node. */
  async stop(): Promise<void> {
    return call(async () => this[kNative].stop())
  }
  /** Stops this node's share of the ticker; the other nodes keep ticking. */
  close(): void {
    this[kNative].close()
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<Date, void, undefined> {
    try {
      for (;;) {
        const at = await this.next()
        if (at === null) return
        yield at
      }
    } finally {
      this.close()
    }
  }
}

/** This process's membership of one pool; from `PoolNode.join()`. */
export class PoolNode {
  /** @internal */
  readonly [kNative]: native.PoolNode

  /** @internal Nodes come from `PoolNode.join()`. */
  constructor(inner: native.PoolNode) {
    this[kNative] = inner
  }

  /**
   * Joins pool `pool` on `app`'s connection (creating the pool's bucket on first use). Rejects
   * with `ClosedError` while the pool shuts down, `InvalidOptionError` for a bad name or option.
   */
  static async join(app: App, pool: string, options: PoolOptions = {}): Promise<PoolNode> {
    const client = await app[kClient]()
    return new PoolNode(await call(async () => native.PoolNode.join(client, pool, { ...options })))
  }

  /** The pool's name. */
  get pool(): string {
    return this[kNative].pool
  }
  /** This node's id. */
  get id(): string {
    return this[kNative].id
  }
  /** True once this node closed (or the pool shut down). */
  get isClosed(): boolean {
    return this[kNative].isClosed
  }
  /** True once the pool shut down. */
  get isShutdown(): boolean {
    return this[kNative].isShutdown
  }

  /**
   * Adds a worker running the jobs routed to it with `handler`; jobs start moving to it at once.
   * Rejects with `InvalidOptionError` on a client-only node.
   */
  async addWorker(handler: JobHandler): Promise<PoolMember> {
    if (typeof handler?.start !== 'function' || typeof handler.stop !== 'function') {
      throw new InvalidOptionError('a pool job handler has start(job) and stop(key) methods')
    }
    if (handler.notify !== undefined && typeof handler.notify !== 'function') {
      throw new InvalidOptionError("a pool job handler's notify is a method")
    }
    const start = async (job: native.PoolJob): Promise<void> => {
      await handler.start(poolJob(job))
    }
    const stop = async (key: string): Promise<void> => {
      await handler.stop(key)
    }
    const notify =
      handler.notify === undefined
        ? undefined
        : async (key: string, payload: Buffer): Promise<void> => {
            await handler.notify?.(key, payload)
          }
    return member(await call(async () => this[kNative].addWorker(start, stop, notify)))
  }
  /** Removes worker `id` of this node: its jobs are handed to the other workers first. */
  async removeWorker(id: string): Promise<void> {
    return call(async () => this[kNative].removeWorker(id))
  }
  /**
   * Starts job `key` on the worker it hashes to; resolves once that worker started it. Rejects
   * with `NoWorkersError`, `JobExistsError` (the key is running), `JobStartFailedError` (the
   * start handler threw; nothing is kept) or `TimeoutError` (the job stays and starts later).
   */
  async dispatchJob(key: string, payload?: JobPayload): Promise<void> {
    return call(async () => this[kNative].dispatchJob(key, bytes(payload)))
  }
  /** Stops job `key` wherever it runs and forgets it; `JobNotFoundError` if there is none. */
  async stopJob(key: string): Promise<void> {
    return call(async () => this[kNative].stopJob(key))
  }
  /** Delivers `payload` to the `notify` handler of the worker running job `key`. */
  async notifyWorker(key: string, payload?: JobPayload): Promise<void> {
    return call(async () => this[kNative].notifyWorker(key, bytes(payload)))
  }
  /** Keys of the jobs in the pool (not those being stopped), sorted. */
  jobKeys(): string[] {
    return this[kNative].jobKeys()
  }
  /** The payload of job `key`: `null` if there is no such job, empty if it has none. */
  async jobPayload(key: string): Promise<Buffer | null> {
    return call(async () => this[kNative].jobPayload(key))
  }
  /** This node's workers. */
  workers(): PoolMember[] {
    return this[kNative].workers().map(member)
  }
  /** Every live worker of the pool, oldest first: the order jobs hash over (`poolWorkerIndex`). */
  poolWorkers(): PoolMember[] {
    return this[kNative].poolWorkers().map(member)
  }
  /** Every live node of the pool, client-only ones included, oldest first. */
  nodes(): PoolMember[] {
    return this[kNative].nodes().map(member)
  }
  /** Which worker runs each job, by job key (`''` while a job has no worker). */
  jobOwners(): Record<string, string> {
    return this[kNative].jobOwners()
  }
  /**
   * Leaves the pool: this node's jobs are stopped here and handed to the other workers, which
   * start them; the rest of the pool keeps running. A second call does nothing.
   */
  async close(): Promise<void> {
    return call(async () => this[kNative].close())
  }
  /** Stops every job on every node and removes the pool (each node stops its jobs and leaves). */
  async shutdown(): Promise<void> {
    return call(async () => this[kNative].shutdown())
  }
  /** Opens the pool-wide ticker `name` ticking every `everyMs`; each tick reaches one node. */
  async newTicker(name: string, everyMs: number): Promise<Ticker> {
    return new Ticker(await call(async () => this[kNative].newTicker(name, everyMs)))
  }
  /**
   * Calls `plan()` now on this node, then every `everyMs` on one of the nodes that scheduled
   * `name`: the plan's jobs are started (a key already running counts as started) and the ones it
   * drops are stopped. A plan of `null` ends the schedule on every node.
   */
  async schedule(name: string, everyMs: number, plan: () => JobPlan | null | Promise<JobPlan | null>): Promise<void> {
    const produce = async (): Promise<native.JobPlan | null> => {
      const p = await plan()
      return p === null || p === undefined ? null : nativePlan(p)
    }
    return call(async () => this[kNative].schedule(name, everyMs, produce))
  }
}

/**
 * The index of the worker owning `key` among `workers` live workers sorted by creation (as
 * `poolWorkers()` lists them); the same in Rust, Python and Node.
 */
export function poolWorkerIndex(key: string, workers: number): number {
  return callSync(() => native.poolWorkerIndex(key, workers))
}
