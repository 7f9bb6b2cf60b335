// SPDX-License-Identifier: Apache-2.0
/** Errors: one `JetJobsError` subclass per core error kind, and `TerminateTask` for handlers. */
import * as native from '../native.js'

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
export class TaskAlreadyExistsError extends JetJobsError { readonly code = 'ERR_TASK_ALREADY_EXISTS'; readonly kind = 'TaskAlreadyExists' }
export class InvalidDependenciesError extends JetJobsError { readonly code = 'ERR_INVALID_DEPENDENCIES'; readonly kind = 'InvalidDependencies' }
export class PayloadTooLargeError extends JetJobsError { readonly code = 'ERR_PAYLOAD_TOO_LARGE'; readonly kind = 'PayloadTooLarge' }
export class KeyExistsError extends JetJobsError { readonly code = 'ERR_KEY_EXISTS'; readonly kind = 'KeyExists' }
export class KeyNotFoundError extends JetJobsError { readonly code = 'ERR_KEY_NOT_FOUND'; readonly kind = 'KeyNotFound' }
export class RevisionMismatchError extends JetJobsError { readonly code = 'ERR_REVISION_MISMATCH'; readonly kind = 'RevisionMismatch' }
/** `App.run()` while the app's worker is already running. */
export class AlreadyRunningError extends JetJobsError { readonly code = 'ERR_ALREADY_RUNNING'; readonly kind = 'AlreadyRunning' }
export class ClosedError extends JetJobsError { readonly code = 'ERR_CLOSED'; readonly kind = 'Closed' }
export class TaskFailedError extends JetJobsError { readonly code = 'ERR_TASK_FAILED'; readonly kind = 'TaskFailed' }
export class TimeoutError extends JetJobsError { readonly code = 'ERR_TIMEOUT'; readonly kind = 'Timeout' }
/** A cron specification asyncjobs would not accept, or none. */
export class InvalidScheduleError extends JetJobsError { readonly code = 'ERR_INVALID_SCHEDULE'; readonly kind = 'InvalidSchedule' }
/** A schedule name that is missing or invalid. */
export class InvalidScheduleNameError extends JetJobsError { readonly code = 'ERR_INVALID_SCHEDULE_NAME'; readonly kind = 'InvalidScheduleName' }
/** A scheduled task's deadline below asyncjobs' 30 s minimum. */
export class ScheduleDeadlineTooShortError extends JetJobsError { readonly code = 'ERR_SCHEDULE_DEADLINE_TOO_SHORT'; readonly kind = 'ScheduleDeadlineTooShort' }
/** A schedule with that name exists already. */
export class ScheduleExistsError extends JetJobsError { readonly code = 'ERR_SCHEDULE_EXISTS'; readonly kind = 'ScheduleExists' }
/** No schedule with that name. */
export class ScheduleNotFoundError extends JetJobsError { readonly code = 'ERR_SCHEDULE_NOT_FOUND'; readonly kind = 'ScheduleNotFound' }
/** No governor with that name. */
export class GovernorNotFoundError extends JetJobsError { readonly code = 'ERR_GOVERNOR_NOT_FOUND'; readonly kind = 'GovernorNotFound' }
/** No lease with that sequence on the governor. */
export class LeaseNotFoundError extends JetJobsError { readonly code = 'ERR_LEASE_NOT_FOUND'; readonly kind = 'LeaseNotFound' }
/** A supervised worker returned before it was cancelled. */
export class WorkerExitedPrematurelyError extends JetJobsError { readonly code = 'ERR_WORKER_EXITED_PREMATURELY'; readonly kind = 'WorkerExitedPrematurely' }
/** Several supervised workers or jobs failed; the errors are joined. */
export class WorkersFailedError extends JetJobsError {
  readonly code = 'ERR_WORKERS_FAILED'
  readonly kind = 'WorkersFailed'
  /**
   * The joined errors, in the order the workers or jobs returned: what a JS worker or job threw,
   * unchanged, or the engine's own error (a `JetJobsError`, e.g. `WorkerExitedPrematurelyError`).
   */
  readonly errors: readonly unknown[] = []
}
/** A pool has no live worker to run a job. */
export class NoWorkersError extends JetJobsError { readonly code = 'ERR_NO_WORKERS'; readonly kind = 'NoWorkers' }
/** A pool job with that key is already running. */
export class JobExistsError extends JetJobsError { readonly code = 'ERR_JOB_EXISTS'; readonly kind = 'JobExists' }
/** No pool job with that key. */
export class JobNotFoundError extends JetJobsError { readonly code = 'ERR_JOB_NOT_FOUND'; readonly kind = 'JobNotFound' }
/** A pool worker's start handler refused the job. */
export class JobStartFailedError extends JetJobsError { readonly code = 'ERR_JOB_START_FAILED'; readonly kind = 'JobStartFailed' }
/** A user callback (a supervised worker or job, a pool handler or plan) raised or threw. */
export class CallbackFailedError extends JetJobsError { readonly code = 'ERR_CALLBACK_FAILED'; readonly kind = 'CallbackFailed' }

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
  ERR_TASK_ALREADY_EXISTS: TaskAlreadyExistsError,
  ERR_INVALID_DEPENDENCIES: InvalidDependenciesError,
  ERR_PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  ERR_KEY_EXISTS: KeyExistsError,
  ERR_KEY_NOT_FOUND: KeyNotFoundError,
  ERR_REVISION_MISMATCH: RevisionMismatchError,
  ERR_ALREADY_RUNNING: AlreadyRunningError,
  ERR_CLOSED: ClosedError,
  ERR_TASK_FAILED: TaskFailedError,
  ERR_TIMEOUT: TimeoutError,
  ERR_INVALID_SCHEDULE: InvalidScheduleError,
  ERR_INVALID_SCHEDULE_NAME: InvalidScheduleNameError,
  ERR_SCHEDULE_DEADLINE_TOO_SHORT: ScheduleDeadlineTooShortError,
  ERR_SCHEDULE_EXISTS: ScheduleExistsError,
  ERR_SCHEDULE_NOT_FOUND: ScheduleNotFoundError,
  ERR_GOVERNOR_NOT_FOUND: GovernorNotFoundError,
  ERR_LEASE_NOT_FOUND: LeaseNotFoundError,
  ERR_WORKER_EXITED_PREMATURELY: WorkerExitedPrematurelyError,
  ERR_WORKERS_FAILED: WorkersFailedError,
  ERR_NO_WORKERS: NoWorkersError,
  ERR_JOB_EXISTS: JobExistsError,
  ERR_JOB_NOT_FOUND: JobNotFoundError,
  ERR_JOB_START_FAILED: JobStartFailedError,
  ERR_CALLBACK_FAILED: CallbackFailedError,
}

/** Every error code, in the core's order (from the addon), for exhaustive checks. */
export const ERROR_CODES: readonly ErrorCode[] = Object.freeze(native.errorCodes())

/** The error of class `code` with `message`, for outcomes the addon reports as data. */
export function errorFor(code: ErrorCode, message: string, cause?: string | null): JetJobsError {
  return cause == null ? new errorClasses[code](message) : new errorClasses[code](message, { cause: new Error(cause) })
}

/**
 * The addon throws plain errors carrying a `code`; this gives them their class (and a
 * `WorkersFailedError` its classified `errors`). `keep(error)` true leaves an error as it is.
 */
export function classify(error: unknown, keep: (error: unknown) => boolean = () => false): unknown {
  if (keep(error) || !(error instanceof Error) || error instanceof JetJobsError) return error
  const code = (error as { code?: unknown }).code
  if (typeof code !== 'string' || !Object.hasOwn(errorClasses, code)) return error
  const Class = errorClasses[code as ErrorCode]
  const classified = error.cause === undefined ? new Class(error.message) : new Class(error.message, { cause: error.cause })
  const joined = (error as { errors?: unknown }).errors
  if (classified instanceof WorkersFailedError && Array.isArray(joined)) {
    ;(classified as { errors: readonly unknown[] }).errors = Object.freeze(joined.map((e) => classify(e, keep)))
  }
  return classified
}

export async function call<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f()
  } catch (error) {
    throw classify(error)
  }
}

export function callSync<T>(f: () => T): T {
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
