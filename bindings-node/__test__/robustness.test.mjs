// SPDX-License-Identifier: Apache-2.0
// Exact JSON numbers, bad events, early registration and option errors, one worker per App,
// a second signal, and a complete lock file (issue 8, Node side), against a real nats-server.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'

import {
  AlreadyRunningError,
  App,
  DuplicateHandlerError,
  EVENTS_SUBJECT_WILDCARD,
  InvalidDocumentError,
  InvalidOptionError,
  InvalidPayloadError,
  InvalidTaskTypeError,
  Queue,
  RetryPolicy,
  Task,
  UnknownDiscardPolicyError,
  UnknownEventTypeError,
  isFinalState,
} from 'jetjobs'
import { publishRaw, queueName, useServer, waitFinal, waitForOutput } from './helpers.mjs'

const server = useServer()
const fast = () => RetryPolicy.exponential({ initialMs: 50, maxMs: 200 })

/** Doubles from a fixed-seed generator: about one in ten of these lost its last digit before. */
function doubles(n) {
  let seed = 0x2545f491
  const out = []
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0
    out.push(seed / 2 + (seed % 9973) / 9973 + 1 / (i + 3))
  }
  return out
}

describe('JSON numbers', () => {
  test('payload, result and dependency results keep big integers (as BigInt) and doubles exactly', async (t) => {
    const app = new App({ servers: server.url, queue: queueName(), retryPolicy: fast() })
    const ac = new AbortController()
    t.after(async () => {
      ac.abort()
      await app.close()
    })
    const payload = {
      big: 2n ** 60n + 1n,
      negative: -(2n ** 62n) - 3n,
      maxU64: 2n ** 64n - 1n,
      safe: Number.MAX_SAFE_INTEGER,
      small: -42,
      issue: 1796130929.2805421,
      nested: [{ id: 9007199254740993n }],
      doubles: doubles(200),
    }
    const seen = []
    app.task('num:echo', (task) => {
      seen.push(task.payload)
      return task.payload
    })
    app.task('num:child', (task) => {
      const [parent] = Object.values(task.dependencyResults)
      seen.push(parent.payload)
      return parent.payload
    })
    const parent = await app.enqueue('num:echo', payload)
    assert.deepEqual(parent.payload, payload)
    const stored = parent.payloadBytes.toString()
    assert.match(stored, /"big":1152921504606846977,/)
    assert.match(stored, /"issue":1796130929.2805421,/)
    const child = await app.enqueue('num:child', null, { dependsOn: [parent], loadDependencies: true })
    const running = app.run({ signal: ac.signal, handleSignals: false })
    const [doneParent, doneChild] = await Promise.all([parent, child].map((x) => waitFinal(app, x.id, { timeoutMs: 30_000 })))
    ac.abort()
    await running
    assert.equal(doneParent.state, 'complete', doneParent.lastErr)
    assert.equal(doneChild.state, 'complete', doneChild.lastErr)
    assert.deepEqual(seen, [payload, payload], 'the handlers saw the exact numbers')
    assert.deepEqual(doneParent.result.payload, payload)
    assert.deepEqual(doneChild.result.payload, payload, "the parent's result was copied into the child unaltered")
    assert.equal(typeof doneParent.payload.big, 'bigint')
    assert.equal(typeof doneParent.payload.safe, 'number')
    // The stored result document carries the same digits Go would read.
    assert.match(JSON.stringify(doneChild.toJSON().result), /"issue":1796130929.2805421,/)
  })

  test('a function or Symbol payload is an InvalidPayloadError, never stored as no payload', async (t) => {
    const queue = queueName()
    const app = new App({ servers: server.url, queue })
    t.after(() => app.close())
    for (const payload of [() => 1, Symbol('s')]) {
      await assert.rejects(app.enqueue('pay', payload), (e) => e instanceof InvalidPayloadError && e.code === 'ERR_INVALID_PAYLOAD')
    }
    const cyclic = {}
    cyclic.self = cyclic
    await assert.rejects(app.enqueue('pay', cyclic), InvalidPayloadError)
    assert.deepEqual((await app.admin.tasks()).filter((task) => task.queue === queue), [])
  })
})

describe('events', () => {
  test('a malformed or unknown event is skipped with a warning and the iterator carries on', async (t) => {
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    const warn = t.mock.method(console, 'warn', () => undefined)
    const skipped = []
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(), 20_000)
    t.after(() => clearTimeout(timer))
    const withHook = await app.events({ signal: ac.signal, onError: (e) => skipped.push(e) })
    const withDefault = await app.events({ signal: ac.signal })
    const subject = (s) => EVENTS_SUBJECT_WILDCARD.replace('>', s)
    await publishRaw(server.url, [
      [subject('garbage'), 'not json {'],
      [subject('unknown'), JSON.stringify({ type: 'io.choria.asyncjobs.v1.not_a_thing', event_id: 'x' })],
    ])
    const task = await app.enqueue('ev:after', null)
    const arrived = async (events) => {
      for await (const event of events) if (event.kind === 'task_state' && event.taskId === task.id) return event
      return undefined
    }
    const [a, b] = await Promise.all([arrived(withHook), arrived(withDefault)])
    ac.abort()
    assert.equal(a?.state, 'new', 'the real event arrived after the bad ones')
    assert.equal(b?.state, 'new')
    assert.deepEqual(skipped.map((e) => e.constructor), [InvalidDocumentError, UnknownEventTypeError])
    const lines = warn.mock.calls.map((c) => String(c.arguments[0]))
    assert.equal(lines.length, 2, lines.join('\n'))
    assert.match(lines[1], /skipped a lifecycle event.*unknown event type: io\.choria\.asyncjobs\.v1\.not_a_thing/)
  })
})

describe('registration', () => {
  test('an impossible task type, a duplicate and a non-function handler throw at app.task()', () => {
    const app = new App({ servers: server.url, queue: queueName() })
    assert.throws(() => app.task('email.send', async () => 1), (e) => e instanceof InvalidTaskTypeError && e.code === 'ERR_INVALID_TASK_TYPE')
    assert.throws(() => app.task('email:send', 'not a function'), (e) => e instanceof InvalidOptionError && e.code === 'ERR_INVALID_OPTION')
    assert.throws(() => app.task('email:send', undefined), InvalidOptionError)
    app.task('email:send', async () => 1)
    assert.throws(() => app.task('email:send', async () => 2), (e) => e instanceof DuplicateHandlerError && /duplicate handler for task type "email:send"/.test(e.message))
    // Prefixes and the catch-all stay valid routes.
    app.task('email:', async () => 3).task('', async () => 4)
  })
})

describe('options and runs', () => {
  test('NaN, infinite and fractional counts are InvalidOptionErrors', () => {
    for (const maxConcurrent of [Number.NaN, Infinity, 1.5]) {
      assert.throws(() => new Queue('Q', { maxConcurrent }), (e) => e instanceof InvalidOptionError && /maxConcurrent/.test(e.message), String(maxConcurrent))
    }
    assert.throws(() => new Queue('Q', { maxTries: 2.5 }), InvalidOptionError)
    for (const concurrency of [-1, 0, 1.5, Number.NaN, Infinity]) {
      assert.throws(() => new App({ servers: server.url, concurrency }), (e) => e instanceof InvalidOptionError && e.code === 'ERR_INVALID_OPTION', String(concurrency))
    }
    assert.doesNotThrow(() => new App({ concurrency: 3, queue: new Queue('Q', { maxConcurrent: 5, maxEntries: -1 }) }))
    // An unknown discard state is asyncjobs' unknown discard policy, not a document error.
    assert.throws(() => new App({ discard: ['complete', 'nope'] }), (e) => e instanceof UnknownDiscardPolicyError && e.code === 'ERR_UNKNOWN_DISCARD_POLICY')
  })

  test('a second run() before the first resolved is AlreadyRunningError; close() stops the worker', async (t) => {
    const app = new App({ servers: server.url, queue: queueName(), retryPolicy: fast() })
    t.after(() => app.close())
    app.task('once', async () => 'ok')
    const first = app.run({ handleSignals: false })
    await assert.rejects(app.run({ handleSignals: false }), (e) => e instanceof AlreadyRunningError && e.code === 'ERR_ALREADY_RUNNING')
    const task = await app.enqueue('once', null)
    assert.equal((await waitFinal(app, task.id)).state, 'complete')
    await app.close()
    await first
    // A run() that was still connecting when close() came never starts a worker.
    const late = new App({ servers: server.url, queue: queueName() })
    late.task('late', async () => 'ok')
    const running = late.run({ handleSignals: false })
    await late.close()
    await assert.rejects(running)
  })
})

describe('signals', () => {
  test('a second SIGINT during the shutdown grace period stops at once and releases the stuck task', async (t) => {
    const queue = queueName('SIG')
    const producer = new App({ servers: server.url, queue })
    t.after(() => producer.close())
    const stuck = await producer.enqueue('stuck', null)
    const script = `
      const { App, Queue } = require('jetjobs')
      const app = new App({ servers: ${JSON.stringify(server.url)}, queue: new Queue(${JSON.stringify(queue)}), shutdownGraceMs: 120000 })
      app.task('stuck', () => { console.log('started'); return new Promise(() => {}) })
      app.run()`
    const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
    const killer = setTimeout(() => child.kill('SIGKILL'), 40_000)
    t.after(() => {
      clearTimeout(killer)
      child.kill('SIGKILL')
    })
    await waitForOutput(child.stdout, /started/)
    assert.equal((await producer.loadTask(stuck.id)).state, 'active')
    const graceful = waitForOutput(child.stderr, /shutting down gracefully/)
    child.kill('SIGINT')
    await graceful
    assert.equal(child.exitCode, null, 'the first signal waits for the in-flight handler')
    const started = Date.now()
    child.kill('SIGINT')
    const { signal } = await exited
    assert.equal(signal, 'SIGINT', 'the second signal ended the process (not the 120 s grace or the SIGKILL)')
    assert.ok(Date.now() - started < 20_000)
    // The engine handed the task back before the process ended: not left `active`, try not counted.
    const released = await producer.loadTask(stuck.id)
    assert.equal(released.state, 'retry')
    assert.equal(released.tries, 0)
    assert.equal(released.lastErr, 'worker shut down before the handler finished')
  })
})

describe('engine facts', () => {
  test('final states come from the engine', () => {
    const states = ['new', 'active', 'retry', 'expired', 'terminated', 'complete', 'queue_error', 'blocked', 'unreachable', '']
    assert.deepEqual(states.filter(isFinalState), ['expired', 'terminated', 'complete', 'queue_error', 'unreachable'])
    assert.equal(isFinalState('completed'), true)
    assert.equal(isFinalState('nonsense'), false)
    const doc = '{"id":"24ErgVol4ZjpoQ8FAima9R2jEHB","type":"a","queue":"Q","payload":null,"max_tries":1,"state":"complete","created":"2022-02-09T17:28:41.943198067Z","tries":1}'
    assert.equal(Task.fromJson(doc).isFinal, true)
  })
})

describe('package lock', () => {
  test("package-lock.json holds every platform's optional packages, so npm ci works anywhere", () => {
    const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8'))
    const missing = []
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const dep of Object.keys(entry.optionalDependencies ?? {})) {
        // Node's resolution: the package's own node_modules, then each enclosing one up to the root.
        let dir = path
        let found = false
        for (;;) {
          if (lock.packages[`${dir === '' ? '' : `${dir}/`}node_modules/${dep}`]) {
            found = true
            break
          }
          if (dir === '') break
          const at = dir.lastIndexOf('/node_modules/')
          dir = at < 0 ? '' : dir.slice(0, at)
        }
        if (!found) missing.push(`${path || '<root>'} -> ${dep}`)
      }
    }
    assert.deepEqual(missing, [])
  })
})
