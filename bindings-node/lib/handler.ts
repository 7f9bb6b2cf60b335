// SPDX-License-Identifier: Apache-2.0
/** Handlers, middleware and the `TaskContext` a handler gets; how a JS call reports its outcome. */
import type * as native from '../native.js'
import { call, TerminateTask } from './errors.js'
import { kAbort, toJson } from './internal.js'
import { Task } from './task.js'

/** A running handler's view of its try. */
export class TaskContext {
  readonly #inner: native.TaskContext
  #controller: AbortController | undefined
  #aborted = false

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

/** Runs one handler call and reports how it went to the engine through the context. */
export async function settle(
  invoke: Invoke,
  task: native.Task,
  nativeCtx: native.TaskContext,
  calls: Map<number, TaskContext>,
): Promise<void> {
  const ctx = new TaskContext(nativeCtx)
  const id = nativeCtx.callId
  calls.set(id, ctx)
  try {
    const value = await invoke(new Task(task), ctx)
    nativeCtx.complete(toJson(value ?? null) ?? 'null')
  } catch (error) {
    if (error instanceof TerminateTask) nativeCtx.fail(error.reason, true)
    else nativeCtx.fail(describe(error), false)
  } finally {
    calls.delete(id)
  }
}

export const ignore = (): void => undefined
