// SPDX-License-Identifier: Apache-2.0
/** `StorageAdmin`: lists, inspects and removes queues and tasks. */
import type * as native from '../native.js'
import { call, callSync } from './errors.js'
import type { Queue, QueueInfo, QueueSettings, TasksInfo } from './queue.js'
import { Task } from './task.js'

/** Lists, inspects and removes queues and tasks. */
export class StorageAdmin {
  readonly #client: () => Promise<native.Client>
  /** @internal */
  constructor(client: () => Promise<native.Client>) {
    this.#client = client
  }
  async #admin(): Promise<native.StorageAdmin> {
    const client = await this.#client()
    return callSync(() => client.admin())
  }
  async queueNames(): Promise<string[]> {
    const admin = await this.#admin()
    return call(async () => admin.queueNames())
  }
  async queueInfo(name: string): Promise<QueueInfo> {
    const admin = await this.#admin()
    return call(async () => admin.queueInfo(name))
  }
  /** Creates a queue (or loads it if it exists); resolves to the server's settings. */
  async createQueue(queue: Queue): Promise<QueueSettings> {
    const admin = await this.#admin()
    return call(async () => admin.createQueue(queue.toNative()))
  }
  async purgeQueue(name: string): Promise<void> {
    const admin = await this.#admin()
    return call(async () => admin.purgeQueue(name))
  }
  async deleteQueue(name: string): Promise<void> {
    const admin = await this.#admin()
    return call(async () => admin.deleteQueue(name))
  }
  /** Up to `limit` tasks. */
  async tasks(limit = 1000): Promise<Task[]> {
    const admin = await this.#admin()
    return (await call(async () => admin.tasks(limit))).map((t) => new Task(t))
  }
  /** Terminated, expired and unreachable tasks matching every filter given. */
  async deadLetters(filter: native.DeadLetterFilter = {}): Promise<Task[]> {
    const admin = await this.#admin()
    return (await call(async () => admin.deadLetters(filter))).map((t) => new Task(t))
  }
  /** Deletes the dead letters matching every filter given; resolves to how many. */
  async purgeDeadLetters(filter: native.DeadLetterFilter = {}): Promise<number> {
    const admin = await this.#admin()
    return call(async () => admin.purgeDeadLetters(filter))
  }
  async tasksInfo(): Promise<TasksInfo> {
    const admin = await this.#admin()
    return call(async () => admin.tasksInfo())
  }
  async deleteTask(id: string): Promise<void> {
    const admin = await this.#admin()
    return call(async () => admin.deleteTask(id))
  }
}
