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
import { Governor, governorManager, governorNames, newGovernor, type GovernorManager, type GovernorManagerOptions, type GovernorOptions } from './governor.js'
import { abandon, compose, dispatch, ignore, Slots, type Call, type Handler, type Middleware } from './handler.js'
import { kClient, kNative } from './internal.js'
import { Kv, KvBucket, type KvWatch } from './kv.js'
import { setLogger, type Logger, type LogLevel } from './logging.js'
import { Priority } from './priority.js'
import { Queue, type QueueSettings } from './queue.js'
import { enqueueMany, enqueueOne, QueueHandle, settled, taskSpec, type EnqueueOptions, type TaskInput, type WaitOptions } from './queueHandle.js'
import { RetryPolicy, type RetryPolicyName } from './retry.js'
import { ScheduledTask, ScheduleWatch, type ScheduleOptions } from './scheduler.js'
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
  /**
   * Where the engine's log events (corrupt items, outages, retries) go: `console` (the default)
   * or any object with `error`, `warn`, `info` and `debug` methods. Per process, as the engine's
   * log is: giving `logger` or `logLevel` calls `setLogger(logger, logLevel)`, replacing what an
   * earlier App or `setLogger()` set; an App given neither leaves the setting alone.
   */
  logger?: Logger
  /** The least severe engine events passed to `logger`: `'warn'` by default; `'off'` for none. */
  logLevel?: LogLevel
  /**
   * Run a `TaskScheduler` campaigning as this name while `run()` runs (unique per scheduler, e.g.
   * `${hostname()}-${process.pid}`): the elected one of all schedulers creates the scheduled tasks.
   */
  taskScheduler?: string
  /** Serve Prometheus metrics on `http://0.0.0.0:<port>/metrics` while a worker or scheduler runs (see `renderMetrics`). */
  prometheusPort?: number
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
  /**
   * Start a task only while holding a slot of this governor (its name, or a `Governor` from
   * `app.governor()` for another subject or interval), shared by every process: at most its limit
   * run at once. A task waiting for a slot uses no try and no handler slot; the slot is given back
   * when the handler ends, or kept until the governor's max age with `withoutLeaving` (a rate
   * limit: at most `limit` starts per max age). Create the governor first (`app.governorManager`).
   */
  governor?: Governor | string
  /**
   * With `governor` naming a per-key governor (`app.governorManager(name, { limit, perKey: true })`:
   * at most `limit` at once *per key*, e.g. per tenant), a JSON pointer (RFC 6901) into the task's
   * JSON payload whose value is the key: `{ governor: 'TENANT', governorKey: '/tenant' }`. A string
   * is used as it is, a number as its text (`42`). A task whose payload has no usable key there
   * (not JSON, missing, another type, or not one NATS subject token: empty, or with `.`, `*`, `>`
   * or whitespace) takes no slot: it is terminated with the reason in `lastErr`, as retrying it
   * could never succeed.
   */
  governorKey?: string
}

/** Options of `App.responder`. */
export interface ResponderOptions {
  /** Calls this responder runs at once (default 10); further requests wait. */
  concurrency?: number
  /** The queue group the responders of this type share (default: the subject). */
  queueGroup?: string
  /** Middleware for this responder only, inside the global middleware. */
  middleware?: readonly Middleware[]
}

/** A route handled as asyncjobs delegates: by request-reply, or by an external command. */
type Delegate = { readonly requestReply: true } | { readonly command: string }

interface Route {
  readonly queue: string
  readonly type: string
  /** Absent for a delegated route. */
  readonly handler?: Handler
  readonly delegate?: Delegate
  readonly middleware: readonly Middleware[]
  readonly governor?: Governor | string
  readonly governorKey?: string
}

interface ResponderRoute {
  readonly type: string
  readonly handler: Handler
  readonly options: ResponderOptions
}

/** Runs every run to its end; the first to fail stops the others (`stop`), then its error is thrown. */
async function together(runs: ReadonlyArray<() => Promise<void>>, stop: () => void): Promise<void> {
  const outcomes = await Promise.allSettled(
    runs.map((run) =>
      call(run).catch((error: unknown) => {
        stop()
        throw error
      }),
    ),
  )
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')
  if (failed !== undefined) throw failed.reason
}

function checkHandler(type: string, handler: unknown): void {
  if (typeof handler !== 'function') {
    throw new InvalidOptionError(`the handler for task type ${JSON.stringify(type)} must be a function, got ${typeof handler}`)
  }
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
  if (o.prometheusPort !== undefined) n.prometheusPort(o.prometheusPort)
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
  if (o.taskScheduler !== undefined) n.taskScheduler(o.taskScheduler)
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
  readonly #responders: ResponderRoute[] = []
  readonly #middleware: Middleware[] = []
  readonly #subscriptions = new Set<EventStream>()
  readonly #watches = new Set<KvWatch>()
  readonly #scheduleWatches = new Set<ScheduleWatch>()
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
    if (options.logger !== undefined || options.logLevel !== undefined) setLogger(options.logger, options.logLevel)
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

  /** @internal The connection, for `TaskScheduler`. */
  [kClient](): Promise<native.Client> {
    return this.#connected()
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
   * already has a handler on that queue (`DuplicateHandlerError`), a handler that is not a
   * function, a `governor` that is neither a name nor a `Governor`, or a `governorKey` that is not
   * a JSON pointer or comes without a governor name (`InvalidOptionError`). A governor name is
   * checked when `run()` starts.
   */
  task<P = any, R = unknown>(type: string, handler: Handler<P, R>, options: TaskOptions = {}): this {
    checkHandler(type, handler)
    const { governor, governorKey } = options
    if (governor !== undefined && typeof governor !== 'string' && !(governor instanceof Governor)) {
      throw new InvalidOptionError(`the governor for task type ${JSON.stringify(type)} must be a name or a Governor`)
    }
    if (governorKey !== undefined) {
      if (typeof governor !== 'string') {
        throw new InvalidOptionError(`governorKey for task type ${JSON.stringify(type)} needs governor set to a per-key governor's name`)
      }
      if (typeof governorKey !== 'string' || (governorKey !== '' && !governorKey.startsWith('/'))) {
        throw new InvalidOptionError(
          `the governorKey for task type ${JSON.stringify(type)} must be a JSON pointer (RFC 6901): '' for the whole payload, or starting with '/', e.g. '/tenant'`,
        )
      }
    }
    const queue = this.#routeQueue(type, options.queue)
    this.#routes.push({ queue, type, handler: handler as Handler, middleware: [...(options.middleware ?? [])], governor, governorKey })
    return this
  }

  /** The queue of a new route for `type`; throws for a type no task can have or a duplicate. */
  #routeQueue(type: string, queue: Queue | string | undefined): string {
    // `''` is the catch-all route; any other route, a prefix included, must be a possible task type.
    if (type !== '') callSync(() => native.validateTaskType(type))
    const name = this.#queueName(queue)
    if (this.#routes.some((route) => route.queue === name && route.type === type)) {
      throw new DuplicateHandlerError(`duplicate handler for task type ${JSON.stringify(type)} on queue ${name}`)
    }
    return name
  }

  /**
   * Routes a task type (or prefix; `''` for all) to remote responders over NATS request-reply, as
   * asyncjobs' `Mux.RequestReply` does: each try sends the task to `CHORIA_AJ.H.T.<type>`
   * (`catchall` for `''`) with asyncjobs' headers, to a Go service or an `app.responder()`. A
   * reply with `AJ-Terminate` terminates the task, one with `AJ-Error` fails the try; any other
   * reply completes it with the reply bytes, stored base64-encoded as asyncjobs stores them. No
   * responder (`request-reply callout failed: ...`) or under 3 s left (`deadline too short`) fail
   * the try. Global middleware does not wrap it.
   */
  requestReply(type: string, options: { queue?: Queue | string } = {}): this {
    this.#routes.push({ queue: this.#routeQueue(type, options.queue), type, delegate: { requestReply: true }, middleware: [] })
    return this
  }

  /**
   * Routes a task type (or prefix) to an external command, as asyncjobs' `Mux.ExternalProcess`
   * does: each try runs `command` with no arguments, no stdin and only `CHORIA_AJ_TASK` in its
   * environment, the path of a temporary file holding the task document. Exit 0 completes the
   * task with the combined stdout and stderr as a string; another exit fails the try (`execution
   * failed: exit status N`), as does a missing command (`command not found`, checked per try).
   * Global middleware does not wrap it.
   */
  externalProcess(type: string, command: string, options: { queue?: Queue | string } = {}): this {
    this.#routes.push({ queue: this.#routeQueue(type, options.queue), type, delegate: { command }, middleware: [] })
    return this
  }

  /**
   * Serves a task type to request-reply workers while `run()` runs: Go asyncjobs workers that route
   * it with `RequestReply` (and jetjobs ones with `requestReply`) send each try here, on
   * `CHORIA_AJ.H.T.<type>` (`''`: `catchall`). The handler is written as for `task()`: its result
   * goes back as JSON (the caller stores it base64-encoded), `TerminateTask` terminates the task
   * and any other throw fails the try; `ctx` has the caller's deadline. An app with responders and
   * no `task()` routes runs no worker.
   */
  responder<P = any, R = unknown>(type: string, handler: Handler<P, R>, options: ResponderOptions = {}): this {
    checkHandler(type, handler)
    if (type !== '') callSync(() => native.validateTaskType(type))
    if (this.#responders.some((r) => r.type === type)) {
      throw new DuplicateHandlerError(`duplicate responder for task type ${JSON.stringify(type)}`)
    }
    this.#responders.push({ type, handler: handler as Handler, options: { ...options } })
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
    return enqueueOne<P>(handle[kNative], spec)
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

  /**
   * A `Governor` campaigning for slots of governor `name` (choria's, on the wire):
   * `await governor.withSlot('holder', async (lease) => { ... }, { maxWaitMs })`.
   */
  async governor(name: string, options: GovernorOptions = {}): Promise<Governor> {
    return newGovernor(await this.#connected(), name, options)
  }

  /**
   * Governor `name`, created (or updated) with `options.limit` and the settings given; without a
   * `limit` only loaded, rejecting with `GovernorNotFoundError` if it does not exist.
   */
  async governorManager(name: string, options: GovernorManagerOptions = {}): Promise<GovernorManager> {
    return governorManager(await this.#connected(), name, options)
  }

  /** Names of the governors of `collective` (subjects `<collective>.governor.*`), sorted. */
  async governors(collective: string): Promise<string[]> {
    return governorNames(await this.#connected(), collective)
  }

  /**
   * Stores schedule `name`: a task of `type` with `payload` (encoded as by `enqueue`) enqueued on
   * the default queue or `options.queue` at each time `schedule` gives, in asyncjobs' cron syntax
   * (`0 2 * * *`, `@daily`, `@every 10m`). The elected scheduler of any process (a `TaskScheduler`,
   * an App with `taskScheduler`, or Go asyncjobs') fires it without a restart. The queue is opened
   * now (created unless it exists), as schedulers that do not create queues need. Rejects with
   * `ScheduleExistsError`, `InvalidScheduleError`, `InvalidScheduleNameError` or
   * `ScheduleDeadlineTooShortError` (`deadlineMs` under 30 s).
   */
  async createSchedule<P = unknown>(
    name: string,
    schedule: string,
    type: string,
    payload?: P,
    options: ScheduleOptions = {},
  ): Promise<ScheduledTask<P>> {
    const { queue, deadlineMs, maxTries } = options
    const deadline = deadlineMs === undefined ? undefined : new Date(Date.now() + deadlineMs)
    const spec = taskSpec(type, payload, { deadline, maxTries })
    const made = callSync(() => new native.ScheduledTask(name, schedule, this.#queueName(queue), spec))
    await this.queue(queue ?? this.#defaultQueue)
    const client = await this.#connected()
    return new ScheduledTask<P>(await call(async () => client.createSchedule(made)))
  }

  /** The schedule named `name`; rejects with `ScheduleNotFoundError` if there is none. */
  async loadSchedule<P = unknown>(name: string): Promise<ScheduledTask<P>> {
    const client = await this.#connected()
    return new ScheduledTask<P>(await call(async () => client.loadSchedule(name)))
  }

  /** Every schedule, by name. */
  async schedules(): Promise<ScheduledTask[]> {
    const client = await this.#connected()
    return (await call(async () => client.schedules())).map((s) => new ScheduledTask(s))
  }

  /** Removes the schedule named `name`; rejects with `ScheduleNotFoundError` if there is none. */
  async removeSchedule(name: string): Promise<void> {
    const client = await this.#connected()
    return call(async () => client.removeSchedule(name))
  }

  /**
   * Every schedule as it is, then each change as it happens (`{ kind: 'stored', name, schedule }`
   * or `{ kind: 'removed', name }`); resolves once watching. Ends on `close()`, `signal` or `app.close()`.
   */
  async watchSchedules(options: { signal?: AbortSignal } = {}): Promise<ScheduleWatch> {
    const client = await this.#connected()
    const inner = await call(async () => client.watchSchedules())
    const { signal } = options
    const onAbort = (): void => watch.close()
    const watch = new ScheduleWatch(inner, () => {
      this.#scheduleWatches.delete(watch)
      signal?.removeEventListener('abort', onAbort)
    })
    this.#scheduleWatches.add(watch)
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) watch.close()
    return watch
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
   * With `taskScheduler`, a task scheduler of that name runs alongside. Resolves once the worker stopped; the process is then no longer held open by it. One worker
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
            const { delegate, handler } = route
            if (delegate !== undefined) {
              if ('command' in delegate) callSync(() => mux.externalProcess(route.type, delegate.command))
              else callSync(() => mux.requestReply(route.type, client))
              continue
            }
            const invoke = compose([...this.#middleware, ...route.middleware], handler as Handler)
            callSync(() => mux.handle(route.type, (task, ctx) => void dispatch(invoke, task, ctx, calls, slots).catch(ignore)))
            const { governor, governorKey } = route
            if (governorKey !== undefined && typeof governor === 'string') {
              callSync(() => mux.governedPerKeyField(route.type, client, governor, governorKey))
            } else if (governor !== undefined) {
              const inner = typeof governor === 'string' ? newGovernor(client, governor, {})[kNative] : governor[kNative]
              callSync(() => mux.governed(route.type, inner))
            }
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

  /** The app's responders, each listening (so served before any task of this app calls out). */
  async #respondersListening(client: native.Client, calls: Map<number, Call>): Promise<native.Responder[]> {
    const made: native.Responder[] = []
    try {
      for (const { type, handler, options } of this.#responders) {
        const slots = [new Slots(options.concurrency ?? DEFAULT_CONCURRENCY)]
        const invoke = compose([...this.#middleware, ...(options.middleware ?? [])], handler)
        const respond = (task: native.Task, ctx: native.TaskContext): void => void dispatch(invoke, task, ctx, calls, slots).catch(ignore)
        const abort = (callId: number): void => abandon(calls, callId)
        made.push(callSync(() => new native.Responder(client, type, respond, abort, options.concurrency, options.queueGroup)))
      }
      await Promise.all(made.map((r) => call(async () => r.listen())))
    } catch (error) {
      for (const r of made) r.close()
      throw error
    }
    return made
  }

  async #work(token: native.CancellationToken, stop: () => void, options: RunOptions): Promise<void> {
    const client = await this.#connected()
    // `close()` while connecting: it already waited for this run, which must not start now.
    if (this.#closed) throw new ClosedError('the app was closed')
    const calls = new Map<number, Call>()
    const responders = await this.#respondersListening(client, calls)
    let worker: native.Worker | undefined
    try {
      if (this.#routes.length > 0 || responders.length === 0) worker = await this.#worker(client, calls)
    } catch (error) {
      for (const r of responders) r.close()
      throw error
    }
    if (this.#closed) {
      worker?.close()
      for (const r of responders) r.close()
      throw new ClosedError('the app was closed')
    }
    const hardStop = new native.CancellationToken()
    const runs = responders.map((r) => () => r.run(token))
    if (worker !== undefined) {
      const w = worker
      runs.push(() => w.run(token, hardStop))
    } else if (this.#options.taskScheduler !== undefined) {
      // No worker to run it in (responders only): the scheduler runs on its own.
      const scheduler = callSync(() => new native.TaskScheduler(client, this.#options.taskScheduler as string))
      runs.push(() => scheduler.run(token))
    }
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
      await together(runs, stop)
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
    for (const w of [...this.#scheduleWatches]) w.close()
    const client = await this.#client?.catch(ignore)
    this.#client = undefined
    this.#handles.clear()
    if (client !== undefined) await call(async () => client.close())
  }
}
