// SPDX-License-Identifier: Apache-2.0
import { App, Queue, TerminateTask } from 'jetjobs'

const app = new App({
  servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
  queue: new Queue('EMAIL', { maxConcurrent: 20, maxTries: 10 }),
  retryPolicy: '1m',
})

// Worker: handlers are routed by type; the resolved value is stored as the task's result.
app.task<{ to?: string }>('email:send', async (task, ctx) => {
  if (!task.payload.to) throw new TerminateTask('no recipient') // never tried again
  await ctx.markInProgress() // a long job asks for more time; ctx.signal aborts at its deadline
  return { sentTo: task.payload.to } // any other throw is a failed try, retried with backoff
})

// Lifecycle events as an async iterator, from the moment it resolves.
const ac = new AbortController()
const events = await app.events({ signal: ac.signal })

// Producer: resolves once the task and its work item are stored.
const task = await app.enqueue('email:send', { to: 'a@example.net' }, { deadline: new Date(Date.now() + 3600_000) })
console.log('enqueued', task.id)

// Run the worker until our task completes; aborting (or SIGINT/SIGTERM) shuts down gracefully.
const worker = app.run({ signal: ac.signal })
for await (const event of events) {
  if (event.kind === 'task_state' && event.taskId === task.id && event.state === 'complete') ac.abort()
}
await worker

const done = await app.loadTask(task.id)
console.log(done.state, done.result?.payload) // complete { sentTo: 'a@example.net' }
await app.close()
