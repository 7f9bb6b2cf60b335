// SPDX-License-Identifier: Apache-2.0
/** `App`: the friendly entry point, a producer and worker for one or more queues. */
import { constants } from 'node:os'

import * as native from '../native.js'
import { StorageAdmin } from './admin.js'
import { DEFAULT_CONCURRENCY, DEFAULT_QUEUE_NAME } from './constants.js'
import {
  AlreadyRunningError,
  ClosedError,
  DuplicateHandlerError,
  InvalidOptionError,
  call,
  callSync,
} from './errors.js'
import { EventStream, type EventsOptions } from './events.js'
import { abandon, compose, dispatch, ignore, Slots, type Call, type Handler, type Middleware } from './handler.js'
import { kNative } from './internal.js'
import { Kv, KvBucket, type KvWatch } from './kv.js'
import { Priority } from './priority.js'
import { Queue, type QueueSettings } from './queue.js'
import { enqueueMany, QueueHandle, settled, taskSpec, type EnqueueOptions, type TaskInput, type WaitOptions } from './queueHandle.js'
import { RetryPolicy, type RetryPolicyName } from './retry.js'
import { TaskSigner, TaskVerifier } from './signing.js'
import { Task } from './task.js'
import { traceEnqueue } from './tracing.js'

/** States that can be deleted instead of stored. */
export type DiscardState = 'complete' | 'expired' | 'terminated'

export interface AppOptions {
  /** Server URL(s); default `nats://127.0.0.1:4222`. */
  servers?: string | readonly string[]
  /** The default queue: where `enqueue` and handlers go unless they name another; default asyncjobs' `DEFAULT` queue. */
  queue?: Queue | string
  /**
   * Settings of other queues this app uses (by `app.task(..., { queue })`, `app.enqueue(..., { queue })`
   * or `app.queue()`); a queue named only by a string elsewhere is created with the defaults.
   */
  queues?: ReadonlyArray<Queue | string>
  /** Handlers this app runs at once, over every queue (default 10). */
  concurrency?: number
  /**
   * Which queue's waiting task gets a freed handler slot when several have some:
   * `Priority.strict([...])` or `Priority.weighted({...})`. Its queues must be ones `run()`
   * consumes (else `run()` rejects with `InvalidOptionError`). Default: first come, first served.
   */
  priority?: Priority
  /** Backoff between tries (default asyncjobs' `default`, 10 minutes). */
  retryPolicy?: RetryPolicyName | RetryPolicy
  /** Signs every enqueued task: a `TaskSigner` or a hex seed. */
  signingKey?: TaskSigner | string
  /** Verifies every loaded task: a `TaskVerifier` or a hex public key. */
  verificationKey?: TaskVerifier | string
  /** Accept unsigned tasks even with a verification key (signed ones must still verify). */
  signaturesOptional?: boolean
  /** Delete tasks instead of storing these final states. */
  discard?: readonly DiscardState[]
  /** How long `run` waits for in-flight handlers after shutdown (default 30 s). */
  shutdownGraceMs?: number
  /** Keep the streams jetjobs creates in memory. */
  memoryStorage?: boolean
  /** Replicas of the streams jetjobs creates, 1 to 5. */
  replicas?: number
  /** How long task documents are kept; 0 keeps them forever. */
  taskRetentionMs?: number
  connectionName?: string
  /** A NATS `.creds` file. */
  credentialsFile?: string
  user?: string
  password?: string
  token?: string
  tls?: { ca?: string; cert?: string; key?: string }
}

/** Options of `App.enqueue`. */
export interface AppEnqueueOptions extends EnqueueOptions {
  /** The queue to enqueue to (default: the app's default queue). */
  queue?: Queue | string
}

export interface RunOptions {
  /** Aborting it stops the worker gracefully. */
  signal?: AbortSignal
  /**
   * Stop gracefully on SIGINT and SIGTERM while running (default true). A second signal during
   * the shutdown grace period stops at once: unfinished tasks go back to their queues (state
   * `retry`, the try not counted), then the process ends with that signal's default action.
   */
  handleSignals?: boolean
}

export interface TaskOptions {
  /** The queue whose tasks of this type the handler runs (default: the app's default queue). */
  queue?: Queue | string
  /** Middleware for this task type only, inside the global middleware. */
  middleware?: readonly Middleware[]
}

interface Route {
  readonly queue: string
  readonly type: string
  readonly handler: Handler
  readonly middleware: readonly Middleware[]
}

function toQueue(queue: Queue | string): Queue {
  return typeof queue === 'string' ? new Queue(queue) : queue
}

function clientOptions(o: AppOptions, defaultQueue: Queue | undefined): native.ClientOptions {
  const n = new native.ClientOptions()
  if (defaultQueue !== undefined) n.queue(defaultQueue.toNative())
  if (o.signingKey !== undefined) {
    const signer = typeof o.signingKey === 'string' ? TaskSigner.fromHex(o.signingKey) : o.signingKey
    n.signingKey(signer[kNative])
  }
  if (o.verificationKey !== undefined) n.verificationKey(verifier(o.verificationKey)[kNative])
  if (o.signaturesOptional) n.signaturesOptional()
  if (o.memoryStorage) n.memoryStorage()
  if (o.replicas !== undefined) n.replicas(o.replicas)
  if (o.taskRetentionMs !== undefined) n.taskRetentionMs(o.taskRetentionMs)
  if (o.connectionName !== undefined) n.connectionName(o.connectionName)
  if (o.credentialsFile !== undefined) n.credentialsFile(o.credentialsFile)
  if (o.user !== undefined || o.password !== undefined) n.userAndPassword(o.user ?? '', o.password ?? '')
  if (o.token !== undefined) n.token(o.token)
  if (o.tls?.ca !== undefined) n.tlsCa(o.tls.ca)
  if (o.tls?.cert !== undefined || o.tls?.key !== undefined) n.tlsClientCert(o.tls.cert ?? '', o.tls.key ?? '')
  return n
}

function verifier(key: TaskVerifier | string): TaskVerifier {
  return typeof key === 'string' ? TaskVerifier.fromHex(key) : key
}

function workerOptions(o: AppOptions): native.WorkerOptions {
  const n = new native.WorkerOptions()
  if (o.concurrency !== undefined) n.concurrency(o.concurrency)
  if (o.priority !== undefined) {
    if (!(o.priority instanceof Priority)) throw new InvalidOptionError('priority must be a Priority (Priority.strict or Priority.weighted)')
    n.priority(o.priority[kNative])
  }
  if (o.retryPolicy !== undefined) {
    const policy = typeof o.retryPolicy === 'string' ? RetryPolicy.named(o.retryPolicy) : o.retryPolicy
    n.retryPolicy(policy[kNative])
  }
  if (o.verificationKey !== undefined) n.verificationKey(verifier(o.verificationKey)[kNative])
  if (o.signaturesOptional) n.signaturesOptional()
  if (o.discard !== undefined) n.discardStates([...o.discard])
  if (o.shutdownGraceMs !== undefined) n.shutdownGraceMs(o.shutdownGraceMs)
  return n
}

/** How long a hard stop may take to hand tasks back before the process ends anyway. */
const HARD_STOP_TIMEOUT_MS = 10_000

/**
 * A producer and worker for one or more queues, on one connection.
 *
 * ```ts
 * const app = new App({ servers: 'nats://127.0.0.1:4222', queue: new Queue('EMAIL') })
 * app.task('email:send', async (task) => ({ sent: true }))
 * app.task('report:build', async (task) => 'built', { queue: new Queue('REPORTS', { maxConcurrent: 2 }) })
 * await app.enqueue('email:send', { to: 'a@example.net' })
 * await app.enqueue('report:build', { month: 5 }, { queue: 'REPORTS' })
 * await app.run({ signal })
 * ```
 */
export class App {
  readonly #options: AppOptions
  readonly #nativeOptions: native.ClientOptions
  readonly #workerOptions: native.WorkerOptions
  readonly #defaultQueue: string
  /** Settings of queues by name, as given (the default queue's included). */
  readonly #queues = new Map<string, Queue>()
  /** Open queues by name: one promise each, so racing first uses open a queue once. */
  readonly #handles = new Map<string, Promise<QueueHandle>>()
  readonly #routes: Route[] = []
  readonly #middleware: Middleware[] = []
  readonly #subscriptions = new Set<EventStream>()
  readonly #watches = new Set<KvWatch>()
  #client: Promise<native.Client> | undefined
  #running: Promise<void> | undefined
  #closing: Promise<void> | undefined
  #stop: (() => void) | undefined
  #closed = false

  /** Checks every option now: an invalid one (e.g. `concurrency: 1.5`) throws `InvalidOptionError`. */
  constructor(options: AppOptions = {}) {
    this.#options = { ...options }
    const defaultQueue = options.queue === undefined ? undefined : toQueue(options.queue)
    this.#defaultQueue = defaultQueue?.name ?? DEFAULT_QUEUE_NAME
    this.#nativeOptions = callSync(() => clientOptions(this.#options, defaultQueue))
    this.#workerOptions = callSync(() => workerOptions(this.#options))
    if (defaultQueue !== undefined) this.#queues.set(defaultQueue.name, defaultQueue)
    for (const queue of options.queues ?? []) this.#queueName(queue)
  }

  /** The queue's name; its settings are remembered unless the name already has some. */
  #queueName(queue: Queue | string | undefined): string {
    if (queue === undefined) return this.#defaultQueue
    const q = toQueue(queue)
    if (!this.#queues.has(q.name)) this.#queues.set(q.name, q)
    return q.name
  }

  /** Connects (once; every other method connects on first use) and prepares the default queue. */
  async connect(): Promise<void> {
    await this.#connected()
  }

  #connected(): Promise<native.Client> {
    if (this.#closed) return Promise.reject(new ClosedError('the app was closed'))
    if (this.#client === undefined) {
      const servers = this.#options.servers ?? 'nats://127.0.0.1:4222'
      const url = typeof servers === 'string' ? servers : servers.join(',')
      // Set before any await: racing first calls share this one connection.
      const connecting = call(async () => this.#nativeOptions.connect(url))
      connecting.catch(() => {
        if (this.#client === connecting) this.#client = undefined
      })
      this.#client = connecting
    }
    return this.#client
  }

  /**
   * An open queue: the default queue, or any other (created with the settings given to the app
   * or here unless it exists). Opened once per name and cached.
   */
  queue(queue: Queue | string = this.#defaultQueue): Promise<QueueHandle> {
    const name = this.#queueName(queue)
    let handle = this.#handles.get(name)
    if (handle === undefined) {
      const opening = this.#open(name)
      opening.catch(() => {
        if (this.#handles.get(name) === opening) this.#handles.delete(name)
      })
      this.#handles.set(name, opening)
      handle = opening
    }
    return handle
  }

  async #open(name: string): Promise<QueueHandle> {
    const client = await this.#connected()
    if (name === this.#defaultQueue) return new QueueHandle(callSync(() => client.defaultQueue))
    const settings = this.#queues.get(name) ?? new Queue(name)
    return new QueueHandle(await call(async () => client.openQueue(settings.toNative())))
  }

  /**
   * Registers a handler for a task type, or a prefix of types (`''` handles everything), on the
   * default queue or `options.queue` (a type may have a handler on several queues). Throws at
   * once for a type no task can have (`InvalidTaskTypeError`, e.g. `'email.send'`), a type that
   * already has a handler on that queue (`DuplicateHandlerError`) or a handler that is not a
   * function (`InvalidOptionError`).
   */
  task<P = any, R = unknown>(type: string, handler: Handler<P, R>, options: TaskOptions = {}): this {
    if (typeof handler !== 'function') {
      throw new InvalidOptionError(`the handler for task type ${JSON.stringify(type)} must be a function, got ${typeof handler}`)
    }
    // `''` is the catch-all route; any other route, a prefix included, must be a possible task type.
    if (type !== '') callSync(() => native.validateTaskType(type))
    const queue = this.#queueName(options.queue)
    if (this.#routes.some((route) => route.queue === queue && route.type === type)) {
      throw new DuplicateHandlerError(`duplicate handler for task type ${JSON.stringify(type)} on queue ${queue}`)
    }
    this.#routes.push({ queue, type, handler: handler as Handler, middleware: [...(options.middleware ?? [])] })
    return this
  }

  /** Adds global middleware around every handler, outermost first in the order added. */
  use(middleware: Middleware): this {
    this.#middleware.push(middleware)
    return this
  }

  /**
   * Stores a task and its work item, on the default queue or `options.queue`. `payload` is
   * JSON-encoded, except a `Buffer`/`Uint8Array`, which is stored as raw bytes.
   */
  async enqueue<P = unknown>(type: string, payload?: P, options: AppEnqueueOptions = {}): Promise<Task<P>> {
    const { queue, ...rest } = options
    const spec = taskSpec(type, payload, rest)
    const handle = await this.queue(queue ?? this.#defaultQueue)
    return new Task<P>(await traceEnqueue(handle.name, [spec], () => call(async () => handle[kNative].enqueue(spec))))
  }

  /**
   * Stores many tasks with pipelined writes, on the default queue or `options.queue`. Resolves to
   * one outcome per task, in order, shaped as `Promise.allSettled`'s (the stored task, or the
   * `JetJobsError` its enqueue failed with).
   */
  async enqueueMany<P = unknown>(
    tasks: Iterable<TaskInput<P>>,
    options: { queue?: Queue | string } = {},
  ): Promise<Array<PromiseSettledResult<Task<P>>>> {
    const handle = await this.queue(options.queue ?? this.#defaultQueue)
    return enqueueMany<P>(handle[kNative], tasks)
  }

  /** Loads a task of any queue (verifying its signature when a verification key is configured). */
  async loadTask<P = unknown, R = unknown>(id: string): Promise<Task<P, R>> {
    const client = await this.#connected()
    return new Task<P, R>(await call(async () => client.loadTask(id)))
  }

  /**
   * Enqueues the tasks as a chain: each runs after the previous one completed and gets its result
   * in `task.dependencyResults`. Resolves to the stored tasks; rejects with the first error (the
   * steps before it are enqueued). A failed step makes the ones after it `unreachable`.
   */
  async enqueueChain(tasks: Iterable<TaskInput>, options: { queue?: Queue | string } = {}): Promise<Task[]> {
    const handle = await this.queue(options.queue ?? this.#defaultQueue)
    const specs = [...tasks].map(({ type, payload, ...rest }) => taskSpec(type, payload, rest))
    const stored = await traceEnqueue(handle.name, specs, () => call(async () => handle[kNative].enqueueChain(specs)))
    return stored.map((t) => new Task(t))
  }

  /**
   * Enqueues `group` to run in parallel and `callback` to run after all of them completed, with
   * their results in `task.dependencyResults`. A failed member makes the callback `unreachable`.
   */
  async enqueueChord(
    group: Iterable<TaskInput>,
    callback: TaskInput,
    options: { queue?: Queue | string } = {},
  ): Promise<{ group: Task[]; callback: Task }> {
    const handle = await this.queue(options.queue ?? this.#defaultQueue)
    const specs = [...group].map(({ type, payload, ...rest }) => taskSpec(type, payload, rest))
    const { type, payload, ...rest } = callback
    const last = taskSpec(type, payload, rest)
    const chord = await traceEnqueue(handle.name, [...specs, last], () =>
      call(async () => handle[kNative].enqueueChord(specs, last)),
    )
    return { group: chord.group.map((t) => new Task(t)), callback: new Task(chord.callback) }
  }

  /**
   * Waits until the task (a `Task` or an id, of any queue) is final. Resolves to the task when it
   * completed (its result in `task.result`); rejects with `TaskFailedError` (with its state and
   * last error) when it expired, was terminated or is unreachable, and with `TimeoutError` after
   * `timeoutMs`. Every waiter shares one subscription to task events; none polls.
   */
  async waitFor<P = unknown, R = unknown>(task: Task | string, options: WaitOptions = {}): Promise<Task<P, R>> {
    const client = await this.#connected()
    const id = typeof task === 'string' ? task : task.id
    return new Task<P, R>(await call(async () => client.waitFor(id, options.timeoutMs)))
  }

  /**
   * Cancels the task (a `Task` or an id, of any queue) and resolves to it as stored afterwards. A
   * pending task is stored as `terminated` (`lastErr` `cancelled: <reason>`) and never runs; a
   * running one's handler sees `ctx.signal` abort in whichever worker process runs it, and the
   * task is stored as `terminated` with the reason. A final task is returned as it is.
   */
  async cancel<P = unknown, R = unknown>(task: Task | string, reason = 'cancelled'): Promise<Task<P, R>> {
    const client = await this.#connected()
    const id = typeof task === 'string' ? task : task.id
    return new Task<P, R>(await call(async () => client.cancel(id, reason)))
  }

  /**
   * Enqueues dead letters (`app.admin.deadLetters(...)`) again, each on its own queue (state
   * `retry`, tries reset). Resolves to one outcome per task, in order, shaped as
   * `Promise.allSettled`'s; `onProgress(done, total)` is called after each `batch` (default 100).
   */
  async replay(
    tasks: Iterable<Task | string>,
    options: { onProgress?: (done: number, total: number) => void; batch?: number } = {},
  ): Promise<Array<PromiseSettledResult<Task>>> {
    const client = await this.#connected()
    const ids = [...tasks].map((t) => (typeof t === 'string' ? t : t.id))
    const batch = Math.max(1, options.batch ?? 100)
    const out: Array<PromiseSettledResult<Task>> = []
    for (let start = 0; start < ids.length; start += batch) {
      const outcomes = await call(async () => client.replay(ids.slice(start, start + batch)))
      for (const outcome of outcomes) out.push(settled(outcome))
      options.onProgress?.(out.length, ids.length)
    }
    return out
  }

  /** `enqueue` (with its options), then `waitFor` the task. */
  async enqueueAndWait<P = unknown, R = unknown>(
    type: string,
    payload?: P,
    options: AppEnqueueOptions & WaitOptions = {},
  ): Promise<Task<P, R>> {
    const { timeoutMs, ...rest } = options
    const task = await this.enqueue(type, payload, rest)
    return this.waitFor<P, R>(task, { timeoutMs })
  }

  /** Enqueues a stored task again on the default queue, with its tries reset. */
  async retryTask<P = unknown, R = unknown>(id: string): Promise<Task<P, R>> {
    return (await this.queue()).retryTask<P, R>(id)
  }

  /** The default queue's settings as the server holds them. */
  async queueSettings(): Promise<QueueSettings> {
    return (await this.queue()).settings
  }

  /** A key-value bucket, created as `bucket` says unless it exists. */
  async kv(bucket: KvBucket | string): Promise<Kv> {
    const b = typeof bucket === 'string' ? new KvBucket(bucket) : bucket
    const client = await this.#connected()
    return new Kv(await call(async () => client.kv(b.toNative())), this.#watches)
  }

  /** Storage administration: queues and tasks. */
  get admin(): StorageAdmin {
    return new StorageAdmin(() => this.#connected())
  }

  /**
   * Processes tasks of every queue with a handler (the default queue when no handler names one)
   * until `signal` aborts (or SIGINT/SIGTERM, unless `handleSignals: false`), then shuts down
   * gracefully: in-flight handlers get the shutdown grace period to finish. One worker serves
   * every queue, so they share the app's `concurrency`; each queue's `maxConcurrent` caps its own.
   * Resolves once the worker stopped; the process is then no longer held open by it. One worker
   * per App: calling `run()` again before that rejects with `AlreadyRunningError`.
   */
  run(options: RunOptions = {}): Promise<void> {
    // Claimed synchronously, so that two calls without an `await` between them cannot both start.
    if (this.#running !== undefined) {
      return Promise.reject(new AlreadyRunningError('this App is already running: await its run() before starting another'))
    }
    const token = new native.CancellationToken()
    const stop = (): void => token.cancel()
    this.#stop = stop
    const running = this.#work(token, stop, options).finally(() => {
      this.#stop = undefined
      this.#running = undefined
    })
    this.#running = running
    return running
  }

  /** The queues to consume and their routes, in the order first registered. */
  #routesByQueue(): Map<string, Route[]> {
    const byQueue = new Map<string, Route[]>()
    for (const route of this.#routes) {
      const routes = byQueue.get(route.queue) ?? []
      routes.push(route)
      byQueue.set(route.queue, routes)
    }
    if (byQueue.size === 0) byQueue.set(this.#defaultQueue, [])
    return byQueue
  }

  /** One native worker consuming every queue; resolves to it, its handlers registered. */
  async #worker(client: native.Client, calls: Map<number, Call>): Promise<native.Worker> {
    const byQueue = this.#routesByQueue()
    const handles = await Promise.all([...byQueue.keys()].map((name) => this.queue(name)))
    const concurrency = this.#options.concurrency ?? DEFAULT_CONCURRENCY
    const budget = new Slots(concurrency)
    const worker = callSync(() => new native.Worker(client, this.#workerOptions))
    try {
      for (const [i, routes] of [...byQueue.values()].entries()) {
        const handle = handles[i] as QueueHandle
        const limit = handle.settings.maxConcurrent
        const slots = [new Slots(limit > 0 ? Math.min(limit, concurrency) : concurrency), budget]
        const mux = new native.Mux((callId) => abandon(calls, callId))
        try {
          for (const route of routes) {
            const invoke = compose([...this.#middleware, ...route.middleware], route.handler)
            callSync(() => mux.handle(route.type, (task, ctx) => void dispatch(invoke, task, ctx, calls, slots).catch(ignore)))
          }
          callSync(() => worker.consume(handle[kNative], mux))
        } finally {
          mux.close()
        }
      }
    } catch (error) {
      worker.close()
      throw error
    }
    return worker
  }

  async #work(token: native.CancellationToken, stop: () => void, options: RunOptions): Promise<void> {
    const client = await this.#connected()
    // `close()` while connecting: it already waited for this run, which must not start now.
    if (this.#closed) throw new ClosedError('the app was closed')
    const calls = new Map<number, Call>()
    const worker = await this.#worker(client, calls)
    if (this.#closed) {
      worker.close()
      throw new ClosedError('the app was closed')
    }
    const hardStop = new native.CancellationToken()
    const { signal, handleSignals = true } = options
    signal?.addEventListener('abort', stop, { once: true })
    if (signal?.aborted) stop()
    let exitWith: NodeJS.Signals | undefined
    const removeListeners = (): void => {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
    }
    // Ends the process as the signal would have without our listeners.
    const exit = (name: NodeJS.Signals): void => {
      removeListeners()
      if (process.listenerCount(name) === 0) process.kill(process.pid, name)
      else process.exit(128 + (constants.signals[name] ?? 0))
    }
    const onSignal = (name: NodeJS.Signals): void => {
      if (!token.isCancelled) {
        console.warn(`jetjobs: ${name}: shutting down gracefully; send it again to stop at once`)
        stop()
      } else if (exitWith === undefined) {
        // A second signal during the grace period: the engine hands unfinished tasks back now,
        // then the process ends; a third one ends it without waiting.
        console.warn(`jetjobs: ${name}: stopping at once; unfinished tasks go back to their queues`)
        exitWith = name
        hardStop.cancel()
        setTimeout(() => exit(name), HARD_STOP_TIMEOUT_MS).unref()
      } else {
        exit(name)
      }
    }
    if (handleSignals) {
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
    }
    try {
      await call(async () => worker.run(token, hardStop))
    } finally {
      signal?.removeEventListener('abort', stop)
      if (exitWith !== undefined) {
        // The released tasks are stored; flush the connection, then end as the signal would.
        const flushed = client.close().catch(ignore)
        await Promise.race([flushed, new Promise((resolve) => setTimeout(resolve, 2_000).unref())])
        exit(exitWith)
      } else if (handleSignals) {
        removeListeners()
      }
    }
  }

  /** Stops a running worker gracefully (as aborting its signal does). */
  stop(): void {
    this.#stop?.()
  }

  /**
   * Subscribes to lifecycle events; resolves once subscribed, so events of tasks enqueued
   * afterwards are seen. An event that cannot be read is skipped (see `EventsOptions.onError`).
   */
  async events(options: EventsOptions = {}): Promise<EventStream> {
    const client = await this.#connected()
    const stream = await call(async () => client.events())
    const { signal, onError } = options
    const onAbort = (): void => subscription.close()
    const subscription = new EventStream(
      stream,
      () => {
        this.#subscriptions.delete(subscription)
        signal?.removeEventListener('abort', onAbort)
      },
      onError,
    )
    this.#subscriptions.add(subscription)
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) subscription.close()
    return subscription
  }

  /**
   * Stops the worker (gracefully), ends event streams and KV watches, and closes the connection
   * (flushing what was published). Closing is final: later calls reject with `ClosedError`; closing again
   * waits for the first close.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#closed = true
    this.#stop?.()
    await this.#running?.catch(ignore)
    for (const s of [...this.#subscriptions]) s.close()
    for (const w of [...this.#watches]) w.close()
    const client = await this.#client?.catch(ignore)
    this.#client = undefined
    this.#handles.clear()
    if (client !== undefined) await call(async () => client.close())
  }
}
