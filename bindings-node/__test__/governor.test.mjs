// SPDX-License-Identifier: Apache-2.0
// choria's governor from Node: go-choria's own test sequence (unknown governor, settings, subject
// update, no last-active time, eviction returning the holder, a second eviction failing), 200
// campaigns on a limit-20 governor never holding more than 20 slots, `withSlot` releasing when
// its function throws, `await using` (compiled by tsc) releasing at the end of the block, and
// routes governed by name or by `Governor` running at most the governor's limit at once.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
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
