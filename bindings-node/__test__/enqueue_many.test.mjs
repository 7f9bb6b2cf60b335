// SPDX-License-Identifier: Apache-2.0
// enqueueMany: pipelined writes, one outcome per task in order (Promise.allSettled's shape), and
// enqueue's guarantees for each; a task without payload is stored as `"payload":null`, as Go does.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, InvalidPayloadError, RetryPolicy, TaskAlreadyExistsError } from 'jetjobs'
import { queueName, useServer, waitFor } from './helpers.mjs'

const server = useServer()

test('enqueueMany returns each task\'s outcome in order, and the tasks run', async (t) => {
  const app = new App({
    servers: server.url,
    queue: queueName('MANY'),
    retryPolicy: RetryPolicy.exponential({ initialMs: 50, maxMs: 200 }),
  })
  t.after(() => app.close())
  app.task('add', async (task) => task.payload + 1)
  const taken = await app.enqueue('add', 0, { id: 'taken' })

  const inputs = Array.from({ length: 1500 }, (_, n) => ({ type: 'add', payload: n + 1 }))
  inputs[5] = { type: 'add', payload: -1, id: 'taken' } // another task with a stored id
  inputs[7] = { type: 'add', payload: () => 1 } // no JSON form
  const outcomes = await app.enqueueMany(inputs)
  assert.equal(outcomes.length, 1500)
  assert.ok(outcomes[5].status === 'rejected' && outcomes[5].reason instanceof TaskAlreadyExistsError)
  assert.ok(outcomes[7].status === 'rejected' && outcomes[7].reason instanceof InvalidPayloadError)
  const stored = outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value)
  assert.equal(stored.length, 1498)
  assert.deepEqual(stored.slice(0, 5).map((task) => task.payload), [1, 2, 3, 4, 5])

  const ac = new AbortController()
  const worker = app.run({ signal: ac.signal, handleSignals: false })
  const queue = await app.queue()
  await waitFor(async () => (await queue.info()).items === 0, { timeoutMs: 60_000, what: 'every item settled' })
  ac.abort()
  await worker
  const done = await Promise.all([taken, ...stored].map((task) => app.loadTask(task.id)))
  assert.deepEqual([...new Set(done.map((task) => task.state))], ['complete'])
  assert.equal(done[1].result?.payload, 2)
})

test('a task without payload is stored as null, like Go\'s NewTask(type, nil)', async (t) => {
  const app = new App({ servers: server.url, queue: queueName('NULLS') })
  t.after(() => app.close())
  for (const payload of [undefined, null]) {
    const task = await app.enqueue('no:payload', payload)
    const stored = JSON.parse((await app.loadTask(task.id)).toJson())
    assert.equal(stored.payload, null)
    assert.equal(task.payloadBytes, null)
  }
})
