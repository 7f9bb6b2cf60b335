// SPDX-License-Identifier: Apache-2.0
// The package's `jetjobs` bin: the operator CLI (the Rust `jetjobs`'s code, run by the addon's
// `runCli`), as `npx jetjobs` runs it.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'

import { App, newId } from 'jetjobs'
import { queueName, useServer } from './helpers.mjs'

const server = useServer()
const bin = fileURLToPath(new URL('../bin/jetjobs.mjs', import.meta.url))
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'))

/** Runs the bin; resolves with its exit code, stdout and stderr. */
function jetjobs(...args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code : 0, stdout, stderr })
    })
  })
}

test('--version is the package version (the Cargo workspace version)', async () => {
  const { code, stdout } = await jetjobs('--version')
  assert.equal(code, 0)
  assert.equal(stdout.trim(), `jetjobs ${version}`)
})

test('usage errors exit 2 with the CLI message', async () => {
  const { code, stderr } = await jetjobs('queue', 'bogus')
  assert.equal(code, 2)
  assert.match(stderr, /unrecognized subcommand 'bogus'/)
  assert.match(stderr, /Usage: jetjobs queue/)
})

test('--json read commands see what the Node package stored; a missing task exits 3', async () => {
  const queue = queueName('CLI')
  const app = new App({ servers: server.url, queue })
  try {
    const task = await app.enqueue('cli:check', { n: 1 })
    const queues = await jetjobs('-s', server.url, '--json', 'queue', 'list')
    assert.equal(queues.code, 0, queues.stderr)
    assert.ok(JSON.parse(queues.stdout).some((q) => q.name === queue))
    const viewed = await jetjobs('--server', server.url, 'task', 'view', task.id, '--json')
    assert.equal(viewed.code, 0, viewed.stderr)
    const json = JSON.parse(viewed.stdout)
    assert.deepEqual([json.id, json.type, json.queue, json.state], [task.id, 'cli:check', queue, 'new'])
    const missing = await jetjobs('-s', server.url, '--json', 'task', 'view', newId())
    assert.equal(missing.code, 3)
    assert.match(missing.stderr, /TaskNotFound/)
  } finally {
    await app.close()
  }
})
