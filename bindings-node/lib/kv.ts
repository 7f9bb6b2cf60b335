// SPDX-License-Identifier: Apache-2.0
/**
 * Key-value buckets: create-if-absent, compare-and-swap by revision, delete and purge with an
 * expected revision, watches from a revision, per-key TTLs.
 *
 * Revisions are plain numbers: they are JetStream stream sequences, exact up to
 * `Number.MAX_SAFE_INTEGER` (a bucket would need 2^53 writes to pass it).
 */
import type * as native from '../native.js'
import { call } from './errors.js'
import { kNative } from './internal.js'

/** Options of a bucket, used only when it is created. */
export interface KvBucketOptions {
  description?: string
  /** Values older than this are removed; 0 (the default) keeps them. */
  maxAgeMs?: number
  /** Values kept per key, 1 (the default) to 64. */
  history?: number
  /** Allow `Kv.createWithTtl` (a time to live per key; nats-server 2.11 or later). */
  perKeyTtl?: boolean
}

/** A key-value bucket to open with `app.kv()`; an existing bucket is used as it is. */
export class KvBucket {
  readonly name: string
  readonly options: Readonly<KvBucketOptions>
  constructor(name: string, options: KvBucketOptions = {}) {
    this.name = name
    this.options = { ...options }
  }
  /** @internal */
  toNative(): native.KvBucketOptions {
    return { name: this.name, ...this.options }
  }
}

/** One revision of a key. */
export interface KvEntry {
  readonly key: string
  /** The value; empty for deletes and purges. */
  readonly value: Buffer
  /** The bucket-wide revision of this entry, the handle for compare-and-swap (`update`). */
  readonly revision: number
  readonly operation: 'put' | 'delete' | 'purge'
}

/** Options of `Kv.watch()`. */
export interface KvWatchOptions {
  /** Start at this revision; default: the latest entry of each key, then every change. */
  revision?: number
  /** Aborting it ends the watch. */
  signal?: AbortSignal
}

/** Changes of a bucket's keys; iterate with `for await`. Ends on `close()`, its signal, or `app.close()`. */
export class KvWatch implements AsyncIterableIterator<KvEntry> {
  readonly #inner: native.KvWatch
  readonly #onClose: () => void
  #closed = false

  /** @internal */
  constructor(inner: native.KvWatch, onClose: () => void) {
    this.#inner = inner
    this.#onClose = onClose
  }
  async next(): Promise<IteratorResult<KvEntry, undefined>> {
    const entry = await call(() => this.#inner.next())
    if (entry === null) {
      this.close()
      return { done: true, value: undefined }
    }
    return { done: false, value: entry }
  }
  async return(): Promise<IteratorResult<KvEntry, undefined>> {
    this.close()
    return { done: true, value: undefined }
  }
  close(): void {
    if (this.#closed) return
    this.#closed = true
    this.#inner.close()
    this.#onClose()
  }
  [Symbol.asyncIterator](): this {
    return this
  }
}

/** A value as stored: a string is stored as its UTF-8 bytes. */
function bytes(value: Buffer | Uint8Array | string): Buffer {
  return typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value)
}

/**
 * A key-value bucket (`await app.kv('LOCKS')`). Failures are `JetJobsError`s: `KeyExistsError`
 * (`ERR_KEY_EXISTS`) from `create`, `RevisionMismatchError` (`ERR_REVISION_MISMATCH`) from a
 * compare-and-swap that lost.
 */
export class Kv {
  /** @internal */
  readonly [kNative]: native.Kv
  readonly #watches: Set<KvWatch>

  /** @internal Buckets come from `App.kv()`. */
  constructor(inner: native.Kv, watches: Set<KvWatch>) {
    this[kNative] = inner
    this.#watches = watches
  }
  get bucket(): string {
    return this[kNative].bucket
  }
  /** The latest entry of `key`; `null` if it was never set, deleted or purged. */
  async get(key: string): Promise<KvEntry | null> {
    return call(async () => this[kNative].get(key))
  }
  /** Stores `value` unless `key` holds a value; resolves to the new revision. */
  async create(key: string, value: Buffer | Uint8Array | string): Promise<number> {
    return call(async () => this[kNative].create(key, bytes(value)))
  }
  /**
   * Like `create`, and the key is removed after `ttlMs` (whole seconds, at least one) unless
   * updated. The bucket must have been created with `perKeyTtl`.
   */
  async createWithTtl(key: string, value: Buffer | Uint8Array | string, ttlMs: number): Promise<number> {
    return call(async () => this[kNative].createWithTtl(key, bytes(value), ttlMs))
  }
  /** Stores `value` whatever the key holds; resolves to the new revision. */
  async put(key: string, value: Buffer | Uint8Array | string): Promise<number> {
    return call(async () => this[kNative].put(key, bytes(value)))
  }
  /** Stores `value` only if the key's latest revision is `revision`; resolves to the new revision. */
  async update(key: string, value: Buffer | Uint8Array | string, revision: number): Promise<number> {
    return call(async () => this[kNative].update(key, bytes(value), revision))
  }
  /** Deletes `key` (a delete marker remains), only if its latest revision is `expectedRevision`, when given. */
  async delete(key: string, expectedRevision?: number): Promise<void> {
    return call(async () => this[kNative].delete(key, expectedRevision))
  }
  /** Removes every revision of `key`, only if its latest revision is `expectedRevision`, when given. */
  async purge(key: string, expectedRevision?: number): Promise<void> {
    return call(async () => this[kNative].purge(key, expectedRevision))
  }
  /** Current keys. */
  async keys(): Promise<string[]> {
    return call(async () => this[kNative].keys())
  }
  /**
   * Changes of keys matching `filter` (`>` for all, `*` matches one token); resolves once
   * watching. A number as the second argument is the revision to start at.
   */
  async watch(filter = '>', options: KvWatchOptions | number = {}): Promise<KvWatch> {
    const { revision, signal } = typeof options === 'number' ? { revision: options, signal: undefined } : options
    const inner = await call(async () => this[kNative].watch(filter, revision))
    const onAbort = (): void => watch.close()
    const watch = new KvWatch(inner, () => {
      this.#watches.delete(watch)
      signal?.removeEventListener('abort', onAbort)
    })
    this.#watches.add(watch)
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted) watch.close()
    return watch
  }
}

