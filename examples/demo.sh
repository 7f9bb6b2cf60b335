#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: one nats-server (or $NATS_URL), then a Rust, a Python and a Node worker each handle
# tasks on it and print the final states. Run through `make demo`, which builds what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python

if [ -z "${NATS_URL:-}" ]; then
  coproc SERVER { exec "$py" -m jetjobs dev-server; }
  server_pid=$SERVER_PID
  trap 'kill -INT "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
  read -r NATS_URL <&"${SERVER[0]}"
  export NATS_URL
  echo "started nats-server at $NATS_URL"
fi

echo; echo "== Rust handlers (examples/rust/demo.rs)"
cargo run --quiet -p jetjobs --example demo

echo; echo "== Python handlers (examples/python/quickstart.py)"
"$py" examples/python/quickstart.py

echo; echo "== Node handlers (examples/node/demo.mts)"
make --no-print-directory node-demo
