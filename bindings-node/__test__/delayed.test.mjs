// SPDX-License-Identifier: Apache-2.0
// Delayed tasks (`delay` / `runAt`) against a real nats-server: held back until due, never
// started early, cancellable while they wait.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, InvalidOptionError, Queue, RetryPolicy } from 'jetjobs'
import { queueName, useServer, waitFinal, waitFor } from './helpers.mjs'

const server = useServer()

/** An App on its own queue; `run()` starts its worker, which stops (and the app closes) after the test. */
function setup(t) {
  const app = new App({
    servers: server.url,
    queue: new Queue(queueName('DELAYED')),
    retryPolicy: RetryPolicy.exponential({ initialMs: 50, maxMs: 200 }),
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

const isInvalidOption = (error) => error instanceof InvalidOptionError && error.code === 'ERR_INVALID_OPTION'

test('delayed tasks stay new until due, then all run and none starts before its runAt', async (t) => {
  const { app, run } = setup(t)
  const starts = new Map()
  app.task('later', async (task) => {
    starts.set(task.id, Date.now())
  })
  // The worker runs all along: it must not start any task early.
  run()
  const handle = await app.queue()
  const now = Date.now()
  const delayOf = (i) => 1_000 + i * 50 // spread over 1–2 s
  const tasks = []
  // Every enqueue path, with both options: app.enqueue, QueueHandle.enqueue, enqueueMany.
  for (let i = 0; i < 10; i += 1) {
    const options = i % 2 === 0 ? { delay: delayOf(i) } : { runAt: new Date(now + delayOf(i)) }
    tasks.push(await app.enqueue('later', i, options))
  }
  for (let i = 10; i < 15; i += 1) tasks.push(await handle.enqueue('later', i, { runAt: new Date(now + delayOf(i)) }))
  const many = await app.enqueueMany(Array.from({ length: 5 }, (_, k) => ({ type: 'later', payload: 15 + k, delay: delayOf(15 + k) })))
  for (const outcome of many) {
    assert.equal(outcome.status, 'fulfilled', String(outcome.reason))
    tasks.push(outcome.value)
  }
  assert.equal(tasks.length, 20)
  for (const task of tasks) {
    assert.ok(task.runAt instanceof Date, 'runAt is set')
    assert.ok(task.runAt.getTime() >= now + 1_000 - 5, `runAt ${task.runAt.toISOString()} is about 1 s or more ahead`)
    assert.equal(typeof task.runAtNs, 'bigint')
  }
  // Loaded before the first is due: stored as `new`, with their runAt.
  const loaded = await Promise.all(tasks.map((task) => app.loadTask(task.id)))
  assert.ok(Date.now() < now + 1_000, 'loaded before any task was due')
  for (const [i, task] of loaded.entries()) {
    assert.equal(task.state, 'new')
    assert.equal(task.runAtNs, tasks[i].runAtNs)
  }
  assert.equal(starts.size, 0)
  const done = await Promise.all(tasks.map((task) => waitFinal(app, task.id, { timeoutMs: 30_000 })))
  for (const task of done) {
    assert.equal(task.state, 'complete')
    const started = starts.get(task.id)
    assert.ok(started !== undefined, `task ${task.id} ran`)
    assert.ok(started >= task.runAt.getTime(), `task ${task.id} started ${task.runAt.getTime() - started} ms early`)
  }
})

test('a cancelled delayed task never runs and ends terminated', async (t) => {
  const { app, run } = setup(t)
  const started = new Set()
  app.task('later', async (task) => {
    started.add(task.id)
  })
  const cancelled = await app.enqueue('later', 'cancelled', { delay: 500 })
  const control = await app.enqueue('later', 'control', { delay: 700 })
  const stored = await app.cancel(cancelled, 'not needed')
  assert.equal(stored.state, 'terminated')
  run()
  // The control task, due after the cancelled one, ran: so the cancelled one would have too.
  assert.equal((await waitFinal(app, control.id)).state, 'complete')
  await waitFor(() => started.has(control.id), { what: 'the control task to start' })
  assert.ok(!started.has(cancelled.id), 'the cancelled task never ran')
  assert.equal((await app.loadTask(cancelled.id)).state, 'terminated')
})

test('delay with runAt, or a deadline before runAt, is an InvalidOptionError', async (t) => {
  const { app } = setup(t)
  const soon = new Date(Date.now() + 60_000)
  await assert.rejects(app.enqueue('later', null, { delay: 1_000, runAt: soon }), isInvalidOption)
  await assert.rejects((await app.queue()).enqueue('later', null, { delay: 1_000, runAt: soon }), isInvalidOption)
  const [both] = await app.enqueueMany([{ type: 'later', delay: 1_000, runAt: soon }])
  assert.equal(both.status, 'rejected')
  assert.ok(isInvalidOption(both.reason), String(both.reason))
  const deadline = new Date(soon.getTime() - 30_000)
  await assert.rejects(app.enqueue('later', null, { runAt: soon, deadline }), isInvalidOption)
  await assert.rejects(app.enqueue('later', null, { delay: 60_000, deadline }), isInvalidOption)
  await assert.rejects(app.enqueue('later', null, { delay: -1 }), isInvalidOption)
  await assert.rejects(app.enqueue('later', null, { runAt: new Date(Number.NaN) }), isInvalidOption)
  // A runAt in the past means now.
  const past = await app.enqueue('later', null, { runAt: new Date(Date.now() - 60_000) })
  assert.equal(past.state, 'new')
})
