// SPDX-License-Identifier: Apache-2.0
/** `QueueHandle`: one open queue (enqueue, load, retry, info, purge), and how payloads are stored. */
import type * as native from '../native.js'
import { call, errorFor, InvalidOptionError, InvalidPayloadError } from './errors.js'
import { kNative, toJson } from './internal.js'
import type { QueueInfo, QueueSettings } from './queue.js'
import { settle } from './settler.js'
import { Task } from './task.js'
import { traceEnqueue } from './tracing.js'

export interface EnqueueOptions {
  /** Replaces the generated KSUID. */
  id?: string
  /** Not started after this time. A string is used exactly as given (RFC 3339). */
  deadline?: Date | string
  /** Tries before the task expires (default 10); 0 or less means unlimited. */
  maxTries?: number
  /** Tasks (or ids) that must complete first; the task starts `blocked`. */
  dependsOn?: ReadonlyArray<string | Task>
  /** Hand the dependencies' results to the handler (`task.dependencyResults`). */
  loadDependencies?: boolean
  /**
   * Enqueue returns the pending task holding this key instead of storing this one; concurrent
   * producers with one key make exactly one task.
   */
  uniqueKey?: string
  /** How long the key holds after its task is final (default 0). */
  uniqueForMs?: number
  /**
   * Not started before this many milliseconds from now: the task is stored `new` and its work
   * item held back until then. Not with `runAt` (`InvalidOptionError`).
   */
  delay?: number
  /**
   * Not started before this time (a past time means now). A string is used exactly as given
   * (RFC 3339). Not with `delay` (`InvalidOptionError`), nor after `deadline`.
   */
  runAt?: Date | string
  /**
   * On a queue made with `ordered` (or `orderKeyConcurrency`), tasks sharing this key run one at
   * a time in enqueue order. Elsewhere, or with `delay`/`runAt`, it is an `InvalidOptionError`.
   */
  orderKey?: string
  /**
   * The W3C trace context to send to the handler (`ctx.traceContext`), e.g. another task's
   * `ctx.traceContext`; a malformed `traceparent` is an `InvalidOptionError`. Without it, when
   * `@opentelemetry/api` is installed, the enqueue sends its own `jetjobs.enqueue` span's context.
   */
  traceContext?: { readonly traceparent: string; readonly tracestate?: string | null }
}

/** How long `waitFor` and `enqueueAndWait` wait. */
export interface WaitOptions {
  /** Rejects with `TimeoutError` after this long; absent waits for as long as it takes. */
  timeoutMs?: number
}

/** One task for `enqueueMany`: its type and payload, and `enqueue`'s options. */
export interface TaskInput<P = unknown> extends EnqueueOptions {
  type: string
  payload?: P
}

/**
 * The stored form of an `enqueue` payload: a `Buffer`/`Uint8Array` as raw bytes, anything else
 * as JSON (`BigInt`s as JSON integers). `undefined` and `null` are no payload (`"payload":null` on
 * the wire, as Go's `NewTask(type, nil)`). A value without a JSON form (a function, a Symbol) or
 * that cannot be encoded (a cycle) is an `InvalidPayloadError`.
 */
function encodePayload(payload: unknown): string | Buffer | undefined {
  if (payload instanceof Uint8Array) return Buffer.from(payload)
  if (payload === undefined || payload === null) return undefined
  let text: string | undefined
  try {
    text = toJson(payload)
  } catch (error) {
    throw new InvalidPayloadError(`encoding payload: ${(error as Error).message}`, { cause: error })
  }
  if (text === undefined) throw new InvalidPayloadError(`a ${typeof payload} payload has no JSON form`)
  return text
}

/** A time option as RFC 3339: a string exactly as given; an invalid `Date` is an `InvalidOptionError`. */
function rfc3339(what: string, time: Date | string): string {
  if (typeof time === 'string') return time
  if (Number.isNaN(time.getTime())) throw new InvalidOptionError(`${what} is an invalid Date`)
  return time.toISOString()
}

/** @internal What `enqueue` hands the engine. */
export function taskSpec(type: string, payload: unknown, options: EnqueueOptions): native.TaskSpec {
  const spec: native.TaskSpec = { type }
  const encoded = encodePayload(payload)
  if (encoded !== undefined) spec.payload = encoded
  if (options.id !== undefined) spec.id = options.id
  if (options.deadline !== undefined) spec.deadline = rfc3339('deadline', options.deadline)
  if (options.maxTries !== undefined) spec.maxTries = options.maxTries
  if (options.dependsOn !== undefined) spec.dependencies = options.dependsOn.map((d) => (typeof d === 'string' ? d : d.id))
  if (options.loadDependencies !== undefined) spec.loadDependencies = options.loadDependencies
  if (options.uniqueKey !== undefined) spec.uniqueKey = options.uniqueKey
  if (options.uniqueForMs !== undefined) spec.uniqueForMs = options.uniqueForMs
  if (options.delay !== undefined) spec.delayMs = options.delay
  if (options.runAt !== undefined) spec.runAt = rfc3339('runAt', options.runAt)
  if (options.orderKey !== undefined) spec.orderKey = options.orderKey
  if (options.traceContext !== undefined) {
    const { traceparent, tracestate } = options.traceContext
    spec.traceContext = tracestate == null ? { traceparent } : { traceparent, tracestate }
  }
  return spec
}

/** One open queue of an `App` (`await app.queue(name)`). */
export class QueueHandle {
  /** @internal */
  readonly [kNative]: native.QueueHandle
  readonly #inner: native.QueueHandle

  /** @internal Handles come from `App.queue()`. */
  constructor(inner: native.QueueHandle) {
    this[kNative] = inner
    this.#inner = inner
  }
  get name(): string {
    return this.#inner.name
  }
  /** The queue's settings as the server held them when it was opened. */
  get settings(): QueueSettings {
    return this.#inner.settings
  }
  /**
   * Stores a task and its work item on this queue. `payload` is JSON-encoded, except a
   * `Buffer`/`Uint8Array`, which is stored as raw bytes.
   */
  async enqueue<P = unknown>(type: string, payload?: P, options: EnqueueOptions = {}): Promise<Task<P>> {
    const spec = taskSpec(type, payload, options)
    return enqueueOne<P>(this.#inner, spec)
  }
  /**
   * Stores many tasks with pipelined writes. Resolves to one outcome per task, in order, shaped
   * as `Promise.allSettled`'s: the stored task, or the `JetJobsError` its enqueue failed with (a
   * failure of one does not stop the others).
   */
  async enqueueMany<P = unknown>(tasks: Iterable<TaskInput<P>>): Promise<Array<PromiseSettledResult<Task<P>>>> {
    return enqueueMany<P>(this.#inner, tasks)
  }
  /**
   * Enqueues, then waits until the task is final, as `App.waitFor` (with `@opentelemetry/api`,
   * the `jetjobs.enqueue` span covers the wait too).
   */
  async enqueueAndWait<P = unknown, R = unknown>(
    type: string,
    payload?: P,
    options: EnqueueOptions & WaitOptions = {},
  ): Promise<Task<P, R>> {
    const { timeoutMs, ...rest } = options
    const spec = taskSpec(type, payload, rest)
    const send = (): Promise<native.Task> => call(async () => this.#inner.enqueueAndWait(spec, timeoutMs))
    return new Task<P, R>(await traceEnqueue(this.name, [spec], send))
  }
  /** Loads a task of any queue (verifying its signature when a verification key is configured). */
  async loadTask<P = unknown, R = unknown>(id: string): Promise<Task<P, R>> {
    return new Task<P, R>(await call(async () => this.#inner.loadTask(id)))
  }
  /** Enqueues a stored task again on this queue, with its tries reset. */
  async retryTask<P = unknown, R = unknown>(id: string): Promise<Task<P, R>> {
    return new Task<P, R>(await call(async () => this.#inner.retryTask(id)))
  }
  /** The queue's settings and item counts, read now. */
  async info(): Promise<QueueInfo> {
    return call(async () => this.#inner.info())
  }
  /** Removes every work item of the queue (the task documents stay). */
  async purge(): Promise<void> {
    return call(async () => this.#inner.purge())
  }
}

/** @internal `enqueue` on a native queue, its promise settled with others (`settler.ts`). */
export async function enqueueOne<P>(queue: native.QueueHandle, spec: native.TaskSpec): Promise<Task<P>> {
  return new Task<P>(await traceEnqueue(queue.name, [spec], () => call(async () => settle((settler, id) => queue.enqueueSettled(spec, settler, id)))))
}

/** @internal `enqueueMany` on a native queue: specs that cannot be made keep their place. */
export async function enqueueMany<P>(
  queue: native.QueueHandle,
  tasks: Iterable<TaskInput<P>>,
): Promise<Array<PromiseSettledResult<Task<P>>>> {
  const specs: native.TaskSpec[] = []
  const early: Array<PromiseRejectedResult | undefined> = []
  for (const { type, payload, ...options } of tasks) {
    try {
      specs.push(taskSpec(type, payload, options))
      early.push(undefined)
    } catch (reason) {
      early.push({ status: 'rejected', reason })
    }
  }
  const outcomes = await traceEnqueue(queue.name, specs, () => call(async () => queue.enqueueMany(specs)))
  let next = 0
  return early.map((rejected): PromiseSettledResult<Task<P>> => {
    if (rejected !== undefined) return rejected
    return settled<P>(outcomes[next++])
  })
}

/** @internal An outcome the addon reports as data, as `Promise.allSettled` would give it. */
export function settled<P = unknown>(outcome: native.EnqueueOutcome | undefined): PromiseSettledResult<Task<P>> {
  if (outcome?.task != null) return { status: 'fulfilled', value: new Task<P>(outcome.task) }
  const reason = outcome?.code != null ? errorFor(outcome.code, outcome.message ?? '', outcome.cause) : new Error('no outcome')
  return { status: 'rejected', reason }
}
