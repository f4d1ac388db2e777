#!/usr/bin/env bash
# Installs what the project needs, at pinned versions, skipping whatever is already in place:
# the wasm32 target, wasm-bindgen-cli and worker-build (cargo), wrangler (npm), and the Python
# environment of the CXone stand-in (scim2-server, pytest).
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130   # must equal wasm-bindgen in Cargo.lock
WORKER_BUILD_VERSION=0.8.7
PY_VENV=${PY_VENV:?PY_VENV is set by the Makefile}

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
has_version() { command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -qF "$2"; }

locked=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if [ "$locked" != "$WASM_BINDGEN_VERSION" ]; then
  echo "Cargo.lock has wasm-bindgen $locked but scripts/ensure-tools.sh pins $WASM_BINDGEN_VERSION" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if ! has_version wasm-bindgen "$WASM_BINDGEN_VERSION" || ! has_version wasm-bindgen-test-runner "$WASM_BINDGEN_VERSION"; then
  step "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  # Not --locked: its lock file names a crate version the registry no longer serves.
  cargo install --force wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
if ! has_version worker-build "$WORKER_BUILD_VERSION"; then
  step "cargo install worker-build $WORKER_BUILD_VERSION (several minutes, once)"
  cargo install --force worker-build --version "$WORKER_BUILD_VERSION"
fi

# npm ci refuses this lock file (it lacks other platforms' workerd builds); install from it.
stamp=node_modules/.cxone-scim-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp" || [ ! -x node_modules/.bin/wrangler ]; then
  step "npm install (wrangler)"
  npm install --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

if [ ! -x "$PY_VENV/bin/python" ] || ! cmp -s tests/requirements.txt "$PY_VENV/.cxone-scim-requirements"; then
  step "python venv for the CXone stand-in: $PY_VENV"
  rm -rf "$PY_VENV"
  python3 -m venv "$PY_VENV"
  "$PY_VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$PY_VENV/.cxone-scim-requirements"
fi
