// SPDX-License-Identifier: Apache-2.0
// The package surface: entry points, error codes, exact task times, signatures, process exit.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'

import * as esm from 'jetjobs'
import {
  App,
  ConnectionError,
  ERROR_CODES,
  InvalidKeyError,
  InvalidOptionError,
  InvalidPayloadError,
  InvalidQueueNameError,
  InvalidRetryPolicyError,
  InvalidTaskTypeError,
  JetJobsError,
  Queue,
  QueueNotFoundError,
  RETRY_POLICY_NAMES,
  RetryPolicy,
  SignatureInvalidError,
  Task,
  TaskNotSignedError,
  TaskSigner,
  TaskVerifier,
  UnknownRetryPolicyError,
} from 'jetjobs'
import { queueName, useServer, waitFinal } from './helpers.mjs'

const require = createRequire(import.meta.url)
const server = useServer()

// A task document as Go asyncjobs writes it: nanosecond times and a +01:00 offset, which a JS
// Date cannot hold and must never be re-encoded through.
const GO_DOCUMENT =
  '{"id":"24ErgVol4ZjpoQ8FAima9R2jEHB","type":"email:new","queue":"EMAIL",' +
  '"payload":"eyJ0byI6ImFAZXhhbXBsZS5uZXQifQ==","deadline":"2022-02-09T19:28:41.943198067+01:00",' +
  '"max_tries":10,"state":"new","created":"2022-02-09T17:28:41.943198067Z","tries":0}'

describe('package', () => {
  test('CommonJS and ESM entry points export the same objects', () => {
    const cjs = require('jetjobs')
    // `__esModule` is the CommonJS interop marker the ESM view of a compiled module shows.
    const names = (m) => Object.keys(m).filter((k) => k !== 'default' && k !== '__esModule').sort()
    assert.deepEqual(names(esm), names(cjs))
    assert.ok(names(esm).length > 40)
    for (const name of names(cjs)) assert.equal(esm[name], cjs[name], name)
  })

  test('one name per concept: the renamed classes exist and the old names are gone', async (t) => {
    const native = require('../native.js')
    for (const name of ['StorageAdmin', 'EventStream', 'QueueHandle', 'Kv', 'KvBucket', 'KvWatch', 'Task', 'Queue', 'App']) {
      assert.equal(typeof esm[name], 'function', name)
    }
    for (const name of ['Admin', 'EventSubscription', 'Router', 'ShutdownToken']) {
      assert.equal(esm[name], undefined, name)
      assert.equal(native[name], undefined, `native ${name}`)
    }
    for (const name of ['Mux', 'CancellationToken', 'Worker', 'WorkerOptions', 'QueueHandle', 'Kv', 'KvWatch', 'StorageAdmin', 'EventStream']) {
      assert.equal(typeof native[name], 'function', `native ${name}`)
    }
    assert.equal(typeof Task.fromJson, 'function')
    assert.equal(Task.fromDocument, undefined)
    assert.equal(typeof Task.prototype.toJson, 'function')
    assert.equal(Task.prototype.document, undefined)
    assert.equal(esm.taskSpec, undefined, 'internal helpers stay internal')
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    assert.ok(app.admin instanceof esm.StorageAdmin)
    const events = await app.events()
    assert.ok(events instanceof esm.EventStream)
    events.close()
  })

  test('every error code has its own JetJobsError subclass', () => {
    // ERROR_CODES comes from the addon: one per core ErrorKind, so a new kind without a class fails here.
    assert.ok(ERROR_CODES.length >= 26)
    assert.equal(new Set(ERROR_CODES).size, ERROR_CODES.length)
    const classes = Object.values(esm).filter((v) => typeof v === 'function' && v.prototype instanceof JetJobsError)
    assert.equal(classes.length, ERROR_CODES.length)
    assert.deepEqual(classes.map((C) => new C('x').code).sort(), [...ERROR_CODES].sort())
    for (const C of classes) {
      const e = new C('message')
      assert.equal(e.name, C.name)
      assert.equal(`ERR_${e.kind.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, e.code)
    }
  })
})

describe('errors', () => {
  test('synchronous core errors throw coded subclasses', () => {
    assert.throws(() => RetryPolicy.named('2d'), (e) => e instanceof UnknownRetryPolicyError && e.code === 'ERR_UNKNOWN_RETRY_POLICY' && /unknown retry policy: 2d/.test(e.message))
    assert.throws(() => RetryPolicy.intervals([]), InvalidRetryPolicyError)
    assert.throws(() => RetryPolicy.exponential({ initialMs: -5, maxMs: 10 }), InvalidOptionError)
    assert.throws(() => TaskSigner.fromHex('zz'), (e) => e instanceof InvalidKeyError && e.cause instanceof Error)
    assert.throws(() => Task.fromJson('{'), (e) => e.code === 'ERR_INVALID_DOCUMENT')
    assert.deepEqual([...RETRY_POLICY_NAMES], ['10m', '1h', '1m', 'default'])
    const d = RetryPolicy.named('1m').delayMs(1)
    assert.ok(d >= 1975 && d < 5925, `${d}`)
  })

  test('async core errors reject with coded subclasses', async (t) => {
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    await assert.rejects(app.enqueue('bad type', 1), (e) => e instanceof InvalidTaskTypeError && e.code === 'ERR_INVALID_TASK_TYPE')
    await assert.rejects(app.admin.queueInfo('NOPE'), (e) => e instanceof QueueNotFoundError && e.code === 'ERR_QUEUE_NOT_FOUND')
    await assert.rejects(app.admin.createQueue(new Queue('bad name')), InvalidQueueNameError)
    const bound = new App({ servers: server.url, queue: Queue.bind(queueName('MISSING')) })
    await assert.rejects(bound.connect(), QueueNotFoundError)
    await bound.close()
    const nowhere = new App({ servers: 'nats://127.0.0.1:1' })
    await assert.rejects(nowhere.connect(), (e) => e instanceof ConnectionError && e.code === 'ERR_CONNECTION' && e.cause !== undefined)
    await nowhere.close()
    await app.close()
    await assert.rejects(app.enqueue('ok', 1), (e) => e.code === 'ERR_CLOSED')
  })

  test('a payload that is not JSON is an InvalidPayloadError when read', async (t) => {
    const app = new App({ servers: server.url, queue: queueName() })
    t.after(() => app.close())
    const task = await app.enqueue('raw', Buffer.from('not json'))
    assert.throws(() => task.payload, InvalidPayloadError)
    assert.equal(task.payloadBytes.toString(), 'not json')
  })
})

describe('task times and signatures', () => {
  test('exact RFC 3339 strings and nanoseconds survive; Date is only a convenience', () => {
    const task = Task.fromJson(GO_DOCUMENT)
    assert.equal(task.created, '2022-02-09T17:28:41.943198067Z')
    assert.equal(task.createdNs, 1644427721943198067n)
    assert.equal(task.deadline, '2022-02-09T19:28:41.943198067+01:00')
    assert.equal(task.deadlineNs, 1644431321943198067n)
    assert.equal(task.createdAt.toISOString(), '2022-02-09T17:28:41.943Z')
    assert.deepEqual(task.payload, { to: 'a@example.net' })
    assert.equal(task.toJson(), GO_DOCUMENT)
    assert.deepEqual(JSON.parse(JSON.stringify(task)), JSON.parse(GO_DOCUMENT))
    assert.equal(
      task.signatureMessage(),
      '24ErgVol4ZjpoQ8FAima9R2jEHB:EMAIL:email:new:10:1644427721943198067:1644431321943198067:eyJ0byI6ImFAZXhhbXBsZS5uZXQifQ==',
    )
  })

  test('signing and verification are the engine\'s, byte for byte', () => {
    const signer = TaskSigner.fromBytes(Buffer.alloc(32, 7))
    const verifier = TaskVerifier.fromHex(`${signer.verifier().toHex()}\n`)
    const task = Task.fromJson(GO_DOCUMENT)
    assert.throws(() => verifier.verify(task), TaskNotSignedError)
    verifier.verify(task, { optional: true })
    signer.sign(task)
    assert.equal(task.signature.length, 128)
    verifier.verify(task)
    const tampered = Task.fromJson(task.toJson().replace('"max_tries":10', '"max_tries":11'))
    assert.throws(() => verifier.verify(tampered), SignatureInvalidError)
  })

  test('a signing app signs on enqueue; a verifying worker terminates unsigned tasks', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'jetjobs-keys-'))
    t.after(() => rmSync(dir, { recursive: true, force: true }))
    const seed = Buffer.alloc(32, 9).toString('hex')
    writeFileSync(join(dir, 'seed'), `${seed}\n`)
    const signer = TaskSigner.fromSeedFile(join(dir, 'seed'))
    writeFileSync(join(dir, 'pub'), signer.verifier().toHex())
    const queue = queueName('SIGNED')
    const producer = new App({ servers: server.url, queue, signingKey: seed })
    const unsigned = new App({ servers: server.url, queue })
    const worker = new App({ servers: server.url, queue, verificationKey: TaskVerifier.fromFile(join(dir, 'pub')) })
    t.after(() => Promise.all([producer, unsigned, worker].map((a) => a.close())))
    worker.task('sig', async (task) => `ran ${task.signature.slice(0, 8)}`)
    const signed = await producer.enqueue('sig', { n: 1 }, { deadline: '2099-01-01T00:00:00.123456789Z' })
    assert.equal(signed.signature.length, 128)
    assert.equal(signed.deadline, '2099-01-01T00:00:00.123456789Z')
    assert.ok(signed.signatureMessage().includes(`:${signed.createdNs}:4070908800123456789:`))
    const bare = await unsigned.enqueue('sig', { n: 2 })
    const ac = new AbortController()
    const running = worker.run({ signal: ac.signal, handleSignals: false })
    // The worker's own loads verify signatures, so the unsigned task is watched without a key.
    const [ds, db] = await Promise.all([waitFinal(worker, signed.id), waitFinal(unsigned, bare.id)])
    ac.abort()
    await running
    assert.equal(ds.state, 'complete')
    assert.equal(ds.result.payload, `ran ${signed.signature.slice(0, 8)}`)
    assert.equal(db.state, 'terminated')
    assert.equal(db.lastErr, 'task is not signed')
    await assert.rejects(worker.loadTask(bare.id), TaskNotSignedError)
  })
})

describe('process lifetime', () => {
  /** Runs `script` in a child Node and returns its trimmed stdout once it exits on its own with 0. */
  async function exitingOutput(t, script) {
    const child = spawn(process.execPath, ['-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    t.after(() => clearTimeout(timer))
    const [code, signal] = await new Promise((resolve) => child.on('exit', (c, s) => resolve([c, s])))
    assert.equal(signal, null, 'the child had to be killed: something kept it alive')
    assert.equal(code, 0)
    return out.trim()
  }

  test('a pending enqueue keeps the process alive, also one made after another settled', async (t) => {
    const script = `
      const { App, Queue } = require('jetjobs')
      const app = new App({ servers: ${JSON.stringify(server.url)}, queue: new Queue(${JSON.stringify(queueName('ALIVE'))}) })
      app.enqueue('first', 1).then(() =>
        app.enqueue('second', 2).then(async (task) => {
          console.log(task.type)
          await app.close()
        }))`
    assert.equal(await exitingOutput(t, script), 'second')
  })

  test('the worker does not keep the process alive after run() resolved and close()', async (t) => {
    const script = `
      const { App, Queue } = require('jetjobs')
      const app = new App({ servers: ${JSON.stringify(server.url)}, queue: new Queue(${JSON.stringify(queueName('EXIT'))}) })
      const ac = new AbortController()
      app.task('exit', async () => { setImmediate(() => ac.abort()); return 'done' })
      app.enqueue('exit', null).then(async (task) => {
        await app.run({ signal: ac.signal })
        console.log((await app.loadTask(task.id)).state)
        await app.close()
      })`
    assert.equal(await exitingOutput(t, script), 'complete')
  })
})
