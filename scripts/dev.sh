#!/usr/bin/env bash
# `make dev`: the CXone stand-in and the Worker under `wrangler dev`, stopped together.
set -euo pipefail
cd "$(dirname "$0")/.."
worker_port=${1:-8787}
standin_port=${2:-8790}

# The stand-in must accept the client the Worker is configured with.
client_id=$(sed -n 's/^CXONE_CLIENT_ID *= *"\(.*\)"/\1/p' wrangler.toml)
client_secret=$(sed -n 's/^CXONE_CLIENT_SECRET=//p' .dev.vars)

setsid "$PY_VENV/bin/python" tests/standin/standin.py --port "$standin_port" --scim-port $((standin_port + 1)) \
  --client-id "$client_id" --client-secret "$client_secret" &
standin=$!
trap 'kill -TERM -- -"$standin" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$standin_port/_standin/health" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "Worker: http://127.0.0.1:$worker_port   (try: curl http://127.0.0.1:$worker_port/healthz)"
WRANGLER_SEND_METRICS=false npx wrangler dev --ip 127.0.0.1 --port "$worker_port" \
  --show-interactive-dev-session=false \
  --var "CXONE_SCIM_BASE_URL:http://127.0.0.1:$standin_port/scim/v2" \
  --var "CXONE_TOKEN_URL:http://127.0.0.1:$standin_port/oauth/token" </dev/null
