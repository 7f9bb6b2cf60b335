// SPDX-License-Identifier: Apache-2.0
/**
 * OpenTelemetry spans with the application's own `@opentelemetry/api`, an optional peer
 * dependency loaded on first use: an enqueue runs in a `jetjobs.enqueue` producer span whose
 * context it sends; each handler call runs in a `jetjobs.handle` consumer span, a child of the
 * context its enqueue sent. The engine only carries that W3C context in the work item headers.
 * Without the package, or without a registered SDK, these wrappers cost next to nothing.
 */
import * as native from '../native.js'

/** The W3C trace context a task's enqueue sent, as a handler sees it (`ctx.traceContext`). */
export interface TraceContext {
  /** The `traceparent` header value (`00-<trace id>-<span id>-<flags>`). */
  readonly traceparent: string
  /** The `tracestate` header value, if any. */
  readonly tracestate: string | null
  /** The trace id, 32 hex digits. */
  readonly traceId: string
}

type Api = typeof import('@opentelemetry/api')

let loaded: Api | null | undefined

/** `@opentelemetry/api` if the application has it; loaded once. */
function otel(): Api | null {
  if (loaded === undefined) {
    try {
      loaded = require('@opentelemetry/api') as Api
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'MODULE_NOT_FOUND') {
        console.warn(`jetjobs: @opentelemetry/api could not be loaded, so no spans are made: ${String(error)}`)
      }
      loaded = null
    }
  }
  return loaded
}

const version = native.version()

function fail(api: Api, span: import('@opentelemetry/api').Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : String(error))
  span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) })
}

/**
 * @internal Runs `send` (the enqueue of `specs` to `queue`) inside an active `jetjobs.enqueue`
 * producer span, and gives each spec that has no `traceContext` the span's context to send.
 */
export async function traceEnqueue<T>(queue: string, specs: readonly native.TaskSpec[], send: () => Promise<T>): Promise<T> {
  const api = otel()
  if (api === null) return send()
  const { context, propagation, trace } = api
  const span = trace.getTracer('jetjobs', version).startSpan(
    'jetjobs.enqueue',
    {
      kind: api.SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'jetjobs',
        'messaging.destination.name': queue,
        'messaging.batch.message_count': specs.length,
      },
    },
    context.active(),
  )
  const active = trace.setSpan(context.active(), span)
  return context.with(active, async () => {
    try {
      // From `active` rather than `context.active()`, so it works without a context manager too.
      const carrier: { traceparent?: string; tracestate?: string } = {}
      propagation.inject(active, carrier)
      const { traceparent, tracestate } = carrier
      if (traceparent !== undefined) {
        const traceContext: native.TraceContextSpec = tracestate ? { traceparent, tracestate } : { traceparent }
        for (const spec of specs) spec.traceContext ??= traceContext
      }
      return await send()
    } catch (error) {
      fail(api, span, error)
      throw error
    } finally {
      span.end()
    }
  })
}

/**
 * @internal Runs a handler call inside an active `jetjobs.handle` consumer span, a child of the
 * context the task's enqueue sent (a new trace when it sent none); the span ends when `run`
 * settles, with error status if it throws.
 */
export async function traceHandle<T>(task: native.Task, sent: TraceContext | null, run: () => Promise<T>): Promise<T> {
  const api = otel()
  if (api === null) return run()
  const { context, propagation, trace, ROOT_CONTEXT } = api
  let parent = ROOT_CONTEXT
  if (sent !== null) {
    const carrier: Record<string, string> = { traceparent: sent.traceparent }
    if (sent.tracestate !== null) carrier['tracestate'] = sent.tracestate
    parent = propagation.extract(ROOT_CONTEXT, carrier)
  }
  const span = trace.getTracer('jetjobs', version).startSpan(
    'jetjobs.handle',
    {
      kind: api.SpanKind.CONSUMER,
      attributes: {
        'messaging.system': 'jetjobs',
        'messaging.destination.name': task.queue,
        'jetjobs.task.id': task.id,
        'jetjobs.task.type': task.type,
        'jetjobs.task.tries': task.tries,
      },
    },
    parent,
  )
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await run()
    } catch (error) {
      fail(api, span, error)
      throw error
    } finally {
      span.end()
    }
  })
}
