// SPDX-License-Identifier: Apache-2.0
// Waiting for results: the result, or the task's final error, or a timeout; many waiters at once.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, RetryPolicy, TaskFailedError, TaskNotFoundError, TerminateTask, TimeoutError } from 'jetjobs'
import { queueName, useServer } from './helpers.mjs'

const server = useServer()

test('waitFor resolves to the result or rejects with the final error or a timeout', async (t) => {
  const app = new App({
    servers: server.url,
    queue: queueName('WAIT'),
    retryPolicy: RetryPolicy.exponential({ initialMs: 50, maxMs: 100 }),
  })
  t.after(() => app.close())
  app.task('double', async (task) => task.payload * 2)
  app.task('refuse', async () => {
    throw new TerminateTask('not today')
  })

  const pending = await app.enqueue('double', 21)
  await assert.rejects(app.waitFor(pending, { timeoutMs: 300 }), TimeoutError) // nobody works yet

  const ac = new AbortController()
  const worker = app.run({ signal: ac.signal, handleSignals: false })
  try {
    const done = await app.waitFor(pending.id, { timeoutMs: 30_000 })
    assert.equal(done.state, 'complete')
    assert.equal(done.result?.payload, 42)
    assert.equal((await app.enqueueAndWait('double', 5, { timeoutMs: 30_000, maxTries: 3 })).result?.payload, 10)
    await assert.rejects(app.enqueueAndWait('refuse', null, { timeoutMs: 30_000 }), (e) => e instanceof TaskFailedError && /terminated: not today/.test(e.message))
    // Many waiters at once share one subscription.
    const outcomes = await app.enqueueMany(Array.from({ length: 300 }, (_, n) => ({ type: 'double', payload: n })))
    const results = await Promise.all(outcomes.map((o) => app.waitFor(o.value, { timeoutMs: 60_000 })))
    assert.deepEqual(results.map((r) => r.result?.payload), Array.from({ length: 300 }, (_, n) => n * 2))
  } finally {
    ac.abort()
    await worker
  }
  await assert.rejects(app.waitFor('no-such-task', { timeoutMs: 5_000 }), TaskNotFoundError)
})

test('concurrent enqueues with one uniqueKey make exactly one task', async (t) => {
  const app = new App({ servers: server.url, queue: queueName('UNIQ') })
  t.after(() => app.close())
  const stored = await Promise.all(Array.from({ length: 20 }, (_, n) => app.enqueue('report', n, { uniqueKey: 'report:2026-12' })))
  assert.equal(new Set(stored.map((task) => task.id)).size, 1)
  assert.equal((await (await app.queue()).info()).items, 1)
  await assert.rejects(app.enqueue('report', 1, { uniqueForMs: 5 }), (e) => e.code === 'ERR_INVALID_OPTION')
})

test('cancel: a pending task never runs; a running handler sees ctx.signal abort', async (t) => {
  const app = new App({ servers: server.url, queue: queueName('CANCELS') })
  t.after(() => app.close())
  let started
  const running = new Promise((resolve) => (started = resolve))
  let aborted = false
  app.task('wait', async (task, ctx) => {
    ctx.signal.addEventListener('abort', () => (aborted = true))
    started()
    await new Promise(() => {})
  })
  const pending = await app.enqueue('never', 1)
  const cancelled = await app.cancel(pending, 'no longer needed')
  assert.equal(cancelled.state, 'terminated')
  assert.equal(cancelled.lastErr, 'cancelled: no longer needed')

  const ac = new AbortController()
  const worker = app.run({ signal: ac.signal, handleSignals: false })
  try {
    const task = await app.enqueue('wait', 2)
    await running
    const stopped = await app.cancel(task.id, 'stop')
    assert.equal(stopped.state, 'terminated')
    assert.match(stopped.lastErr, /^cancelled: stop/)
    assert.ok(aborted, "the handler's signal aborted")
  } finally {
    ac.abort()
    await worker
  }
})
