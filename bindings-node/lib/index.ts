// SPDX-License-Identifier: Apache-2.0
/**
 * jetjobs for Node: a thin, idiomatic layer over the native addon (`../native.js`).
 *
 * Routing, concurrency, retries, deadlines, signatures and dependencies are the Rust engine's.
 * This package adds only ergonomics: option objects, `AbortSignal`s, async iterators, middleware
 * around the JS handler call, `Date` conveniences, and one `Error` subclass per core error code.
 * One module per concept; this file only re-exports them.
 */
export {
  JetJobsError,
  TaskNotFoundError,
  InvalidTaskTypeError,
  InvalidTaskIdError,
  TaskCannotEnqueueError,
  TaskUpdateFailedError,
  TaskAlreadySignedError,
  SignatureRequiresQueueError,
  TaskNotSignedError,
  SignatureInvalidError,
  InvalidKeyError,
  QueueNotFoundError,
  QueueConsumerNotFoundError,
  InvalidQueueNameError,
  DuplicateItemError,
  DuplicateHandlerError,
  UnknownRetryPolicyError,
  InvalidRetryPolicyError,
  UnknownDiscardPolicyError,
  InvalidPayloadError,
  InvalidDocumentError,
  UnknownEventTypeError,
  InvalidOptionError,
  InProgressNotSupportedError,
  ConnectionError,
  StorageError,
  IoError,
  TaskAlreadyExistsError,
  InvalidDependenciesError,
  PayloadTooLargeError,
  KeyExistsError,
  KeyNotFoundError,
  RevisionMismatchError,
  AlreadyRunningError,
  ClosedError,
  TaskFailedError,
  TimeoutError,
  InvalidScheduleError,
  InvalidScheduleNameError,
  ScheduleDeadlineTooShortError,
  ScheduleExistsError,
  ScheduleNotFoundError,
  GovernorNotFoundError,
  LeaseNotFoundError,
  WorkerExitedPrematurelyError,
  WorkersFailedError,
  NoWorkersError,
  JobExistsError,
  JobNotFoundError,
  JobStartFailedError,
  CallbackFailedError,
  ERROR_CODES,
  TerminateTask,
  type ErrorCode,
} from './errors.js'
export * from './task.js'
export * from './queue.js'
export { QueueHandle, type EnqueueOptions, type TaskInput, type WaitOptions } from './queueHandle.js'
export * from './kv.js'
export { Governor, GovernorManager, Lease, type GovernorLease, type GovernorManagerOptions, type GovernorOptions, type StartOptions } from './governor.js'
export * from './retry.js'
export * from './priority.js'
export type { TraceContext } from './tracing.js'
export * from './signing.js'
export { TaskContext, type Handler, type Middleware } from './handler.js'
export * from './events.js'
export * from './app.js'
export * from './admin.js'
export * from './devServer.js'
export * from './constants.js'
export * from './logging.js'
export * from './scheduler.js'
export * from './metrics.js'
export * from './pool.js'
export * as supervisor from './supervisor.js'
