// SPDX-License-Identifier: Apache-2.0
// Priority between the queues of one worker, against a real nats-server: with a backlog in two
// queues and one handler slot, strict priority drains the high queue first and weighted priority
// starts tasks in the configured ratio.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, InvalidOptionError, Priority, Queue } from 'jetjobs'
import { queueName, useServer, waitFor } from './helpers.mjs'

const server = useServer()
const BACKLOG = 40

const isInvalidOption = (error) => error instanceof InvalidOptionError && error.code === 'ERR_INVALID_OPTION'

/**
 * Fills HIGH and LOW with a backlog before the worker starts, runs it with `priority(high, low)`
 * and concurrency 1 until every task ran, and returns the queue ('HIGH' or 'LOW') of each start.
 */
async function startOrder(t, priority) {
  const high = queueName('HIGH')
  const low = queueName('LOW')
  const app = new App({ servers: server.url, queue: high, queues: [low], concurrency: 1, priority: priority(high, low) })
  const ac = new AbortController()
  let running
  t.after(async () => {
    ac.abort()
    await running
    await app.close()
  })
  const order = []
  const label = { [high]: 'HIGH', [low]: 'LOW' }
  for (const queue of [high, low]) {
    app.task('work', async (task) => {
      order.push(label[task.queue])
    }, { queue })
    const outcomes = await app.enqueueMany(Array.from({ length: BACKLOG }, (_, i) => ({ type: 'work', payload: i })), { queue })
    assert.ok(outcomes.every((o) => o.status === 'fulfilled'))
  }
  running = app.run({ signal: ac.signal, handleSignals: false })
  await waitFor(() => order.length >= 2 * BACKLOG, { timeoutMs: 60_000, what: 'every task to start' })
  ac.abort()
  await running
  assert.equal(order.length, 2 * BACKLOG, 'every task ran once')
  return order
}

test('strict priority drains the high queue before the low one', async (t) => {
  const order = await startOrder(t, (high, low) => Priority.strict([high, new Queue(low)]))
  // The very first slot may go to whichever queue's item arrives first; after that HIGH goes
  // ahead of LOW until its backlog is gone.
  const lastHigh = order.lastIndexOf('HIGH')
  const lowBefore = order.slice(0, lastHigh).filter((q) => q === 'LOW').length
  assert.ok(lowBefore <= 1, `${lowBefore} LOW before the last HIGH: ${order.join(' ')}`)
})

test('weighted priority starts tasks in the configured ratio', async (t) => {
  const order = await startOrder(t, (high, low) => Priority.weighted({ [high]: 3, [low]: 1 }))
  // While both have a backlog (the first 40 starts hold at most 30 HIGH), 3 of every 4 are HIGH.
  const highs = order.slice(0, BACKLOG).filter((q) => q === 'HIGH').length
  assert.ok(highs >= 29 && highs <= 31, `${highs} of the first ${BACKLOG} were HIGH: ${order.join(' ')}`)
})

test('a priority the worker cannot run with is an InvalidOptionError', async (t) => {
  const queue = queueName('PRIO')
  const cases = [
    Priority.strict([queue, 'NOT_CONSUMED']),
    Priority.strict([queue, queue]),
    Priority.weighted(new Map([[queue, 0]])),
  ]
  for (const priority of cases) {
    const app = new App({ servers: server.url, queue, priority })
    t.after(() => app.close())
    app.task('work', async () => null)
    await assert.rejects(app.run({ handleSignals: false }), isInvalidOption)
  }
  // Checked when made: weights are whole numbers; and the option must be a Priority.
  assert.throws(() => Priority.weighted({ [queue]: 1.5 }), isInvalidOption)
  assert.throws(() => Priority.weighted({ [queue]: -1 }), isInvalidOption)
  assert.throws(() => new App({ servers: server.url, priority: 'HIGH' }), isInvalidOption)
})
