// SPDX-License-Identifier: Apache-2.0
/** Ids, names, the version, and the engine's defaults and wire constants. */
import * as native from '../native.js'

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
