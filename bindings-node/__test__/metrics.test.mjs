// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics: an App with `prometheusPort` runs tasks that complete, fail until they
// expire and terminate; its HTTP endpoint (scraped with `fetch`) and `renderMetrics()` have
// asyncjobs' per-queue counters with exact values. The registry is process-wide, as Go's, so
// only this test's queue's series are compared.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'

import { App, RetryPolicy, TerminateTask, renderMetrics } from 'jetjobs'
import { queueName, useServer, waitFinal } from './helpers.mjs'

const server = useServer()

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.on('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/** `name{labels}` -> value, for every sample line. */
function samples(text) {
  const out = new Map()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    out.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return out
}

test('an App with prometheusPort serves per-queue counters with exact values', async (t) => {
  const queue = queueName('METRICS')
  const port = await freePort()
  const app = new App({
    servers: server.url,
    queue,
    prometheusPort: port,
    retryPolicy: RetryPolicy.exponential({ initialMs: 20, maxMs: 100 }),
  })
  t.after(() => app.close())
  app.task('ok', async () => 'fine')
  app.task('fail', async () => {
    throw new Error('not today')
  })
  app.task('term', async () => {
    throw new TerminateTask('never')
  })
  const ids = []
  for (const [type, n] of [['ok', 4], ['fail', 2], ['term', 1]]) {
    for (let i = 0; i < n; i++) ids.push((await app.enqueue(type, i, { maxTries: 2 })).id)
  }
  const stop = new AbortController()
  const running = app.run({ signal: stop.signal, handleSignals: false })
  let done
  try {
    done = await Promise.all(ids.map((id) => waitFinal(app, id, { timeoutMs: 60_000 })))
  } finally {
    stop.abort()
    await running
  }
  assert.deepEqual(done.map((task) => task.state), [...Array(4).fill('complete'), 'expired', 'expired', 'terminated'])

  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const scraped = samples(await response.text())
  const q = `queue="${queue}"`
  const expected = {
    [`choria_asyncjobs_queue_enqueue_count{${q}}`]: 7,
    [`choria_asyncjobs_handler_error_total{${q},type="fail"}`]: 4, // 2 tasks x 2 tries
    [`choria_asyncjobs_handler_error_total{${q},type="term"}`]: 1,
    [`choria_asyncjobs_handler_runtime_count{${q},type="ok"}`]: 4,
    [`jetjobs_handler_duration_seconds_count{${q},type="fail"}`]: 4,
    [`choria_asyncjobs_queue_task_past_max_tries_count{${q}}`]: 2,
  }
  for (const [series, value] of Object.entries(expected)) assert.equal(scraped.get(series), value, series)
  assert.equal(scraped.get(`choria_asyncjobs_handler_error_total{${q},type="ok"}`), undefined)
  assert.ok(scraped.get(`choria_asyncjobs_queue_poll_total{${q}}`) >= 1)
  // The same registry, rendered in-process.
  const rendered = samples(renderMetrics())
  for (const [series, value] of Object.entries(expected)) assert.equal(rendered.get(series), value, series)
})
