// SPDX-License-Identifier: Apache-2.0
// Trace propagation against a real nats-server: with the OpenTelemetry SDK registered, an
// enqueue runs in a `jetjobs.enqueue` producer span whose context reaches the handler, which runs
// in a `jetjobs.handle` consumer span, its child; without `@opentelemetry/api` nothing changes.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { test } from 'node:test'
import { promisify } from 'node:util'

import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { App, InvalidOptionError, Queue, TerminateTask } from 'jetjobs'
import { queueName, useServer, waitFinal, waitFor } from './helpers.mjs'

const server = useServer()

// Each test file runs in its own process, so registering the globals here affects no other suite.
const exporter = new InMemorySpanExporter()
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
propagation.setGlobalPropagator(new W3CTraceContextPropagator())
const tracer = trace.getTracer('jetjobs-tests')

const isInvalidOption = (error) => error instanceof InvalidOptionError && error.code === 'ERR_INVALID_OPTION'

/** An App on its own queue whose handlers record what they saw, keyed by task id. */
function setup(t) {
  const queue = queueName('TRACED')
  const app = new App({ servers: server.url, queue: new Queue(queue) })
  const ac = new AbortController()
  let running
  t.after(async () => {
    ac.abort()
    await running
    await app.close()
  })
  const seen = new Map()
  app.task('traced', async (task, ctx) => {
    seen.set(task.id, { traceContext: ctx.traceContext, active: trace.getActiveSpan()?.spanContext() })
    if (task.payload === 'fail') throw new TerminateTask('asked to fail')
    return null
  })
  return { app, queue, seen, run: () => (running = app.run({ signal: ac.signal, handleSignals: false })) }
}

/** Runs `f` inside an active `parent` span; resolves to its result and the span's context. */
async function inParent(f) {
  return tracer.startActiveSpan('parent', async (span) => {
    try {
      return { result: await f(), parent: span.spanContext() }
    } finally {
      span.end()
    }
  })
}

const spans = (name) => exporter.getFinishedSpans().filter((s) => s.name === name)

/** The finished `jetjobs.handle` span of `taskId`, once exported. */
function handleSpan(taskId) {
  return waitFor(() => spans('jetjobs.handle').find((s) => s.attributes['jetjobs.task.id'] === taskId), {
    what: `the handle span of ${taskId}`,
  })
}

/** Checks that the handler of `task` ran in a consumer span, child of `enqueue`, in `traceId`. */
async function assertContinued(seen, task, enqueue, traceId) {
  const handle = await handleSpan(task.id)
  assert.equal(handle.kind, SpanKind.CONSUMER)
  assert.equal(handle.spanContext().traceId, traceId)
  assert.equal(handle.parentSpanContext?.spanId, enqueue.spanContext().spanId)
  assert.equal(handle.attributes['jetjobs.task.type'], 'traced')
  assert.equal(handle.attributes['messaging.system'], 'jetjobs')
  const { traceContext, active } = seen.get(task.id)
  assert.equal(traceContext.traceId, traceId)
  assert.equal(traceContext.traceparent, `00-${traceId}-${enqueue.spanContext().spanId}-01`)
  // The handler body runs with the handle span active.
  assert.equal(active?.spanId, handle.spanContext().spanId)
  return handle
}

test('enqueue and handle spans join the caller’s trace, the handle span a child of the enqueue span', async (t) => {
  const { app, queue, seen, run } = setup(t)
  run()
  const { result: task, parent } = await inParent(() => app.enqueue('traced', 'ok'))
  assert.equal((await waitFinal(app, task.id)).state, 'complete')
  const [enqueue] = spans('jetjobs.enqueue').filter((s) => s.spanContext().traceId === parent.traceId)
  assert.ok(enqueue, 'an enqueue span in the parent trace')
  assert.equal(enqueue.kind, SpanKind.PRODUCER)
  assert.equal(enqueue.parentSpanContext?.spanId, parent.spanId)
  assert.equal(enqueue.attributes['messaging.system'], 'jetjobs')
  assert.equal(enqueue.attributes['messaging.destination.name'], queue)
  const handle = await assertContinued(seen, task, enqueue, parent.traceId)
  assert.equal(handle.status.code, SpanStatusCode.UNSET)
  assert.equal(seen.get(task.id).traceContext.tracestate, null)
})

test('a delayed task, and each task of enqueueMany, keeps its enqueue’s trace', async (t) => {
  const { app, seen, run } = setup(t)
  run()
  const { result: delayed, parent: p1 } = await inParent(() => app.enqueue('traced', 'ok', { delay: 300 }))
  const { result: outcomes, parent: p2 } = await inParent(() =>
    app.enqueueMany([{ type: 'traced', payload: 'ok' }, { type: 'traced', payload: 'ok', runAt: new Date(Date.now() + 300) }]),
  )
  const batch = outcomes.map((o) => o.value)
  for (const task of [delayed, ...batch]) assert.equal((await waitFinal(app, task.id)).state, 'complete')
  const enqueueIn = (traceId) => spans('jetjobs.enqueue').find((s) => s.spanContext().traceId === traceId)
  await assertContinued(seen, delayed, enqueueIn(p1.traceId), p1.traceId)
  const many = enqueueIn(p2.traceId)
  assert.equal(many.attributes['messaging.batch.message_count'], 2)
  for (const task of batch) await assertContinued(seen, task, many, p2.traceId)
})

test('an explicit traceContext is sent as given; a malformed one is an InvalidOptionError', async (t) => {
  const { app, seen, run } = setup(t)
  run()
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
  const { result: task } = await inParent(() =>
    app.enqueue('traced', 'ok', { traceContext: { traceparent, tracestate: 'congo=t61rcWkgMzE' } }),
  )
  assert.equal((await waitFinal(app, task.id)).state, 'complete')
  assert.deepEqual(seen.get(task.id).traceContext, {
    traceparent,
    tracestate: 'congo=t61rcWkgMzE',
    traceId: '0af7651916cd43dd8448eb211c80319c',
  })
  const handle = await handleSpan(task.id)
  assert.equal(handle.spanContext().traceId, '0af7651916cd43dd8448eb211c80319c')
  assert.equal(handle.parentSpanContext?.spanId, 'b7ad6b7169203331')
  await assert.rejects(app.enqueue('traced', 'ok', { traceContext: { traceparent: 'not a traceparent' } }), isInvalidOption)
  const [bad] = await app.enqueueMany([{ type: 'traced', traceContext: { traceparent: '00-0-0-01' } }])
  assert.ok(isInvalidOption(bad.reason), String(bad.reason))
})

test('a handler that throws ends its span with error status', async (t) => {
  const { app, seen, run } = setup(t)
  run()
  const { result: task, parent } = await inParent(() => app.enqueue('traced', 'fail'))
  assert.equal((await waitFinal(app, task.id)).state, 'terminated')
  const enqueue = spans('jetjobs.enqueue').find((s) => s.spanContext().traceId === parent.traceId)
  const handle = await assertContinued(seen, task, enqueue, parent.traceId)
  assert.equal(handle.status.code, SpanStatusCode.ERROR)
  assert.equal(handle.status.message, 'asked to fail')
})

test('without @opentelemetry/api the SDK works and sends no trace context', async () => {
  // A child process in which the package cannot be found, as in an application without it.
  const script = `
    import Module from 'node:module'
    const resolve = Module._resolveFilename
    let lookedFor = false
    Module._resolveFilename = function (request, ...rest) {
      if (request === '@opentelemetry/api') {
        lookedFor = true
        throw Object.assign(new Error("Cannot find module '@opentelemetry/api'"), { code: 'MODULE_NOT_FOUND' })
      }
      return resolve.call(this, request, ...rest)
    }
    const { App, Queue } = await import('jetjobs')
    const app = new App({ servers: process.env.NATS_URL, queue: new Queue(process.env.QUEUE) })
    const ac = new AbortController()
    app.task('plain', async (task, ctx) => {
      console.log('traceContext', JSON.stringify(ctx.traceContext))
      ac.abort()
      return 'done'
    })
    const running = app.run({ signal: ac.signal, handleSignals: false })
    const task = await app.enqueue('plain', null)
    await running
    console.log('state', (await app.waitFor(task, { timeoutMs: 10000 })).state)
    console.log('looked for @opentelemetry/api', lookedFor)
    await app.close()
  `
  const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, NATS_URL: server.url, QUEUE: queueName('UNTRACED') },
    timeout: 60_000,
  })
  assert.equal(stdout, 'traceContext null\nstate complete\nlooked for @opentelemetry/api true\n')
  assert.equal(stderr, '')
})
