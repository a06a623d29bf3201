#!/usr/bin/env bash
# Builds the local images llmchat-app:<version> of the stand-in LLMChat backend, without any registry.
#
#   app/build-images.sh [--force] [version ...]      (default: every version in app/versions.json)
#
# Each image is FROM scratch and holds: the host's node binary, the shared libraries `ldd` lists for
# it and the dynamic loader (the "runtime" layer, identical for every version), the production
# node_modules from `npm ci --omit=dev` (the "deps" layer, identical for every version), and the app
# files with only that version's migrations plus build-info.json (version, maxMigration, flags).
# A version whose image already carries the same org.llmchat.content-hash label is skipped unless
# --force. Works in ${LLMCHAT_OPS_STATE:-<repo>/.state}/images; talks to the dockerd that
# scripts/env.sh points DOCKER_HOST at. Prints one line per version; exit 0 when all are built.
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
ROOT="$(dirname "$APP_DIR")"
# shellcheck source=../scripts/env.sh
source "$ROOT/scripts/env.sh"

FORCE=0
VERSIONS=()
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}"; exit 0 ;;
    v[0-9]|v[0-9][0-9]) VERSIONS+=("$arg") ;;
    *) echo "build-images: invalid version or option: $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[build-images] %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }
sha_of_stdin() { sha256sum | cut -d' ' -f1; }

command -v docker >/dev/null || { echo "build-images: docker CLI not found" >&2; exit 1; }
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "build-images: no Docker engine at DOCKER_HOST=$DOCKER_HOST (run scripts/services.sh up)" >&2
  exit 1
fi

# version -> "maxMigration<TAB>flags-json", from versions.json
declare -A MAXMIG FLAGS
while IFS=$'\t' read -r v m f; do
  MAXMIG[$v]="$m"; FLAGS[$v]="$f"
done < <(node -e '
  const v = require(process.argv[1]).versions;
  for (const [k, x] of Object.entries(v)) {
    if (!/^v[0-9]{1,2}$/.test(k) || !Number.isInteger(x.maxMigration)) throw new Error("bad entry " + k);
    console.log([k, x.maxMigration, JSON.stringify(x.flags || {})].join("\t"));
  }' "$APP_DIR/versions.json")
if ((${#VERSIONS[@]} == 0)); then
  mapfile -t VERSIONS < <(printf '%s\n' "${!MAXMIG[@]}" | sort -V)
fi
for v in "${VERSIONS[@]}"; do
  [[ -n "${MAXMIG[$v]:-}" ]] || { echo "build-images: unknown version $v (see app/versions.json)" >&2; exit 2; }
done

WORK="$LLMCHAT_OPS_STATE/images"
mkdir -p "$WORK"
exec 9>"$WORK/.lock"
flock 9   # one builder at a time per state dir

# ---------------------------------------------------------------- runtime: node + its libraries
NODE_BIN="$(readlink -f "$(command -v node)")"
mapfile -t LIBS < <(ldd "$NODE_BIN" | awk '
  $2 == "=>" && $3 ~ /^\// { print $3; next }
  $1 ~ /^\// { print $1 }')
((${#LIBS[@]} > 0)) || { echo "build-images: ldd found no libraries for $NODE_BIN" >&2; exit 1; }
runtime_stamp="$( { stat -L -c '%n %s %Y %i' "$NODE_BIN" "${LIBS[@]}"; ls -ld /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true; } | sha_of_stdin)"
RUNTIME="$WORK/runtime"
if [[ "$(cat "$WORK/runtime.stamp" 2>/dev/null || true)" != "$runtime_stamp" || ! -f "$WORK/runtime.hash" ]]; then
  t0=$(now_ms)
  rm -rf "$RUNTIME.tmp"
  mkdir -p "$RUNTIME.tmp/usr/bin" "$RUNTIME.tmp/etc" "$RUNTIME.tmp/tmp" "$RUNTIME.tmp/var/log/llmchat" "$RUNTIME.tmp/var/uploads/llmchat"
  chmod 1777 "$RUNTIME.tmp/tmp"
  cp -L --preserve=mode "$NODE_BIN" "$RUNTIME.tmp/usr/bin/node"
  for lib in "${LIBS[@]}"; do
    mkdir -p "$RUNTIME.tmp$(dirname "$lib")"
    cp -L --preserve=mode "$lib" "$RUNTIME.tmp$lib"
  done
  if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
    mkdir -p "$RUNTIME.tmp/etc/ssl/certs"
    cp -L /etc/ssl/certs/ca-certificates.crt "$RUNTIME.tmp/etc/ssl/certs/"
  fi
  printf 'root:x:0:0:root:/root:/usr/bin/node\nnobody:x:65534:65534:nobody:/nonexistent:/usr/bin/node\n' >"$RUNTIME.tmp/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$RUNTIME.tmp/etc/group"
  printf 'hosts: files dns\n' >"$RUNTIME.tmp/etc/nsswitch.conf"
  rm -rf "$RUNTIME"
  mv "$RUNTIME.tmp" "$RUNTIME"
  (cd "$RUNTIME" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha_of_stdin >"$WORK/runtime.hash"
  printf '%s\n' "$runtime_stamp" >"$WORK/runtime.stamp"
  log "runtime layer staged from $NODE_BIN ($(node -v)) + ${#LIBS[@]} libraries in $(( $(now_ms) - t0 )) ms"
fi
RUNTIME_HASH="$(cat "$WORK/runtime.hash")"

# ---------------------------------------------------------------- deps: npm ci --omit=dev
LOCK_HASH="$(cat "$APP_DIR/package.json" "$APP_DIR/package-lock.json" | sha_of_stdin)"
DEPS="$WORK/deps-$LOCK_HASH"
if [[ ! -f "$DEPS/.complete" ]]; then
  t0=$(now_ms)
  rm -rf "$DEPS"
  mkdir -p "$DEPS"
  cp "$APP_DIR/package.json" "$APP_DIR/package-lock.json" "$DEPS/"
  (cd "$DEPS" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >"$WORK/npm-ci.log" 2>&1) || {
    cat "$WORK/npm-ci.log" >&2; echo "build-images: npm ci failed" >&2; exit 1; }
  rm -f "$DEPS/package.json" "$DEPS/package-lock.json"
  touch "$DEPS/.complete"
  log "node_modules installed with npm ci --omit=dev in $(( $(now_ms) - t0 )) ms"
  # drop deps dirs of older lockfiles
  for d in "$WORK"/deps-*; do [[ "$d" == "$DEPS" ]] || rm -rf "$d"; done
fi

# ---------------------------------------------------------------- one image per version
build_version() {
  local v="$1" maxmig="${MAXMIG[$1]}" flags="${FLAGS[$1]}"
  local ctx="$WORK/ctx-$v" t0 app_hash content_hash existing old_id new_id
  t0=$(now_ms)
  rm -rf "$ctx"
  mkdir -p "$ctx/app/src" "$ctx/app/migrations" "$ctx/deps"
  cp -al "$RUNTIME" "$ctx/runtime"
  cp -al "$DEPS/node_modules" "$ctx/deps/node_modules"
  cp "$APP_DIR/package.json" "$APP_DIR/package-lock.json" "$APP_DIR/migrate.js" "$APP_DIR/healthcheck.js" "$ctx/app/"
  cp "$APP_DIR"/src/*.js "$ctx/app/src/"
  local f n found=0
  for f in "$APP_DIR"/migrations/[0-9][0-9][0-9]_*.sql; do
    n="$(basename "$f")"; n="${n%%_*}"
    if ((10#$n <= maxmig)); then cp "$f" "$ctx/app/migrations/"; found=1; fi
  done
  ((found)) || { echo "build-images: no migrations for $v" >&2; return 1; }

  cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY runtime/ /
COPY deps/ /app/
COPY app/ /app/
ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production APP_VERSION=$v
WORKDIR /app
EXPOSE 3001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 CMD ["node", "healthcheck.js"]
CMD ["node", "src/server.js"]
EOF
  app_hash="$(cd "$ctx/app" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha_of_stdin)"
  content_hash="$(printf '%s\n' "$v" "$flags" "$RUNTIME_HASH" "$LOCK_HASH" "$app_hash" "$(cat "$ctx/Dockerfile")" | sha_of_stdin)"
  printf '{"version":"%s","maxMigration":%d,"flags":%s,"contentHash":"%s"}\n' \
    "$v" "$maxmig" "$flags" "$content_hash" >"$ctx/app/build-info.json"

  old_id="$(docker image inspect --format '{{.Id}}' "llmchat-app:$v" 2>/dev/null || true)"
  existing="$(docker image inspect --format '{{index .Config.Labels "org.llmchat.content-hash"}}' "llmchat-app:$v" 2>/dev/null || true)"
  if ((FORCE == 0)) && [[ "$existing" == "$content_hash" ]]; then
    rm -rf "$ctx"
    echo "llmchat-app:$v up to date (content ${content_hash:0:12}, $(( $(now_ms) - t0 )) ms)"
    return 0
  fi

  if ! DOCKER_BUILDKIT=0 docker build --quiet --force-rm \
      --tag "llmchat-app:$v" \
      --label "org.llmchat.version=$v" \
      --label "org.llmchat.content-hash=$content_hash" \
      --label "org.llmchat.max-migration=$maxmig" \
      --label "org.llmchat.flags=$flags" \
      --label "org.opencontainers.image.title=llmchat-app" \
      "$ctx" >"$WORK/build-$v.log" 2>&1; then
    cat "$WORK/build-$v.log" >&2
    echo "build-images: docker build of llmchat-app:$v failed" >&2
    return 1
  fi
  new_id="$(docker image inspect --format '{{.Id}}' "llmchat-app:$v")"
  # the replaced image, if nothing else uses it, would only be left dangling
  if [[ -n "$old_id" && "$old_id" != "$new_id" ]]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
  rm -rf "$ctx"
  echo "llmchat-app:$v built ${new_id:7:12} (content ${content_hash:0:12}, $(( $(now_ms) - t0 )) ms)"
}

for v in "${VERSIONS[@]}"; do
  build_version "$v"
done
