// SPDX-License-Identifier: Apache-2.0
/** `App`: the friendly entry point, a producer and worker for one queue. */
import { constants } from 'node:os'

import * as native from '../native.js'
import { Admin } from './admin.js'
import {
  AlreadyRunningError,
  ConnectionError,
  DuplicateHandlerError,
  InvalidOptionError,
  InvalidPayloadError,
  call,
  callSync,
} from './errors.js'
import { EventSubscription, type EventsOptions } from './events.js'
import { compose, ignore, settle, TaskContext, type Handler, type Middleware } from './handler.js'
import { kAbort, kNative, toJson } from './internal.js'
import { Queue, type QueueSettings } from './queue.js'
import { RetryPolicy, type RetryPolicyName } from './retry.js'
import { TaskSigner, TaskVerifier } from './signing.js'
import { Task } from './task.js'

/** States that can be deleted instead of stored. */
export type DiscardState = 'complete' | 'expired' | 'terminated'

export interface AppOptions {
  /** Server URL(s); default `nats://127.0.0.1:4222`. */
  servers?: string | readonly string[]
  /** The queue to enqueue to and work on; default asyncjobs' `DEFAULT` queue. */
  queue?: Queue | string
  /** Handlers this worker runs at once (default 10). */
  concurrency?: number
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
}

export interface RunOptions {
  /** Aborting it stops the worker gracefully. */
  signal?: AbortSignal
  /**
   * Stop gracefully on SIGINT and SIGTERM while running (default true). A second signal during
   * the shutdown grace period stops the process at once, with that signal's default action.
   */
  handleSignals?: boolean
}

export interface TaskOptions {
  /** Middleware for this task type only, inside the global middleware. */
  middleware?: readonly Middleware[]
}

interface Route {
  readonly type: string
  readonly handler: Handler
  readonly middleware: readonly Middleware[]
}

function clientOptions(o: AppOptions): native.ClientOptions {
  const n = new native.ClientOptions()
  const queue = typeof o.queue === 'string' ? new Queue(o.queue) : o.queue
  if (queue !== undefined) n.queue(queue.toNative())
  if (o.concurrency !== undefined) n.concurrency(o.concurrency)
  if (o.retryPolicy !== undefined) {
    const policy = typeof o.retryPolicy === 'string' ? RetryPolicy.named(o.retryPolicy) : o.retryPolicy
    n.retryPolicy(policy[kNative])
  }
  if (o.signingKey !== undefined) {
    const signer = typeof o.signingKey === 'string' ? TaskSigner.fromHex(o.signingKey) : o.signingKey
    n.signingKey(signer[kNative])
  }
  if (o.verificationKey !== undefined) {
    const verifier = typeof o.verificationKey === 'string' ? TaskVerifier.fromHex(o.verificationKey) : o.verificationKey
    n.verificationKey(verifier[kNative])
  }
  if (o.signaturesOptional) n.signaturesOptional()
  if (o.discard !== undefined) n.discardStates([...o.discard])
  if (o.shutdownGraceMs !== undefined) n.shutdownGraceMs(o.shutdownGraceMs)
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

/**
 * The stored form of an `enqueue` payload: a `Buffer`/`Uint8Array` as raw bytes, anything else
 * as JSON (`BigInt`s as JSON integers; `undefined` as `null`). A value without a JSON form (a
 * function, a Symbol) or that cannot be encoded (a cycle) is an `InvalidPayloadError`.
 */
function encodePayload(payload: unknown): string | Buffer {
  if (payload instanceof Uint8Array) return Buffer.from(payload)
  if (payload === undefined) return 'null'
  let text: string | undefined
  try {
    text = toJson(payload)
  } catch (error) {
    throw new InvalidPayloadError(`encoding payload: ${(error as Error).message}`, { cause: error })
  }
  if (text === undefined) throw new InvalidPayloadError(`a ${typeof payload} payload has no JSON form`)
  return text
}

/**
 * A producer and worker for one queue.
 *
 * ```ts
 * const app = new App({ servers: 'nats://127.0.0.1:4222', queue: new Queue('EMAIL') })
 * app.task('email:send', async (task) => ({ sent: true }))
 * await app.enqueue('email:send', { to: 'a@example.net' })
 * await app.run({ signal })
 * ```
 */
export class App {
  readonly #options: AppOptions
  readonly #nativeOptions: native.ClientOptions
  readonly #routes: Route[] = []
  readonly #middleware: Middleware[] = []
  readonly #subscriptions = new Set<EventSubscription>()
  #client: Promise<native.Client> | undefined
  #running: Promise<void> | undefined
  #stop: (() => void) | undefined
  #closed = false

  /** Checks every option now: an invalid one (e.g. `concurrency: 1.5`) throws `InvalidOptionError`. */
  constructor(options: AppOptions = {}) {
    this.#options = { ...options }
    this.#nativeOptions = callSync(() => clientOptions(this.#options))
  }

  /** Connects (once; every other method connects on first use) and prepares the queue. */
  async connect(): Promise<void> {
    await this.#connected()
  }

  #connected(): Promise<native.Client> {
    if (this.#closed) return Promise.reject(new ConnectionError('app is closed'))
    if (this.#client === undefined) {
      const servers = this.#options.servers ?? 'nats://127.0.0.1:4222'
      const url = typeof servers === 'string' ? servers : servers.join(',')
      const connecting = call(async () => this.#nativeOptions.connect(url))
      connecting.catch(() => {
        if (this.#client === connecting) this.#client = undefined
      })
      this.#client = connecting
    }
    return this.#client
  }

  /**
   * Registers a handler for a task type, or a prefix of types (`''` handles everything). Throws
   * at once for a type no task can have (`InvalidTaskTypeError`, e.g. `'email.send'`), a type
   * that already has a handler (`DuplicateHandlerError`) or a handler that is not a function
   * (`InvalidOptionError`).
   */
  task<P = any, R = unknown>(type: string, handler: Handler<P, R>, options: TaskOptions = {}): this {
    if (typeof handler !== 'function') {
      throw new InvalidOptionError(`the handler for task type ${JSON.stringify(type)} must be a function, got ${typeof handler}`)
    }
    // `''` is the catch-all route; any other route, a prefix included, must be a possible task type.
    if (type !== '') callSync(() => native.validateTaskType(type))
    if (this.#routes.some((route) => route.type === type)) {
      throw new DuplicateHandlerError(`duplicate handler for task type ${JSON.stringify(type)}`)
    }
    this.#routes.push({ type, handler: handler as Handler, middleware: [...(options.middleware ?? [])] })
    return this
  }

  /** Adds global middleware around every handler, outermost first in the order added. */
  use(middleware: Middleware): this {
    this.#middleware.push(middleware)
    return this
  }

  /**
   * Stores a task and its work item. `payload` is JSON-encoded, except a `Buffer`/`Uint8Array`,
   * which is stored as raw bytes.
   */
  async enqueue<P = unknown>(type: string, payload?: P, options: EnqueueOptions = {}): Promise<Task<P>> {
    const spec: native.TaskSpec = { type, payload: encodePayload(payload) }
    if (options.id !== undefined) spec.id = options.id
    if (options.deadline !== undefined) {
      spec.deadline = typeof options.deadline === 'string' ? options.deadline : options.deadline.toISOString()
    }
    if (options.maxTries !== undefined) spec.maxTries = options.maxTries
    if (options.dependsOn !== undefined) spec.dependencies = options.dependsOn.map((d) => (typeof d === 'string' ? d : d.id))
    if (options.loadDependencies !== undefined) spec.loadDependencies = options.loadDependencies
    const client = await this.#connected()
    return new Task<P>(await call(async () => client.enqueue(spec)))
  }

  /** Loads a task (verifying its signature when a verification key is configured). */
  async loadTask<P = unknown, R = unknown>(id: string): Promise<Task<P, R>> {
    const client = await this.#connected()
    return new Task<P, R>(await call(async () => client.loadTask(id)))
  }

  /** Enqueues a stored task again, with its tries reset. */
  async retryTask<P = unknown, R = unknown>(id: string): Promise<Task<P, R>> {
    const client = await this.#connected()
    return new Task<P, R>(await call(async () => client.retryTask(id)))
  }

  /** The queue's settings as the server holds them. */
  async queueSettings(): Promise<QueueSettings> {
    const client = await this.#connected()
    return callSync(() => client.queue)
  }

  /** Storage administration: queues and tasks. */
  get admin(): Admin {
    return new Admin(() => this.#connected())
  }

  /**
   * Processes tasks until `signal` aborts (or SIGINT/SIGTERM, unless `handleSignals: false`),
   * then shuts down gracefully: in-flight handlers get the shutdown grace period to finish.
   * Resolves once the worker stopped; the process is then no longer held open by it. One worker
   * per App: calling `run()` again before that rejects with `AlreadyRunningError`.
   */
  run(options: RunOptions = {}): Promise<void> {
    // Claimed synchronously, so that two calls without an `await` between them cannot both start.
    if (this.#running !== undefined) {
      return Promise.reject(new AlreadyRunningError('this App is already running: await its run() before starting another'))
    }
    const token = new native.ShutdownToken()
    const stop = (): void => token.cancel()
    this.#stop = stop
    const running = this.#work(token, stop, options).finally(() => {
      this.#stop = undefined
      this.#running = undefined
    })
    this.#running = running
    return running
  }

  async #work(token: native.ShutdownToken, stop: () => void, options: RunOptions): Promise<void> {
    const client = await this.#connected()
    // `close()` while connecting: it already waited for this run, which must not start now.
    if (this.#closed) throw new ConnectionError('app is closed')
    const calls = new Map<number, TaskContext>()
    const router = new native.Router((callId) => calls.get(callId)?.[kAbort]())
    const { signal, handleSignals = true } = options
    try {
      for (const route of this.#routes) {
        const invoke = compose([...this.#middleware, ...route.middleware], route.handler)
        callSync(() => router.handle(route.type, (task, ctx) => void settle(invoke, task, ctx, calls).catch(ignore)))
      }
    } catch (error) {
      router.close()
      throw error
    }
    signal?.addEventListener('abort', stop, { once: true })
    if (signal?.aborted) stop()
    const onSignal = (name: NodeJS.Signals): void => {
      if (!token.isCancelled) {
        console.warn(`jetjobs: ${name}: shutting down gracefully; send it again to stop at once`)
        stop()
        return
      }
      // A second signal during the grace period: stop at once, as the signal would without us.
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      if (process.listenerCount(name) === 0) process.kill(process.pid, name)
      else process.exit(128 + (constants.signals[name] ?? 0))
    }
    if (handleSignals) {
      process.on('SIGINT', onSignal)
      process.on('SIGTERM', onSignal)
    }
    try {
      await call(async () => client.run(router, token))
    } finally {
      router.close()
      signal?.removeEventListener('abort', stop)
      if (handleSignals) {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
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
  async events(options: EventsOptions = {}): Promise<EventSubscription> {
    const client = await this.#connected()
    const stream = await call(async () => client.events())
    const { signal, onError } = options
    const onAbort = (): void => subscription.close()
    const subscription = new EventSubscription(
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

  /** Stops the worker (gracefully), ends event subscriptions and lets go of the connection. */
  async close(): Promise<void> {
    this.#closed = true
    this.#stop?.()
    await this.#running?.catch(() => undefined)
    for (const s of [...this.#subscriptions]) s.close()
    const client = await this.#client?.catch(() => undefined)
    this.#client = undefined
    client?.close()
  }
}
