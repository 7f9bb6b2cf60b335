// SPDX-License-Identifier: Apache-2.0
// Go asyncjobs v0.3.0 and Node share queues: a Go producer's tasks handled by a Node worker (Go reads
// the results) and a Node producer's tasks handled by a Go worker. Uses the Go driver in
// tests/interop/go, built on demand into a temp dir; skipped without `go`.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { before, test } from 'node:test'

import { App, Queue, RetryPolicy, TerminateTask } from 'jetjobs'
import { useServer, waitFinal } from './helpers.mjs'

const server = useServer()
const hasGo = (() => {
  try {
    execFileSync('go', ['version'])
    return true
  } catch {
    return false
  }
})()
// Without Go the tests fail (CI must run them); JETJOBS_SKIP_GO=1 skips them explicitly.
const skip = process.env.JETJOBS_SKIP_GO === '1' ? 'JETJOBS_SKIP_GO=1: the Go asyncjobs interop tests did not run' : false
let driver

before(() => {
  if (skip) return
  assert.ok(hasGo, '`go` is not on PATH: the Go asyncjobs interop tests need it')
  driver = join(mkdtempSync(join(tmpdir(), 'ajdriver-')), 'ajdriver')
  execFileSync('go', ['build', '-o', driver, './cmd/ajdriver'], { cwd: join(process.cwd(), 'tests/interop/go'), stdio: 'inherit' })
})

const drive = (...args) => execFileSync(driver, args, { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l))
const goEnqueue = (queue, payload) =>
  drive('enqueue', '-url', server.url, '-queue', queue, '-type', 'interop:go', '-payload', JSON.stringify(payload))[0].id
const app = (queue) => new App({ servers: server.url, queue, retryPolicy: RetryPolicy.exponential({ initialMs: 20, maxMs: 100 }) })

test('Go producer -> Node worker; Go reads the results', { skip }, async () => {
  const ids = [
    goEnqueue('GO2NODE', { mode: 'succeed', result: { x: 1 } }),
    goEnqueue('GO2NODE', { mode: 'fail', fails: 1 }),
    goEnqueue('GO2NODE', { mode: 'terminate' }),
  ]
  const worker = app('GO2NODE')
  worker.task('', async (task) => {
    const { mode, fails, result } = task.payload
    if (mode === 'fail' && task.tries <= fails) throw new Error(`node failure ${task.tries}`)
    if (mode === 'terminate') throw new TerminateTask('node refused')
    return result ?? { handled_by: 'node' }
  })
  const ac = new AbortController()
  const running = worker.run({ signal: ac.signal, handleSignals: false })
  const done = await Promise.all(ids.map((id) => waitFinal(worker, id)))
  ac.abort()
  await running
  await worker.close()
  assert.deepEqual(done.map((t) => t.state), ['complete', 'complete', 'terminated'])
  const loaded = ids.map((id) => drive('load', '-url', server.url, '-id', id)[0])
  assert.deepEqual([loaded[0].state, loaded[0].result.payload], ['complete', { x: 1 }])
  assert.deepEqual([loaded[1].tries, loaded[1].result.payload], [2, { handled_by: 'node' }])
  assert.equal(loaded[2].last_err, 'node refused: terminate task')
})

test('Node producer -> Go worker; Node reads the results', { skip }, async () => {
  const producer = app('NODE2GO')
  const ids = []
  for (const payload of [{ mode: 'succeed', result: { y: [1, 2] } }, { mode: 'fail', fails: 1 }, { mode: 'terminate' }]) {
    ids.push((await producer.enqueue('interop:node', payload)).id)
  }
  const go = spawn(driver, ['worker', '-url', server.url, '-queue', 'NODE2GO', '-bind'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => go.on('exit', resolve))
  try {
    const [line] = await createInterface({ input: go.stdout })[Symbol.asyncIterator]().next().then((r) => [r.value])
    assert.match(line, /"ready":true/)
    const done = await Promise.all(ids.map((id) => waitFinal(producer, id)))
    assert.deepEqual(done.map((t) => t.state), ['complete', 'complete', 'terminated'])
    assert.deepEqual(done[0].result.payload, { y: [1, 2] })
    assert.deepEqual([done[1].tries, done[1].result.payload.handled_by], [2, 'go'])
    assert.equal(done[2].lastErr, 'go refused: terminate task')
  } finally {
    go.kill('SIGTERM')
    await exited
    await producer.close()
  }
})

test('Go RequestReply worker -> Node responder', { skip }, async () => {
  const queue = 'RRGONODE'
  const node = new App({ servers: server.url, queue: new Queue(queue, { maxRunTimeMs: 20_000 }) })
  node.responder('interop:node', async (task) => {
    const { mode, fails } = task.payload
    if (mode === 'fail' && task.tries <= fails) throw new Error(`node failure ${task.tries}`)
    if (mode === 'terminate') throw new TerminateTask('node refused')
    return { handled_by: 'node-responder', id: task.id, tries: task.tries }
  })
  const ids = []
  for (const payload of [{ mode: 'succeed' }, { mode: 'fail', fails: 1 }, { mode: 'terminate' }]) {
    ids.push((await node.enqueue('interop:node', payload)).id)
  }
  const args = ['worker', '-url', server.url, '-queue', queue, '-bind', '-type', 'interop:node', '-request-reply']
  const go = spawn(driver, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => go.on('exit', resolve))
  const ac = new AbortController()
  // Only responders: the app runs no worker of its own.
  const running = node.run({ signal: ac.signal, handleSignals: false })
  try {
    const [line] = await createInterface({ input: go.stdout })[Symbol.asyncIterator]().next().then((r) => [r.value])
    assert.match(line, /"ready":true/)
    const done = await Promise.all(ids.map((id) => waitFinal(node, id)))
    assert.deepEqual(done.map((t) => t.state), ['complete', 'complete', 'terminated'])
    // Go stored the reply bytes as a []byte (base64); a try before the responder listened is retried.
    const reply = JSON.parse(Buffer.from(done[0].result.payload, 'base64').toString())
    assert.deepEqual(reply, { handled_by: 'node-responder', id: ids[0], tries: done[0].tries })
    assert.ok(done[1].tries >= 2)
    assert.equal(done[2].lastErr, 'node refused: terminate task')
    assert.equal(drive('load', '-url', server.url, '-id', ids[0])[0].result.payload, done[0].result.payload)
  } finally {
    ac.abort()
    await running
    go.kill('SIGTERM')
    await exited
    await node.close()
  }
})
