// SPDX-License-Identifier: Apache-2.0
/**
 * Settles the promises of many enqueues with one call from the addon (`src/settler.rs`): each
 * enqueue is numbered, and the addon reports finished ones in batches, where a promise of its own
 * would cost a wake of the JS thread per enqueue.
 */
import * as native from '../native.js'
import { errorFor } from './errors.js'

interface Waiting {
  resolve: (task: native.Task) => void
  reject: (reason: unknown) => void
}

const waiting = new Map<number, Waiting>()
let nextId = 0
let settler: native.Settler | undefined
// The addon's callback does not keep the process alive (so an idle app lets it exit); this
// timer does while an enqueue waits, as a pending promise of the addon's own would.
let keepAlive: NodeJS.Timeout | undefined

function settleBatch(batch: native.Settled[]): void {
  for (const { id, outcome } of batch) {
    const call = waiting.get(id)
    if (call === undefined) continue
    waiting.delete(id)
    if (outcome.task != null) call.resolve(outcome.task)
    else call.reject(outcome.code != null ? errorFor(outcome.code, outcome.message ?? '', outcome.cause) : new Error('no outcome'))
  }
  if (waiting.size === 0) keepAlive?.unref()
}

/**
 * Starts an enqueue with `send(settler, id)` and resolves to its stored task. What `send` throws
 * (a spec that makes no task) is thrown here.
 */
export function settle(send: (settler: native.Settler, id: number) => void): Promise<native.Task> {
  settler ??= new native.Settler(settleBatch)
  const id = nextId
  nextId = (nextId + 1) >>> 0
  const settled = new Promise<native.Task>((resolve, reject) => {
    waiting.set(id, { resolve, reject })
  })
  try {
    send(settler, id)
  } catch (error) {
    waiting.delete(id)
    throw error
  }
  if (keepAlive === undefined) keepAlive = setInterval(() => {}, 2 ** 30)
  keepAlive.ref()
  return settled
}
