// SPDX-License-Identifier: Apache-2.0
// Shared by the node:test suites: a real nats-server per suite, and waiting on conditions with
// deadlines (never sleeping and hoping).
import { after, before } from 'node:test'
import { DevServer } from 'jetjobs'

export const FINAL = new Set(['complete', 'terminated', 'expired', 'unreachable', 'queue_error'])

/** Starts a nats-server (free loopback port, temp store) before the suite; closes it after. */
export function useServer() {
  const box = { server: undefined, get url() { return this.server.url } }
  before(async () => {
    box.server = await DevServer.start()
  })
  after(() => box.server?.close())
  return box
}

let queues = 0
/** A queue name no other test in this process uses. */
export function queueName(prefix = 'T') {
  queues += 1
  return `${prefix}_${process.pid}_${queues}`
}

/** Resolves with the first truthy value of `check()`, polling until `timeoutMs` passes. */
export async function waitFor(check, { timeoutMs = 20_000, intervalMs = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}

/** Waits until the task is in a final state and returns it. */
export function waitFinal(app, id, options = {}) {
  return waitFor(
    async () => {
      const task = await app.loadTask(id)
      return FINAL.has(task.state) ? task : undefined
    },
    { what: `task ${id} to be final`, ...options },
  )
}

/** A promise and its resolve function. */
export function deferred() {
  let resolve
  const promise = new Promise((r) => {
    resolve = r
  })
  return { promise, resolve }
}
