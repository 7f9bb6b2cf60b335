// SPDX-License-Identifier: Apache-2.0
// Shared by the node:test suites: a real nats-server per suite, and waiting on conditions with
// deadlines (never sleeping and hoping).
import net from 'node:net'
import { after, before } from 'node:test'
import { DevServer, isFinalState } from 'jetjobs'

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
      return isFinalState(task.state) ? task : undefined
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

/**
 * Publishes raw messages (`[subject, payload]`) with a bare NATS protocol client, bypassing
 * jetjobs; resolves once the server has processed them (a PING answered by PONG).
 */
export async function publishRaw(url, messages, { timeoutMs = 10_000 } = {}) {
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  try {
    let received = ''
    const done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no PONG within ${timeoutMs} ms: ${received}`)), timeoutMs)
      socket.on('data', (chunk) => {
        received += chunk
        if (received.includes('-ERR')) reject(new Error(received))
        else if (received.includes('PONG')) resolve()
      })
      socket.on('error', reject)
      socket.on('close', () => reject(new Error(`connection closed: ${received}`)))
    }).finally(() => socket.removeAllListeners('close'))
    const parts = [Buffer.from('CONNECT {"verbose":false,"pedantic":false}\r\n')]
    for (const [subject, payload] of messages) {
      const body = Buffer.from(payload)
      parts.push(Buffer.from(`PUB ${subject} ${body.length}\r\n`), body, Buffer.from('\r\n'))
    }
    parts.push(Buffer.from('PING\r\n'))
    socket.write(Buffer.concat(parts))
    await done
  } finally {
    socket.destroy()
  }
}

/** Resolves once `stream` has emitted text matching `pattern` (rejects after `timeoutMs`). */
export function waitForOutput(stream, pattern, { timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    let text = ''
    const onData = (chunk) => {
      text += chunk
      if (pattern.test(text)) {
        cleanup()
        resolve(text)
      }
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} in: ${text}`))
    }, timeoutMs)
    const cleanup = () => {
      clearTimeout(timer)
      stream.off('data', onData)
    }
    stream.on('data', onData)
  })
}
