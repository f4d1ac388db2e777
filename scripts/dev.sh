#!/usr/bin/env bash
# `make dev`: the CXone stand-in, the Microsoft Graph fixture and the Worker under `wrangler dev`,
# stopped together. PROFILE=cxone (the default: the stand-in as NICE publishes CXone, the Worker
# with an access key) or rfc7644 (the stand-in with Bulk, DELETE and any filter; client
# credentials at /oauth/token).
set -euo pipefail
cd "$(dirname "$0")/.."
worker_port=${1:-8787}
standin_port=${2:-8790}
profile=${PROFILE:-cxone}
case "$profile" in
  cxone | rfc7644) ;;
  *) echo "PROFILE must be cxone or rfc7644, not '$profile'" >&2; exit 2 ;;
esac

# A .dev.vars from before admin tokens had to be 32 characters long leaves every admin route shut.
admin_token=$(sed -n 's/^ADMIN_TOKEN=//p' .dev.vars)
if [ "${#admin_token}" -lt 32 ]; then
  echo "note: ADMIN_TOKEN in .dev.vars is shorter than 32 characters, which the Worker refuses;" >&2
  echo "      copy the one in .dev.vars.example (or remove .dev.vars to start from the example)." >&2
fi

# The stand-in must accept the access key (or client) the Worker is configured with.
if [ "$profile" = cxone ]; then
  client_id=$(sed -n 's/^CXONE_ACCESS_KEY_ID *= *"\(.*\)"/\1/p' wrangler.toml)
  client_secret=$(sed -n 's/^CXONE_ACCESS_KEY_SECRET=//p' .dev.vars)
  if [ -z "$client_secret" ]; then
    echo "note: .dev.vars has no CXONE_ACCESS_KEY_SECRET (it predates access keys); using its" >&2
    echo "      CXONE_CLIENT_SECRET (add the line from .dev.vars.example to silence this)." >&2
    client_secret=$(sed -n 's/^CXONE_CLIENT_SECRET=//p' .dev.vars)
  fi
  auth_vars=(--var "CXONE_AUTH:access_key" --var "CXONE_ACCESS_KEY_SECRET:$client_secret"
    --var "CXONE_TOKEN_URL:http://127.0.0.1:$standin_port/authentication/v1/token/access-key")
else
  client_id=$(sed -n 's/^CXONE_CLIENT_ID *= *"\(.*\)"/\1/p' wrangler.toml)
  client_secret=$(sed -n 's/^CXONE_CLIENT_SECRET=//p' .dev.vars)
  auth_vars=(--var "CXONE_AUTH:client_credentials"
    --var "CXONE_TOKEN_URL:http://127.0.0.1:$standin_port/oauth/token")
fi

setsid "$PY_VENV/bin/python" tests/standin/standin.py --port "$standin_port" --scim-port $((standin_port + 1)) \
  --client-id "$client_id" --client-secret "$client_secret" --profile "$profile" &
standin=$!
graph_port=$((standin_port + 2))
graph_client_id=cxone-scim-local-graph
tenant=6a1c3f52-0d7e-4c1b-9b8e-5f2d4e3a1c00
graph_client_secret=$(sed -n 's/^GRAPH_CLIENT_SECRET=//p' .dev.vars)
setsid "$PY_VENV/bin/python" tests/graphfix/graphfix.py --port "$graph_port" \
  --tenant "$tenant" --client-id "$graph_client_id" --client-secret "${graph_client_secret:-local-graph-secret}" >/dev/null &
# Graph sync is on when .dev.vars has its secrets (a .dev.vars from before they existed keeps it off).
graph_vars=()
if [ -n "$graph_client_secret" ] && grep -q '^GRAPH_CLIENT_STATE=.' .dev.vars; then
  graph_vars=(--var "GRAPH_BASE_URL:http://127.0.0.1:$graph_port/v1.0"
    --var "GRAPH_TOKEN_URL:http://127.0.0.1:$graph_port/$tenant/oauth2/v2.0/token"
    --var "GRAPH_CLIENT_ID:$graph_client_id"
    --var "GRAPH_NOTIFICATION_URL:http://127.0.0.1:$worker_port/graph/notifications")
fi
graphfix=$!
trap 'kill -TERM -- -"$standin" -"$graphfix" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$standin_port/_standin/health" >/dev/null 2>&1 &&
    curl -fsS "http://127.0.0.1:$graph_port/_graph/health" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "CXone stand-in: http://127.0.0.1:$standin_port (profile $profile)"
echo "Worker: http://127.0.0.1:$worker_port   (try: curl http://127.0.0.1:$worker_port/healthz)"
echo "Graph fixture: http://127.0.0.1:$graph_port (add users: PUT /_graph/users/{id}; a pass: POST /sync/run,"
echo "  or the cron: curl \"http://127.0.0.1:$worker_port/cdn-cgi/handler/scheduled?cron=*/10+*+*+*+*\")"
WRANGLER_SEND_METRICS=false npx wrangler dev --ip 127.0.0.1 --port "$worker_port" \
  --show-interactive-dev-session=false \
  --var "CXONE_SCIM_BASE_URL:http://127.0.0.1:$standin_port/scim/v2" --var "CXONE_PROFILE:$profile" \
  "${auth_vars[@]}" "${graph_vars[@]}" </dev/null
