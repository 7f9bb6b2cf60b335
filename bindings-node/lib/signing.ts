// SPDX-License-Identifier: Apache-2.0
/** `TaskSigner` and `TaskVerifier`: ed25519 task signatures, byte-compatible with asyncjobs. */
import * as native from '../native.js'
import { callSync } from './errors.js'
import { kNative } from './internal.js'
import type { Task } from './task.js'

/** A public key that tasks must be signed with. */
export class TaskVerifier {
  /** @internal */
  readonly [kNative]: native.TaskVerifier
  /** @internal */
  constructor(inner: native.TaskVerifier) {
    this[kNative] = inner
  }
  static fromHex(hex: string): TaskVerifier {
    return new TaskVerifier(callSync(() => native.TaskVerifier.fromHex(hex)))
  }
  static fromBytes(key: Uint8Array): TaskVerifier {
    return new TaskVerifier(callSync(() => native.TaskVerifier.fromBytes(Buffer.from(key))))
  }
  static fromFile(path: string): TaskVerifier {
    return new TaskVerifier(callSync(() => native.TaskVerifier.fromFile(path)))
  }
  toHex(): string {
    return this[kNative].toHex()
  }
  /** Throws `TaskNotSignedError` / `SignatureInvalidError` unless `task` verifies. */
  verify(task: Task, options: { optional?: boolean } = {}): void {
    callSync(() => this[kNative].verify(task[kNative], options.optional ?? false))
  }
}

/** An ed25519 private key that signs tasks on enqueue (byte-compatible with asyncjobs). */
export class TaskSigner {
  /** @internal */
  readonly [kNative]: native.TaskSigner
  private constructor(inner: native.TaskSigner) {
    this[kNative] = inner
  }
  /** A hex seed or Go private key. */
  static fromHex(hex: string): TaskSigner {
    return new TaskSigner(callSync(() => native.TaskSigner.fromHex(hex)))
  }
  /** A 32-byte seed or Go's 64-byte private key. */
  static fromBytes(key: Uint8Array): TaskSigner {
    return new TaskSigner(callSync(() => native.TaskSigner.fromBytes(Buffer.from(key))))
  }
  /** A file holding the hex seed, as asyncjobs' `TaskSigningSeedFile`. */
  static fromSeedFile(path: string): TaskSigner {
    return new TaskSigner(callSync(() => native.TaskSigner.fromSeedFile(path)))
  }
  verifier(): TaskVerifier {
    return new TaskVerifier(this[kNative].verifier())
  }
  /** Signs a task in place (its queue must be set). */
  sign(task: Task): void {
    callSync(() => this[kNative].sign(task[kNative]))
  }
}
