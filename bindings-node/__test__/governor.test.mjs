// SPDX-License-Identifier: Apache-2.0
// choria's governor from Node: go-choria's own test sequence (unknown governor, settings, subject
// update, no last-active time, eviction returning the holder, a second eviction failing), 200
// campaigns on a limit-20 governor never holding more than 20 slots, `withSlot` releasing when
// its function throws, `await using` (compiled by tsc) releasing at the end of the block, and
// routes governed by name or by `Governor` running at most the governor's limit at once. Also
// choria's lifecycle events (read with a bare NATS protocol client) and routes governed per key,
// the key read from the payload at a JSON pointer.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { after, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'

import { App, GovernorManager, GovernorNotFoundError, InvalidOptionError, Lease, LeaseNotFoundError, Queue, RetryPolicy, TimeoutError } from 'jetjobs'
import { queueName, useServer, waitFinal } from './helpers.mjs'

const server = useServer()
const apps = []
const newApp = (options = {}) => {
  const app = new App({ servers: server.url, ...options })
  apps.push(app)
  return app
}
after(() => Promise.all(apps.map((a) => a.close())))

test('governors follow choria semantics', async () => {
  const app = newApp()
  await assert.rejects(app.governorManager('TEST'), (e) => e instanceof GovernorNotFoundError && e.kind === 'GovernorNotFound')
  let manager = await app.governorManager('TEST', { limit: 100, maxAgeMs: 120_000 })
  assert.deepEqual([manager.name, manager.limit, manager.maxAgeMs, manager.subject], ['TEST', 100, 120_000, '$GOVERNOR.campaign.TEST'])
  manager = await app.governorManager('TEST', { limit: 100, maxAgeMs: 120_000, subject: '$BOB' })
  assert.equal(manager.subject, '$BOB')
  assert.equal((await app.governorManager('TEST')).subject, '$BOB')
  assert.equal(await manager.lastActive(), null)

  const governor = await app.governor('TEST', { subject: '$BOB' })
  const lease = await governor.start('testing.eviction')
  assert.ok(lease instanceof Lease)
  assert.equal(await manager.active(), 1)
  const [listed] = await manager.leases()
  assert.deepEqual([listed.seq, listed.holder], [lease.seq, 'testing.eviction'])
  assert.ok(Math.abs(Date.now() - listed.takenAt.getTime()) < 10_000)
  assert.equal(await manager.evict(lease.seq), 'testing.eviction')
  await assert.rejects(manager.evict(lease.seq), LeaseNotFoundError)
  await assert.rejects(lease.release(), LeaseNotFoundError)
  assert.ok(Math.abs(Date.now() - (await manager.lastActive()).getTime()) < 10_000)

  await manager.setLimit(5)
  // Lowered below the server's default 2 minute duplicate window, which the update resets.
  await manager.setMaxAgeMs(30_000)
  await manager.setSubject(GovernorManager.collectiveSubject('choria', 'TEST'))
  const again = await app.governorManager('TEST')
  assert.deepEqual([again.limit, again.maxAgeMs, again.subject], [5, 30_000, 'choria.governor.TEST'])
  assert.deepEqual(await app.governors('choria'), ['TEST'])
  await manager.delete()
  assert.deepEqual(await app.governors('choria'), [])
})

test('200 campaigns on a limit-20 governor never hold more than 20 slots', async () => {
  const app = newApp()
  const manager = await app.governorManager('CAP', { limit: 20 })
  const governor = await app.governor('CAP', { intervalMs: 10 })
  let holding = 0
  let peak = 0
  await Promise.all(
    Array.from({ length: 200 }, (_, i) =>
      governor.withSlot(
        `node-${i}`,
        async () => {
          holding += 1
          peak = Math.max(peak, holding)
          await sleep(50)
          holding -= 1
        },
        { maxWaitMs: 60_000 },
      ),
    ),
  )
  assert.ok(peak > 1 && peak <= 20, `peak ${peak}`)
  assert.equal(await manager.active(), 0)
})

test('withSlot releases when its function throws; waits time out', async () => {
  const app = newApp()
  const manager = await app.governorManager('ONE', { limit: 1 })
  const governor = await app.governor('ONE', { intervalMs: 20, backoff: RetryPolicy.fiveSec() })
  await assert.rejects(
    governor.withSlot('thrower', async (lease) => {
      assert.ok(lease.seq > 0)
      assert.equal(await manager.active(), 1)
      throw new Error('boom')
    }),
    /boom/,
  )
  assert.equal(await manager.active(), 0)

  const held = await governor.start('holder')
  assert.equal(await governor.tryStart('other'), null)
  await assert.rejects(governor.withSlot('waiter', () => assert.fail('the governor is full'), { maxWaitMs: 200 }), TimeoutError)
  const ac = new AbortController()
  setTimeout(() => ac.abort(), 50)
  await assert.rejects(governor.start('aborted', { signal: ac.signal }), TimeoutError)
  await held[Symbol.asyncDispose]()
  await held.release() // a second release does nothing
  assert.deepEqual(await governor.withSlot('after', async () => (await manager.leases()).map((l) => l.holder)), ['after'])
  assert.equal(await manager.active(), 0)
})

test('`await using` releases a lease at the end of the block (TypeScript, compiled)', async () => {
  const dir = join(process.cwd(), 'target', 'node', 'ts-governor')
  mkdirSync(dir, { recursive: true })
  writeFileSync(
    join(dir, 'using.mts'),
    `import { App } from 'jetjobs'
const app = new App({ servers: process.env.NATS_URL })
const manager = await app.governorManager('USING', { limit: 1 })
const governor = await app.governor('USING')
{
  await using lease = await governor.start('block')
  console.log('inside', lease.seq > 0, await manager.active())
}
console.log('after', await manager.active())
await app.close()
`,
  )
  const run = promisify(execFile)
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const flags = ['--strict', '--target', 'ES2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node']
  await run(process.execPath, [tsc, ...flags, '--rootDir', dir, '--outDir', join(dir, 'out'), join(dir, 'using.mts')]).catch((e) => {
    throw new Error(`tsc failed:\n${e.stdout}${e.stderr}`)
  })
  const { stdout } = await run(process.execPath, [join(dir, 'out', 'using.mjs')], { env: { ...process.env, NATS_URL: server.url }, timeout: 30_000 })
  assert.equal(stdout, 'inside true 1\nafter 0\n')
})

/** Handlers running now under each label, and the most at once. */
function gauges() {
  const now = new Map()
  const peak = new Map()
  return {
    peak,
    async hold(label, ms) {
      now.set(label, (now.get(label) ?? 0) + 1)
      peak.set(label, Math.max(peak.get(label) ?? 0, now.get(label)))
      await sleep(ms)
      now.set(label, now.get(label) - 1)
    },
  }
}

/** Runs the app's worker until every task is final; resolves to the tasks. */
async function runUntilFinal(app, ids) {
  const ac = new AbortController()
  const running = app.run({ signal: ac.signal, handleSignals: false })
  try {
    return await Promise.all(ids.map((id) => waitFinal(app, id)))
  } finally {
    ac.abort()
    await running
  }
}

test('a governed route runs at most the governor limit while an ungoverned one runs freely', async () => {
  const app = newApp({ queue: new Queue(queueName('GOVERNED')), concurrency: 10 })
  const gauge = gauges()
  app.task('db:migrate', () => gauge.hold('governed', 100), { governor: 'DB' })
  app.task('free', () => gauge.hold('free', 100))
  const manager = await app.governorManager('DB', { limit: 2 })
  const ids = []
  for (let i = 0; i < 8; i++) ids.push((await app.enqueue('db:migrate', i)).id)
  for (let i = 0; i < 8; i++) ids.push((await app.enqueue('free', i)).id)
  const tasks = await runUntilFinal(app, ids)
  assert.deepEqual(new Set(tasks.map((t) => `${t.state}/${t.tries}`)), new Set(['complete/1']))
  assert.equal(gauge.peak.get('governed'), 2)
  assert.ok(gauge.peak.get('free') > 2, `ungoverned peak ${gauge.peak.get('free')}`)
  assert.equal(await manager.active(), 0) // every slot given back when its handler ended
})

test('a route takes a Governor with its own subject', async () => {
  const app = newApp({ queue: new Queue(queueName('GOVERNEDOBJ')), concurrency: 10 })
  const manager = await app.governorManager('ONE', { limit: 1, subject: 'ops.governor.ONE' })
  const governor = await app.governor('ONE', { subject: 'ops.governor.ONE', intervalMs: 20 })
  const gauge = gauges()
  app.task('one', () => gauge.hold('one', 50), { governor })
  assert.throws(() => app.task('other', () => null, { governor: 1 }), InvalidOptionError)
  const ids = []
  for (let i = 0; i < 4; i++) ids.push((await app.enqueue('one', i)).id)
  const tasks = await runUntilFinal(app, ids)
  assert.deepEqual(new Set(tasks.map((t) => `${t.state}/${t.tries}`)), new Set(['complete/1']))
  assert.equal(gauge.peak.get('one'), 1)
  assert.equal(await manager.active(), 0)
})

/**
 * Subscribes to `subject` with a bare NATS protocol client; resolves once subscribed to
 * `{ next(), close() }`, `next()` resolving to the next message as `[subject, decoded JSON]`.
 */
async function subscribe(url, subject, { timeoutMs = 10_000 } = {}) {
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  const messages = []
  const waiting = []
  let buffer = Buffer.alloc(0)
  let subscribed
  const ready = new Promise((resolve, reject) => {
    subscribed = resolve
    socket.on('error', reject)
    setTimeout(() => reject(new Error('no PONG')), timeoutMs).unref()
  })
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk])
    for (;;) {
      const end = buffer.indexOf('\r\n')
      if (end < 0) return
      const line = buffer.subarray(0, end).toString()
      if (line.startsWith('MSG ')) {
        const parts = line.split(' ')
        const size = Number(parts.at(-1))
        if (buffer.length < end + 2 + size + 2) return
        const body = JSON.parse(buffer.subarray(end + 2, end + 2 + size).toString())
        buffer = buffer.subarray(end + 2 + size + 2)
        const message = [parts[1], body]
        const waiter = waiting.shift()
        if (waiter) waiter(message)
        else messages.push(message)
        continue
      }
      buffer = buffer.subarray(end + 2)
      if (line.startsWith('PING')) socket.write('PONG\r\n')
      else if (line.startsWith('PONG')) subscribed()
    }
  })
  socket.write(`CONNECT {"verbose":false,"pedantic":false}\r\nSUB ${subject} 1\r\nPING\r\n`)
  await ready
  return {
    next: () =>
      messages.length > 0
        ? Promise.resolve(messages.shift())
        : new Promise((resolve, reject) => {
            waiting.push(resolve)
            setTimeout(() => reject(new Error(`no message on ${subject} within ${timeoutMs} ms`)), timeoutMs).unref()
          }),
    close: () => socket.destroy(),
  }
}

test('lifecycle events are published as choria does', async () => {
  const app = newApp()
  const events = await subscribe(server.url, 'choria.lifecycle.event.governor.>')
  try {
    const manager = await app.governorManager('LIFE', { limit: 1, lifecycleComponent: 'CLI' })
    const governor = await app.governor('LIFE', { intervalMs: 20, lifecycleComponent: 'node' })
    const firstSeq = await governor.withSlot('holder-1', (lease) => lease.seq)
    const held = await governor.start('holder-2')
    const waiter = await app.governor('LIFE', { lifecycleComponent: 'node', lifecycleIdentity: 'host-1' })
    await assert.rejects(waiter.start('waiter', { maxWaitMs: 200 }), TimeoutError)
    assert.equal(await manager.evict(held.seq), 'holder-2')
    await assert.rejects(app.governor('LIFE', { lifecycleComponent: 'a b' }), InvalidOptionError)
    const seen = []
    for (let i = 0; i < 5; i++) seen.push(await events.next())
    assert.deepEqual(
      seen.map(([, e]) => [e.component, e.event_type, e.identity, e.sequence]),
      [
        ['node', 'enter', 'holder-1', firstSeq],
        ['node', 'exit', 'holder-1', firstSeq],
        ['node', 'enter', 'holder-2', held.seq],
        ['node', 'timeouts', 'host-1', 0],
        ['CLI', 'eviction', 'holder-2', held.seq],
      ],
    )
    for (const [subject, event] of seen) {
      assert.equal(subject, `choria.lifecycle.event.governor.${event.component}`)
      assert.deepEqual(Object.keys(event), ['protocol', 'id', 'identity', 'component', 'timestamp', 'governor', 'sequence', 'event_type'])
      assert.equal(event.protocol, 'io.choria.lifecycle.v1.governor')
      assert.equal(event.governor, 'LIFE')
      assert.ok(Number.isInteger(event.timestamp) && Math.abs(Date.now() / 1000 - event.timestamp) < 60)
    }
    assert.equal(new Set(seen.map(([, e]) => e.id)).size, 5)
  } finally {
    events.close()
  }
})

test('a route governed per key runs one task at a time per tenant', async () => {
  const app = newApp({ queue: new Queue(queueName('TENANTS')), concurrency: 10 })
  const gauge = gauges()
  app.task('sync', async (task) => {
    await Promise.all([gauge.hold(String(task.payload.tenant), 100), gauge.hold('*', 100)])
  }, { governor: 'TENANT', governorKey: '/tenant' })
  assert.throws(() => app.task('other', () => null, { governorKey: '/tenant' }), InvalidOptionError)
  assert.throws(() => app.task('other', () => null, { governor: 'TENANT', governorKey: 'tenant' }), InvalidOptionError)
  const manager = await app.governorManager('TENANT', { limit: 1, perKey: true })
  const ids = []
  for (let i = 0; i < 4; i++) {
    for (const tenant of ['a', 'b', 7]) ids.push((await app.enqueue('sync', { tenant })).id)
  }
  const missing = (await app.enqueue('sync', { other: 'a' })).id
  const tasks = await runUntilFinal(app, [...ids, missing])
  const refused = tasks.pop()
  assert.deepEqual(new Set(tasks.map((t) => `${t.state}/${t.tries}`)), new Set(['complete/1']))
  assert.deepEqual(['a', 'b', '7'].map((t) => gauge.peak.get(t)), [1, 1, 1])
  assert.ok(gauge.peak.get('*') > 1, `tenants side by side: ${gauge.peak.get('*')}`)
  assert.equal(refused.state, 'terminated')
  assert.match(refused.lastErr, /governor TENANT: the payload has no key at "\/tenant"/)
  assert.equal(await manager.active(), 0)
})
