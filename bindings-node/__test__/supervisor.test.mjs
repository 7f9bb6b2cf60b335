// SPDX-License-Identifier: Apache-2.0
// The `supervisor` namespace: JS workers and jobs run by the engine's jetjobs::supervisor, their
// AbortSignals, and errors coming back out as the values the workers threw.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  App,
  ClosedError,
  InvalidOptionError,
  RetryPolicy,
  WorkerExitedPrematurelyError,
  WorkersFailedError,
  supervisor,
} from 'jetjobs'

import { deferred, queueName, useServer, waitFor } from './helpers.mjs'

const server = useServer()

/** Resolves once `signal` aborts. */
function aborted(signal) {
  return new Promise((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => resolve(), { once: true })
  })
}

/** A worker running until its signal aborts. */
const idle = async (signal) => {
  await aborted(signal)
}

describe('runAllWorkers', () => {
  test('a worker returning before it was cancelled exited prematurely; the others are cancelled', async () => {
    const signals = []
    const waiting = async (signal) => {
      signals.push(signal)
      await aborted(signal)
    }
    await assert.rejects(supervisor.runAllWorkers([waiting, async () => {}]), WorkerExitedPrematurelyError)
    assert.equal(signals.length, 1)
    assert.ok(signals[0].aborted, "the other worker's signal aborted")
  })

  test('workers returning once cancelled resolve it; no workers resolve at once', async () => {
    const ac = new AbortController()
    let started = 0
    const worker = async (signal) => {
      started += 1
      await aborted(signal)
    }
    const run = supervisor.runAllWorkers([worker, worker, worker], { signal: ac.signal })
    await waitFor(() => started === 3, { what: 'three workers started' })
    ac.abort()
    await run
    await supervisor.runAllWorkers([])
    // An already aborted signal: every worker starts cancelled.
    await supervisor.runAllWorkers([idle], { signal: AbortSignal.abort() })
  })

  test('an error thrown after the cancel comes back as the same object', async () => {
    const omg = new Error('omg')
    const grumpy = async (signal) => {
      await aborted(signal)
      throw omg
    }
    const ac = new AbortController()
    const run = supervisor.runAllWorkers([idle, grumpy], { signal: ac.signal })
    ac.abort()
    await assert.rejects(run, (e) => e === omg)
  })

  test('the first failure cancels the others and is rejected as thrown', async () => {
    let stopped = 0
    const counting = async (signal) => {
      await aborted(signal)
      stopped += 1
    }
    class Boom extends Error {}
    const boom = new Boom('boom')
    await assert.rejects(
      supervisor.runAllWorkers([counting, async () => { throw boom }, counting]),
      (e) => e === boom,
    )
    assert.equal(stopped, 2)
    // A synchronous throw and a thrown non-Error value come back unchanged too.
    const sync = new TypeError('sync')
    await assert.rejects(supervisor.runAllWorkers([idle, () => { throw sync }]), (e) => e === sync)
    await assert.rejects(supervisor.runAllWorkers([idle, async () => { throw 'text' }]), (e) => e === 'text')
  })

  test('several errors reject with WorkersFailedError listing them in completion order', async () => {
    const first = new Error('first')
    const second = new RangeError('second')
    const err = await supervisor
      .runAllWorkers([
        async (signal) => {
          await aborted(signal)
          await new Promise((resolve) => setTimeout(resolve, 20))
          throw second
        },
        async () => {
          throw first
        },
        idle,
      ])
      .then(() => assert.fail('should reject'), (e) => e)
    assert.ok(err instanceof WorkersFailedError, String(err))
    assert.equal(err.code, 'ERR_WORKERS_FAILED')
    assert.equal(err.errors.length, 2)
    assert.equal(err.errors[0], first)
    assert.equal(err.errors[1], second)
    assert.match(err.message, /first.*second/)

    // The engine's own errors in the list are JetJobsErrors.
    const late = new Error('late')
    const mixed = await supervisor
      .runAllWorkers([
        async () => {},
        async (signal) => {
          await aborted(signal)
          throw late
        },
      ])
      .then(() => assert.fail('should reject'), (e) => e)
    assert.ok(mixed instanceof WorkersFailedError)
    assert.ok(mixed.errors[0] instanceof WorkerExitedPrematurelyError)
    assert.equal(mixed.errors[1], late)
  })

  test('anything but a function or a supervisor.Worker is refused', async () => {
    await assert.rejects(supervisor.runAllWorkers([42]), InvalidOptionError)
  })
})

describe('runAllJobs', () => {
  test('waits for every job and joins the errors', async () => {
    const finished = []
    const job = (ms, error) => async () => {
      await new Promise((resolve) => setTimeout(resolve, ms))
      finished.push(ms)
      if (error) throw error
    }
    const e30 = new Error('job 30')
    const e60 = new Error('job 60')
    const err = await supervisor
      .runAllJobs([job(60, e60), job(10), job(30, e30), job(100)])
      .then(() => assert.fail('should reject'), (e) => e)
    assert.deepEqual(finished, [10, 30, 60, 100], 'no job was cut short')
    assert.ok(err instanceof WorkersFailedError)
    assert.deepEqual(err.errors, [e30, e60])
    assert.ok(err.errors[0] === e30 && err.errors[1] === e60)

    const only = new Error('only')
    await assert.rejects(supervisor.runAllJobs([job(5, only), job(5)]), (e) => e === only)
    await supervisor.runAllJobs([job(1), job(2)])
  })
})

describe('repeat', () => {
  test('runs start to start on its period, first after one period', async () => {
    const begin = Date.now()
    const starts = []
    const ac = new AbortController()
    const job = async () => {
      starts.push(Date.now() - begin)
      if (starts.length === 4) ac.abort()
      // Half the period: start to start keeps 200 ms gaps, a sleep after each run would make 300.
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    await supervisor.runAllWorkers([supervisor.repeat(200, job)], { signal: ac.signal })
    assert.equal(starts.length, 4)
    assert.ok(starts[0] >= 190, `first run after one period, at ${starts[0]} ms`)
    const gaps = starts.slice(1).map((s, i) => s - starts[i])
    for (const gap of gaps) assert.ok(gap >= 150, `gaps ${gaps}`)
    const mean = gaps.reduce((a, b) => a + b) / gaps.length
    assert.ok(mean < 260, `start to start, not end to start: gaps ${gaps}`)
  })

  test('startImmediately runs at once', async () => {
    const begin = Date.now()
    let first
    const ac = new AbortController()
    const job = async () => {
      first = Date.now() - begin
      ac.abort()
    }
    await supervisor.runAllWorkers([supervisor.repeat(10_000, job, { startImmediately: true })], { signal: ac.signal })
    assert.ok(first < 1_000, `first run at ${first} ms`)
  })

  test('a job error ends the worker with that error', async () => {
    let runs = 0
    const failure = new Error('second run failed')
    const job = async () => {
      runs += 1
      if (runs === 2) throw failure
    }
    await assert.rejects(supervisor.runAllWorkers([supervisor.repeat(20, job), idle]), (e) => e === failure)
    assert.equal(runs, 2)
    assert.throws(() => supervisor.repeat(-1, job), InvalidOptionError)
  })
})

describe('retry and backoff', () => {
  test('retry restarts a failing worker after the backoff and never fails', async () => {
    const starts = []
    const ac = new AbortController()
    const flaky = async (signal) => {
      starts.push(Date.now())
      if (starts.length <= 3) throw new Error(`failure ${starts.length}`)
      await aborted(signal)
    }
    const run = supervisor.runAllWorkers([supervisor.retry(flaky, RetryPolicy.fixed(150))], { signal: ac.signal })
    await waitFor(() => starts.length === 4, { what: 'the fourth start' })
    ac.abort()
    await run
    const gaps = starts.slice(1).map((s, i) => s - starts[i])
    for (const gap of gaps) assert.ok(gap >= 145, `restarts wait the backoff: ${gaps}`)
  })

  test('retry waits at least MIN_RESTART_DELAY_MS, even after a clean premature return', async () => {
    assert.equal(supervisor.MIN_RESTART_DELAY_MS, 100)
    const starts = []
    const ac = new AbortController()
    const quitter = async () => {
      starts.push(Date.now())
      if (starts.length === 3) ac.abort()
    }
    await supervisor.runAllWorkers([supervisor.retry(quitter, RetryPolicy.fixed(0))], { signal: ac.signal })
    const gaps = starts.slice(1).map((s, i) => s - starts[i])
    for (const gap of gaps) assert.ok(gap >= 95, `gaps ${gaps}`)
  })

  test('retryJob runs a job until it succeeds; cancelled first, it fails with ClosedError', async () => {
    let attempts = 0
    const starts = []
    const job = async () => {
      attempts += 1
      starts.push(Date.now())
      if (attempts < 3) throw new Error(`attempt ${attempts}`)
    }
    await supervisor.runAllJobs([supervisor.retryJob(job, RetryPolicy.fixed(50))])
    assert.equal(attempts, 3)
    for (const [i, s] of starts.slice(1).entries()) assert.ok(s - starts[i] >= 45)

    const ac = new AbortController()
    const hopeless = async () => {
      setTimeout(() => ac.abort(), 10)
      throw new Error('still down')
    }
    const err = await supervisor
      .runAllJobs([supervisor.retryJob(hopeless, RetryPolicy.fixed(60_000))], { signal: ac.signal })
      .then(() => assert.fail('should reject'), (e) => e)
    assert.ok(err instanceof ClosedError, String(err))
    assert.match(err.message, /still down/)
  })

  test('backoffDelay is 0 for the first attempt, then the policy', () => {
    const fixed = RetryPolicy.fixed(150)
    assert.deepEqual([0, 1, 2, 9].map((a) => supervisor.backoffDelay(fixed, a)), [0, 150, 150, 150])
    const exp = RetryPolicy.exponential({ initialMs: 1_000, maxMs: 60_000 })
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 7, 8].map((a) => supervisor.backoffDelay(exp, a)),
      [0, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000],
    )
    for (const bad of [-1, 1.5, Number.NaN]) assert.throws(() => supervisor.backoffDelay(fixed, bad), InvalidOptionError)
  })
})

describe('wait', () => {
  test('sleeps the whole time, or returns false early once the signal aborts', async () => {
    let begin = Date.now()
    assert.equal(await supervisor.wait(undefined, 30), true)
    assert.ok(Date.now() - begin >= 25)

    begin = Date.now()
    assert.equal(await supervisor.wait(AbortSignal.abort(), 10_000), false)
    const ac = new AbortController()
    setTimeout(() => ac.abort(), 50)
    assert.equal(await supervisor.wait(ac.signal, 10_000), false)
    assert.ok(Date.now() - begin < 2_000)
    await assert.rejects(supervisor.wait(undefined, -5), InvalidOptionError)
  })
})

describe('WorkerGroup', () => {
  test('health goes starting → ok → failing → starting → ok', async () => {
    const outcomes = []
    let started = 0
    const job = async (signal) => {
      started += 1
      const { promise, resolve } = deferred()
      outcomes.push(resolve)
      // A run the shutdown interrupts ends as a success.
      const ok = await Promise.race([promise, aborted(signal).then(() => true)])
      if (!ok) throw new Error('job failed')
    }
    const group = new supervisor.WorkerGroup()
    group.add('ticker', supervisor.repeat(100, job, { startImmediately: true }), { retry: RetryPolicy.fixed(600) })
    group.add('idle', idle)
    assert.deepEqual(group.health(), { ticker: 'starting', idle: 'starting' })
    assert.deepEqual(Object.keys(group.health()), ['ticker', 'idle'])
    const ac = new AbortController()
    const run = group.run({ signal: ac.signal })

    await waitFor(() => started === 1, { what: 'the first run' })
    assert.equal(group.health().ticker, 'starting')
    outcomes[0](true)
    await waitFor(() => group.health().ticker === 'ok', { what: 'ok after a successful job' })
    await waitFor(() => started === 2, { what: 'the second run' })
    outcomes[1](false)
    await waitFor(() => group.health().ticker === 'failing', { what: 'failing after a failed job' })
    await waitFor(() => started === 3, { what: 'the restart' })
    assert.equal(group.health().ticker, 'starting')
    outcomes[2](true)
    await waitFor(() => group.health().ticker === 'ok', { what: 'ok again' })
    // Running past HEALTHY_AFTER_MS makes a worker without jobs healthy.
    await waitFor(() => group.health().idle === 'ok', { what: 'the idle worker healthy' })
    assert.equal(supervisor.HEALTHY_AFTER_MS, 1_000)

    ac.abort()
    await run
    assert.equal(group.health().ticker, 'ok', 'a clean shutdown is no failure')
  })

  test('a worker without retry that quits ends the group and is failing', async () => {
    const group = new supervisor.WorkerGroup().add('quitter', async () => {}).add('idle', idle)
    await assert.rejects(group.run(), WorkerExitedPrematurelyError)
    assert.deepEqual(group.health(), { quitter: 'failing', idle: 'starting' })
  })
})

describe('distributedRepeat', () => {
  test('runs at most once per period across three apps', async () => {
    const apps = [0, 1, 2].map(() => new App({ servers: server.url }))
    try {
      const name = queueName('repeat')
      const runs = []
      const workers = await Promise.all(
        apps.map((app, i) =>
          supervisor.distributedRepeat(app, name, 1_000, async () => {
            runs.push({ app: i, at: Date.now() })
          }),
        ),
      )
      const ac = new AbortController()
      const run = supervisor.runAllWorkers(workers, { signal: ac.signal })
      await waitFor(() => runs.length >= 3, { timeoutMs: 10_000, what: 'three periods' })
      // Half a period more: a second run of the third period would have happened by now.
      await new Promise((resolve) => setTimeout(resolve, 500))
      ac.abort()
      await run
      const periods = runs.map((r) => Math.floor(r.at / 1_000))
      assert.equal(new Set(periods).size, periods.length, `one run per period: ${JSON.stringify(runs)}`)
      assert.ok(runs.length >= 3 && runs.length <= 4, JSON.stringify(runs))

      await assert.rejects(supervisor.distributedRepeat(apps[0], name, 1_500, idle), InvalidOptionError)
      await assert.rejects(supervisor.distributedRepeat(apps[0], 'a.b', 1_000, idle), InvalidOptionError)
      assert.equal(supervisor.REPEAT_BUCKET, 'JETJOBS_REPEAT')
    } finally {
      await Promise.all(apps.map((app) => app.close()))
    }
  })
})
