// SPDX-License-Identifier: Apache-2.0
// `make node-demo`: enqueue a few tasks, run a Node worker until they are final, print what
// happened. Uses $NATS_URL if set; otherwise starts a throwaway local nats-server.
import { App, DevServer, Queue, RetryPolicy, TerminateTask } from 'jetjobs'

const server = process.env.NATS_URL ? undefined : await DevServer.start()
if (server) console.log(`started nats-server at ${server.url}`)

const app = new App({
  servers: process.env.NATS_URL ?? server?.url,
  queue: new Queue('NODE_DEMO'),
  retryPolicy: RetryPolicy.exponential({ initialMs: 200, maxMs: 2000, jitter: 0.1 }),
})

app.use(async (task, _ctx, next) => {
  const started = performance.now()
  try {
    return await next()
  } finally {
    console.log(`  handled ${task.type} (try ${task.tries}) in ${(performance.now() - started).toFixed(1)} ms`)
  }
})
app.task<string>('greet', async (task) => `hello, ${task.payload}`)
let attempts = 0
app.task('flaky', async () => {
  attempts += 1
  if (attempts === 1) throw new Error('upstream unavailable, try again')
  return { attempts }
})
app.task('reject', () => {
  throw new TerminateTask('malformed order')
})

const ids: string[] = []
for (const [type, payload] of [['greet', 'world'], ['flaky', {}], ['reject', { order: 7 }]] as const) {
  const task = await app.enqueue(type, payload)
  console.log(`enqueued ${type.padEnd(7)} ${task.id}`)
  ids.push(task.id)
}

const ac = new AbortController()
const events = await app.events({ signal: ac.signal })
const worker = app.run({ signal: ac.signal })
const final = new Set(['complete', 'terminated', 'expired', 'unreachable'])
const pending = new Set(ids)
const deadline = setTimeout(() => ac.abort(), 60_000)
for (const id of ids) if (final.has((await app.loadTask(id)).state)) pending.delete(id)
if (pending.size === 0) ac.abort()
for await (const event of events) {
  if (event.kind === 'task_state' && final.has(event.state) && pending.delete(event.taskId) && pending.size === 0) ac.abort()
}
clearTimeout(deadline)
await worker

for (const id of ids) {
  const t = await app.loadTask(id)
  console.log(`${t.type.padEnd(7)} ${t.state} tries=${t.tries} result=${JSON.stringify(t.result?.payload ?? null)} last_err=${JSON.stringify(t.lastErr)}`)
}
await app.close()
server?.close()
