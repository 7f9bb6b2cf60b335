// SPDX-License-Identifier: Apache-2.0
// Workflows: a chain passes each result on; a chord's callback gets every group result; a failed
// step makes the ones after it unreachable.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, TerminateTask } from 'jetjobs'
import { queueName, useServer, waitFinal } from './helpers.mjs'

const server = useServer()

test('a chain and a chord pass results on', async (t) => {
  const app = new App({ servers: server.url, queue: queueName('FLOWS'), concurrency: 20 })
  t.after(() => app.close())
  app.task('add', async (task) => {
    const parents = Object.values(task.dependencyResults).reduce((sum, r) => sum + (r?.payload ?? 0), 0)
    return task.payload + parents
  })
  app.task('fail', async () => {
    throw new TerminateTask('broken step')
  })
  const chain = await app.enqueueChain([1, 2, 3, 4, 5].map((n) => ({ type: 'add', payload: n })))
  const chord = await app.enqueueChord(
    Array.from({ length: 20 }, (_, n) => ({ type: 'add', payload: n + 1 })),
    { type: 'add', payload: 0 },
  )
  const broken = await app.enqueueChain([
    { type: 'add', payload: 1 },
    { type: 'fail', payload: 2 },
    { type: 'add', payload: 3 },
  ])
  const ac = new AbortController()
  const worker = app.run({ signal: ac.signal, handleSignals: false })
  try {
    assert.equal((await waitFinal(app, chain[4].id, { timeoutMs: 60_000 })).result?.payload, 15)
    assert.equal(chord.group.length, 20)
    assert.equal((await waitFinal(app, chord.callback.id, { timeoutMs: 60_000 })).result?.payload, 210)
    const states = []
    for (const task of broken) states.push((await waitFinal(app, task.id, { timeoutMs: 60_000 })).state)
    assert.deepEqual(states, ['complete', 'terminated', 'unreachable'])
  } finally {
    ac.abort()
    await worker
  }
})
