// SPDX-License-Identifier: Apache-2.0
// ESM entry point: the same module instance as the CommonJS one (no dual-package hazard), so
// `instanceof TerminateTask` and the error classes agree whichever way the package is loaded.
export * from './dist/index.js'
