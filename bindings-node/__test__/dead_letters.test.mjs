// SPDX-License-Identifier: Apache-2.0
// Dead letters: list with filters, replay with progress, purge.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, TerminateTask } from 'jetjobs'
import { queueName, useServer, waitFinal } from './helpers.mjs'

const server = useServer()

test('dead letters are listed, replayed with progress and purged', async (t) => {
  const queue = queueName('NODEDLQ')
  const app = new App({ servers: server.url, queue })
  t.after(() => app.close())
  let healthy = false
  app.task('email', async () => {
    if (!healthy) throw new TerminateTask('smtp down')
    return 'sent'
  })
  const ids = []
  for (let n = 0; n < 3; n++) ids.push((await app.enqueue('email', n)).id)
  ids.push((await app.enqueue('report', 0, { dependsOn: ['missing-parent'] })).id)
  const ac = new AbortController()
  const worker = app.run({ signal: ac.signal, handleSignals: false })
  try {
    for (const id of ids) await waitFinal(app, id)
    assert.equal((await app.admin.deadLetters({ queue })).length, 4)
    const emails = await app.admin.deadLetters({ queue, taskType: 'email', errorContains: 'smtp' })
    assert.deepEqual(emails.map((e) => e.id).sort(), ids.slice(0, 3).sort())
    assert.deepEqual(await app.admin.deadLetters({ queue, olderThanMs: 3_600_000 }), [])

    healthy = true
    const seen = []
    const outcomes = await app.replay(emails, { batch: 2, onProgress: (done, total) => seen.push([done, total]) })
    assert.ok(outcomes.every((o) => o.status === 'fulfilled'))
    assert.deepEqual(seen, [[2, 3], [3, 3]])
    for (const e of emails) assert.equal((await waitFinal(app, e.id)).state, 'complete')
  } finally {
    ac.abort()
    await worker
  }
  assert.equal(await app.admin.purgeDeadLetters({ queue, states: ['unreachable'] }), 1)
  assert.deepEqual(await app.admin.deadLetters({ queue }), [])
})
