#!/usr/bin/env bash
# The whole test suite, from a fresh clone:   npm test   (= scripts/test.sh [node --test file filters...])
#
# 1. dependencies: `npm ci` for the project and for the stand-in app when node_modules is missing or older
#    than its lockfile;
# 2. the real services the tests use: Temporal dev server, PostgreSQL, Redis, dockerd, and the programs tests start
#    themselves (scripts/services.sh installs what is missing and reuses what already runs);
# 3. the app images llmchat-app:v1..v3 (skipped when unchanged);
# 4. TypeScript build, then node's test runner over dist/test/*.test.js. Every test file starts its own dev
#    server, task queue, scratch databases, ports and compose projects, so files run side by side
#    (LLMCHAT_TEST_CONCURRENCY, default 2 = the cores of the target machine); every test has a time limit
#    (LLMCHAT_TEST_TIMEOUT_MS, default 15 min) so a hung test fails instead of hanging the run. The runner's
#    own summary ends the output.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

step() { printf '\n== %s\n' "$*"; }

needs_ci() { # dir: node_modules absent or older than package-lock.json
  [[ ! -d "$1/node_modules" || "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]]
}

step "dependencies"
if needs_ci .; then npm ci --no-audit --no-fund; else echo "node_modules up to date"; fi
if needs_ci app; then npm ci --prefix app --no-audit --no-fund; else echo "app/node_modules up to date"; fi

step "services"
# Not `monitoring`: its daemons are npm start's (tests start their own Prometheus/Alertmanager/node-exporter on free
# ports, from the packages `reporttools` installs). `temporalserver`: the production Temporal server built from the Go
# module proxy (≈ 10 min once, cached under .tools and Go's build cache) for temporal-server and temporal-tls tests.
scripts/services.sh up temporal postgres redis docker reporttools timeskip temporalserver
# env.sh resolved the temporal binary before it may have been installed: resolve it again.
source "$ROOT/scripts/env.sh"

step "app images"
app/build-images.sh

step "build"
npm run --silent build   # tsc, then the workflow bundle (src/workflow-bundle.ts)

step "tests"
files=()
if (($# > 0)); then
  for f in "$@"; do files+=("$f"); done
else
  for f in dist/test/*.test.js; do files+=("$f"); done
fi
concurrency="${LLMCHAT_TEST_CONCURRENCY:-2}"
timeout_ms="${LLMCHAT_TEST_TIMEOUT_MS:-900000}"
[[ "$concurrency" =~ ^[1-9][0-9]?$ ]] || { echo "test: LLMCHAT_TEST_CONCURRENCY must be 1-99, got $concurrency" >&2; exit 2; }
[[ "$timeout_ms" =~ ^[1-9][0-9]{3,8}$ ]] || { echo "test: LLMCHAT_TEST_TIMEOUT_MS must be 1000-999999999, got $timeout_ms" >&2; exit 2; }
exec node --test --test-concurrency="$concurrency" --test-timeout="$timeout_ms" --test-reporter=spec "${files[@]}"
