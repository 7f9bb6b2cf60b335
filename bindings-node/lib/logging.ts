// SPDX-License-Identifier: Apache-2.0
/**
 * The engine's log events (corrupt items, outages, retries): to `console` at `'warn'` unless
 * configured with `setLogger()` or an `App`'s `logger` / `logLevel` options.
 *
 * The setting is per process, as the engine's log is: the last `setLogger()` (or `App` given
 * `logger` or `logLevel`) wins. Events below the level are rejected in Rust before they are
 * formatted and never reach JS. The rest are queued for the JS thread without ever blocking the
 * engine (at most 1024 waiting; more are dropped and counted by `logStats()`), and the queue
 * does not keep the process alive.
 */
import * as native from '../native.js'
import { callSync, InvalidOptionError } from './errors.js'

/** The least severe engine events passed on; `'off'` passes none. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'off'

/**
 * Where engine log events go: `console`, or any object with these methods (pino, winston,
 * bunyan...). Each gets one string, `jetjobs: <message> <field>=<value>...`; `trace` events go to
 * `debug`. A method that throws is ignored.
 */
export interface Logger {
  error(message: string): void
  warn(message: string): void
  info(message: string): void
  debug(message: string): void
}

/** Counts of engine log events since the addon loaded: queued for the logger, and dropped. */
export interface LogStats {
  forwarded: number
  dropped: number
}

const METHODS = ['error', 'warn', 'info', 'debug'] as const

let current: Logger = console

function log(level: Exclude<LogLevel, 'off'>, message: string): void {
  try {
    current[level === 'trace' ? 'debug' : level](`jetjobs: ${message}`)
  } catch {
    // The engine's log must never take the process down.
  }
}

/**
 * Sends the engine's log events at `level` (default `'warn'`) or more severe to `logger`
 * (default `console`) from now on, for the whole process. Throws `InvalidOptionError` for an
 * unknown level or a logger without `error`, `warn`, `info` and `debug` methods.
 */
export function setLogger(logger: Logger = console, level: LogLevel = 'warn'): void {
  const missing = METHODS.filter((m) => typeof (logger as unknown as Record<string, unknown> | null)?.[m] !== 'function')
  if (missing.length > 0) {
    throw new InvalidOptionError(`logger must have error, warn, info and debug methods; missing ${missing.join(', ')}`)
  }
  callSync(() => native.setLogLevel(level))
  current = logger
}

/** How many engine log events were queued for the logger, and how many were dropped. */
export function logStats(): LogStats {
  return native.logStats()
}

native.setLogSink('warn', log)
