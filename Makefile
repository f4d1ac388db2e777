# cxone-scim — `make dev` runs the Worker against the local CXone stand-in; `make test` runs
# every test. Both install what is missing first (pinned versions, cached between runs).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath .)
export PATH := $(HOME)/.cargo/bin:$(PATH)
export PY_VENV ?= $(HOME)/.cache/cxone-scim/py-$(shell sha1sum tests/requirements.txt | cut -c1-12)
SCIM_VALIDATE ?= $(abspath $(ROOT)/../shared/tools/scim-validate)
WASM_RUNNER := CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner

# `make dev` ports; `make test` uses its own (see tests/e2e/conftest.py) so both can run at once.
DEV_WORKER_PORT ?= 8787
DEV_STANDIN_PORT ?= 8790

RUST_SOURCES := $(shell find core/src edge/src -name '*.rs') Cargo.toml Cargo.lock core/Cargo.toml edge/Cargo.toml
WORKER := edge/build/worker/shim.mjs

.PHONY: help setup dev test lint test-core test-wasm test-payloads test-e2e edge-build bench fuzz clean

help:
	@echo "make dev   - CXone stand-in on 127.0.0.1:$(DEV_STANDIN_PORT) + Worker (wrangler dev) on 127.0.0.1:$(DEV_WORKER_PORT); PROFILE=rfc7644 for an RFC 7644 server"
	@echo "make test  - lint, core tests (native + wasm32), edge wasm tests, payload validation, end-to-end"
	@echo "make bench - measure (release builds) and rewrite BENCHMARKS.md; BENCH_QUICK=1 for smaller sizes"

setup:
	@scripts/ensure-tools.sh

.dev.vars: .dev.vars.example
	@[ -f $@ ] || { cp $< $@; echo "created .dev.vars from .dev.vars.example"; }

edge-build: $(WORKER)

$(WORKER): $(RUST_SOURCES)
	cd edge && WASM_BINDGEN_BIN=wasm-bindgen ESBUILD_BIN=$(ROOT)/node_modules/.bin/esbuild worker-build --release
	@touch $@

# PROFILE=cxone (default): the stand-in as NICE publishes CXone; PROFILE=rfc7644: with Bulk and DELETE.
PROFILE ?= cxone

dev: setup .dev.vars edge-build
	@PROFILE=$(PROFILE) scripts/dev.sh $(DEV_WORKER_PORT) $(DEV_STANDIN_PORT)

test: setup lint test-core test-wasm test-payloads edge-build test-e2e

lint:
	cargo fmt --all --check
	cargo clippy -p cxone-scim-core -p cxone-scim-cli --all-targets -- -D warnings
	cargo clippy -p cxone-scim-edge --target wasm32-unknown-unknown --all-targets -- -D warnings

test-core:
	cargo test -p cxone-scim-core -p cxone-scim-cli
	cargo bench -p cxone-scim-core --no-run
	"$(PY_VENV)/bin/python" -m py_compile bench/*.py

test-wasm:
	$(WASM_RUNNER) scripts/count-tests.sh cargo test -p cxone-scim-core --target wasm32-unknown-unknown --lib
	$(WASM_RUNNER) scripts/count-tests.sh cargo test -p cxone-scim-edge --target wasm32-unknown-unknown --lib

# Every payload the builders emit is checked by an independent SCIM implementation.
test-payloads:
	rm -rf target/payloads && mkdir -p target/payloads
	SCIM_PAYLOAD_DIR=$(ROOT)/target/payloads cargo test -p cxone-scim-core --test emit_payloads
	for kind in user patch error list; do \
	  "$(SCIM_VALIDATE)" $$kind target/payloads/$$kind-*.json; \
	done

test-e2e: edge-build
	cargo build -p cxone-scim-cli
	"$(PY_VENV)/bin/python" tests/graphfix/selftest.py
	"$(PY_VENV)/bin/python" tests/iamfix/selftest.py
	"$(PY_VENV)/bin/python" tests/standin/selftest.py
	SCIM_VALIDATE="$(SCIM_VALIDATE)" "$(PY_VENV)/bin/python" -m pytest tests/e2e -q -p no:cacheprovider

# Hostile inputs (core/tests/hostile_inputs.rs) at a million cases per target; `cargo test` runs 2,000.
fuzz:
	PROPTEST_CASES=1000000 cargo test -p cxone-scim-core --release --test hostile_inputs

bench: setup edge-build
	mkdir -p target/bench
	cargo bench -p cxone-scim-core --bench core -- --warm-up-time 1 --measurement-time 3
	"$(PY_VENV)/bin/python" bench/python_baseline.py core/tests/fixtures > target/bench/python.json
	$(WASM_RUNNER) cargo test -p cxone-scim-edge --target wasm32-unknown-unknown --release --lib -- \
	  --include-ignored --nocapture webhook_cost | sed -n 's/^BENCH //p' > target/bench/wasm.json
	cargo build --profile bench -p cxone-scim-cli
	"$(PY_VENV)/bin/python" bench/e2e.py target/bench/e2e.json $(if $(BENCH_QUICK),--quick)
	"$(PY_VENV)/bin/python" bench/report.py target/bench > BENCHMARKS.md
	@echo "wrote BENCHMARKS.md"

clean:
	rm -rf target edge/build .wrangler
