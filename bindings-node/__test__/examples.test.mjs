// SPDX-License-Identifier: Apache-2.0
// The examples and the README's Node quick start, compiled with `tsc --strict` and run as written.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'

import { useServer } from './helpers.mjs'

const run = promisify(execFile)
const root = process.cwd()
const out = join(root, 'target', 'node', 'ts-examples')
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
const server = useServer()

/** Compiles .mts files (inside the package, so `import 'jetjobs'` resolves to this package). */
async function compile(files, outDir) {
  const flags = ['--strict', '--target', 'ES2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node']
  flags.push('--rootDir', dirname(files[0]), '--outDir', outDir)
  await run(process.execPath, [tsc, ...flags, ...files], { cwd: root }).catch((e) => {
    throw new Error(`tsc failed:\n${e.stdout}${e.stderr}`)
  })
}

function readmeQuickStart() {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.split('\n## Quick start (Node/TypeScript)\n')[1]
  assert.ok(section, 'README has a "Quick start (Node/TypeScript)" section')
  const block = section.match(/```ts\n([\s\S]*?)```/)
  assert.ok(block, 'the section has a ```ts block')
  return block[1]
}

test('the README quick start compiles under --strict and runs as written', async () => {
  const dir = join(out, 'readme')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'quickstart.mts'), readmeQuickStart())
  await compile([join(dir, 'quickstart.mts')], join(dir, 'out'))
  const { stdout } = await run(process.execPath, [join(dir, 'out', 'quickstart.mjs')], {
    env: { ...process.env, NATS_URL: server.url },
    timeout: 60_000,
  })
  assert.match(stdout, /^enqueued [0-9A-Za-z]{27}\ncomplete \{ sentTo: 'a@example\.net' \}\n$/)
})

test('the README "More in Node" block compiles under --strict and runs as written', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.split('\n## More in Node')[1]
  assert.ok(section, 'README has a "More in Node" section')
  const block = section.match(/```ts\n([\s\S]*?)```/)
  assert.ok(block, 'the section has a ```ts block')
  const dir = join(out, 'readme-more')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'more.mts'), block[1])
  await compile([join(dir, 'more.mts')], join(dir, 'out'))
  const { stdout } = await run(process.execPath, [join(dir, 'out', 'more.mjs')], {
    env: { ...process.env, NATS_URL: server.url },
    timeout: 120_000,
  })
  const lines = stdout.trim().split('\n')
  assert.deepEqual(lines.slice(0, 6), [
    'result: report 2026-11',
    'batch: 4950',
    'unique: true',
    'delayed: 41',
    'chain: 6',
    'cancelled: terminated',
  ])
  assert.match(lines[6], /^failed: task \S+ is terminated: bad month: terminate task$/)
  assert.equal(lines[7], 'dead letters: 1')
})

test('the README "More in Node: schedules" block compiles under --strict and runs as written', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.split('\n## More in Node: schedules')[1]
  assert.ok(section, 'README has a "More in Node: schedules" section')
  const block = section.match(/```ts\n([\s\S]*?)```/)
  assert.ok(block, 'the section has a ```ts block')
  const dir = join(out, 'readme-ops')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'ops.mts'), block[1])
  await compile([join(dir, 'ops.mts')], join(dir, 'out'))
  const { stdout } = await run(process.execPath, [join(dir, 'out', 'ops.mjs')], {
    env: { ...process.env, NATS_URL: server.url },
    timeout: 120_000,
  })
  assert.deepEqual(stdout.trim().split('\n'), [
    'request-reply: "hello ada"',
    'external process: disk ok',
    'ordered: open,charge,ship',
    'schedules: nightly',
    'trace: 0af7651916cd43dd8448eb211c80319c',
    'governor: 1 of 2',
    'metrics: true',
  ])
})

test('the README "Long-running work in Node" block compiles under --strict and runs as written', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = readme.split('\n## Long-running work in Node: supervised workers, a keyed job pool\n')[1]
  assert.ok(section, 'README has a "Long-running work in Node" section')
  const block = section.match(/```ts\n([\s\S]*?)```/)
  assert.ok(block, 'the section has a ```ts block')
  const dir = join(out, 'readme-long')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'long.mts'), block[1])
  await compile([join(dir, 'long.mts')], join(dir, 'out'))
  const { stdout } = await run(process.execPath, [join(dir, 'out', 'long.mjs')], {
    env: { ...process.env, NATS_URL: server.url },
    timeout: 60_000,
  })
  assert.deepEqual(stdout.trim().split('\n'), ['supervisor: 3 runs', 'pool: a,b,c', 'pool: a got reload', 'pool: shut down'])
})

test('examples/node/quickstart.mts is the README quick start', () => {
  const file = readFileSync(join(root, 'examples', 'node', 'quickstart.mts'), 'utf8')
  assert.equal(file.replace(/^\/\/ SPDX-License-Identifier: .*\n/, ''), readmeQuickStart())
})

test('examples/node/demo.mts runs its own server and reports every task final', async () => {
  const dir = join(out, 'examples')
  await compile([join(root, 'examples', 'node', 'demo.mts')], dir)
  const env = { ...process.env }
  delete env.NATS_URL
  const { stdout } = await run(process.execPath, [join(dir, 'demo.mjs')], { env, timeout: 90_000 })
  assert.match(stdout, /^started nats-server at nats:\/\/127\.0\.0\.1:\d+$/m)
  assert.match(stdout, /^greet {3}complete tries=1 result="hello, world" last_err=""$/m)
  assert.match(stdout, /^flaky {3}complete tries=2 result=\{"attempts":2\} last_err=""$/m)
  assert.match(stdout, /^reject {2}terminated tries=1 result=null last_err="malformed order: terminate task"$/m)
})
