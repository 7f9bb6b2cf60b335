// SPDX-License-Identifier: Apache-2.0
// One App over several queues: one worker and one concurrency budget, per-queue limits, queue
// handles, one connection for racing first calls, and JS bodies that outlive their try
// (issue 8 §1 and §2.12, Node side), against a real nats-server.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { describe, test } from 'node:test'

import { App, Queue, QueueHandle, RetryPolicy } from 'jetjobs'
import { queueName, useServer, waitFinal, waitFor } from './helpers.mjs'

const native = createRequire(import.meta.url)('../native.js')
const server = useServer()
const fast = () => RetryPolicy.exponential({ initialMs: 50, maxMs: 200 })

/** Stops the app's worker and closes it when the test ends. */
function running(t, app) {
  const ac = new AbortController()
  const run = app.run({ signal: ac.signal, handleSignals: false })
  const stop = async () => {
    ac.abort()
    await run
    await app.close()
  }
  t.after(stop)
  return stop
}

describe('several queues', () => {
  test('one worker serves two queues under one budget, each within its own maxConcurrent', async (t) => {
    const [a, b] = [queueName('QA'), queueName('QB')]
    const perQueue = 4
    const app = new App({
      servers: server.url,
      queue: queueName('QDEF'),
      queues: [new Queue(a, { maxConcurrent: 2 })],
      concurrency: 3,
      retryPolicy: fast(),
    })
    const state = { [a]: { running: 0, peak: 0, started: 0 }, [b]: { running: 0, peak: 0, started: 0 } }
    let running_ = 0
    let peak = 0
    const limits = { [a]: 2, [b]: 2 }
    // More could start: a queue with unstarted tasks and a free slot, and budget left.
    const canStart = () => running_ < 3 && Object.entries(state).some(([q, s]) => s.started < perQueue && s.running < limits[q])
    const handler = async (task) => {
      const s = state[task.queue]
      s.running += 1
      s.started += 1
      running_ += 1
      s.peak = Math.max(s.peak, s.running)
      peak = Math.max(peak, running_)
      // Hold the slot until nothing more could start, so that a broken limit shows as a higher peak.
      await waitFor(() => !canStart(), { what: 'the slots to fill' })
      await new Promise((resolve) => setImmediate(resolve))
      s.running -= 1
      running_ -= 1
      return task.queue
    }
    // The same type on both queues; `a` was configured through `queues`, `b` is given here.
    app.task('work', handler, { queue: a })
    app.task('work', handler, { queue: new Queue(b, { maxConcurrent: 2 }) })
    const tasks = []
    for (let i = 0; i < perQueue; i++) {
      tasks.push(await app.enqueue('work', i, { queue: a }))
      tasks.push(await app.enqueue('work', i, { queue: new Queue(b) }))
    }
    assert.deepEqual(tasks.map((x) => x.queue), tasks.map((_, i) => (i % 2 === 0 ? a : b)), 'each task landed on its queue')
    const stop = running(t, app)
    const done = await Promise.all(tasks.map((x) => waitFinal(app, x.id)))
    await stop()
    for (const [i, d] of done.entries()) {
      assert.equal(d.state, 'complete', d.lastErr)
      assert.equal(d.result.payload, tasks[i].queue, 'the handler of its own queue ran it')
    }
    assert.equal(peak, 3, 'the app concurrency caps both queues together')
    assert.ok(state[a].peak <= 2 && state[b].peak <= 2, JSON.stringify(state))
  })

  test('app.queue() gives a cached handle with info() and purge(); enqueue lands on the named queue', async (t) => {
    const name = queueName('QH')
    const app = new App({ servers: server.url, queue: queueName('QDEF') })
    t.after(() => app.close())
    const [handle, again] = await Promise.all([app.queue(new Queue(name, { maxConcurrent: 3 })), app.queue(name)])
    assert.ok(handle instanceof QueueHandle)
    assert.equal(handle, again, 'one handle per queue name')
    assert.equal(handle.name, name)
    assert.equal(handle.settings.maxConcurrent, 3)
    const viaHandle = await handle.enqueue('idle', { n: 1 })
    const viaApp = await app.enqueue('idle', { n: 2 }, { queue: name })
    const onDefault = await app.enqueue('idle', { n: 3 })
    assert.equal(viaHandle.queue, name)
    assert.equal(viaApp.queue, name)
    assert.equal((await app.loadTask(viaApp.id)).queue, name)
    assert.equal(onDefault.queue, (await app.queue()).name)
    assert.notEqual(onDefault.queue, name)
    const info = await handle.info()
    assert.equal(info.queue.name, name)
    assert.equal(info.items, 2)
    await handle.purge()
    assert.equal((await handle.info()).items, 0)
    assert.equal((await app.queue()).name, (await app.queueSettings()).name)
    // A stored task can be enqueued again on another queue through its handle.
    const moved = await handle.retryTask(onDefault.id)
    assert.equal(moved.queue, name)
    assert.equal((await handle.info()).items, 1)
  })

  test('racing first calls on a fresh App open one connection', async (t) => {
    const producer = new App({ servers: server.url, queue: queueName() })
    t.after(() => producer.close())
    const [x, y] = [await producer.enqueue('race', 1), await producer.enqueue('race', 2)]
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    const before = native.connectionsOpened()
    const [lx, ly, handle] = await Promise.all([app.loadTask(x.id), app.loadTask(y.id), app.queue(), app.connect()])
    assert.deepEqual([lx.payload, ly.payload], [1, 2])
    assert.ok(handle instanceof QueueHandle)
    assert.equal(native.connectionsOpened() - before, 1)
  })

  test('close() closes the connection for good; later calls are ClosedErrors; closing twice is fine', async () => {
    const app = new App({ servers: server.url, queue: queueName() })
    const handle = await app.queue()
    await Promise.all([app.close(), app.close()])
    await app.close()
    await assert.rejects(app.loadTask('x'), (e) => e.code === 'ERR_CLOSED')
    await assert.rejects(app.queue(), (e) => e.code === 'ERR_CLOSED')
    // A handle of a closed app fails too (its connection is closed), rather than hanging.
    await assert.rejects(handle.enqueue('late', 1), (e) => e.code === 'ERR_CLOSED')
  })
})

describe('JS bodies that outlive their try', () => {
  test('never run more than the concurrency at once; each overrun is reported once', async (t) => {
    const warn = t.mock.method(console, 'warn', () => undefined)
    const app = new App({
      servers: server.url,
      queue: new Queue(queueName('OVR'), { maxRunTimeMs: 500, maxTries: 2 }),
      concurrency: 2,
      retryPolicy: fast(),
    })
    let bodies = 0
    let peak = 0
    let started = 0
    app.task('slow', async () => {
      // Ignores ctx.signal and runs three times its max run time.
      bodies += 1
      started += 1
      peak = Math.max(peak, bodies)
      await new Promise((resolve) => setTimeout(resolve, 1_500))
      bodies -= 1
      return 'too late'
    })
    const tasks = []
    for (let i = 0; i < 4; i++) tasks.push(await app.enqueue('slow', i))
    const stop = running(t, app)
    const done = await Promise.all(tasks.map((x) => waitFinal(app, x.id, { timeoutMs: 60_000 })))
    await waitFor(() => bodies === 0, { what: 'every body to settle' })
    await stop()
    assert.ok(done.every((d) => d.state === 'expired'), done.map((d) => `${d.state} ${d.lastErr}`).join('\n'))
    assert.ok(started >= 3, `the engine freed its slots and handed out more tries (${started} bodies ran)`)
    assert.equal(peak, 2, 'no more than the concurrency of JS bodies ran at once')
    const overruns = warn.mock.calls.map((c) => String(c.arguments[0])).filter((line) => /still running after its try was abandoned/.test(line))
    assert.equal(overruns.length, started, overruns.join('\n'))
  })
})
