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
#    (LLMCHAT_TEST_TIMEOUT_MS, default 15 min) so a hung test fails instead of hanging the run. A file that failed
#    is run once more alone (LLMCHAT_TEST_RETRY_FILES, default 3 files at most; 0 = never); the last line counts
#    the tests ("N passed, N failed") and any test that failed and then passed is named FLAKY above it.
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
retry_max="${LLMCHAT_TEST_RETRY_FILES:-3}"
[[ "$concurrency" =~ ^[1-9][0-9]?$ ]] || { echo "test: LLMCHAT_TEST_CONCURRENCY must be 1-99, got $concurrency" >&2; exit 2; }
[[ "$timeout_ms" =~ ^[1-9][0-9]{3,8}$ ]] || { echo "test: LLMCHAT_TEST_TIMEOUT_MS must be 1000-999999999, got $timeout_ms" >&2; exit 2; }
[[ "$retry_max" =~ ^[0-9]$ ]] || { echo "test: LLMCHAT_TEST_RETRY_FILES must be 0-9, got $retry_max" >&2; exit 2; }

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

# run_tests RESULTS CONCURRENCY FILE...: the spec reporter for people, one JSON line per test for the summary.
# --test-force-exit: the runner ends after its summary even when a test file it timed out does not exit (a Temporal
# worker takes the runner's SIGTERM as "shut down gracefully" and waits for its running activities); such leftovers
# of this checkout are killed after the run.
run_tests() {
  local out="$1" conc="$2" rc=0
  shift 2
  LLMCHAT_TEST_RESULTS="$out.jsonl" node --test --test-force-exit --test-concurrency="$conc" --test-timeout="$timeout_ms" \
    --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter="$ROOT/scripts/test-results-reporter.mjs" --test-reporter-destination=/dev/null "$@" | tee "$out.log" || rc=$?
  pkill -KILL -f " $ROOT/dist/test/[^ /]+\.test\.js" 2>/dev/null || true
  return "$rc"
}

status=0
run_tests "$results/first" "$concurrency" "${files[@]}" || status=$?
if ((status == 0)); then
  node scripts/test-summary.mjs "$results/first.jsonl"
  exit $?
fi
# The results must account for every test the runner counted before any file is run again.
if ! node scripts/test-summary.mjs --check "$results/first.jsonl" "$results/first.log"; then
  echo "test: the run failed (status $status)" >&2
  exit "$status"
fi
# A file that failed is run once more, alone (at most LLMCHAT_TEST_RETRY_FILES files; 0 = never): on two shared
# cores with real servers a test now and then misses a deadline. The first run's failures stay printed above; the
# summary names every test that failed and then passed as FLAKY, and the run fails if any fails again.
mapfile -t again < <(node scripts/test-summary.mjs --failed-files "$results/first.jsonl")
if ((${#again[@]} > 0 && ${#again[@]} <= retry_max)); then
  step "second run of the ${#again[@]} file(s) that failed, one at a time"
  run_tests "$results/second" 1 "${again[@]}" || true
  node scripts/test-summary.mjs "$results/first.jsonl" "$results/second.jsonl"
  exit $?
fi
node scripts/test-summary.mjs "$results/first.jsonl" || true
if ((${#again[@]} > retry_max)); then
  echo "test: ${#again[@]} files failed, more than LLMCHAT_TEST_RETRY_FILES=$retry_max: none was run again" >&2
fi
echo "test: the run failed (status $status)" >&2
exit "$status"
