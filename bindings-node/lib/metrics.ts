// SPDX-License-Identifier: Apache-2.0
/** Prometheus metrics: asyncjobs' `choria_asyncjobs_*` families, process-wide. */
import * as native from '../native.js'

/**
 * Every metric of this process in Prometheus' text exposition format (version 0.0.4), for a
 * server of your own; `new App({ prometheusPort })` serves it from its worker and scheduler.
 */
export function renderMetrics(): string {
  return native.renderMetrics()
}
