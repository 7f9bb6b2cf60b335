// SPDX-License-Identifier: Apache-2.0
/** Lifecycle events as an async iterator. */
import type * as native from '../native.js'
import { call, JetJobsError } from './errors.js'
import type { TaskState } from './task.js'

/** Options of `App.events()`. */
export interface EventsOptions {
  /** Aborting it ends the subscription. */
  signal?: AbortSignal
  /**
   * Called with an event that could not be read (malformed, or of an unknown type) before it is
   * skipped; the iteration carries on. Default: a `console.warn` line.
   */
  onError?: (error: JetJobsError) => void
}

function warnSkipped(error: JetJobsError): void {
  console.warn(`jetjobs: skipped a lifecycle event that could not be read: ${error.message}`)
}

/** A task changed state. */
export interface TaskStateEvent {
  readonly kind: 'task_state'
  /** The wire type, `io.choria.asyncjobs.v1.task_state`. */
  readonly type: string
  readonly eventId: string
  /** Exact RFC 3339 as published. */
  readonly timestamp: string
  readonly time: Date
  readonly taskId: string
  readonly state: TaskState
  readonly tries: number
  readonly queue: string
  readonly taskType: string
  readonly lastError: string
  /** Nanoseconds since the task was created. */
  readonly taskAgeNs: bigint
}

/** A scheduler became leader. */
export interface LeaderElectedEvent {
  readonly kind: 'leader_elected'
  readonly type: string
  readonly eventId: string
  readonly timestamp: string
  readonly time: Date
  readonly name: string
  readonly component: string
}

/** A lifecycle event, as asyncjobs publishes them on `CHORIA_AJ.E.>`. */
export type LifecycleEvent = TaskStateEvent | LeaderElectedEvent

function toEvent(e: native.LifecycleEvent): LifecycleEvent {
  const common = { type: e.type, eventId: e.eventId, timestamp: e.timestamp, time: new Date(e.timestamp) }
  if (e.kind === 'leader_elected') {
    return { kind: 'leader_elected', ...common, name: e.name ?? '', component: e.component ?? '' }
  }
  return {
    kind: 'task_state',
    ...common,
    taskId: e.taskId ?? '',
    state: (e.state ?? '') as TaskState,
    tries: e.tries ?? 0,
    queue: e.queue ?? '',
    taskType: e.taskType ?? '',
    lastError: e.lastError ?? '',
    taskAgeNs: e.taskAgeNs ?? 0n,
  }
}

/**
 * Lifecycle events from the moment `App.events()` resolved; iterate with `for await`. Ends when
 * `close()` is called, its signal aborts, or the app closes.
 */
export class EventStream implements AsyncIterableIterator<LifecycleEvent> {
  readonly #stream: native.EventStream
  readonly #onClose: () => void
  readonly #onError: (error: JetJobsError) => void
  #closed = false

  /** @internal */
  constructor(stream: native.EventStream, onClose: () => void, onError: (error: JetJobsError) => void = warnSkipped) {
    this.#stream = stream
    this.#onClose = onClose
    this.#onError = onError
  }
  async next(): Promise<IteratorResult<LifecycleEvent, undefined>> {
    for (;;) {
      let event: native.LifecycleEvent | null
      try {
        event = await call(() => this.#stream.next())
      } catch (error) {
        // One event that cannot be read (not JSON, an unknown type) is skipped, as
        // `ajc tasks watch` does; the subscription itself carries on.
        if (!(error instanceof JetJobsError)) throw error
        this.#onError(error)
        continue
      }
      if (event === null) {
        this.close()
        return { done: true, value: undefined }
      }
      return { done: false, value: toEvent(event) }
    }
  }
  async return(): Promise<IteratorResult<LifecycleEvent, undefined>> {
    this.close()
    return { done: true, value: undefined }
  }
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#stream.close()
    this.#onClose()
  }
  [Symbol.asyncIterator](): this {
    return this
  }
}
