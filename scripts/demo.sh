#!/usr/bin/env bash
# The demo LLMChat stack (the stand-in app in app/, run by compose against the local services).
#
#   scripts/demo.sh up|down|status [production|staging]        (default: production)
#
# up:     services (PostgreSQL, Redis, dockerd) up, image llmchat-app:$LLMCHAT_VERSION (default v1)
#         built, migrations applied with that image, then `llmchat-ops up --env <env>`: the release the
#         release records name as current (a deploy made since is kept), else $LLMCHAT_VERSION — for
#         production in a blue/green slot (:3101/:3102) behind the nginx front on :3001, for staging in
#         place on :3002 (ops.config.yaml decides); then waits up to 30 s for GET /health = 200 and prints
#         the URL. Idempotent.
# down:   `llmchat-ops down --env <env>`: app slots and front stop (data, logs, uploads, records stay).
# status: containers, /health and /version.
# Data dirs: ${LLMCHAT_OPS_STATE:-<repo>/.state}/demo/<env>/{logs,uploads,config,app}
# Optional env: LLMCHAT_VERSION, LLMCHAT_OPS_CONFIG (default ops.config.yaml), LLMCHAT_DATABASE_URL,
# LLMCHAT_REDIS_URL. The app's URL and ports come from the config.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

usage() { echo "usage: $0 up|down|status [production|staging]" >&2; exit 2; }
cmd="${1:-}"
env="${2:-production}"
(($# <= 2)) || usage
case "$cmd" in up | down | status) ;; *) usage ;; esac
case "$env" in
  production) def_port=3001 def_db=llmchat def_redis_db=0 ;;
  staging) def_port=3002 def_db=llmchat_staging def_redis_db=1 ;;
  *) echo "demo: unknown environment: $env (production or staging)" >&2; exit 2 ;;
esac

version="${LLMCHAT_VERSION:-v1}"
[[ "$version" =~ ^v[0-9]{1,2}$ ]] || { echo "demo: invalid LLMCHAT_VERSION: $version" >&2; exit 2; }
port="${LLMCHAT_APP_PORT:-$def_port}"
[[ "$port" =~ ^[0-9]{1,5}$ ]] || { echo "demo: invalid LLMCHAT_APP_PORT: $port" >&2; exit 2; }

DEMO="$LLMCHAT_OPS_STATE/demo/$env"
PROJECT="llmchat-$env"
COMPOSE_FILE="$ROOT/app/compose/docker-compose.$env.yml"
URL="http://127.0.0.1:$port"
export LLMCHAT_VERSION="$version" LLMCHAT_APP_PORT="$port"
export LLMCHAT_LOG_DIR="$DEMO/logs" LLMCHAT_UPLOADS_DIR="$DEMO/uploads"
export LLMCHAT_DATABASE_URL="${LLMCHAT_DATABASE_URL:-postgres://llmchat@127.0.0.1:5432/$def_db}"
export LLMCHAT_REDIS_URL="${LLMCHAT_REDIS_URL:-redis://127.0.0.1:6379/$def_redis_db}"

now_ms() { date +%s%3N; }
say() { printf '[demo %s] %s\n' "$env" "$*"; }
compose() { "$ROOT/scripts/compose.sh" -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }
CONFIG="${LLMCHAT_OPS_CONFIG:-$ROOT/ops.config.yaml}"
ops() { # the llmchat-ops CLI (built on first use)
  [[ -f "$ROOT/dist/src/cli/index.js" ]] || (cd "$ROOT" && npx tsc -p tsconfig.json)
  node "$ROOT/bin/llmchat-ops.js" --config "$CONFIG" "$@"
}
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$URL$1" 2>/dev/null || true; }

# app/ of the demo dir mirrors the deployed application files (like /opt/llmchat in the guide),
# copied out of the image so it always matches what runs.
copy_app_files() {
  local cid tmp="$DEMO/app.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  cid="$(docker create --network none "llmchat-app:$version" 2>/dev/null)" || { echo "demo: docker create llmchat-app:$version failed" >&2; return 1; }
  if docker cp "$cid:/app/." "$tmp/" >/dev/null; then
    docker rm "$cid" >/dev/null
    rm -rf "$DEMO/app.old.$$"
    [[ ! -d "$DEMO/app" ]] || mv "$DEMO/app" "$DEMO/app.old.$$"
    mv "$tmp" "$DEMO/app"
    rm -rf "$DEMO/app.old.$$"
  else
    docker rm "$cid" >/dev/null; rm -rf "$tmp"; return 1
  fi
}

write_config() { # non-secret settings of this environment (the password is never written)
  local tmp="$DEMO/config/llmchat.env.tmp.$$"
  cat >"$tmp" <<EOF
# LLMChat demo environment $env (written by scripts/demo.sh; no secrets here)
LLMCHAT_ENVIRONMENT=$env
LLMCHAT_VERSION=$version
LLMCHAT_APP_PORT=$port
LLMCHAT_DATABASE_URL=$LLMCHAT_DATABASE_URL
LLMCHAT_REDIS_URL=$LLMCHAT_REDIS_URL
LLMCHAT_COMPOSE_PROJECT=$PROJECT
LLMCHAT_COMPOSE_FILE=$COMPOSE_FILE
EOF
  mv "$tmp" "$DEMO/config/llmchat.env"
}

do_up() {
  local t0 t1 code deadline
  t0=$(now_ms)
  mkdir -p "$DEMO/logs" "$DEMO/uploads" "$DEMO/config" "$DEMO/app"
  say "services"
  "$ROOT/scripts/services.sh" up postgres redis docker
  say "image llmchat-app:$version"
  "$ROOT/app/build-images.sh" "$version"
  say "migrations ($LLMCHAT_DATABASE_URL)"
  PGPASSWORD="$LLMCHAT_DB_PASSWORD" docker run --rm --network host \
    -e DATABASE_URL="$LLMCHAT_DATABASE_URL" -e PGPASSWORD \
    "llmchat-app:$version" node migrate.js up 2> >(grep -v "^WARNING: IPv4 forwarding is disabled" >&2)
  copy_app_files
  write_config
  say "app up (llmchat-ops up: release records, compose, front)"
  t1=$(now_ms)
  URL="$(ops up --env "$env" --initial "$version" | sed -n 's/.* serving on \(http[^ ]*\) .*/\1/p')"
  [[ -n "$URL" ]] || { say "ERROR: llmchat-ops up did not report the URL" >&2; exit 1; }
  deadline=$(($(date +%s) + 30))
  while :; do
    code="$(http_code /health)"
    [[ "$code" == 200 ]] && break
    if (($(date +%s) >= deadline)); then
      say "ERROR: $URL/health did not answer 200 within 30 s (last: ${code:-none})" >&2
      compose ps >&2 || true
      compose logs --tail 20 >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  say "healthy $(($(now_ms) - t1)) ms after app up (total $(($(now_ms) - t0)) ms)"
  say "LLMChat $version ($env) is up: $URL  (health: $URL/health, metrics: $URL/metrics, log: $DEMO/logs/app.log)"
}

do_down() {
  if ! docker info >/dev/null 2>&1; then say "docker is not running: nothing to stop"; return 0; fi
  ops down --env "$env"
  say "stopped (data in $DEMO kept)"
}

do_status() {
  local rc=0 code
  if docker info >/dev/null 2>&1; then compose ps || rc=1; else say "docker: DOWN"; rc=1; fi
  code="$(http_code /health)"
  say "$URL/health -> ${code:-no answer}"
  if [[ -n "$code" && "$code" != 000 ]]; then
    curl -s --max-time 3 "$URL/health"; echo
    curl -s --max-time 3 "$URL/version"; echo
  fi
  [[ "$code" == 200 ]] || rc=1
  return "$rc"
}

case "$cmd" in
  up) do_up ;;
  down) do_down ;;
  status) do_status ;;
esac
