// SPDX-License-Identifier: Apache-2.0
// Key-value buckets through the App: create, compare-and-swap, delete/purge with an expected
// revision, keys, watches and per-key TTLs, against a real nats-server.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'

import { App, InvalidOptionError, Kv, KvBucket, KeyExistsError, RevisionMismatchError } from 'jetjobs'
import { queueName, useServer, waitFor } from './helpers.mjs'

const server = useServer()

/** The first `n` entries of a watch. */
async function take(watch, n) {
  const out = []
  for await (const entry of watch) {
    out.push(entry)
    if (out.length === n) break
  }
  return out
}

describe('kv', () => {
  test('create, compare-and-swap update, delete and purge by revision, keys', async (t) => {
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    const kv = await app.kv(new KvBucket(queueName('KV'), { description: 'test', history: 5 }))
    assert.ok(kv instanceof Kv)
    assert.equal(await kv.get('a'), null)
    const r1 = await kv.create('a', Buffer.from('one'))
    assert.equal(typeof r1, 'number')
    await assert.rejects(kv.create('a', 'again'), (e) => e instanceof KeyExistsError && e.code === 'ERR_KEY_EXISTS')
    const got = await kv.get('a')
    assert.equal(got.key, 'a')
    assert.ok(Buffer.isBuffer(got.value))
    assert.equal(got.value.toString(), 'one')
    assert.equal(got.revision, r1)
    assert.equal(got.operation, 'put')
    const r2 = await kv.update('a', 'two', r1)
    assert.ok(r2 > r1)
    await assert.rejects(kv.update('a', 'lost', r1), (e) => e instanceof RevisionMismatchError && e.code === 'ERR_REVISION_MISMATCH')
    assert.equal((await kv.get('a')).value.toString(), 'two')
    await assert.rejects(kv.delete('a', r1), RevisionMismatchError)
    await kv.delete('a', r2)
    assert.equal(await kv.get('a'), null)
    // A deleted key can be created again.
    await kv.create('a', 'three')
    const r4 = await kv.put('b', new Uint8Array([1, 2]))
    assert.deepEqual([...(await kv.get('b')).value], [1, 2])
    assert.deepEqual((await kv.keys()).sort(), ['a', 'b'])
    await assert.rejects(kv.purge('b', r4 + 100), RevisionMismatchError)
    await kv.purge('b', r4)
    assert.deepEqual(await kv.keys(), ['a'])
    await assert.rejects(kv.create('bad key', 'x'), InvalidOptionError)
    await assert.rejects(kv.update('a', 'x', -1), InvalidOptionError)
    // The same bucket by name.
    assert.equal((await (await app.kv(kv.bucket)).get('a')).value.toString(), 'three')
  })

  test('watch sees puts and deletes, from now or from a revision', async (t) => {
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    // History 5: a replay from a revision still finds the put that a delete followed.
    const kv = await app.kv(new KvBucket(queueName('KVW'), { history: 5 }))
    await kv.put('other', 'ignored')
    const signal = AbortSignal.timeout(20_000)
    const live = await kv.watch('w.>', { signal })
    const first = await kv.put('w.x', '1')
    await kv.put('w.y', '2')
    await kv.delete('w.x')
    const seen = await take(live, 3)
    assert.deepEqual(
      seen.map((e) => [e.key, e.operation, e.value.toString()]),
      [['w.x', 'put', '1'], ['w.y', 'put', '2'], ['w.x', 'delete', '']],
    )
    assert.equal(seen[0].revision, first)
    const replay = await kv.watch('w.x', first)
    const again = await take(replay, 2)
    replay.close()
    assert.deepEqual(again.map((e) => [e.operation, e.revision >= first]), [['put', true], ['delete', true]])
    // Closed by app.close() (the app tracks open watches).
    const open = await kv.watch('>')
    await app.close()
    assert.deepEqual(await open.next(), { done: true, value: undefined })
  })

  test('a key created with a TTL expires', async (t) => {
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    const kv = await app.kv(new KvBucket(queueName('KVT'), { perKeyTtl: true }))
    await assert.rejects(kv.createWithTtl('short', 'x', 500), InvalidOptionError)
    await kv.createWithTtl('lease', 'held', 1_000)
    await kv.create('kept', 'forever')
    assert.equal((await kv.get('lease')).value.toString(), 'held')
    await waitFor(async () => (await kv.get('lease')) === null, { timeoutMs: 15_000, what: 'the key to expire' })
    assert.equal((await kv.get('kept')).value.toString(), 'forever')
    // Expired, the key can be taken again.
    await kv.createWithTtl('lease', 'again', 1_000)
  })
})
