// SPDX-License-Identifier: Apache-2.0
/** `Task`: a stored task, wrapping the engine's own value. */
import * as native from '../native.js'
import { callSync } from './errors.js'
import { kNative } from './internal.js'

/** asyncjobs' task states (`''` when unknown). */
export type TaskState =
  | 'new'
  | 'active'
  | 'retry'
  | 'expired'
  | 'terminated'
  | 'complete'
  | 'queue_error'
  | 'blocked'
  | 'unreachable'
  | ''

/**
 * A successful handler's stored outcome. `payload` follows the same JSON mapping as
 * `Task.payload` (`BigInt` beyond the safe integer range).
 */
export interface TaskResult<R = unknown> {
  /** What the handler returned. */
  readonly payload: R
  /** When it finished: the exact RFC 3339 string as stored (nanoseconds kept). */
  readonly completed: string
  /** The same instant in nanoseconds since the epoch. */
  readonly completedNs: bigint
  /** The same instant as a `Date` (millisecond precision). */
  readonly completedAt: Date
}

function toResult<R>(r: native.TaskResult): TaskResult<R> {
  return { payload: r.payload as R, completed: r.completed, completedNs: r.completedNs, completedAt: new Date(r.completed) }
}

function dateOrNull(text: string | null): Date | null {
  return text === null ? null : new Date(text)
}

/**
 * A task as stored: the engine's own value, so times keep their exact wire form (signatures
 * cover them in nanoseconds). Each time is available as the exact string (`created`), as
 * bigint nanoseconds (`createdNs`) and as a `Date` (`createdAt`).
 */
export class Task<P = unknown, R = unknown> {
  /** @internal */
  readonly [kNative]: native.Task
  #payload: { value: P } | undefined

  /** @internal Tasks come from `App.enqueue`, `App.loadTask`, handlers or `Task.fromJson`. */
  constructor(inner: native.Task) {
    this[kNative] = inner
  }

  /** Parses a stored task document (the JSON asyncjobs writes). */
  static fromJson<P = unknown, R = unknown>(document: string | Buffer): Task<P, R> {
    return new Task(callSync(() => native.Task.fromJson(document)))
  }

  get id(): string {
    return this[kNative].id
  }
  get type(): string {
    return this[kNative].type
  }
  get queue(): string {
    return this[kNative].queue
  }
  get state(): TaskState {
    return this[kNative].state as TaskState
  }
  /**
   * The payload parsed from JSON (`null` when the task has none); `InvalidPayloadError` if it is
   * not JSON. Parsed by the engine, exactly as results are: doubles keep every digit, and integers
   * outside `Number.MIN_SAFE_INTEGER`..`Number.MAX_SAFE_INTEGER` are `BigInt`s (integers beyond
   * 64 bits are read as the nearest double).
   */
  get payload(): P {
    if (this.#payload === undefined) {
      const inner = this[kNative]
      this.#payload = { value: callSync(() => inner.payload) as P }
    }
    return this.#payload.value
  }
  /** The payload bytes as stored (`null` when the task has none). */
  get payloadBytes(): Buffer | null {
    return this[kNative].payloadBytes
  }
  get maxTries(): number {
    return this[kNative].maxTries
  }
  get tries(): number {
    return this[kNative].tries
  }
  /** True in a state no worker moves the task out of on its own (the engine decides which). */
  get isFinal(): boolean {
    return this[kNative].isFinal
  }
  get lastErr(): string {
    return this[kNative].lastErr
  }
  /** Hex ed25519 signature; empty when unsigned. */
  get signature(): string {
    return this[kNative].signature
  }
  get dependencies(): string[] {
    return this[kNative].dependencies
  }
  get loadDependencies(): boolean {
    return this[kNative].loadDependencies
  }
  /** Results of the dependencies by id, when the task was enqueued with `loadDependencies`. */
  get dependencyResults(): Record<string, TaskResult | null> {
    const out: Record<string, TaskResult | null> = {}
    for (const [id, r] of Object.entries(this[kNative].dependencyResults)) out[id] = r == null ? null : toResult(r)
    return out
  }
  get result(): TaskResult<R> | null {
    const r = this[kNative].result
    return r === null ? null : toResult<R>(r)
  }
  /** Creation time, exact RFC 3339. */
  get created(): string {
    return this[kNative].created
  }
  get createdNs(): bigint {
    return this[kNative].createdNs
  }
  get createdAt(): Date {
    return new Date(this.created)
  }
  /** Deadline, exact RFC 3339; `null` when none. */
  get deadline(): string | null {
    return this[kNative].deadline
  }
  get deadlineNs(): bigint | null {
    return this[kNative].deadlineNs
  }
  get deadlineAt(): Date | null {
    return dateOrNull(this.deadline)
  }
  /** When the task is due (enqueued with `delay` or `runAt`): not started before it; `null` when none. */
  get runAt(): Date | null {
    return dateOrNull(this[kNative].runAt)
  }
  /** The same instant in nanoseconds since the epoch, exact. */
  get runAtNs(): bigint | null {
    return this[kNative].runAtNs
  }
  /** The order key it was enqueued with; `null` when none. */
  get orderKey(): string | null {
    return this[kNative].orderKey
  }
  /**
   * On an ordered queue, the id of the earlier task of its key this one waits for (its state
   * stays `new` or `retry`); `null` when it is not waiting.
   */
  get waitingFor(): string | null {
    return this[kNative].waitingFor
  }
  /** When a handler last took it, exact RFC 3339; `null` when never. */
  get tried(): string | null {
    return this[kNative].tried
  }
  get triedNs(): bigint | null {
    return this[kNative].triedNs
  }
  get triedAt(): Date | null {
    return dateOrNull(this.tried)
  }
  /** The task document exactly as asyncjobs stores it (JSON text). */
  toJson(): string {
    return callSync(() => this[kNative].toJson())
  }
  /** The bytes asyncjobs signs. */
  signatureMessage(): string {
    return callSync(() => this[kNative].signatureMessage())
  }
  /** `JSON.stringify(task)` gives the stored document (times as their exact strings); see `toJson()`. */
  toJSON(): unknown {
    return JSON.parse(this.toJson())
  }
}

/** True if `state` is final: no worker moves a task out of it on its own (the engine's rule). */
export function isFinalState(state: string): boolean {
  return native.isFinalState(state)
}
