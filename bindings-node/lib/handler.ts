// SPDX-License-Identifier: Apache-2.0
/** Handlers, middleware and the `TaskContext` a handler gets; how a JS call reports its outcome. */
import type * as native from '../native.js'
import { call, TerminateTask } from './errors.js'
import { kAbort, toJson } from './internal.js'
import { Task } from './task.js'
import { traceHandle, type TraceContext } from './tracing.js'

/** A running handler's view of its try. */
export class TaskContext {
  readonly #inner: native.TaskContext
  #controller: AbortController | undefined
  #aborted = false
  #traceContext: TraceContext | null | undefined

  /** @internal */
  constructor(inner: native.TaskContext) {
    this.#inner = inner
  }
  /** Aborted when the try is abandoned: its deadline passed, or the worker stopped hard. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#aborted || this.#inner.isCancelled) this.#controller.abort()
    }
    return this.#controller.signal
  }
  /** Milliseconds left before the deadline. */
  get remainingMs(): number {
    return this.#inner.remainingMs
  }
  /** The deadline of this try. */
  get deadline(): Date {
    return new Date(Date.now() + this.#inner.remainingMs)
  }
  /**
   * The W3C trace context the task's enqueue sent (its `jetjobs.enqueue` span's, or the
   * `traceContext` option); `null` when it sent none.
   */
  get traceContext(): TraceContext | null {
    if (this.#traceContext === undefined) {
      const sent = this.#inner.traceContext
      this.#traceContext =
        sent == null ? null : Object.freeze({ traceparent: sent.traceparent, tracestate: sent.tracestate ?? null, traceId: sent.traceId })
    }
    return this.#traceContext
  }
  get isCancelled(): boolean {
    return this.#aborted || this.#inner.isCancelled
  }
  /** Asks for a full max run time more (`+WPI`). */
  markInProgress(): Promise<void> {
    return call(() => this.#inner.markInProgress())
  }
  /** @internal */
  [kAbort](): void {
    this.#aborted = true
    this.#controller?.abort()
  }
}

/**
 * Handles a task. A resolved value (JSON-serialisable) is stored as the result; throwing
 * `TerminateTask` terminates the task; any other throw or rejection is a failed try, retried
 * per the retry policy, with `"<name>: <message>"` in `last_err`.
 */
export type Handler<P = any, R = unknown> = (task: Task<P, R>, ctx: TaskContext) => R | Promise<R>

/**
 * Wraps the handler call: call `next()` to go on (and get its result), or return without
 * calling it to short-circuit. Global middleware runs outside route middleware, each in the
 * order added.
 */
export type Middleware = (task: Task, ctx: TaskContext, next: () => Promise<unknown>) => unknown

export type Invoke = (task: Task, ctx: TaskContext) => Promise<unknown>

export function compose(middleware: readonly Middleware[], handler: Handler): Invoke {
  const inner: Invoke = async (task, ctx) => handler(task, ctx)
  return middleware.reduceRight<Invoke>(
    (next, mw) => async (task, ctx) => mw(task, ctx, () => next(task, ctx)),
    inner,
  )
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`
  return String(error)
}

/**
 * Handler slots on the JS side: a slot is taken before a handler body starts and given back only
 * when its promise settles. The engine frees its own slot when a try is abandoned (deadline,
 * hard stop), but JS code cannot be stopped; without these, a redelivered try could run beside
 * the body that outlived it and exceed the concurrency limit.
 */
export class Slots {
  #free: number
  readonly #waiting: Array<() => void> = []

  constructor(size: number) {
    this.#free = Math.max(1, size)
  }
  /** Takes a slot now if one is free. */
  tryAcquire(): boolean {
    if (this.#free === 0) return false
    this.#free -= 1
    return true
  }
  /** Waits for a slot; rejects if `signal` aborts first. */
  acquire(signal: AbortSignal): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const granted = (): void => {
        signal.removeEventListener('abort', onAbort)
        resolve()
      }
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(granted)
        if (at >= 0) this.#waiting.splice(at, 1)
        reject(signal.reason)
      }
      if (signal.aborted) return reject(signal.reason)
      signal.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(granted)
    })
  }
  release(): void {
    const next = this.#waiting.shift()
    if (next === undefined) this.#free += 1
    else next()
  }
}

/** One call of a JS handler, as the abort callback finds it. */
export interface Call {
  readonly ctx: TaskContext
  readonly task: native.Task
  /** True while the handler body runs (it holds its slots). */
  running: boolean
  /** Set when the engine gave up on the call. */
  overrun?: ReturnType<typeof setTimeout>
}

/** How long a body may take to honour `ctx.signal` before it counts as an overrun. */
const OVERRUN_GRACE_MS = 500

/**
 * The engine abandoned a call (deadline passed, or the worker stopped hard): aborts its
 * `ctx.signal`, and warns once if the body is still running a moment later, since its slot stays
 * taken until it settles.
 */
export function abandon(calls: Map<number, Call>, callId: number): void {
  const entry = calls.get(callId)
  if (entry === undefined) return
  entry.ctx[kAbort]()
  if (!entry.running || entry.overrun !== undefined) return
  entry.overrun = setTimeout(() => {
    if (!entry.running) return
    console.warn(
      `jetjobs: the handler of task ${entry.task.id} (${entry.task.type}) is still running after its try ` +
        'was abandoned (deadline passed or the worker stopped); its concurrency slot stays taken until it ' +
        'settles. Handlers should stop when ctx.signal aborts.',
    )
  }, OVERRUN_GRACE_MS)
  entry.overrun.unref()
}

/**
 * Runs one handler call once it holds a slot of each of `slots` (the queue's, then the app's),
 * and reports how it went to the engine through the context. A call the engine abandons while
 * it waits for a slot never runs.
 */
export async function dispatch(
  invoke: Invoke,
  task: native.Task,
  nativeCtx: native.TaskContext,
  calls: Map<number, Call>,
  slots: readonly Slots[],
): Promise<void> {
  const ctx = new TaskContext(nativeCtx)
  const id = nativeCtx.callId
  const entry: Call = { ctx, task, running: false }
  calls.set(id, entry)
  const held: Slots[] = []
  try {
    for (const s of slots) {
      if (!s.tryAcquire()) await s.acquire(ctx.signal)
      held.push(s)
    }
  } catch {
    // Abandoned while waiting: the engine already settled this try.
    for (const s of held.reverse()) s.release()
    calls.delete(id)
    return
  }
  entry.running = true
  try {
    const value = await traceHandle(task, ctx.traceContext, () => invoke(new Task(task), ctx))
    nativeCtx.complete(toJson(value ?? null) ?? 'null')
  } catch (error) {
    if (error instanceof TerminateTask) nativeCtx.fail(error.reason, true)
    else nativeCtx.fail(describe(error), false)
  } finally {
    entry.running = false
    if (entry.overrun !== undefined) clearTimeout(entry.overrun)
    for (const s of held.reverse()) s.release()
    calls.delete(id)
  }
}

export const ignore = (): void => undefined
