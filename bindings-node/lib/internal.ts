// SPDX-License-Identifier: Apache-2.0
/** Symbols and helpers shared by the modules of this package; not part of the public API. */

/** Where a wrapper keeps its addon object. */
export const kNative = Symbol('jetjobs.native')
/** An `App`'s connection, connecting on first use (for `TaskScheduler`). */
export const kClient = Symbol('jetjobs.client')
/** Tells a `TaskContext` that the engine abandoned its call. */
export const kAbort = Symbol('jetjobs.abort')

const marker = `\u0000jetjobs-bigint-${Math.random().toString(36).slice(2)}:`
// The marker as `JSON.stringify` writes it inside a string (the NUL escaped), as a regex source.
const escapedMarker = JSON.stringify(marker).slice(1, -1).replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')
const bigintPattern = new RegExp(`"${escapedMarker}(-?\\d+)"`, 'g')

/**
 * `JSON.stringify`, except that a `BigInt` is written as a plain JSON integer (as the engine
 * reads integers beyond JS's safe range back into `BigInt`s). `undefined` when `value` has no
 * JSON form (a function, a Symbol, `undefined`).
 */
export function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value)
  } catch (error) {
    // The fast path covers everything but BigInts, which JSON.stringify refuses.
    if (!(error instanceof TypeError) || !/BigInt/i.test(error.message)) throw error
  }
  const text = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? marker + v.toString() : v))
  return text?.replace(bigintPattern, '$1')
}
