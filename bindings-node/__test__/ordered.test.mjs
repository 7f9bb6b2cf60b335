// SPDX-License-Identifier: Apache-2.0
// Ordered queues against a real nats-server: tasks sharing an `orderKey` run one at a time in
// enqueue order, a failing task holds back the rest of its key (visibly, in `waitingFor`, without
// using tries) while other keys and unkeyed tasks run, and keyed tasks are refused on a queue
// without ordering.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, InvalidOptionError, Queue, RetryPolicy } from 'jetjobs'
import { queueName, useServer, waitFinal, waitFor } from './helpers.mjs'

const server = useServer()

const isInvalidOption = (error) => error instanceof InvalidOptionError && error.code === 'ERR_INVALID_OPTION'

/** An App on an ordered queue with 4 handler slots; `run()` starts its worker, stopped after the test. */
function setup(t, queue = new Queue(queueName('ORDERED'), { ordered: true })) {
  const app = new App({
    servers: server.url,
    queue,
    concurrency: 4,
    retryPolicy: RetryPolicy.exponential({ initialMs: 20, maxMs: 100 }),
  })
  const ac = new AbortController()
  let running
  t.after(async () => {
    ac.abort()
    await running
    await app.close()
  })
  return { app, run: () => (running = app.run({ signal: ac.signal, handleSignals: false })) }
}

test('each key runs in enqueue order through retries; other keys and unkeyed tasks run', async (t) => {
  const { app, run } = setup(t)
  const events = [] // [what, name]: what is 'start', 'ok' or 'retry'
  const keys = {} // the order key each handler saw
  app.task('step', async (task) => {
    const name = task.payload
    keys[name] = task.orderKey
    events.push(['start', name])
    if (name === 'a1' && task.tries <= 2) {
      events.push(['retry', name])
      throw new Error(`try ${task.tries} of a1 fails`)
    }
    events.push(['ok', name])
    return name
  })
  const a1 = await app.enqueue('step', 'a1', { orderKey: 'A' })
  assert.equal(a1.orderKey, 'A')
  assert.equal(a1.waitingFor, null)
  const rest = await app.enqueueMany([
    { type: 'step', payload: 'a2', orderKey: 'A' },
    { type: 'step', payload: 'b1', orderKey: 'B' },
    { type: 'step', payload: 'a3', orderKey: 'A' },
    { type: 'step', payload: 'free' },
  ])
  for (const outcome of rest) assert.equal(outcome.status, 'fulfilled', String(outcome.reason))
  const stored = [a1, ...rest.map((o) => o.value)]
  assert.deepEqual(stored.map((task) => task.orderKey), ['A', 'A', 'B', 'A', null])

  run()
  const done = await Promise.all(stored.map((task) => waitFinal(app, task.id)))
  assert.deepEqual(done.map((task) => task.state), Array(5).fill('complete'), done.map((task) => task.lastErr).join('; '))
  assert.equal(done[0].tries, 3)
  assert.deepEqual(done.slice(1).map((task) => task.tries), [1, 1, 1, 1], 'waiting costs no try')
  assert.ok(done.every((task) => task.waitingFor === null))

  const at = (what, name) => events.findIndex(([w, n]) => w === what && n === name)
  const succeeded = events.filter(([what]) => what === 'ok').map(([, name]) => name)
  assert.deepEqual(succeeded.filter((name) => name.startsWith('a')), ['a1', 'a2', 'a3'], JSON.stringify(events))
  assert.ok(succeeded.includes('b1') && succeeded.includes('free'))
  assert.ok(at('start', 'a2') > at('ok', 'a1'), `a2 started before a1 succeeded: ${JSON.stringify(events)}`)
  assert.ok(at('start', 'a3') > at('ok', 'a2'), `a3 started before a2 succeeded: ${JSON.stringify(events)}`)
  assert.equal(events.filter(([what]) => what === 'retry').length, 2)
  assert.deepEqual(keys, { a1: 'A', a2: 'A', a3: 'A', b1: 'B', free: null })
})

test('a failing task holds back its key visibly while other keys run', async (t) => {
  const { app, run } = setup(t)
  let failing = true
  const ran = []
  app.task('step', async (task) => {
    if (task.payload === 'a1' && failing) throw new Error('not yet')
    ran.push(task.payload)
  })
  // a1 keeps failing until the flag flips: it must not expire meanwhile.
  const a1 = await app.enqueue('step', 'a1', { orderKey: 'A', maxTries: 0 })
  const a2 = await app.enqueue('step', 'a2', { orderKey: 'A' })
  const b1 = await app.enqueue('step', 'b1', { orderKey: 'B' })
  const free = await app.enqueue('step', 'free')
  run()

  // B and the unkeyed task are not held back by A's failing head.
  await Promise.all([b1, free].map((task) => waitFinal(app, task.id)))
  const waiting = await waitFor(
    async () => {
      const task = await app.loadTask(a2.id)
      return task.waitingFor === null ? undefined : task
    },
    { what: 'a2 to show what it waits for' },
  )
  assert.equal(waiting.waitingFor, a1.id)
  assert.equal(waiting.state, 'new')
  assert.equal(waiting.tries, 0, 'waiting is not a try')
  await waitFor(async () => (await app.loadTask(a1.id)).tries >= 3, { what: 'a1 to be retried' })
  assert.ok(!ran.includes('a2'))
  assert.equal((await app.loadTask(a1.id)).state, 'retry')

  failing = false
  const done = await Promise.all([a1, a2, b1, free].map((task) => waitFinal(app, task.id)))
  assert.deepEqual(done.map((task) => task.state), Array(4).fill('complete'))
  assert.equal(done[1].tries, 1)
  assert.equal(done[1].waitingFor, null)
  assert.ok(ran.indexOf('a1') < ran.indexOf('a2'), ran.join(' '))
})

test('order keys need an ordered queue; orderKeyConcurrency reads back from the server', async (t) => {
  assert.throws(() => new Queue('Q', { orderKeyConcurrency: 1.5 }), isInvalidOption)
  assert.throws(() => new Queue('Q', { orderKeyConcurrency: -1 }), isInvalidOption)

  const { app } = setup(t, new Queue(queueName('PLAIN')))
  const plain = await app.queue()
  assert.equal(plain.settings.orderKeyConcurrency, 0)
  await assert.rejects(app.enqueue('step', 1, { orderKey: 'A' }), isInvalidOption)
  await assert.rejects(plain.enqueue('step', 1, { orderKey: 'A' }), isInvalidOption)
  const [refused] = await app.enqueueMany([{ type: 'step', payload: 1, orderKey: 'A' }])
  assert.equal(refused.status, 'rejected')
  assert.ok(isInvalidOption(refused.reason), String(refused.reason))

  const pairsName = queueName('PAIRS')
  const pairs = await app.queue(new Queue(pairsName, { orderKeyConcurrency: 2 }))
  assert.equal(pairs.settings.orderKeyConcurrency, 2)
  const other = new App({ servers: server.url, queue: Queue.bind(pairsName) })
  t.after(() => other.close())
  assert.equal((await other.queueSettings()).orderKeyConcurrency, 2, 'read back from the server')
  // On an ordered queue an empty key, or a key with a delay, is refused too.
  await assert.rejects(pairs.enqueue('step', 1, { orderKey: '' }), isInvalidOption)
  await assert.rejects(pairs.enqueue('step', 1, { orderKey: 'A', delay: 5_000 }), isInvalidOption)
  const keyed = await pairs.enqueue('step', 1, { orderKey: 'A' })
  const loaded = await app.loadTask(keyed.id)
  assert.deepEqual([loaded.orderKey, loaded.waitingFor, loaded.state], ['A', null, 'new'])
})
