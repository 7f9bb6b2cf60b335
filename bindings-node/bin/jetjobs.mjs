#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// `jetjobs`: the operator CLI (`jetjobs --help`). The addon runs the code of the Rust `jetjobs`
// binary in this process (`runCli`), so `npx jetjobs`, `pip install jetjobs` and
// `cargo install jetjobs-cli` give the same command. It blocks this thread until the command ends
// and exits with its code: 0 ok, 1 failed, 2 usage, 3 not found.
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { runCli } = require('../native.js')

process.exit(runCli(['jetjobs', ...process.argv.slice(2)]))
