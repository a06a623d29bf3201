#!/usr/bin/env bash
# Runs the compose implementation detected by env.sh ("docker compose" v2 or "docker-compose" v1)
# against our dockerd, passing every argument through untouched:  scripts/compose.sh -p x up -d
set -euo pipefail
# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
read -r -a _compose <<<"$LLMCHAT_COMPOSE"   # split "docker compose" into words on purpose
exec "${_compose[@]}" "$@"
