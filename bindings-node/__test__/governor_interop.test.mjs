// SPDX-License-Identifier: Apache-2.0
// One governor, four languages: 1,000 campaigns split across the real go-choria v0.29.4 library
// (tests/interop/go/cmd/govdriver), Rust (`target/debug/examples/governor`), Python (the installed
// package in `.venv`, tests/interop/governor_campaign.py) and Node (this process) on one limit-100
// governor. Every holder reports on core NATS `gov.enter` once it holds a slot and `gov.exit`
// before releasing it; one subscriber (the Rust example's `observe`) counts them across every
// process: never more than 100 at once, and all 1,000 finish. Without `go` the test fails;
// JETJOBS_SKIP_GO=1 gives Go's share to Node, saying so.
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'

import { App, GovernorManager } from 'jetjobs'
import { useServer, waitForOutput } from './helpers.mjs'

const server = useServer()
const skipGo = process.env.JETJOBS_SKIP_GO === '1'
const examples = join(process.env.CARGO_TARGET_DIR ?? join(process.cwd(), 'target'), 'debug', 'examples')
const rustExample = join(examples, 'governor')
const python = join(process.cwd(), '.venv', 'bin', 'python')
const pythonScript = join(process.cwd(), 'tests', 'interop', 'governor_campaign.py')
const TOTAL = 1000
const LIMIT = 100
const HOLD_MS = 50
let goDriver

before(() => {
  if (skipGo) {
    console.log('# SKIP: JETJOBS_SKIP_GO=1; the Go choria governor takes no part (Node runs its share)')
    return
  }
  let hasGo = true
  try {
    execFileSync('go', ['version'])
  } catch {
    hasGo = false
  }
  assert.ok(hasGo, '`go` is not on PATH: the Go governor interop test needs it (JETJOBS_SKIP_GO=1 skips it)')
  goDriver = join(mkdtempSync(join(tmpdir(), 'govdriver-')), 'govdriver')
  execFileSync('go', ['build', '-o', goDriver, './cmd/govdriver'], { cwd: join(process.cwd(), 'tests/interop/go'), stdio: 'inherit' })
})

/** Publishes on a bare NATS protocol socket; `flush()` resolves once the server processed all before it. */
async function reporter(url) {
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
  const pongs = []
  let buffered = ''
  socket.on('data', (chunk) => {
    buffered += chunk
    let end
    while ((end = buffered.indexOf('\r\n')) >= 0) {
      const line = buffered.slice(0, end)
      buffered = buffered.slice(end + 2)
      if (line.startsWith('PING')) socket.write('PONG\r\n')
      else if (line.startsWith('PONG')) pongs.shift()?.()
    }
  })
  socket.write('CONNECT {"verbose":false,"pedantic":false}\r\n')
  return {
    publish: (subject, body) => socket.write(`PUB ${subject} ${Buffer.byteLength(body)}\r\n${body}\r\n`),
    flush: () =>
      new Promise((resolve) => {
        pongs.push(resolve)
        socket.write('PING\r\n')
      }),
    close: () => socket.destroy(),
  }
}

/** Runs a child to completion; resolves with its last stdout line as JSON (rejects on a non-zero exit). */
function runChild(command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk) => {
    out += chunk
  })
  return new Promise((resolve, reject) => {
    child.on('error', reject)
    child.on('exit', (code) => {
      const last = out.trim().split('\n').pop()
      if (code === 0) resolve(JSON.parse(last))
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${out}`))
    })
  })
}

test('1,000 campaigns in Go, Rust, Python and Node never hold more than 100 slots', { timeout: 120_000 }, async () => {
  for (const [what, path] of [
    ['the Rust example', rustExample],
    ['the .venv Python', python],
  ]) {
    assert.ok(existsSync(path), `${what} (${path}) is missing: make test builds it`)
  }
  const name = 'MIX'
  const subject = GovernorManager.collectiveSubject('choria', name)
  const app = new App({ servers: server.url })
  const manager = await app.governorManager(name, { limit: LIMIT, subject })

  const observer = spawn(rustExample, ['observe', server.url, String(TOTAL), String(LIMIT)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let observed = ''
  observer.stdout.on('data', (chunk) => {
    observed += chunk
  })
  const observerDone = new Promise((resolve) => observer.on('exit', resolve))
  try {
    await waitForOutput(observer.stdout, /"ready":true/, { timeoutMs: 30_000 })

    const share = TOTAL / 4
    const nodeShare = skipGo ? 2 * share : share
    const children = [
      runChild(rustExample, ['campaign', server.url, name, String(share), String(HOLD_MS), subject]),
      runChild(python, [pythonScript, server.url, name, String(share), String(HOLD_MS), subject]),
    ]
    if (!skipGo) {
      children.push(
        runChild(goDriver, ['campaign', '-url', server.url, '-name', name, '-subject', subject, '-count', String(share), '-hold-ms', String(HOLD_MS), '-interval-ms', '10']),
      )
    }
    const governor = await app.governor(name, { subject, intervalMs: 10 })
    const reports = await reporter(server.url)
    let holding = 0
    let peak = 0
    const node = Promise.all(
      Array.from({ length: nodeShare }, (_, i) =>
        governor.withSlot(
          `node-${i}`,
          async () => {
            holding += 1
            peak = Math.max(peak, holding)
            reports.publish('gov.enter', 'node')
            await sleep(HOLD_MS)
            holding -= 1
            reports.publish('gov.exit', 'node')
            await reports.flush()
          },
          { maxWaitMs: 120_000 },
        ),
      ),
    ).then(() => ({ lang: 'node', campaigns: nodeShare, done: nodeShare, peak }))
    const summaries = await Promise.all([...children, node])
    reports.close()

    assert.equal(await observerDone, 0, `the observer failed: ${observed}`)
    const seen = JSON.parse(observed.trim().split('\n').pop())
    console.log(`observed ${JSON.stringify(seen)} ${JSON.stringify(summaries.map(({ lang, done, peak: p, elapsed_ms: ms }) => ({ lang, done, peak: p, ms })))}`)
    for (const s of summaries) assert.equal(s.done, s.campaigns, `${s.lang}: ${JSON.stringify(s)}`)
    assert.equal(seen.exits, TOTAL)
    assert.equal(seen.over_limit, 0, `more than ${LIMIT} held slots at once: ${JSON.stringify(seen)}`)
    assert.ok(seen.peak <= LIMIT && seen.peak > LIMIT / 4, `peak ${seen.peak}`)
    const langs = skipGo ? ['node', 'python', 'rust'] : ['go', 'node', 'python', 'rust']
    assert.deepEqual(Object.keys(seen.by_lang).sort(), langs)
    for (const s of summaries) assert.deepEqual(seen.by_lang[s.lang], { entered: s.campaigns, exited: s.campaigns })
    assert.equal(await manager.active(), 0)
  } finally {
    if (observer.exitCode === null) observer.kill('SIGTERM')
    await app.close()
  }
})
