// SPDX-License-Identifier: Apache-2.0
// Delegated handlers from Node: a request-reply route answered by a Node responder, and external
// processes (asyncjobs' `RequestReply` and `ExternalProcess` semantics).
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, test } from 'node:test'

import { App, DuplicateHandlerError, Queue, RetryPolicy, TerminateTask } from 'jetjobs'
import { queueName, useServer, waitFinal } from './helpers.mjs'

const server = useServer()
const scripts = mkdtempSync(join(tmpdir(), 'jetjobs-scripts-'))
after(() => rmSync(scripts, { recursive: true, force: true }))

const app = (queue) => new App({ servers: server.url, queue, retryPolicy: RetryPolicy.exponential({ initialMs: 20, maxMs: 100 }) })
/** The JSON a responder replied, as the caller stored it: base64 of the reply bytes. */
const replyOf = (task) => JSON.parse(Buffer.from(task.result.payload, 'base64').toString())

async function running(worker, body) {
  const ac = new AbortController()
  const run = worker.run({ signal: ac.signal, handleSignals: false })
  try {
    return await body()
  } finally {
    ac.abort()
    await run
    await worker.close()
  }
}

test('a request-reply route answered by a Node responder', async () => {
  const worker = app(new Queue(queueName('RRNODE'), { maxRunTimeMs: 20_000 }))
  worker.requestReply('rr:node')
  assert.throws(() => worker.requestReply('rr:node'), DuplicateHandlerError)
  worker.responder(
    'rr:node',
    async (task, ctx) => {
      const { mode, fails } = task.payload
      if (mode === 'terminate') throw new TerminateTask('node refused')
      if (mode === 'fail' && task.tries <= fails) throw new Error(`node failure ${task.tries}`)
      return { handled_by: 'node', id: task.id, state: task.state, leftMs: ctx.remainingMs }
    },
    { concurrency: 4 },
  )
  const done = await running(worker, async () => {
    const ids = []
    for (const [payload, options] of [
      [{ mode: 'succeed' }, {}],
      [{ mode: 'terminate' }, {}],
      [{ mode: 'fail', fails: 1 }, {}],
      [{ mode: 'fail', fails: 9 }, { maxTries: 1 }],
    ]) {
      ids.push((await worker.enqueue('rr:node', payload, options)).id)
    }
    return Promise.all(ids.map((id) => waitFinal(worker, id)))
  })
  const reply = replyOf(done[0])
  assert.deepEqual([reply.handled_by, reply.id, reply.state], ['node', done[0].id, 'active'])
  // The caller's deadline (20 s less its margin) less asyncjobs' 2 s, in whole seconds.
  assert.ok(reply.leftMs > 13_000 && reply.leftMs < 18_000, `${reply.leftMs} ms left`)
  assert.deepEqual([done[1].state, done[1].lastErr], ['terminated', 'node refused: terminate task'])
  assert.deepEqual([done[2].state, done[2].tries], ['complete', 2])
  assert.deepEqual([done[3].state, done[3].lastErr], ['expired', 'Error: node failure 1'])
})

test('a request-reply route with no responder retries with asyncjobs\' error', async () => {
  const worker = app(queueName('RRNONE')).requestReply('')
  const [task] = await running(worker, async () => {
    const lonely = await worker.enqueue('any:type', 1, { maxTries: 2 })
    return [await waitFinal(worker, lonely.id)]
  })
  assert.deepEqual([task.state, task.tries], ['expired', 2])
  assert.equal(task.lastErr, 'request-reply callout failed: nats: no responders available for request')
})

function script(name, body) {
  const path = join(scripts, name)
  writeFileSync(path, `#!/bin/sh\n${body}\n`)
  chmodSync(path, 0o755)
  return path
}

test('external processes: success, a failing exit and a missing command', async () => {
  const worker = app(queueName('EXTNODE'))
    .externalProcess('ext:ok', script('ok.sh', 'echo "$#"; /bin/cat "$CHORIA_AJ_TASK"'))
    .externalProcess('ext:bad', script('bad.sh', 'echo nope >&2; exit 3'))
    .externalProcess('ext:missing', join(scripts, 'missing.sh'))
  const done = await running(worker, async () => {
    const ids = [
      (await worker.enqueue('ext:ok', { n: 1 })).id,
      (await worker.enqueue('ext:bad', 1, { maxTries: 2 })).id,
      (await worker.enqueue('ext:missing', 1, { maxTries: 1 })).id,
    ]
    return Promise.all(ids.map((id) => waitFinal(worker, id)))
  })
  assert.equal(done[0].state, 'complete')
  const output = done[0].result.payload
  const [args, document] = [output.slice(0, output.indexOf('\n')), output.slice(output.indexOf('\n') + 1)]
  assert.equal(args, '0')
  const seen = JSON.parse(document)
  assert.deepEqual([seen.id, seen.state, seen.tries], [done[0].id, 'active', 1])
  assert.deepEqual([done[1].state, done[1].tries, done[1].lastErr], ['expired', 2, 'execution failed: exit status 3'])
  assert.deepEqual([done[2].state, done[2].lastErr], ['expired', 'command not found'])
})
