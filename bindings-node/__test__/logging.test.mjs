// SPDX-License-Identifier: Apache-2.0
// The engine's log events (Rust `tracing`) on a JS logger: `App`'s `logger` / `logLevel` options
// and `setLogger()`, against a real nats-server.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { describe, test } from 'node:test'

import { App, InvalidOptionError, logStats, setLogger } from 'jetjobs'
import { publishRaw, queueName, useServer, waitFor } from './helpers.mjs'

const server = useServer()

/** A console-compatible logger that keeps what it is given, by method. */
function recorder() {
  const lines = { error: [], warn: [], info: [], debug: [] }
  const logger = Object.fromEntries(Object.keys(lines).map((m) => [m, (message) => lines[m].push(message)]))
  return { lines, logger }
}

const corrupt = (lines) => lines.find((l) => l.includes('terminating corrupt work item'))

/** Runs the app's worker until the test ends; resolves once the queue is open. */
async function running(t, app) {
  const ac = new AbortController()
  const run = app.run({ signal: ac.signal, handleSignals: false })
  t.after(async () => {
    ac.abort()
    await run
    await app.close()
    setLogger() // back to the default: console at 'warn'
  })
  await app.queue()
}

describe('engine log events', () => {
  test("a corrupt work item reaches the logger's warn, with its fields", async (t) => {
    const { lines, logger } = recorder()
    const queue = queueName('LOG')
    const app = new App({ servers: server.url, queue, logger })
    app.task('fine', async () => 1)
    await running(t, app)
    await publishRaw(server.url, [[`CHORIA_AJ.Q.${queue}.x`, 'not json']])
    const line = await waitFor(() => corrupt(lines.warn), { what: 'the corrupt item warning' })
    assert.equal(line, `jetjobs: terminating corrupt work item subject=CHORIA_AJ.Q.${queue}.x`)
    assert.equal(corrupt(lines.error), undefined)
  })

  test("below logLevel ('error', then 'off') nothing reaches JS; setLogger() applies at once", async (t) => {
    const { lines, logger } = recorder()
    const queue = queueName('LOGQ')
    const app = new App({ servers: server.url, queue, logger, logLevel: 'error' })
    app.task('fine', async () => 1)
    const admin = app.admin
    await app.queue()
    await publishRaw(server.url, [[`CHORIA_AJ.Q.${queue}.x`, 'not json']])
    await waitFor(async () => (await admin.queueInfo(queue)).items === 1, { what: 'the corrupt item to be stored' })
    const before = logStats()
    await running(t, app)
    await waitFor(async () => (await admin.queueInfo(queue)).items === 0, { what: 'the corrupt item to be terminated' })
    // Rejected in Rust: nothing formatted, queued or called.
    assert.equal(logStats().forwarded, before.forwarded)

    setLogger(logger, 'off')
    await publishRaw(server.url, [[`CHORIA_AJ.Q.${queue}.y`, 'not json']])
    await waitFor(async () => (await admin.queueInfo(queue)).items === 0, { what: 'the second corrupt item to be terminated' })
    assert.equal(logStats().forwarded, before.forwarded)
    assert.deepEqual(lines, { error: [], warn: [], info: [], debug: [] })

    setLogger(logger, 'warn')
    await publishRaw(server.url, [[`CHORIA_AJ.Q.${queue}.z`, 'not json']])
    const line = await waitFor(() => corrupt(lines.warn), { what: 'the third corrupt item warning' })
    assert.match(line, /subject=CHORIA_AJ\.Q\.LOGQ_\d+_\d+\.z$/)
    assert.ok(logStats().forwarded > before.forwarded)
  })

  test('an unknown level or a logger without the methods is an InvalidOptionError', () => {
    assert.throws(() => new App({ logLevel: 'loud' }), (e) => e instanceof InvalidOptionError && /logLevel must be one of/.test(e.message))
    assert.throws(() => new App({ logger: { warn() {} } }), (e) => e instanceof InvalidOptionError && /missing error, info, debug/.test(e.message))
    assert.throws(() => setLogger(null), InvalidOptionError)
    const stats = logStats()
    assert.equal(typeof stats.forwarded, 'number')
    assert.equal(typeof stats.dropped, 'number')
  })

  test('a throwing logger is ignored', async (t) => {
    const queue = queueName('LOGT')
    const seen = []
    const app = new App({
      servers: server.url,
      queue,
      logger: { error() {}, info() {}, debug() {}, warn: (m) => { seen.push(m); throw new Error('logger broke') } },
    })
    await running(t, app)
    await publishRaw(server.url, [[`CHORIA_AJ.Q.${queue}.x`, 'not json']])
    await waitFor(() => corrupt(seen), { what: 'the warning' })
  })

  test('the log function does not keep the process alive', async (t) => {
    const script = `
      const { setLogger } = require('jetjobs')
      setLogger(console, 'trace')`
    const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'inherit', 'inherit'] })
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    t.after(() => clearTimeout(timer))
    const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])))
    assert.equal(signal, null, 'the child had to be killed: something kept it alive')
    assert.equal(code, 0)
  })
})
