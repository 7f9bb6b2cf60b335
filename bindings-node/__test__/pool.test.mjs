// SPDX-License-Identifier: Apache-2.0
// The keyed job pool with JS handlers: two nodes in this process, each with its own connection.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import {
  App,
  ClosedError,
  InvalidOptionError,
  JobExistsError,
  JobNotFoundError,
  JobStartFailedError,
  NoWorkersError,
  PoolNode,
  poolWorkerIndex,
} from 'jetjobs'

import { queueName, useServer, waitFor } from './helpers.mjs'

const server = useServer()
const options = { workerTtlMs: 2_000, graceMs: 500, dispatchTimeoutMs: 20_000, shutdownTimeoutMs: 20_000 }

/** A handler recording what runs here; refuses keys starting with `bad` while `refuse` is set. */
function jobs() {
  const running = new Map()
  const notes = []
  const state = { running, notes, refuse: true }
  state.handler = {
    async start(job) {
      if (state.refuse && job.key.startsWith('bad')) throw new Error(`refused ${job.key}`)
      running.set(job.key, job)
    },
    async stop(key) {
      running.delete(key)
    },
    async notify(key, payload) {
      notes.push([key, payload])
    },
  }
  return state
}

let apps = []

/** Two nodes of a fresh pool, each on its own app. */
async function twoNodes() {
  const pool = queueName('pool')
  const a = await PoolNode.join(apps[0], pool, options)
  const b = await PoolNode.join(apps[1], pool, options)
  return { pool, a, b }
}

/** Closes what a test left open (a failed assertion must not keep the process alive). */
async function cleanup(...nodes) {
  for (const node of nodes) if (!node.isClosed) await node.close().catch(() => undefined)
}

describe('PoolNode', () => {
  before(() => {
    apps = [0, 1, 2].map(() => new App({ servers: server.url }))
  })
  after(async () => {
    await Promise.all(apps.map((app) => app.close()))
  })

  test('dispatch, payloads, notify, stop, listings and their errors', async () => {
    const { pool, a, b } = await twoNodes()
    let client
    try {
      assert.equal(a.pool, pool)
      assert.notEqual(a.id, b.id)
      await assert.rejects(a.dispatchJob('k'), NoWorkersError)

      const [ja, jb] = [jobs(), jobs()]
      const wa = await a.addWorker(ja.handler)
      const wb = await b.addWorker(jb.handler)
      assert.equal(wa.node, a.id)
      assert.ok(wa.createdAt instanceof Date && Math.abs(wa.createdAt.getTime() - Date.now()) < 60_000)
      await waitFor(() => a.poolWorkers().length === 2 && b.poolWorkers().length === 2, { what: 'both workers seen' })
      assert.deepEqual(a.workers().map((w) => w.id), [wa.id])
      assert.deepEqual(b.workers().map((w) => w.id), [wb.id])
      assert.deepEqual(a.nodes().map((n) => n.id).sort(), [a.id, b.id].sort())
      assert.ok(a.nodes().every((n) => n.node === n.id && n.createdAt instanceof Date))

      const keys = Array.from({ length: 12 }, (_, i) => `k${i}`)
      for (const key of keys) await a.dispatchJob(key, `payload ${key}`)
      // Each runs on the worker its key hashes to over the workers oldest first.
      const ring = a.poolWorkers().map((w) => w.id)
      const owners = a.jobOwners()
      for (const key of keys) assert.equal(owners[key], ring[poolWorkerIndex(key, ring.length)], key)
      assert.deepEqual([...ja.running.keys(), ...jb.running.keys()].sort(), [...keys].sort(), 'every job runs once')
      assert.ok(ja.running.size > 0 && jb.running.size > 0, 'both workers got jobs')
      assert.deepEqual(a.jobKeys(), [...keys].sort())
      const started = ja.running.get('k3') ?? jb.running.get('k3')
      assert.equal(started.payload.toString(), 'payload k3')
      assert.equal(started.generation, 1)
      assert.equal(started.node, a.id)
      assert.ok(started.createdAt instanceof Date)

      await assert.rejects(b.dispatchJob('k3'), JobExistsError)
      const refused = await a.dispatchJob('bad-1').then(() => assert.fail('should reject'), (e) => e)
      assert.ok(refused instanceof JobStartFailedError, String(refused))
      assert.match(refused.message, /refused bad-1/)
      assert.equal(await a.jobPayload('bad-1'), null, 'nothing kept')
      ja.refuse = jb.refuse = false
      await a.dispatchJob('bad-1', Buffer.from([1, 2, 3]))
      assert.deepEqual(await b.jobPayload('bad-1'), Buffer.from([1, 2, 3]), 'a refused key can be dispatched again')

      assert.deepEqual(await a.jobPayload('k3'), Buffer.from('payload k3'))
      await a.dispatchJob('empty')
      const empty = await b.jobPayload('empty')
      assert.ok(Buffer.isBuffer(empty) && empty.length === 0)
      assert.equal(await a.jobPayload('nope'), null)

      await b.notifyWorker('k5', 'hello')
      const notes = [...ja.notes, ...jb.notes]
      assert.equal(notes.length, 1)
      assert.equal(notes[0][0], 'k5')
      assert.ok(Buffer.isBuffer(notes[0][1]))
      assert.equal(notes[0][1].toString(), 'hello')
      await assert.rejects(a.notifyWorker('nope', 'x'), JobNotFoundError)

      await b.stopJob('k7')
      assert.ok(!ja.running.has('k7') && !jb.running.has('k7'))
      assert.equal(await a.jobPayload('k7'), null)
      await assert.rejects(a.stopJob('k7'), JobNotFoundError)
      await assert.rejects(a.stopJob('never-dispatched'), JobNotFoundError)
      await a.dispatchJob('k7')

      // A client-only node dispatches but hosts no workers.
      client = await PoolNode.join(apps[2], pool, { ...options, clientOnly: true })
      await assert.rejects(client.addWorker(jobs().handler), InvalidOptionError)
      await client.dispatchJob('from-client', 'c')
      await waitFor(() => ja.running.has('from-client') || jb.running.has('from-client'), { what: 'the client-dispatched job' })
      assert.equal(a.nodes().length, 3)
      assert.equal(a.poolWorkers().length, 2)

      await assert.rejects(a.addWorker({ start: async () => {} }), InvalidOptionError)
      await assert.rejects(a.removeWorker('no-such-worker'), InvalidOptionError)
      await assert.rejects(PoolNode.join(apps[0], 'a.b', options), InvalidOptionError)
      await assert.rejects(PoolNode.join(apps[0], pool, { ...options, workerTtlMs: 1_500 }), InvalidOptionError)

      // Closing b hands its jobs to a.
      const total = a.jobKeys().length
      await b.close()
      assert.ok(b.isClosed && !b.isShutdown)
      await b.close() // idempotent
      await waitFor(() => ja.running.size === total, { what: "b's jobs running on a" })
      assert.equal(jb.running.size, 0)
      await assert.rejects(b.dispatchJob('x'), ClosedError)
      assert.deepEqual(new Set(Object.values(a.jobOwners())), new Set([wa.id]))
    } finally {
      await cleanup(a, b, ...(client ? [client] : []))
    }
  })

  test('removeWorker hands its jobs to the other workers', async () => {
    const { a, b } = await twoNodes()
    try {
      const [ja, jb] = [jobs(), jobs()]
      const wa = await a.addWorker(ja.handler)
      await b.addWorker(jb.handler)
      await waitFor(() => a.poolWorkers().length === 2, { what: 'both workers seen' })
      for (let i = 0; i < 8; i++) await a.dispatchJob(`r${i}`)
      await a.removeWorker(wa.id)
      assert.deepEqual(a.workers(), [])
      await waitFor(() => jb.running.size === 8, { what: 'every job on b' })
      assert.equal(ja.running.size, 0)
    } finally {
      await cleanup(a, b)
    }
  })

  test('a ticker ticks on exactly one of two nodes per period', async () => {
    const { a, b } = await twoNodes()
    try {
      const period = 300
      const ta = await a.newTicker('t', period)
      const tb = await b.newTicker('t', period)
      const ticks = []
      const ended = []
      const listen = async (name, ticker) => {
        for await (const at of ticker) {
          assert.ok(at instanceof Date)
          ticks.push({ name, at: Date.now() })
        }
        ended.push(name)
      }
      const listening = [listen('a', ta), listen('b', tb)]
      await waitFor(() => ticks.length >= 8, { what: '8 ticks' })
      await ta.stop()
      await waitFor(() => ended.length === 2, { what: 'both tickers ended' })
      await Promise.all(listening)
      assert.equal(await tb.next(), null)
      const times = ticks.map((t) => t.at).sort((x, y) => x - y)
      const closest = Math.min(...times.slice(1).map((t, i) => t - times[i]))
      assert.ok(closest > period / 2, `two ticks ${closest} ms apart: one node per period`)
      await assert.rejects(a.newTicker('bad name', period), InvalidOptionError)
    } finally {
      await cleanup(a, b)
    }
  })

  test('a schedule starts its plan, stopAll keeps only the planned jobs, null ends it', async () => {
    const { a, b } = await twoNodes()
    try {
      const ja = jobs()
      await a.addWorker(ja.handler)
      const steps = [
        { start: [{ key: 'one' }, { key: 'two', payload: 'p2' }] },
        async () => ({ start: [{ key: 'two' }], stopAll: true }),
        null,
      ]
      let calls = 0
      await a.schedule('plan', 400, () => {
        calls += 1
        const step = steps.shift() ?? null
        return typeof step === 'function' ? step() : step
      })
      assert.deepEqual([...ja.running.keys()].sort(), ['one', 'two'], 'the first plan runs at once')
      assert.equal(ja.running.get('two').payload.toString(), 'p2')
      await waitFor(() => ja.running.size === 1 && ja.running.has('two'), { what: 'stopAll keeps two' })
      await waitFor(() => steps.length === 0, { what: 'the null plan' })
      const ended = calls
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      assert.equal(calls, ended, 'no plan after the schedule ended')
      assert.deepEqual([...ja.running.keys()], ['two'])
      await assert.rejects(a.schedule('bad name', 400, () => null), InvalidOptionError)
    } finally {
      await cleanup(a, b)
    }
  })

  test('shutdown stops every job on both nodes', async () => {
    const { pool, a, b } = await twoNodes()
    try {
      const [ja, jb] = [jobs(), jobs()]
      await a.addWorker(ja.handler)
      await b.addWorker(jb.handler)
      await waitFor(() => a.poolWorkers().length === 2, { what: 'both workers seen' })
      for (let i = 0; i < 10; i++) await b.dispatchJob(`s${i}`)
      assert.equal(ja.running.size + jb.running.size, 10)
      await a.shutdown()
      assert.ok(a.isShutdown && a.isClosed)
      await waitFor(() => b.isShutdown, { what: 'b sees the shutdown' })
      assert.equal(ja.running.size, 0)
      assert.equal(jb.running.size, 0)
      await assert.rejects(b.dispatchJob('late'), ClosedError)
      // The pool is gone: joining it again starts afresh.
      const again = await PoolNode.join(apps[2], pool, options)
      assert.deepEqual(again.jobKeys(), [])
      await again.close()
    } finally {
      await cleanup(a, b)
    }
  })

  test('poolWorkerIndex agrees with the engine and refuses what it cannot hash over', () => {
    assert.equal(poolWorkerIndex('tenant-42', 1), 0)
    const i = poolWorkerIndex('tenant-42', 3)
    assert.ok(i >= 0 && i < 3)
    assert.equal(poolWorkerIndex('tenant-42', 3), i)
    assert.throws(() => poolWorkerIndex('k', -1), InvalidOptionError)
    assert.throws(() => poolWorkerIndex('k', 1.5), InvalidOptionError)
  })
})
