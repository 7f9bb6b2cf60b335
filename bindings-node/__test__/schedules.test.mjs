// SPDX-License-Identifier: Apache-2.0
// Scheduled tasks through the App: create, load, list, watch and remove them with asyncjobs'
// typed errors; a TaskScheduler (and an App with `taskScheduler`) firing an `@every 1s` schedule
// once elected; and the `jetjobs-scheduler` bin. Each firing test has a server of its own: an
// election key outlives its stopped leader by the key's TTL.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import {
  App,
  DevServer,
  InvalidOptionError,
  InvalidQueueNameError,
  InvalidScheduleError,
  InvalidScheduleNameError,
  ScheduleDeadlineTooShortError,
  ScheduledTask,
  ScheduleExistsError,
  ScheduleNotFoundError,
  TaskScheduler,
} from 'jetjobs'
import { useServer, waitFor, waitForOutput } from './helpers.mjs'

const server = useServer()
// The election announces a win one campaign interval (7.5 s) after a splay of up to 5 s.
const ELECTED_MS = 40_000
const SCHEDULER_BIN = join(process.cwd(), 'bindings-node', 'bin', 'scheduler.mjs')

/** A server of the test's own, closed after it. */
async function ownServer(t) {
  const own = await DevServer.start()
  t.after(() => own.close())
  return own
}

async function tasksOf(app, type) {
  return (await app.admin.tasks(100_000)).filter((task) => task.type === type)
}

describe('schedules', () => {
  test('created, loaded, listed, watched and removed, with typed errors', async (t) => {
    const app = new App({ servers: server.url, queue: 'REPORTS' })
    t.after(() => app.close())
    const nightly = await app.createSchedule('nightly', '0 2 * * *', 'report:daily', { to: 'ops' }, { deadlineMs: 120_000, maxTries: 3 })
    assert.ok(nightly instanceof ScheduledTask)
    assert.deepEqual(
      [nightly.name, nightly.schedule, nightly.queue, nightly.taskType, nightly.payload, nightly.maxTries, nightly.deadlineMs],
      ['nightly', '0 2 * * *', 'REPORTS', 'report:daily', { to: 'ops' }, 3, 120_000],
    )
    assert.equal(nightly.payloadBytes.toString(), '{"to":"ops"}')
    assert.ok(Math.abs(nightly.createdAt.getTime() - Date.now()) < 60_000)
    const loaded = await app.loadSchedule('nightly')
    assert.equal(loaded.toJson(), nightly.toJson())
    assert.equal(ScheduledTask.fromJson(nightly.toJson()).toJson(), nightly.toJson())
    assert.deepEqual(JSON.parse(JSON.stringify(nightly)).task_type, 'report:daily')

    await assert.rejects(app.createSchedule('nightly', '@daily', 'report:daily'), (e) => e instanceof ScheduleExistsError && e.code === 'ERR_SCHEDULE_EXISTS')
    const hourly = await app.createSchedule('hourly', '@hourly', 'report:hourly')
    assert.deepEqual([hourly.payload, hourly.payloadBytes, hourly.deadlineMs], [null, null, null])
    assert.deepEqual((await app.schedules()).map((s) => s.name), ['hourly', 'nightly'])

    const watch = await app.watchSchedules()
    const first = [(await watch.next()).value, (await watch.next()).value]
    assert.deepEqual(first.map((c) => [c.kind, c.name]).sort(), [['stored', 'hourly'], ['stored', 'nightly']])
    assert.ok(first[0].schedule instanceof ScheduledTask)
    await app.removeSchedule('nightly')
    assert.deepEqual((await watch.next()).value, { kind: 'removed', name: 'nightly' })
    watch.close()
    assert.equal((await watch.next()).done, true)

    // One at a time: a second rejecting promise made before the first is awaited would be an
    // unhandled rejection.
    for (const missing of [() => app.loadSchedule('nightly'), () => app.removeSchedule('nightly')]) {
      await assert.rejects(missing(), (e) => e instanceof ScheduleNotFoundError && e.code === 'ERR_SCHEDULE_NOT_FOUND')
    }
    assert.deepEqual((await app.schedules()).map((s) => s.name), ['hourly'])
    await assert.rejects(app.createSchedule('x', 'not cron', 'report'), InvalidScheduleError)
    await assert.rejects(app.createSchedule('x', '@fortnightly', 'report'), InvalidScheduleError)
    await assert.rejects(app.createSchedule('a b', '@daily', 'report'), InvalidScheduleNameError)
    await assert.rejects(app.loadSchedule('a.b'), InvalidScheduleNameError)
    await assert.rejects(app.createSchedule('x', '@daily', 'report', null, { deadlineMs: 10_000 }), ScheduleDeadlineTooShortError)
    await assert.rejects(app.createSchedule('x', '@daily', 'report', null, { queue: 'a.b' }), InvalidQueueNameError)
    await assert.rejects(new TaskScheduler(app, '').run(), InvalidOptionError)
  })

  test('an elected TaskScheduler fires every second', async (t) => {
    const own = await ownServer(t)
    const app = new App({ servers: own.url, queue: 'CRON_NODE' })
    t.after(() => app.close())
    await app.createSchedule('tick', '@every 1s', 'tick', { n: 1 })
    const scheduler = new TaskScheduler(app, 'node-1')
    assert.deepEqual([scheduler.name, scheduler.isLeader], ['node-1', false])
    const stop = new AbortController()
    const running = scheduler.run({ signal: stop.signal })
    try {
      await waitFor(() => scheduler.isLeader, { timeoutMs: ELECTED_MS, what: 'the scheduler to be elected' })
      const tasks = await waitFor(async () => {
        const tasks = await tasksOf(app, 'tick')
        return tasks.length >= 2 && tasks
      }, { timeoutMs: ELECTED_MS, intervalMs: 200, what: 'two scheduled tasks' })
      assert.deepEqual([...new Set(tasks.map((task) => task.queue))], ['CRON_NODE'])
      assert.ok(tasks.every((task) => task.payload.n === 1))
      const seconds = tasks.map((task) => Math.floor(task.createdAt.getTime() / 1000))
      assert.equal(new Set(seconds).size, seconds.length, `one task per firing: ${seconds}`)
    } finally {
      stop.abort()
      await running
    }
  })

  test('an App with taskScheduler runs one and handles what it fires', async (t) => {
    const own = await ownServer(t)
    const app = new App({ servers: own.url, queue: 'CRON_APP', taskScheduler: 'app-1' })
    t.after(() => app.close())
    const handled = []
    app.task('tick', async (task) => {
      handled.push(task.id)
    })
    await app.createSchedule('tick', '@every 1s', 'tick')
    const stop = new AbortController()
    const running = app.run({ signal: stop.signal, handleSignals: false })
    try {
      await waitFor(() => handled.length >= 2, { timeoutMs: ELECTED_MS, intervalMs: 200, what: 'two scheduled tasks handled' })
    } finally {
      stop.abort()
      await running
    }
  })

  test('the jetjobs-scheduler bin prints ready and stops on SIGTERM', async () => {
    const child = spawn(process.execPath, [SCHEDULER_BIN, server.url, '--name', 'bin-1'], { stdio: ['ignore', 'pipe', 'inherit'] })
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
    try {
      const out = await waitForOutput(child.stdout, /ready\n/)
      assert.equal(out, `jetjobs scheduler: bin-1 at ${server.url}: ready\n`)
    } finally {
      child.kill('SIGTERM')
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    assert.deepEqual(await exited, { code: 0, signal: null }, 'stopped on SIGTERM within 20 s')
    clearTimeout(timer)
  })
})
