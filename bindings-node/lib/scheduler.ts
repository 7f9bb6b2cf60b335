// SPDX-License-Identifier: Apache-2.0
/**
 * Scheduled tasks (asyncjobs' cron schedules, kept in KV `CHORIA_AJ_CONFIGURATION`) and the
 * leader-elected `TaskScheduler` that turns them into tasks. Schedules are stored with
 * `App.createSchedule` and friends.
 */
import * as native from '../native.js'
import type { App } from './app.js'
import { AlreadyRunningError, call, callSync } from './errors.js'
import { kClient, kNative } from './internal.js'
import type { Queue } from './queue.js'

/** What `App.createSchedule` takes besides the name, spec, type and payload. */
export interface ScheduleOptions {
  /** The queue its tasks are enqueued to (default: the app's default queue). */
  queue?: Queue | string
  /** Each task's deadline from its creation, in ms (rounded to seconds, at least 30 s). */
  deadlineMs?: number
  /** Each task's max tries (default: the engine's). */
  maxTries?: number
}

/** A task created on a cron schedule by the elected scheduler. */
export class ScheduledTask<P = unknown> {
  /** @internal */
  readonly [kNative]: native.ScheduledTask
  #payload: { value: P } | undefined

  /** @internal Schedules come from `App.createSchedule`, `App.loadSchedule`, ... or `fromJson`. */
  constructor(inner: native.ScheduledTask) {
    this[kNative] = inner
  }
  /** Parses a stored schedule document (the JSON asyncjobs writes). */
  static fromJson<P = unknown>(document: string | Buffer): ScheduledTask<P> {
    return new ScheduledTask<P>(callSync(() => native.ScheduledTask.fromJson(document)))
  }
  get name(): string {
    return this[kNative].name
  }
  /** The cron specification (`0 2 * * *`, `@daily`, `@every 1m`, ...). */
  get schedule(): string {
    return this[kNative].schedule
  }
  get queue(): string {
    return this[kNative].queue
  }
  get taskType(): string {
    return this[kNative].taskType
  }
  /** The created tasks' payload parsed from JSON (as `Task.payload`); `null` when none. */
  get payload(): P {
    if (this.#payload === undefined) {
      const inner = this[kNative]
      this.#payload = { value: callSync(() => inner.payload) as P }
    }
    return this.#payload.value
  }
  /** The created tasks' payload bytes as stored; `null` when none. */
  get payloadBytes(): Buffer | null {
    return this[kNative].payloadBytes
  }
  /** Each created task's deadline from its creation, in ms; `null` for none. */
  get deadlineMs(): number | null {
    return this[kNative].deadlineMs
  }
  get maxTries(): number {
    return this[kNative].maxTries
  }
  get createdAt(): Date {
    return new Date(this[kNative].createdAt)
  }
  /** The document exactly as asyncjobs stores it (JSON text). */
  toJson(): string {
    return callSync(() => this[kNative].toJson())
  }
  /** `JSON.stringify(schedule)` gives the stored document. */
  toJSON(): unknown {
    return JSON.parse(this.toJson())
  }
}

/** A change to the schedules: `stored` (created or replaced) with the schedule, or `removed`. */
export type ScheduleChange =
  | { readonly kind: 'stored'; readonly name: string; readonly schedule: ScheduledTask }
  | { readonly kind: 'removed'; readonly name: string }

/** Every schedule as it is, then each change; iterate with `for await`. Ends on `close()`, its signal or `app.close()`. */
export class ScheduleWatch implements AsyncIterableIterator<ScheduleChange> {
  readonly #inner: native.ScheduleWatch
  readonly #onClose: () => void
  #closed = false

  /** @internal */
  constructor(inner: native.ScheduleWatch, onClose: () => void) {
    this.#inner = inner
    this.#onClose = onClose
  }
  async next(): Promise<IteratorResult<ScheduleChange, undefined>> {
    const change = await call(() => this.#inner.next())
    if (change === null) {
      this.close()
      return { done: true, value: undefined }
    }
    const value: ScheduleChange =
      change.kind === 'stored' && change.schedule != null
        ? { kind: 'stored', name: change.name, schedule: new ScheduledTask(change.schedule) }
        : { kind: 'removed', name: change.name }
    return { done: false, value }
  }
  async return(): Promise<IteratorResult<ScheduleChange, undefined>> {
    this.close()
    return { done: true, value: undefined }
  }
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#inner.close()
    this.#onClose()
  }
  [Symbol.asyncIterator](): this {
    return this
  }
}

/**
 * Creates tasks from the schedules while it is the elected leader of every scheduler sharing the
 * server (Go asyncjobs' included); the others stand by and one takes over within about 20 s of
 * the leader's end. Runs on `app`'s connection: stop it before `app.close()`.
 *
 * ```ts
 * const scheduler = new TaskScheduler(app, `${hostname()}-${process.pid}`)
 * await scheduler.run({ signal })
 * ```
 */
export class TaskScheduler {
  /** The name it campaigns as, unique per scheduler (the leader-elected event carries it). */
  readonly name: string
  readonly #app: App
  #inner: native.TaskScheduler | undefined
  #running = false

  constructor(app: App, name: string) {
    this.#app = app
    this.name = name
  }
  /** True while this scheduler is the announced leader (the one creating tasks). */
  get isLeader(): boolean {
    return this.#inner?.isLeader ?? false
  }
  /**
   * Campaigns and keeps the schedules' timers until `signal` aborts; rejects with
   * `InvalidOptionError` for an empty name and `AlreadyRunningError` while already running.
   */
  async run(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.#running) throw new AlreadyRunningError(`task scheduler ${this.name} is already running`)
    this.#running = true
    const token = new native.CancellationToken()
    const stop = (): void => token.cancel()
    const { signal } = options
    signal?.addEventListener('abort', stop, { once: true })
    try {
      if (signal?.aborted) return
      const client = await this.#app[kClient]()
      const inner = callSync(() => new native.TaskScheduler(client, this.name))
      this.#inner = inner
      await call(async () => inner.run(token))
    } finally {
      signal?.removeEventListener('abort', stop)
      this.#running = false
    }
  }
}
