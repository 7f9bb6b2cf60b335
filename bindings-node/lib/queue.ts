// SPDX-License-Identifier: Apache-2.0
/** `Queue` and the queue settings and counts the server reports. */
import * as native from '../native.js'
import { callSync } from './errors.js'

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
  /**
   * Run tasks sharing an `orderKey` one at a time in enqueue order across every worker; a
   * failure that will be retried holds back the later tasks of its key. Unkeyed tasks run as usual.
   */
  ordered?: boolean
  /** Ordering with up to this many tasks of one key running at once; 0 turns ordering off. */
  orderKeyConcurrency?: number
}

/** A work queue (`CHORIA_AJ_Q_<name>`). Unset options keep the engine's defaults. */
export class Queue {
  readonly name: string
  readonly options: Readonly<QueueOptions>
  #bind = false
  constructor(name: string, options: QueueOptions = {}) {
    this.name = name
    this.options = { ...options }
    // The engine's conversion checks the options now (e.g. `maxConcurrent: NaN` is an
    // `InvalidOptionError`), rather than at the first call that connects.
    callSync(() => new native.ClientOptions().queue(this.toNative()))
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
