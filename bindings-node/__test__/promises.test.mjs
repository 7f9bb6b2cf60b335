// SPDX-License-Identifier: Apache-2.0
// The promises of enqueues, which the addon settles in batches: each settles with its own outcome
// (also when hundreds finish together, and from several apps at once), with its error's class.
import assert from 'node:assert/strict'
import { test } from 'node:test'

import { App, Task, TaskAlreadyExistsError } from 'jetjobs'
import { queueName, useServer } from './helpers.mjs'

const server = useServer()

test('concurrent enqueues each settle with their own outcome', async (t) => {
  const apps = [0, 1].map(() => new App({ servers: server.url, queue: queueName('PROMISES') }))
  t.after(() => Promise.all(apps.map((app) => app.close())))
  const [app, other] = apps
  await app.enqueue('noop', 0, { id: 'taken' })
  const ids = Array.from({ length: 600 }, (_, n) => `t${n}`)
  ids[300] = 'taken' // fails while the others around it are stored

  const [outcomes, others] = await Promise.all([
    Promise.allSettled(ids.map((id, n) => app.enqueue('noop', n, { id }))),
    Promise.allSettled(ids.map((id, n) => other.enqueue('other', -n - 1, { id: `other-${id}` }))),
  ])

  assert.equal(outcomes[300].status, 'rejected')
  assert.ok(outcomes[300].reason instanceof TaskAlreadyExistsError, String(outcomes[300].reason))
  const stored = outcomes.filter((_, n) => n !== 300).map((o) => (o.status === 'fulfilled' ? o.value : o.reason))
  assert.ok(stored.every((task) => task instanceof Task))
  assert.deepEqual(stored.map((task) => [task.id, task.payload]), ids.flatMap((id, n) => (n === 300 ? [] : [[id, n]])))
  assert.deepEqual(others.map((o) => o.status === 'fulfilled' && [o.value.id, o.value.type, o.value.payload]), ids.map((id, n) => [`other-${id}`, 'other', -n - 1]))
})
