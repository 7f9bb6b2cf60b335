// SPDX-License-Identifier: Apache-2.0
// Cross-language: Node producer -> Rust worker, Rust producer -> Node worker, same results.
// Uses the Rust examples (`cargo build -p jetjobs --examples`, which `make test-node` runs).
import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'

import { App, Queue, RetryPolicy, TerminateTask } from 'jetjobs'
import { queueName, useServer, waitFinal } from './helpers.mjs'

const server = useServer()
const examples = join(process.env.CARGO_TARGET_DIR ?? join(process.cwd(), 'target'), 'debug', 'examples')
const CASES = [
  ['interop:echo', { text: 'héllo <&> wörld', n: 42.5, list: [1, null, true], nested: { deep: {} } }],
  ['interop:fail-once', { attempt: 'twice' }],
  ['interop:terminate', { no: 'way' }],
]

/** What must be the same whichever language produced and handled the task. */
function outcome(task) {
  return { type: task.type, state: task.state, tries: task.tries, lastErr: task.lastErr, result: task.result?.payload ?? null }
}

/** The Rust worker's retry policy, so that both sides behave the same. */
const retryPolicy = () => RetryPolicy.exponential({ initialMs: 100, maxMs: 1000 })

async function rustWorker(t, queue) {
  const bin = join(examples, 'worker')
  assert.ok(existsSync(bin), `${bin} is missing: run \`cargo build -p jetjobs --examples\``)
  const child = spawn(bin, [], { env: { ...process.env, NATS_URL: server.url, JETJOBS_QUEUE: queue }, stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  t.after(async () => {
    // Graceful stop while the server is still up; SIGKILL only if it does not stop in time.
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  })
  await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes('ready')) resolve()
    })
    child.on('exit', (code) => reject(new Error(`Rust worker exited with ${code}`)))
  })
  return child
}

function nodeWorker(app) {
  app.task('interop:echo', async (task) => task.payload)
  app.task('interop:fail-once', async (task) => {
    if (task.tries <= 1) throw new Error('first try fails')
    return task.payload
  })
  app.task('interop:terminate', async () => {
    throw new TerminateTask('refused')
  })
}

async function rustEnqueue(queue, type, payload) {
  const { stdout } = await promisify(execFile)(join(examples, 'enqueue'), [type, JSON.stringify(payload)], {
    env: { ...process.env, NATS_URL: server.url, JETJOBS_QUEUE: queue },
  })
  return stdout.trim()
}

test('Node producer -> Rust worker and Rust producer -> Node worker give identical results', async (t) => {
  // Node enqueues, the Rust example worker handles.
  const toRust = queueName('N2R')
  const producer = new App({ servers: server.url, queue: new Queue(toRust) })
  t.after(() => producer.close())
  const nodeIds = []
  for (const [type, payload] of CASES) nodeIds.push((await producer.enqueue(type, payload)).id)
  await rustWorker(t, toRust)
  const handledByRust = await Promise.all(nodeIds.map((id) => waitFinal(producer, id)))

  // The Rust example producer enqueues, a Node worker handles.
  const toNode = queueName('R2N')
  const worker = new App({ servers: server.url, queue: new Queue(toNode), retryPolicy: retryPolicy() })
  t.after(() => worker.close())
  nodeWorker(worker)
  const rustIds = []
  for (const [type, payload] of CASES) rustIds.push(await rustEnqueue(toNode, type, payload))
  assert.ok(rustIds.every((id) => /^[0-9A-Za-z]{27}$/.test(id)), rustIds.join(','))
  const ac = new AbortController()
  const running = worker.run({ signal: ac.signal, handleSignals: false })
  const handledByNode = await Promise.all(rustIds.map((id) => waitFinal(worker, id)))
  ac.abort()
  await running

  assert.deepEqual(handledByNode.map(outcome), handledByRust.map(outcome))
  assert.deepEqual(handledByRust.map(outcome), [
    { type: 'interop:echo', state: 'complete', tries: 1, lastErr: '', result: CASES[0][1] },
    { type: 'interop:fail-once', state: 'complete', tries: 2, lastErr: '', result: CASES[1][1] },
    { type: 'interop:terminate', state: 'terminated', tries: 1, lastErr: 'refused: terminate task', result: null },
  ])
  // The payload bytes are the same whichever side encoded them.
  const fromNode = await producer.loadTask(nodeIds[0])
  const fromRust = await worker.loadTask(rustIds[0])
  assert.deepEqual(fromNode.payload, fromRust.payload)
})
