// SPDX-License-Identifier: Apache-2.0
/**
 * Supervised workers and jobs: the engine's `jetjobs::supervisor` (after rebuy-go-sdk's
 * `runutil`), as the `supervisor` namespace of this package.
 *
 * A worker runs until its `signal` aborts; a job runs once. Either is an async function
 * `(signal: AbortSignal) => Promise<void>` or a `Worker` / `Job` built by `repeat`, `retry`,
 * `retryJob` or `distributedRepeat`.
 *
 * ```ts
 * import { RetryPolicy, supervisor } from 'jetjobs'
 * const ac = new AbortController()
 * await supervisor.runAllWorkers([
 *   supervisor.repeat(60_000, async () => { await cleanUp() }, { startImmediately: true }),
 *   supervisor.retry(async (signal) => { await serve(signal) }, RetryPolicy.fixed(1_000)),
 * ], { signal: ac.signal })
 * ```
 *
 * Errors: a value a worker throws comes back out of `runAllWorkers` as that same value when it is
 * the only error; several errors reject with `WorkersFailedError`, whose `errors` lists them; a
 * worker returning before its signal aborted counts as `WorkerExitedPrematurelyError`.
 */
import * as native from '../native.js'
import type { App } from './app.js'
import { callSync, classify, InvalidOptionError } from './errors.js'
import { kClient, kNative } from './internal.js'
import type { RetryPolicy } from './retry.js'

/** The body of a worker (runs until `signal` aborts) or of a job (runs once). */
export type WorkerFunction = (signal: AbortSignal) => Promise<void> | void

/** What the engine restarts, repeats or runs until cancelled. */
export class Worker {
  /** @internal */
  readonly [kNative]: native.SupervisedWorker
  /** @internal Workers come from functions and from `repeat`, `retry` and `distributedRepeat`. */
  constructor(inner: native.SupervisedWorker) {
    this[kNative] = inner
  }
}

/** Work that runs once: what `repeat` repeats and `retryJob` retries. */
export class Job {
  /** @internal */
  readonly [kNative]: native.SupervisedJob
  /** @internal Jobs come from functions and from `retryJob`. */
  constructor(inner: native.SupervisedJob) {
    this[kNative] = inner
  }
}

/** A worker: a `Worker`, or an async function running until its signal aborts. */
export type WorkerLike = Worker | WorkerFunction
/** A job: a `Job`, or an async function that runs once. */
export type JobLike = Job | WorkerFunction

/** How a supervised run is stopped. */
export interface RunOptions {
  /** Aborting it cancels every worker (or job); the call resolves once they have returned. */
  signal?: AbortSignal
}

/** What `repeat` does first. */
export interface RepeatOptions {
  /** Run the job at once, then every period (default: first after one period). */
  startImmediately?: boolean
}

/** The least time `retry` waits before restarting a worker (ms). */
export const MIN_RESTART_DELAY_MS: number = native.supervisorConstants().minRestartDelayMs
/** A `WorkerGroup` worker that has run this long without returning is healthy (ms). */
export const HEALTHY_AFTER_MS: number = native.supervisorConstants().healthyAfterMs
/** The KV bucket holding `distributedRepeat`'s period claims. */
export const REPEAT_BUCKET: string = native.supervisorConstants().repeatBucket

/** What JS workers and jobs threw: they come back out of a run unchanged, never classified. */
const thrownByUser = new WeakSet<object>()

function isThrownByUser(error: unknown): boolean {
  return (typeof error === 'object' || typeof error === 'function') && error !== null && thrownByUser.has(error)
}

/**
 * The function the engine calls for each run: it hands `fn` an `AbortSignal` that aborts when the
 * run's token is cancelled (the token is also cancelled when the run ends, so the wait for it
 * never outlives the run).
 */
function body(fn: WorkerFunction): (token: native.CancellationToken) => Promise<void> {
  return async (token) => {
    const controller = new AbortController()
    let running = true
    if (token.isCancelled) controller.abort()
    else {
      token.cancelled().then(
        () => {
          if (running) controller.abort()
        },
        () => undefined,
      )
    }
    try {
      await fn(controller.signal)
    } catch (error) {
      if ((typeof error === 'object' || typeof error === 'function') && error !== null) thrownByUser.add(error)
      throw error
    } finally {
      running = false
    }
  }
}

function toWorker(worker: WorkerLike): Worker {
  if (worker instanceof Worker) return worker
  if (typeof worker === 'function') return new Worker(native.SupervisedWorker.fromFunction(body(worker)))
  throw new InvalidOptionError('a worker is an async function (signal) => void or a supervisor.Worker')
}

function toJob(job: JobLike): Job {
  if (job instanceof Job) return job
  if (typeof job === 'function') return new Job(native.SupervisedJob.fromFunction(body(job)))
  throw new InvalidOptionError('a job is an async function (signal) => void or a supervisor.Job')
}

/** Runs `f` with a token cancelled when `signal` aborts; errors leave as the workers threw them. */
async function supervised<T>(signal: AbortSignal | undefined, f: (token: native.CancellationToken) => Promise<T>): Promise<T> {
  const token = new native.CancellationToken()
  const onAbort = (): void => token.cancel()
  if (signal?.aborted) token.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    return await f(token)
  } catch (error) {
    throw classify(error, isThrownByUser)
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}

/**
 * Runs every worker until all have returned; the first to return, with an error or not, aborts
 * the others' signals. Resolves when they all stopped because `signal` aborted (at once for no
 * workers). A worker returning before its signal aborted is `WorkerExitedPrematurelyError`; one
 * error rejects as thrown, several as `WorkersFailedError` listing them in the order they came.
 */
export async function runAllWorkers(workers: Iterable<WorkerLike>, options: RunOptions = {}): Promise<void> {
  const natives = [...workers].map((w) => toWorker(w)[kNative])
  return supervised(options.signal, (token) => native.supervisorRunAllWorkers(token, natives))
}

/**
 * Runs every job at once and waits for all of them, whatever each returns (no job stops another);
 * their errors are joined as `runAllWorkers` joins them. Aborting `signal` aborts the jobs' signals.
 */
export async function runAllJobs(jobs: Iterable<JobLike>, options: RunOptions = {}): Promise<void> {
  const natives = [...jobs].map((j) => toJob(j)[kNative])
  return supervised(options.signal, (token) => native.supervisorRunAllJobs(token, natives))
}

/**
 * A worker running `job` every `everyMs`, start to start (a run overrunning the period is followed
 * at once by the next; missed periods are skipped), first after one period or, with
 * `startImmediately`, at once. A job error ends the worker with that error (wrap it in `retry` to
 * keep going).
 */
export function repeat(everyMs: number, job: JobLike, options: RepeatOptions = {}): Worker {
  const inner = toJob(job)[kNative]
  return new Worker(callSync(() => native.SupervisedWorker.repeat(everyMs, inner, options.startImmediately ?? false)))
}

/**
 * A worker running `worker` again whenever it returns, until cancelled; it never fails. After `n`
 * failures in a row it waits `backoffDelay(backoff, n)`; every restart waits at least
 * `MIN_RESTART_DELAY_MS`. `RetryPolicy.fixed(ms)` is a static backoff.
 */
export function retry(worker: WorkerLike, backoff: RetryPolicy): Worker {
  const inner = toWorker(worker)[kNative]
  return new Worker(native.SupervisedWorker.retry(inner, backoff[kNative]))
}

/**
 * A job running `job` until it succeeds, waiting `backoffDelay(backoff, n)` after the `n`th
 * failure; cancelled before it succeeds, it fails with `ClosedError` naming the last error.
 */
export function retryJob(job: JobLike, backoff: RetryPolicy): Job {
  const inner = toJob(job)[kNative]
  return new Job(native.SupervisedJob.retry(inner, backoff[kNative]))
}

/**
 * A worker running `job` at most once per `everyMs` across every process that repeats a job under
 * `name` on the same NATS system: periods are aligned to the Unix epoch, and one process claims
 * each. `everyMs` is whole seconds (at least 1000) and `name` letters, digits, `_` and `-`
 * (`InvalidOptionError` otherwise). A job error ends the worker.
 */
export async function distributedRepeat(app: App, name: string, everyMs: number, job: JobLike): Promise<Worker> {
  const inner = toJob(job)[kNative]
  const client = await app[kClient]()
  return supervised(undefined, async () => new Worker(await native.SupervisedWorker.distributedRepeat(client, name, everyMs, inner)))
}

/**
 * Sleeps `ms` unless `signal` aborts first: `true` if the whole time passed, `false` if the signal
 * aborted (or had).
 */
export async function wait(signal: AbortSignal | undefined, ms: number): Promise<boolean> {
  return supervised(signal, (token) => native.supervisorWait(token, ms))
}

/** runutil's `Backoff.Duration`, in ms: 0 for attempt 0, then `policy.delayMs(attempt)`. */
export function backoffDelay(policy: RetryPolicy, attempt: number): number {
  return callSync(() => native.supervisorBackoffDelayMs(policy[kNative], attempt))
}

/** A named worker's health in a `WorkerGroup`. */
export type Health = 'starting' | 'ok' | 'failing'

/** How `WorkerGroup.add` runs a worker. */
export interface AddOptions {
  /** Restart the worker after this backoff whenever it fails or returns (`retry`). */
  retry?: RetryPolicy
}

/**
 * Named workers run together under `runAllWorkers`' rules, each optionally restarted with
 * `retry`, each with a health: `starting` when (re)started, `ok` once a `repeat` job inside it
 * succeeded or it ran `HEALTHY_AFTER_MS`, `failing` when a job or the worker failed. The engine
 * also exports it as the gauge `jetjobs_supervised_worker_health{worker, state}`.
 */
export class WorkerGroup {
  readonly #inner = new native.SupervisedWorkerGroup()

  /** Adds worker `name` (names should be unique: they key `health()` and the gauge). */
  add(name: string, worker: WorkerLike, options: AddOptions = {}): this {
    const inner = toWorker(worker)[kNative]
    if (options.retry === undefined) this.#inner.add(name, inner)
    else this.#inner.addWithRetry(name, inner, options.retry[kNative])
    return this
  }

  /** Every worker's health by name, in the order they were added. */
  health(): Record<string, Health> {
    return Object.fromEntries(this.#inner.health().map((h) => [h.name, h.health]))
  }

  /** Runs every worker until `signal` aborts or one without `retry` returns; see `runAllWorkers`. */
  async run(options: RunOptions = {}): Promise<void> {
    return supervised(options.signal, (token) => this.#inner.run(token))
  }
}
