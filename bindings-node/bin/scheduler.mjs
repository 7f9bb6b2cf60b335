#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// `jetjobs-scheduler NATS_URL [--name NAME]`: runs a task scheduler until SIGINT or SIGTERM. The
// elected one of every scheduler sharing the server (Go asyncjobs' too) creates the scheduled
// tasks. Prints `jetjobs scheduler: NAME at NATS_URL: ready` once running.
import { hostname } from 'node:os'
import { parseArgs } from 'node:util'

import { App, TaskScheduler } from 'jetjobs'

const usage = 'usage: jetjobs-scheduler NATS_URL [--name NAME]'
let parsed
try {
  parsed = parseArgs({ allowPositionals: true, options: { name: { type: 'string' }, help: { type: 'boolean', short: 'h' } } })
} catch (error) {
  console.error(`${error.message}\n${usage}`)
  process.exit(2)
}
const { values, positionals } = parsed
if (values.help) {
  console.log(usage)
  process.exit(0)
}
if (positionals.length !== 1) {
  console.error(usage)
  process.exit(2)
}
const [url] = positionals
const name = values.name ?? `${hostname()}-${process.pid}`

const app = new App({ servers: url, connectionName: `jetjobs scheduler ${name}` })
const scheduler = new TaskScheduler(app, name)
const stop = new AbortController()
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => stop.abort())
try {
  await app.connect()
  const running = scheduler.run({ signal: stop.signal })
  console.log(`jetjobs scheduler: ${name} at ${url}: ready`)
  await running
} finally {
  await app.close()
}
