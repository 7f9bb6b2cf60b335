// SPDX-License-Identifier: Apache-2.0
/** `Priority`: how a worker's handler slots are shared between its queues (the engine's policies). */
import * as native from '../native.js'
import { callSync } from './errors.js'
import { kNative } from './internal.js'
import type { Queue } from './queue.js'

function queueName(queue: Queue | string): string {
  return typeof queue === 'string' ? queue : queue.name
}

/**
 * Which queue's waiting task gets a freed handler slot when several queues of one worker have
 * tasks waiting (`new App({ priority })`). Its queues are checked when the worker runs: one it
 * does not consume, one named twice or a weight of 0 makes `run()` reject with
 * `InvalidOptionError`.
 */
export class Priority {
  /** @internal */
  readonly [kNative]: native.Priority
  private constructor(inner: native.Priority) {
    this[kNative] = inner
  }
  /**
   * A queue listed earlier always goes first: a later queue's task starts only while no earlier
   * one has a task waiting. Consumed queues not listed come last.
   */
  static strict(queues: Iterable<Queue | string>): Priority {
    return new Priority(callSync(() => native.Priority.strict([...queues].map(queueName))))
  }
  /**
   * Freed slots go to the queues with tasks waiting in proportion to their weights (whole numbers,
   * at least 1), e.g. `{ EMAIL: 3, REPORTS: 1 }`. Consumed queues not listed weigh 1.
   */
  static weighted(weights: Readonly<Record<string, number>> | Iterable<readonly [Queue | string, number]>): Priority {
    const pairs = Symbol.iterator in weights ? [...(weights as Iterable<readonly [Queue | string, number]>)] : Object.entries(weights)
    const list = pairs.map(([queue, weight]) => ({ queue: queueName(queue), weight }))
    return new Priority(callSync(() => native.Priority.weighted(list)))
  }
}
