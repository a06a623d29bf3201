#!/usr/bin/env bash
# The main job, from a fresh clone:   npm start   (= scripts/start.sh [config.yaml])
#
# Brings up the real services (Temporal dev server with its Web UI, PostgreSQL, Redis, dockerd), the monitoring
# stack (Prometheus, Alertmanager, node-exporter running monitoring/'s files, wired to the config's environments,
# worker metrics and Alertmanager receiver: scripts/monitoring.sh), the demo LLMChat stack (production and staging,
# via scripts/demo.sh), the demo alert inbox, applies the schedules from the config, then runs the worker in the
# foreground until Ctrl-C / SIGTERM (graceful shutdown).
# Everything it starts except the worker and the alert inbox keeps running afterwards:
#   scripts/demo.sh down [env]      scripts/services.sh stop [monitoring]
# Optional env: LLMCHAT_DEMO_ENVIRONMENTS (default "production staging"; empty: no demo stack, for a config whose
# environments run elsewhere), LLMCHAT_START_BUILD=0 (node_modules and dist/ are ready: no npm ci, no tsc), LLMCHAT_ALERT_INBOX_PORT (9099),
# and the monitoring ports (scripts/monitoring.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
CONFIG="${1:-${LLMCHAT_OPS_CONFIG:-ops.config.yaml}}"
[[ -f "$CONFIG" ]] || { echo "start: config file not found: $CONFIG" >&2; exit 2; }
export LLMCHAT_OPS_CONFIG="$CONFIG"
ALERT_PORT="${LLMCHAT_ALERT_INBOX_PORT:-9099}"

T0="$(date +%s)"
step() { printf '\n== %s (+%ss)\n' "$*" "$(($(date +%s) - T0))"; }
needs_ci() { [[ ! -d "$1/node_modules" || "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]]; }

step "dependencies and build"
if [[ "${LLMCHAT_START_BUILD:-1}" == 0 ]]; then
  echo "LLMCHAT_START_BUILD=0: dependencies and dist/ as they are"
else
  if needs_ci .; then npm ci --no-audit --no-fund; fi
  npm run --silent build   # tsc, then the workflow bundle (src/workflow-bundle.ts)
fi
node bin/llmchat-ops.js config check --config "$CONFIG"

step "Alertmanager receiver token"
# The receiver authenticates Alertmanager with the token file the config names (ops.config.yaml:
# .state/alertmanager-receiver.token): generated once, kept afterwards; Alertmanager sends it (credentials_file).
token_file="$(node --input-type=module -e 'const { loadConfig } = await import(process.argv[1]); const f = loadConfig(process.argv[2]).alertmanagerReceiver.tokenFile; if (f) console.log(f);' "$ROOT/dist/src/common/config/index.js" "$CONFIG")"
if [[ -n "$token_file" ]]; then scripts/receiver-token.sh "$token_file"; else echo "alertmanagerReceiver.tokenFile not set: nothing to generate"; fi

step "services"
scripts/services.sh up
source "$ROOT/scripts/env.sh" # the temporal binary may have just been installed

step "demo stack"
read -r -a demo_envs <<<"${LLMCHAT_DEMO_ENVIRONMENTS-production staging}"
for e in "${demo_envs[@]}"; do scripts/demo.sh up "$e"; done
((${#demo_envs[@]})) || echo "LLMCHAT_DEMO_ENVIRONMENTS is empty: no demo stack (the config's environments run elsewhere)"

step "alert inbox"
inbox_pid=""
if timeout 2 bash -c ": </dev/tcp/127.0.0.1/$ALERT_PORT" 2>/dev/null; then
  echo "something already listens on 127.0.0.1:$ALERT_PORT; using it as the alert inbox"
else
  node scripts/alert-inbox.mjs --port "$ALERT_PORT" --file "$LLMCHAT_OPS_STATE/alerts.jsonl" &
  inbox_pid=$!
fi

worker_pid=""
cleanup() {
  [[ -z "$worker_pid" ]] || kill -TERM "$worker_pid" 2>/dev/null || true
  [[ -z "$worker_pid" ]] || wait "$worker_pid" 2>/dev/null || true
  [[ -z "$inbox_pid" ]] || kill -TERM "$inbox_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "schedules"
node bin/llmchat-ops.js schedules apply --config "$CONFIG"

step "worker"
prom_port="$(sed -n 's/^prometheus_port=//p' "$LLMCHAT_OPS_STATE/monitoring/ports" 2>/dev/null || true)"
am_port="$(sed -n 's/^alertmanager_port=//p' "$LLMCHAT_OPS_STATE/monitoring/ports" 2>/dev/null || true)"
cat <<EOF
Temporal Web UI:  http://127.0.0.1:$TEMPORAL_UI_PORT/namespaces/default/workflows
Run a check:      npx llmchat-ops health --env production
             or:  $(basename "${TEMPORAL_CLI_PATH:-temporal}") workflow execute --type dailyHealthCheck --task-queue llmchat-ops --input '{"environment":"production"}'
Alerts received:  $LLMCHAT_OPS_STATE/alerts.jsonl
Fault detection:  npx llmchat-ops detect --env production; open alerts: npx llmchat-ops alerts
Prometheus:       http://127.0.0.1:${prom_port:-9090} (monthly report: npx llmchat-ops report --env production)
Alertmanager:     http://127.0.0.1:${am_port:-9093} → receiver in the worker, http://127.0.0.1:${LLMCHAT_OPS_ALERTMANAGER_PORT:-9465}/alertmanager
Stop:             Ctrl-C (worker and alert inbox); scripts/demo.sh down; scripts/services.sh stop (monitoring too)
EOF
scripts/worker.sh "$CONFIG" &
worker_pid=$!
wait "$worker_pid"
status=$?
worker_pid=""
exit "$status"
