#!/usr/bin/env bash
# The worker process as `npm start` and `npm run worker` run it:   scripts/worker.sh [ops.config.yaml]
#
# Node/V8 settings for a long-running worker on a small machine (measured by `npm run bench:worker`):
#   --max-semi-space-size=2   V8's young generation capped at 2 MB per semi-space (the default grows to 16 MB);
#                             short-lived objects are collected sooner instead of filling resident memory;
#   --optimize-for-size       V8 favours memory over peak speed (the worker waits on I/O, not on JavaScript);
#   MALLOC_ARENA_MAX=2        glibc's per-thread malloc arenas capped (the SDK's Rust core runs several threads,
#                             each of which would otherwise keep its own arena of freed memory resident).
# Extra node flags can be given in LLMCHAT_WORKER_NODE_OPTIONS (e.g. --max-old-space-size=512).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
read -r -a extra <<<"${LLMCHAT_WORKER_NODE_OPTIONS:-}"
exec node --max-semi-space-size=2 --optimize-for-size "${extra[@]}" "$ROOT/dist/src/worker.js" "$@"
