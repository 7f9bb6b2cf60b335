#!/usr/bin/env bash
# jetjobs' Rust API with enqueue_many ×1000 (as BullMQ's addBulk headline), for
# ../shared/peerbench's run_all.sh: name this script's path in PEERBENCH_ONLY. Same shape as the
# harness's jetjobs_rust.sh (one worker process, one producer process, completion counted by the
# handler); the driver is bench/src/bin/peerbench_bulk.rs, built from this checkout.
# Prints: jetjobs_rust_bulk: N tasks in S s = R tasks/s (details)
here="$(cd "$(dirname "$0")" && pwd)"
project="$(cd "$here/../.." && pwd)"
source "${PEERBENCH_DIR:-$project/../shared/peerbench}/lib.sh"

export PEERBENCH_JETJOBS_CONCURRENCY="${PEERBENCH_JETJOBS_CONCURRENCY:-100}"
pb_venv
command -v cargo >/dev/null || { pb_log "cargo not found (install Rust first)"; exit 1; }
pb_log "building peerbench_bulk (release) in $project"
cargo build --release --quiet --manifest-path "$project/Cargo.toml" -p jetjobs-bench --bin peerbench_bulk >&2
bin="$project/target/release/peerbench_bulk"

pb_built
pb_start_nats
pb_marks_dir
pb_spawn "$PB_TMP/jetjobs-rust-bulk-worker.log" "$bin" worker
export PB_WORKER_PID="$PB_LAST_PID"
pb_wait_for 60 "jetjobs_rust_bulk worker ready" grep -q "worker running" "$PB_TMP/jetjobs-rust-bulk-worker.log"
pb_run "$bin" producer
