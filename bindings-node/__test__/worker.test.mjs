// SPDX-License-Identifier: Apache-2.0
// JS handlers running inside the Rust engine, against a real nats-server.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import {
  App,
  DuplicateHandlerError,
  Queue,
  RetryPolicy,
  TaskNotFoundError,
  TerminateTask,
} from 'jetjobs'
import { deferred, queueName, useServer, waitFinal, waitFor } from './helpers.mjs'

const server = useServer()
const fast = () => RetryPolicy.exponential({ initialMs: 50, maxMs: 200 })

/** An App on its own queue; `run()` starts its worker and `stop()` ends it and closes the app. */
function setup(t, { queue, ...options } = {}) {
  const app = new App({
    servers: server.url,
    queue: queue ?? new Queue(queueName()),
    retryPolicy: fast(),
    ...options,
  })
  const ac = new AbortController()
  let running
  const ctl = {
    app,
    run: () => {
      running = app.run({ signal: ac.signal, handleSignals: false })
      return running
    },
    stop: async () => {
      ac.abort()
      await running
      await app.close()
    },
  }
  t.after(() => ctl.stop())
  return ctl
}

describe('lifecycle', () => {
  test('a task goes from new to complete with the handler result stored', async (t) => {
    const { app, run, stop } = setup(t)
    const seen = []
    app.task('life:echo', async (task, ctx) => {
      seen.push({ type: task.type, state: task.state, tries: task.tries, payload: task.payload, remaining: ctx.remainingMs })
      return { echoed: task.payload, when: new Date(0) }
    })
    const task = await app.enqueue('life:echo', { hello: 'world' }, { deadline: new Date(Date.now() + 3_600_000) })
    assert.equal(task.state, 'new')
    assert.equal(task.queue, (await app.queueSettings()).name)
    assert.deepEqual(task.payload, { hello: 'world' })
    assert.ok(task.deadlineAt instanceof Date && task.deadlineAt > new Date())
    run()
    const done = await waitFinal(app, task.id)
    await stop()
    assert.equal(done.state, 'complete')
    assert.equal(done.tries, 1)
    assert.equal(done.lastErr, '')
    // A resolved value is stored as JSON (a Date becomes its ISO string, as JSON.stringify does).
    assert.deepEqual(done.result.payload, { echoed: { hello: 'world' }, when: '1970-01-01T00:00:00.000Z' })
    assert.ok(done.result.completedAt instanceof Date)
    assert.equal(typeof done.result.completedNs, 'bigint')
    assert.equal(seen.length, 1)
    assert.equal(seen[0].state, 'active')
    assert.equal(seen[0].tries, 1)
    assert.ok(seen[0].remaining > 0)
  })

  test('sync handlers, raw payloads, undefined results and markInProgress', async (t) => {
    const { app, run, stop } = setup(t)
    app.task('sync:value', (task) => task.payload * 2)
    app.task('raw:bytes', async (task, ctx) => {
      await ctx.markInProgress()
      return { length: task.payloadBytes.length, first: task.payloadBytes[0] }
    })
    app.task('none:', async () => undefined)
    const a = await app.enqueue('sync:value', 21)
    const b = await app.enqueue('raw:bytes', Buffer.from([0xff, 0x00, 0x01]))
    const c = await app.enqueue('none:anything')
    run()
    const [da, db, dc] = await Promise.all([a, b, c].map((x) => waitFinal(app, x.id)))
    await stop()
    assert.equal(da.result.payload, 42)
    assert.deepEqual(db.result.payload, { length: 3, first: 255 })
    assert.deepEqual([...db.payloadBytes], [0xff, 0x00, 0x01])
    assert.equal(dc.state, 'complete')
    assert.equal(dc.result.payload, null)
    assert.equal(dc.payload, null)
  })

  test('load, retry by id, admin and discard states', async (t) => {
    const name = queueName()
    const { app, run, stop } = setup(t, { queue: new Queue(name, { maxRunTimeMs: 30_000 }), discard: ['terminated'] })
    let calls = 0
    app.task('adm:count', async () => ++calls)
    app.task('adm:drop', async () => {
      throw new TerminateTask('discarded')
    })
    const task = await app.enqueue('adm:count', null, { id: `fixed-${name}` })
    assert.equal(task.id, `fixed-${name}`)
    const dropped = await app.enqueue('adm:drop', null)
    run()
    assert.equal((await waitFinal(app, task.id)).result.payload, 1)
    await waitFor(async () => (await app.loadTask(dropped.id).catch((e) => e)) instanceof TaskNotFoundError, {
      what: 'the terminated task to be discarded',
    })
    const again = await app.retryTask(task.id)
    assert.equal(again.state, 'retry')
    assert.equal(again.tries, 0)
    await waitFor(async () => (await app.loadTask(task.id)).result?.payload === 2, { what: 'the second run' })

    const admin = app.admin
    assert.ok((await admin.queueNames()).includes(name))
    const info = await admin.queueInfo(name)
    assert.equal(info.queue.name, name)
    assert.equal(info.queue.maxRunTimeMs, 30_000)
    assert.equal(info.queue.stream, `CHORIA_AJ_Q_${name}`)
    assert.ok((await admin.tasks(10_000)).some((x) => x.id === task.id))
    assert.ok((await admin.tasksInfo()).tasks >= 1)
    await admin.deleteTask(task.id)
    await assert.rejects(app.loadTask(task.id), (e) => e instanceof TaskNotFoundError && e.code === 'ERR_TASK_NOT_FOUND')
    await stop()
  })
})

describe('failures', () => {
  test('a rejection is a failed try, retried until it succeeds', async (t) => {
    const { app, run, stop } = setup(t)
    const errors = []
    app.task('flaky', async (task) => {
      if (task.tries < 3) throw new RangeError(`try ${task.tries} fails`)
      return { tries: task.tries }
    })
    const events = await app.events()
    const task = await app.enqueue('flaky', {})
    run()
    for await (const event of events) {
      if (event.kind !== 'task_state' || event.taskId !== task.id) continue
      if (event.state === 'retry') errors.push(event.lastError)
      if (event.state === 'complete') break
    }
    const done = await app.loadTask(task.id)
    await stop()
    assert.equal(done.state, 'complete')
    assert.equal(done.tries, 3)
    assert.deepEqual(done.result.payload, { tries: 3 })
    assert.deepEqual(errors, ['RangeError: try 1 fails', 'RangeError: try 2 fails'])
  })

  test('TerminateTask terminates without further tries', async (t) => {
    const { app, run, stop } = setup(t)
    let calls = 0
    app.task('term', async () => {
      calls += 1
      throw new TerminateTask('no recipient')
    })
    const task = await app.enqueue('term', {}, { maxTries: 5 })
    run()
    const done = await waitFinal(app, task.id)
    await stop()
    assert.equal(done.state, 'terminated')
    assert.equal(done.lastErr, 'no recipient: terminate task')
    assert.equal(done.tries, 1)
    assert.equal(calls, 1)
  })

  test('a synchronous throw is a failed try and never crashes the process', async (t) => {
    const { app, run, stop } = setup(t)
    app.task('throws:sync', () => {
      throw new TypeError('thrown synchronously')
    })
    app.task('throws:string', () => {
      throw 'a bare string' // eslint-disable-line no-throw-literal
    })
    app.task('throws:cyclic', async () => {
      const cyclic = {}
      cyclic.self = cyclic
      return cyclic // not JSON-serialisable (a BigInt is: see robustness.test.mjs)
    })
    const a = await app.enqueue('throws:sync', null, { maxTries: 1 })
    const b = await app.enqueue('throws:string', null, { maxTries: 1 })
    const c = await app.enqueue('throws:cyclic', null, { maxTries: 1 })
    run()
    const [da, db, dc] = await Promise.all([a, b, c].map((x) => waitFinal(app, x.id)))
    await stop()
    assert.equal(da.state, 'expired')
    assert.equal(da.lastErr, 'TypeError: thrown synchronously')
    assert.equal(db.lastErr, 'a bare string')
    assert.match(dc.lastErr, /^TypeError: .*circular/)
  })

  test('expiry: past deadline, out of tries, and the max run time aborting ctx.signal', async (t) => {
    const { app, run, stop } = setup(t, { queue: new Queue(queueName(), { maxRunTimeMs: 400 }) })
    let aborted = false
    app.task('exp:never', async () => 'ran')
    app.task('exp:fails', async () => {
      throw new Error('always')
    })
    app.task('exp:hangs', (task, ctx) => {
      if (task.tries > 1) return 'second try'
      return new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true
          resolve('too late')
        })
      })
    })
    const late = await app.enqueue('exp:never', null, { deadline: new Date(Date.now() - 1000) })
    const out = await app.enqueue('exp:fails', null, { maxTries: 2 })
    const hang = await app.enqueue('exp:hangs', null)
    run()
    const [dl, dout, dhang] = await Promise.all([late, out, hang].map((x) => waitFinal(app, x.id)))
    await stop()
    assert.equal(dl.state, 'expired')
    assert.equal(dl.lastErr, '', 'as asyncjobs: expiry sets only the state of a task that never ran')
    assert.equal(dl.tries, 0)
    assert.equal(dout.state, 'expired')
    assert.equal(dout.tries, 2)
    assert.equal(dout.lastErr, 'Error: always')
    // The first try ran past the queue's max run time: the engine abandoned it (context deadline
    // exceeded), the JS handler saw ctx.signal abort, and the retry succeeded.
    assert.equal(dhang.state, 'complete')
    assert.equal(dhang.tries, 2)
    assert.equal(dhang.result.payload, 'second try')
    assert.ok(aborted)
  })
})

describe('routing and middleware', () => {
  test('middleware runs global then per route, in the order added, and can short-circuit', async (t) => {
    const { app, run, stop } = setup(t)
    const log = []
    const mw = (name) => async (task, ctx, next) => {
      log.push(`${name}>${task.type}`)
      const result = await next()
      log.push(`<${name}`)
      return result
    }
    app.use(mw('g1'))
    app.task('mw:a', async () => {
      log.push('handler')
      return 'from handler'
    }, { middleware: [mw('r1'), mw('r2')] })
    app.task('mw:short', async () => {
      log.push('never')
      return 'unreachable'
    }, { middleware: [async (task) => ({ shortCircuited: task.type })] })
    app.use(mw('g2'))
    const a = await app.enqueue('mw:a', null)
    const da = await (run(), waitFinal(app, a.id))
    assert.equal(da.result.payload, 'from handler')
    assert.deepEqual(log, ['g1>mw:a', 'g2>mw:a', 'r1>mw:a', 'r2>mw:a', 'handler', '<r2', '<r1', '<g2', '<g1'])
    log.length = 0
    const b = await app.enqueue('mw:short', null)
    const db = await waitFinal(app, b.id)
    await stop()
    assert.deepEqual(db.result.payload, { shortCircuited: 'mw:short' })
    assert.deepEqual(log, ['g1>mw:short', 'g2>mw:short', '<g2', '<g1'])
  })

  test('prefix routes, the catch-all, unknown types and duplicate handlers', async (t) => {
    const { app, run, stop } = setup(t)
    app.task('route:', async () => 'prefix')
    app.task('route:exact', async () => 'exact')
    const a = await app.enqueue('route:exact', null)
    const b = await app.enqueue('route:other', null)
    const c = await app.enqueue('elsewhere', null, { maxTries: 1 })
    run()
    const [da, db, dc] = await Promise.all([a, b, c].map((x) => waitFinal(app, x.id)))
    await stop()
    assert.equal(da.result.payload, 'exact')
    assert.equal(db.result.payload, 'prefix')
    assert.equal(dc.lastErr, 'no handler for task type "elsewhere"')

    const dup = new App({ servers: server.url, queue: queueName() })
    t.after(() => dup.close())
    dup.task('same', async () => 1)
    assert.throws(() => dup.task('same', async () => 2), (e) => e instanceof DuplicateHandlerError && e.code === 'ERR_DUPLICATE_HANDLER')
  })
})

describe('concurrency', () => {
  async function peakInFlight(t, appOptions, tasks, limit) {
    const { app, run, stop } = setup(t, appOptions)
    let inFlight = 0
    let peak = 0
    app.task('conc', async () => {
      inFlight += 1
      peak = Math.max(peak, inFlight)
      // Hold the slot until the limit is reached (or no more tasks can start), so that a
      // broken limit would show up as a higher peak.
      await waitFor(() => inFlight >= limit || done + inFlight >= tasks, { what: 'the slots to fill' })
      await new Promise((resolve) => setImmediate(resolve))
      inFlight -= 1
      done += 1
    })
    let done = 0
    const ids = []
    for (let i = 0; i < tasks; i++) ids.push((await app.enqueue('conc', i)).id)
    run()
    await Promise.all(ids.map((id) => waitFinal(app, id)))
    await stop()
    return peak
  }

  test('the client concurrency limits handlers in flight', async (t) => {
    assert.equal(await peakInFlight(t, { concurrency: 3 }, 12, 3), 3)
  })

  test("the queue's max concurrent limits handlers in flight", async (t) => {
    const queue = new Queue(queueName(), { maxConcurrent: 2 })
    assert.equal(await peakInFlight(t, { queue, concurrency: 10 }, 8, 2), 2)
  })
})

describe('dependencies', () => {
  test("a child runs after its parents and sees their results; a failed parent's child is unreachable", async (t) => {
    const { app, run, stop } = setup(t)
    app.task('dep:parent', async (task) => ({ from: task.payload }))
    app.task('dep:fail', async () => {
      throw new TerminateTask('parent refused')
    })
    app.task('dep:child', async (task) => {
      const results = task.dependencyResults
      return Object.fromEntries(Object.entries(results).map(([id, r]) => [id, r.payload]))
    })
    const a = await app.enqueue('dep:parent', 'a')
    const b = await app.enqueue('dep:parent', 'b')
    const child = await app.enqueue('dep:child', null, { dependsOn: [a, b.id], loadDependencies: true })
    assert.equal(child.state, 'blocked')
    assert.deepEqual(child.dependencies, [a.id, b.id])
    assert.equal(child.loadDependencies, true)
    const bad = await app.enqueue('dep:fail', null)
    const orphan = await app.enqueue('dep:child', null, { dependsOn: [bad] })
    run()
    const [dchild, dorphan] = await Promise.all([child, orphan].map((x) => waitFinal(app, x.id, { timeoutMs: 30_000 })))
    await stop()
    assert.equal(dchild.state, 'complete')
    assert.deepEqual(dchild.result.payload, { [a.id]: { from: 'a' }, [b.id]: { from: 'b' } })
    assert.equal(dorphan.state, 'unreachable')
    assert.equal(dorphan.lastErr, `task dependencies failed: dependency ${bad.id} is terminated`)
  })
})

describe('events', () => {
  test('lifecycle events arrive through an async iterator until its signal aborts', async (t) => {
    const { app, run, stop } = setup(t)
    app.task('ev:ok', async () => 'ok')
    const ac = new AbortController()
    const events = await app.events({ signal: ac.signal })
    const task = await app.enqueue('ev:ok', null)
    run()
    const states = []
    for await (const event of events) {
      if (event.kind !== 'task_state' || event.taskId !== task.id) continue
      states.push(event.state)
      assert.equal(event.taskType, 'ev:ok')
      assert.equal(event.type, 'io.choria.asyncjobs.v1.task_state')
      assert.ok(event.time instanceof Date && typeof event.taskAgeNs === 'bigint')
      if (event.state === 'complete') ac.abort()
    }
    assert.deepEqual(states, ['new', 'active', 'complete'])
    // Aborted: the iterator is finished for good.
    assert.deepEqual(await events.next(), { done: true, value: undefined })
    await stop()
  })
})

describe('shutdown', () => {
  test('aborting run() lets an in-flight handler finish (graceful)', async (t) => {
    const { app, run, stop } = setup(t)
    const started = deferred()
    const release = deferred()
    app.task('grace', async () => {
      started.resolve()
      await release.promise
      return 'finished'
    })
    const ac = new AbortController()
    const task = await app.enqueue('grace', null)
    const running = app.run({ signal: ac.signal, handleSignals: false })
    await started.promise
    ac.abort()
    let resolved = false
    running.then(() => (resolved = true))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(resolved, false, 'run() waits for the in-flight handler')
    release.resolve()
    await running
    assert.equal((await app.loadTask(task.id)).state, 'complete')
    await stop()
    void run
  })

  test('past the shutdown grace the handler is aborted and its task released for another try', async (t) => {
    const { app, stop } = setup(t, { shutdownGraceMs: 200 })
    const started = deferred()
    let aborted = false
    app.task('stuck', (task, ctx) => {
      started.resolve()
      return new Promise((resolve) => {
        ctx.signal.addEventListener('abort', () => {
          aborted = true
          resolve('ignored')
        })
      })
    })
    const ac = new AbortController()
    const task = await app.enqueue('stuck', null)
    const running = app.run({ signal: ac.signal, handleSignals: false })
    await started.promise
    ac.abort()
    await running
    await waitFor(() => aborted, { what: 'ctx.signal to abort' })
    const released = await app.loadTask(task.id)
    await stop()
    assert.equal(released.state, 'retry')
    assert.equal(released.tries, 0)
    assert.equal(released.lastErr, 'worker shut down before the handler finished')
  })
})
