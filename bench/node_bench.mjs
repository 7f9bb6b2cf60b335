// SPDX-License-Identifier: Apache-2.0
// `make bench-node` (run by `make bench` after the Rust bench): the same measurements as
// bench/src/main.rs, with a no-op async JS handler instead of a Rust one, on a fresh dev server,
// reported as ratios of the Rust figures that run wrote to target/bench.json.
//
// Environment: BENCH_JSON (default target/bench.json), BENCH_TASKS (default: the Rust run's
// backlog size, else 50000), BENCH_CONCURRENCY (default 256, as the Rust bench).
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

import { App, DevServer, Queue } from 'jetjobs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const rustPath = process.env.BENCH_JSON ?? join(root, 'target', 'bench.json')
const rust = existsSync(rustPath) ? JSON.parse(readFileSync(rustPath, 'utf8')) : undefined
const tasks = Number(process.env.BENCH_TASKS ?? rust?.tasks ?? 50_000)
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 256)
const QUEUE = 'BENCH'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Runs `n` calls of `f(i)` with at most `width` in flight. */
async function pool(n, width, f) {
  let next = 0
  const lane = async () => {
    while (next < n) await f(next++)
  }
  await Promise.all(Array.from({ length: Math.min(width, n) }, lane))
}

/** Waits until the queue holds no items: every task's final state stored and its item acked. */
async function waitEmpty(app) {
  while ((await app.admin.queueInfo(QUEUE)).items > 0) await sleep(20)
}

function startWorker(app) {
  const ac = new AbortController()
  const running = app.run({ signal: ac.signal, handleSignals: false })
  return async () => {
    ac.abort()
    await running
  }
}

const server = await DevServer.start()
console.log(`jetjobs node bench: nats-server file storage on loopback, ${tasks} tasks, worker concurrency ${concurrency}, node ${process.version}\n`)
const app = new App({ servers: server.url, queue: new Queue(QUEUE, { maxConcurrent: 10_000 }), concurrency })
try {
  // (1) Backlog: enqueue everything first, then time the drain until the queue is empty.
  let started = performance.now()
  await pool(tasks, 256, (i) => app.enqueue('noop', i))
  const enqueueRate = tasks / ((performance.now() - started) / 1000)

  app.task('noop', async () => {})
  const cpuBefore = process.cpuUsage()
  started = performance.now()
  let stop = startWorker(app)
  await waitEmpty(app)
  const drainSeconds = (performance.now() - started) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  await stop()
  const drainRate = tasks / drainSeconds
  const cpuMicrosPerTask = (cpu.user + cpu.system) / tasks

  // (2) Unloaded: one task at a time, from calling enqueue to the JS handler starting.
  let onStart
  app.task('probe', async () => {
    onStart(performance.now())
  })
  stop = startWorker(app)
  const latencies = []
  for (let i = 0; i < 500; i++) {
    let timer
    const handled = new Promise((resolve, reject) => {
      onStart = resolve
      timer = setTimeout(() => reject(new Error('probe not handled in 10 s')), 10_000)
    })
    const sent = performance.now()
    await app.enqueue('probe', i)
    const at = await handled
    clearTimeout(timer)
    latencies.push(at - sent)
  }
  await waitEmpty(app)
  await stop()
  latencies.sort((a, b) => a - b)
  const p50 = latencies[Math.floor(latencies.length / 2)]
  const p99 = latencies[Math.floor(latencies.length * 0.99)]

  console.log('(d) jetjobs, no-op async JS handler (Node SDK)')
  console.log(`    enqueue (256 in flight)      ${enqueueRate.toFixed(0).padStart(10)} tasks/s`)
  console.log(`    drain ${tasks}-task backlog     ${drainRate.toFixed(0).padStart(10)} tasks/s`)
  console.log(`    enqueue→handler start p50    ${p50.toFixed(2).padStart(10)} ms`)
  console.log(`    enqueue→handler start p99    ${p99.toFixed(2).padStart(10)} ms`)
  console.log(`    node CPU per task (drain)    ${cpuMicrosPerTask.toFixed(1).padStart(10)} µs`)
  const figures = { node_drain_rate: drainRate, node_start_p50_ms: p50, node_start_p99_ms: p99, node_enqueue_rate: enqueueRate, tasks }
  if (rust) {
    const drainRatio = drainRate / rust.rust_drain_rate
    const latencyRatio = rust.rust_start_p50_ms / p50
    console.log('\n(e) Node as a ratio of the Rust handler run above (target >= 0.70)')
    console.log(`    drain: node / rust           ${drainRatio.toFixed(2).padStart(10)}   (${drainRate.toFixed(0)} vs ${rust.rust_drain_rate.toFixed(0)} tasks/s)`)
    console.log(`    start p50: rust / node       ${latencyRatio.toFixed(2).padStart(10)}   (${p50.toFixed(2)} vs ${rust.rust_start_p50_ms.toFixed(2)} ms)`)
    Object.assign(figures, { drain_ratio: drainRatio, start_p50_ratio: latencyRatio })
  } else {
    console.log(`\n(no ${rustPath}: run \`make bench\` for the ratios to the Rust handler)`)
  }
  writeFileSync(join(root, 'target', 'bench-node.json'), `${JSON.stringify(figures)}\n`)
} finally {
  await app.close()
  server.close()
}
