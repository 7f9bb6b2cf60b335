// SPDX-License-Identifier: Apache-2.0
// Four task schedulers in four languages share one server and one election: the Rust example
// (`target/debug/examples/scheduler`), `python -m jetjobs scheduler` (from `.venv`), the Node
// `jetjobs-scheduler` bin and Go asyncjobs v0.3.0's `TaskScheduler` (the driver in
// tests/interop/go). An `@every 1s` schedule fires once per second, never twice in one second,
// from whichever is elected; after the leader is SIGKILLed another announces itself and firing
// goes on. Without `go` the test fails; JETJOBS_SKIP_GO=1 leaves the Go scheduler out, saying so.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { App } from 'jetjobs'
import { useServer, waitFor, waitForOutput } from './helpers.mjs'

const server = useServer()
const skipGo = process.env.JETJOBS_SKIP_GO === '1'
const examples = join(process.env.CARGO_TARGET_DIR ?? join(process.cwd(), 'target'), 'debug', 'examples')
const python = join(process.cwd(), '.venv', 'bin', 'python')
const SCHEDULER_BIN = join(process.cwd(), 'bindings-node', 'bin', 'scheduler.mjs')
/** Splay (< 5 s) + the win announced one campaign interval (7.5 s) later, with room to spare. */
const ELECTED_MS = 40_000
/** A dead leader's key expires (10 s TTL), then a candidate wins and announces 7.5 s later. */
const TAKEOVER_MS = 45_000
let goDriver

before(() => {
  if (skipGo) return
  let hasGo = true
  try {
    execFileSync('go', ['version'])
  } catch {
    hasGo = false
  }
  assert.ok(hasGo, '`go` is not on PATH: the Go asyncjobs interop tests need it (JETJOBS_SKIP_GO=1 skips them)')
  goDriver = join(mkdtempSync(join(tmpdir(), 'ajdriver-')), 'ajdriver')
  execFileSync('go', ['build', '-o', goDriver, './cmd/ajdriver'], { cwd: join(process.cwd(), 'tests/interop/go'), stdio: 'inherit' })
})

/** Starts one scheduler process and resolves once it said it is ready. */
async function startScheduler(t, name, command, args, ready) {
  assert.ok(existsSync(command), `${command} is missing (make test builds it)`)
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  })
  await waitForOutput(child.stdout, ready, { timeoutMs: 60_000 })
  return { name, child }
}

/** Tasks of `type` by the whole second of their creation time. */
async function perSecond(app, type) {
  const seconds = new Map()
  for (const task of await app.admin.tasks(100_000)) {
    if (task.type !== type) continue
    const second = task.createdNs / 1_000_000_000n
    seconds.set(second, (seconds.get(second) ?? 0) + 1)
  }
  return seconds
}

function assertOnePerSecond(seconds, what) {
  const doubled = [...seconds].filter(([, n]) => n > 1)
  assert.deepEqual(doubled, [], `${what}: never two tasks in one second`)
}

test('Rust, Python, Node and Go schedulers share one election: one task per second, and a takeover after SIGKILL', async (t) => {
  if (skipGo) t.diagnostic('JETJOBS_SKIP_GO=1: the Go asyncjobs scheduler did not take part')
  const app = new App({ servers: server.url, queue: 'CRON' })
  t.after(() => app.close())
  await app.queue('CRON') // Go's scheduler enqueues without creating the queue
  await app.createSchedule('tick', '@every 1s', 'tick', { from: 'cron' })
  const leaders = []
  const events = await app.events()
  const listening = (async () => {
    for await (const event of events) {
      if (event.kind === 'leader_elected' && event.component === 'task_scheduler') leaders.push({ name: event.name, at: Date.now() })
    }
  })()
  t.after(async () => {
    events.close()
    await listening
  })

  const url = server.url
  const ready = /: ready\n/
  const starting = [
    startScheduler(t, 'rust-1', join(examples, 'scheduler'), [url, 'rust-1'], ready),
    startScheduler(t, 'python-1', python, ['-m', 'jetjobs', 'scheduler', url, '--name', 'python-1'], ready),
    startScheduler(t, 'node-1', process.execPath, [SCHEDULER_BIN, url, '--name', 'node-1'], ready),
  ]
  if (!skipGo) starting.push(startScheduler(t, 'go-1', goDriver, ['scheduler', '-url', url, '-name', 'go-1'], /"ready":true/))
  const schedulers = await Promise.all(starting)

  const first = await waitFor(() => leaders[0], { timeoutMs: ELECTED_MS, intervalMs: 100, what: 'a leader to be announced' })
  assert.ok(schedulers.some((s) => s.name === first.name), `an unknown leader: ${first.name}`)
  t.diagnostic(`first leader: ${first.name}`)
  await sleep(30_000)
  assert.deepEqual(leaders.map((l) => l.name), [first.name], 'one leader announced while it lives')
  const seconds = await perSecond(app, 'tick')
  assertOnePerSecond(seconds, 'under the first leader')
  const span = [...seconds.keys()].reduce((a, b) => (b > a ? b : a)) - [...seconds.keys()].reduce((a, b) => (b < a ? b : a)) + 1n
  const fired = [...seconds.values()].reduce((a, b) => a + b, 0)
  assert.ok(fired >= 25, `about one task per second for 30 s: ${fired}`)
  assert.ok(fired >= 0.9 * Number(span), `about one task per second: ${fired} in ${span} s`)

  const killedAt = Date.now()
  schedulers.find((s) => s.name === first.name).child.kill('SIGKILL')
  const next = await waitFor(() => leaders.find((l) => l.at > killedAt && l.name !== first.name), {
    timeoutMs: TAKEOVER_MS,
    intervalMs: 100,
    what: 'another scheduler to take over',
  })
  t.diagnostic(`took over: ${next.name}, ${next.at - killedAt} ms after the SIGKILL`)
  await waitFor(
    async () => {
      const now = await perSecond(app, 'tick')
      const after = [...now.keys()].filter((second) => second * 1000n >= BigInt(next.at))
      return after.length >= 3
    },
    { timeoutMs: 20_000, intervalMs: 250, what: 'firings under the new leader' },
  )
  assertOnePerSecond(await perSecond(app, 'tick'), 'across the takeover')
  assert.equal(leaders.filter((l) => l.at > killedAt).length, 1, 'one new leader announced')
})
