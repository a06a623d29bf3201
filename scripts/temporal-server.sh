# shellcheck shell=bash
# Sourced by scripts/services.sh: the production Temporal server (go.temporal.io/server) with PostgreSQL persistence,
# the second mode of the `temporal` service:   LLMCHAT_TEMPORAL_MODE=server scripts/services.sh up temporal
#
#   temporalserver   build only: `go install go.temporal.io/server/cmd/server@v1.32.2` and `…/cmd/tools/sql` with
#                    GOTOOLCHAIN=go1.27.3 into .tools/temporal-server/bin (≈ 10+ min on 2 cores, once), and the
#                    module's PostgreSQL schema into .tools/temporal-server/schema.
#   temporal (mode server)  the two databases on the local PostgreSQL (role temporal), schema created/updated with
#                    the sql tool, the server started on moved ports (frontend $TEMPORAL_SERVER_ADDRESS, default
#                    127.0.0.1:7433; see temporal_server_config), namespace `default` and our search attributes.
# The dev server (mode dev, the default) keeps 127.0.0.1:7233 and its Web UI; the two can run side by side.
TEMPORAL_SERVER_VERSION=v1.32.2 TEMPORAL_SERVER_GO=go1.27.3
TS_DIR="$ROOT/.tools/temporal-server" TS_STATE="$STATE/temporal-server"
TS_PIDFILE="$TS_STATE/server.pid"
TEMPORAL_SERVER_ADDRESS="${TEMPORAL_SERVER_ADDRESS:-127.0.0.1:7433}"
[[ "${LLMCHAT_TEMPORAL_MODE:-dev}" != server ]] || TEMPORAL_SERVER_ADDRESS="$TEMPORAL_ADDRESS" # env.sh chose it
TEMPORAL_DB_PASSWORD="${TEMPORAL_DB_PASSWORD:-temporal-demo}"

temporalserver_built() { [[ -x "$TS_DIR/bin/server" && -x "$TS_DIR/bin/sql" && -d "$TS_DIR/schema/postgresql/v12/temporal/versioned" ]]; }
temporalserver_up() {
  local t0 log="$LOGS/install-temporal-server.log" go mod
  t0="$(now_ms)"
  if temporalserver_built; then say "temporalserver: built ($TEMPORAL_SERVER_VERSION, $TS_DIR/bin)"; return 0; fi
  go="$(command -v go || echo /usr/local/go/bin/go)"
  [[ -x "$go" ]] || { fail temporalserver "go not found (needed to build the Temporal server)"; return 1; }
  say "temporalserver: building go.temporal.io/server $TEMPORAL_SERVER_VERSION with $TEMPORAL_SERVER_GO (≈ 10+ min; log: $log)"
  mkdir -p "$TS_DIR/bin"
  { GOTOOLCHAIN=$TEMPORAL_SERVER_GO GOBIN="$TS_DIR/bin" nice -n 10 "$go" install "go.temporal.io/server/cmd/server@$TEMPORAL_SERVER_VERSION" &&
    GOTOOLCHAIN=$TEMPORAL_SERVER_GO GOBIN="$TS_DIR/bin" nice -n 10 "$go" install "go.temporal.io/server/cmd/tools/sql@$TEMPORAL_SERVER_VERSION"; } >>"$log" 2>&1 9>&- ||
    { fail temporalserver "go install failed" "$log"; return 1; }
  mod="$(GOTOOLCHAIN=$TEMPORAL_SERVER_GO "$go" env GOMODCACHE)/go.temporal.io/server@$TEMPORAL_SERVER_VERSION"
  rm -rf "$TS_DIR/schema" && mkdir -p "$TS_DIR/schema/postgresql" && cp -r "$mod/schema/postgresql/v12" "$TS_DIR/schema/postgresql/" && chmod -R u+w "$TS_DIR/schema" ||
    { fail temporalserver "could not copy the schema from $mod"; return 1; }
  say "temporalserver: built ($TEMPORAL_SERVER_VERSION, $(since "$t0"))"
}
temporalserver_status() {
  if temporalserver_built; then say "temporalserver: built ($TS_DIR/bin)"; else say "temporalserver: NOT built (scripts/services.sh up temporalserver)"; return 1; fi
}
temporalserver_stop() { say "temporalserver: nothing runs (the server is LLMCHAT_TEMPORAL_MODE=server scripts/services.sh up temporal)"; }

# Ports: frontend gRPC = the address's port P, history P+1, matching P+2, worker P+6; membership +100; frontend HTTP
# P+10; metrics P+67 (127.0.0.1 only). With the default 7433: 7433-7439, 7533-7539, 7443, 7500.
temporal_server_config() {
  local p="${TEMPORAL_SERVER_ADDRESS##*:}" ds
  ds() { # datastore name, database
    cat <<EOF
    $1:
      sql:
        pluginName: postgres12
        databaseName: $2
        connectAddr: "127.0.0.1:$PGPORT"
        connectProtocol: tcp
        user: temporal
        password: "$TEMPORAL_DB_PASSWORD"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
EOF
  }
  cat <<EOF
# written by scripts/services.sh (LLMCHAT_TEMPORAL_MODE=server); the shape of the module's config/development-postgres12.yaml
log: { stdout: true, level: warn, format: json }
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: 4
  datastores:
$(ds default temporal)
$(ds visibility temporal_visibility)
global:
  membership: { maxJoinDuration: 30s, broadcastAddress: 127.0.0.1 }
  metrics: { prometheus: { framework: tally, timerType: histogram, listenAddress: "127.0.0.1:$((p + 67))" } }
services:
  frontend: { rpc: { grpcPort: $p, membershipPort: $((p + 100)), bindOnLocalHost: true, httpPort: $((p + 10)) } }
  history: { rpc: { grpcPort: $((p + 1)), membershipPort: $((p + 101)), bindOnLocalHost: true } }
  matching: { rpc: { grpcPort: $((p + 2)), membershipPort: $((p + 102)), bindOnLocalHost: true } }
  worker: { rpc: { grpcPort: $((p + 6)), membershipPort: $((p + 106)), bindOnLocalHost: true } }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active: { enabled: true, initialFailoverVersion: 1, rpcName: frontend, rpcAddress: "127.0.0.1:$p", httpAddress: "127.0.0.1:$((p + 10))" }
dcRedirectionPolicy: { policy: noop }
dynamicConfigClient: { filepath: "$TS_STATE/dynamicconfig.yaml", pollInterval: 10s }
EOF
}

temporal_server_schema() { # role + the two databases, then create/setup/update the schema (idempotent)
  local db dir sqlt=("$TS_DIR/bin/sql" --plugin postgres12 --ep 127.0.0.1 -p "$PGPORT" -u temporal --pw "$TEMPORAL_DB_PASSWORD")
  TEMPORAL_DB_PASSWORD="$TEMPORAL_DB_PASSWORD" "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PGPORT" -U postgres -d postgres <<'SQL' || return 1
SET client_min_messages TO warning;
\getenv pw TEMPORAL_DB_PASSWORD
SELECT format('CREATE ROLE temporal LOGIN CREATEDB PASSWORD %L', :'pw') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'temporal') \gexec
ALTER ROLE temporal LOGIN CREATEDB PASSWORD :'pw';
SQL
  for db in temporal temporal_visibility; do
    dir=temporal; [[ "$db" == temporal_visibility ]] && dir=visibility
    "${sqlt[@]}" --db "$db" create >/dev/null 2>&1 || true # exists already: fine
    "${sqlt[@]}" --db "$db" setup-schema -v 0.0 || true # a second time it finds its tables: fine, update-schema decides
    "${sqlt[@]}" --db "$db" update-schema -d "$TS_DIR/schema/postgresql/v12/$dir/versioned" || return 1
  done
}

temporal_server_ready() {
  [[ -x "$TEMPORAL_CLI_PATH" ]] && [[ "$(timeout 5 "$TEMPORAL_CLI_PATH" operator cluster health \
    --address "$TEMPORAL_SERVER_ADDRESS" --command-timeout 3s 2>/dev/null)" == *SERVING* ]]
}
temporal_server_up() {
  local t0 log="$LOGS/temporal-server.log" a args=() i
  t0="$(now_ms)"
  temporalserver_up || return 1
  [[ -x "$TEMPORAL_CLI_PATH" ]] || temporal_install || { fail temporal "could not install the temporal CLI" "$LOGS/install-temporal.log"; return 1; }
  mkdir -p "$TS_STATE"
  if ! temporal_server_ready; then
    ! port_open "${TEMPORAL_SERVER_ADDRESS%:*}" "${TEMPORAL_SERVER_ADDRESS##*:}" ||
      { fail temporal "$TEMPORAL_SERVER_ADDRESS is taken by something that is not a healthy Temporal server"; return 1; }
    temporal_server_schema >>"$log" 2>&1 || { fail temporal "could not create the Temporal databases/schema on PostgreSQL :$PGPORT" "$log"; return 1; }
    temporal_server_config >"$TS_STATE/config.yaml"
    printf 'system.forceSearchAttributesCacheRefreshOnRead:\n  - value: true\n    constraints: {}\n' >"$TS_STATE/dynamicconfig.yaml"
    start_detached "$TS_PIDFILE" "$log" "$TS_DIR/bin/server" --config-file "$TS_STATE/config.yaml" --allow-no-auth start
    wait_ready 90 "$TS_PIDFILE" temporal_server_ready ||
      { fail temporal "server exited, or was not healthy on $TEMPORAL_SERVER_ADDRESS within 90 s" "$log"; return 1; }
  fi
  for ((i = 0; i < 30; i++)); do # the namespace registry refreshes every few seconds after a start
    timeout 30 "$TEMPORAL_CLI_PATH" operator namespace describe --address "$TEMPORAL_SERVER_ADDRESS" --namespace default >/dev/null 2>&1 && break
    timeout 30 "$TEMPORAL_CLI_PATH" operator namespace create --address "$TEMPORAL_SERVER_ADDRESS" --namespace default --retention 72h >>"$log" 2>&1 || sleep 1
  done
  for a in "${SEARCH_ATTRIBUTES[@]}"; do args+=(--name "$a" --type Keyword); done
  for ((i = 0; i < 30; i++)); do
    timeout 30 "$TEMPORAL_CLI_PATH" operator search-attribute create --address "$TEMPORAL_SERVER_ADDRESS" --namespace default "${args[@]}" >>"$log" 2>&1 && break
    sleep 1
  done
  ((i < 30)) || { fail temporal "could not register namespace default / search attributes" "$log"; return 1; }
  say "temporal: server (PostgreSQL) up on $TEMPORAL_SERVER_ADDRESS$(owner "$TS_PIDFILE") ($(since "$t0")); no Web UI in this mode"
}
temporal_server_status() {
  if temporal_server_ready; then say "temporal: server (PostgreSQL) up on $TEMPORAL_SERVER_ADDRESS$(owner "$TS_PIDFILE")"
  else say "temporal: server DOWN (not serving on $TEMPORAL_SERVER_ADDRESS)"; return 1; fi
}
temporal_server_stop() { stop_pidfile "temporal server" "$TS_PIDFILE"; }
