# shellcheck shell=bash
# The `monitoring` component of scripts/services.sh (sourced by it; uses its helpers): Debian's Prometheus,
# Alertmanager and node-exporter running monitoring/'s files, wired to the llmchat-ops config.
#
#   up:     installs the packages when missing; writes the configs with scripts/monitoring-config.mjs from
#           monitoring/ and $LLMCHAT_OPS_CONFIG (default ops.config.yaml) into $STATE/monitoring/ (scrape targets =
#           the config's environments and worker metrics port, receiver URL and token = alertmanagerReceiver); starts
#           each daemon on 127.0.0.1 with its own data dir and pid file, or, when ours already runs, checks the new
#           config and reloads it (SIGHUP). A port held by something that is not ours is refused, not reused: it
#           would not run this configuration.
#   status: each daemon: up (pid) / DOWN.      stop: what these scripts started (pid files); data dirs stay.
#
# Ports: Prometheus on report.prometheusUrl's port (9090), Alertmanager $LLMCHAT_ALERTMANAGER_PORT (9093),
# node-exporter $LLMCHAT_NODE_EXPORTER_PORT (9100). Prometheus keeps $LLMCHAT_PROMETHEUS_RETENTION (default 100d):
# the monthly report reads the whole previous month, which Prometheus' own default (15d) would have dropped.
MON_DIR="$STATE/monitoring"
MON_CONFIG="${LLMCHAT_OPS_CONFIG:-$ROOT/ops.config.yaml}"
MON_RETENTION="${LLMCHAT_PROMETHEUS_RETENTION:-100d}"
MON_DAEMONS=(prometheus alertmanager node-exporter)
MONITORING_BINS=(prometheus promtool prometheus-alertmanager amtool prometheus-node-exporter)

monitoring_missing() { local b; for b in "${MONITORING_BINS[@]}"; do command -v "$b" >/dev/null || return 0; done; return 1; }
monitoring_install() {
  monitoring_missing || return 0
  apt_install prometheus prometheus-alertmanager prometheus-node-exporter ||
    { fail monitoring "apt-get install prometheus prometheus-alertmanager prometheus-node-exporter failed" "$LOGS/apt.log"; return 1; }
}

# The ports the generated config uses: from `monitoring-config.mjs` output, else the defaults (status/stop before
# any up). Sets MON_PORT_prometheus, MON_PORT_alertmanager, MON_PORT_node_exporter.
mon_ports_from() { # file of name=value lines
  local k v
  MON_PORT_prometheus="${LLMCHAT_PROMETHEUS_PORT:-9090}" MON_PORT_alertmanager="${LLMCHAT_ALERTMANAGER_PORT:-9093}" MON_PORT_node_exporter="${LLMCHAT_NODE_EXPORTER_PORT:-9100}"
  [[ -f "$1" ]] || return 0
  while IFS== read -r k v; do
    [[ "$v" =~ ^[0-9]{1,5}$ ]] || continue
    case "$k" in
      prometheus_port) MON_PORT_prometheus=$v ;;
      alertmanager_port) MON_PORT_alertmanager=$v ;;
      node_exporter_port) MON_PORT_node_exporter=$v ;;
    esac
  done <"$1"
}
mon_port() { local v="MON_PORT_${1//-/_}"; printf '%s' "${!v}"; }
mon_pidfile() { printf '%s/%s.pid' "$MON_DIR" "$1"; }
mon_ready_url() { # daemon: the URL that answers 200 once it serves
  case "$1" in
    node-exporter) printf 'http://127.0.0.1:%s/metrics' "$(mon_port "$1")" ;;
    *) printf 'http://127.0.0.1:%s/-/ready' "$(mon_port "$1")" ;;
  esac
}
mon_ready() { curl -fsS -o /dev/null --max-time 3 "$(mon_ready_url "$1")" 2>/dev/null; }
mon_ours() { local pid; pid="$(pidfile_pid "$(mon_pidfile "$1")")"; [[ -n "$pid" ]] && pid_alive "$pid"; }

mon_command() { # daemon: its command line
  local port; port="$(mon_port "$1")"
  case "$1" in
    prometheus)
      printf '%s\0' prometheus "--config.file=$MON_DIR/prometheus.yml" "--storage.tsdb.path=$MON_DIR/prometheus-data" \
        "--storage.tsdb.retention.time=$MON_RETENTION" "--web.listen-address=127.0.0.1:$port" ;;
    alertmanager) # --cluster.listen-address= : no gossip port (it would listen on every interface)
      printf '%s\0' prometheus-alertmanager "--config.file=$MON_DIR/alertmanager.yml" "--storage.path=$MON_DIR/alertmanager-data" \
        "--web.listen-address=127.0.0.1:$port" --cluster.listen-address= ;;
    node-exporter)
      # systemd: Debian's build turns it on, and it fails every scrape where systemd does not run
      printf '%s\0' prometheus-node-exporter "--web.listen-address=127.0.0.1:$port" --no-collector.systemd ;;
  esac
}

mon_start() { # daemon
  local d=$1 port pidfile log cmd=() pid
  port="$(mon_port "$d")" pidfile="$(mon_pidfile "$d")" log="$LOGS/$d.log"
  if mon_ours "$d"; then
    pid="$(pidfile_pid "$pidfile")"
    if [[ "$d" != node-exporter ]]; then kill -HUP "$pid" 2>/dev/null || true; fi
    wait_ready 30 "$pidfile" mon_ready "$d" || { fail "$d" "ours (pid $pid) runs but 127.0.0.1:$port does not answer" "$log"; return 1; }
    say "$d: up on 127.0.0.1:$port (already running, pid $pid$([[ "$d" == node-exporter ]] || printf '; config reloaded'))"
    return 0
  fi
  if port_open 127.0.0.1 "$port"; then
    fail "$d" "127.0.0.1:$port is held by something these scripts did not start (no live pid in $pidfile): it would not run this configuration; stop it, or move ours (report.prometheusUrl, LLMCHAT_ALERTMANAGER_PORT, LLMCHAT_NODE_EXPORTER_PORT)"
    return 1
  fi
  mapfile -d '' -t cmd < <(mon_command "$d")
  start_detached "$pidfile" "$log" "${cmd[@]}"
  wait_ready 60 "$pidfile" mon_ready "$d" || { fail "$d" "exited, or did not answer $(mon_ready_url "$d") within 60 s" "$log"; return 1; }
  say "$d: up on 127.0.0.1:$port (started, pid $(pidfile_pid "$pidfile"))"
}

monitoring_up() {
  local t0 out line rc=0 d
  t0="$(now_ms)"
  monitoring_install || return 1
  mkdir -p "$MON_DIR/prometheus-data" "$MON_DIR/alertmanager-data" "$LOGS"
  [[ -f "$ROOT/dist/src/common/config/index.js" ]] || (cd "$ROOT" && npx tsc -p tsconfig.json) ||
    { fail monitoring "building dist/ (for the config reader) failed"; return 1; }
  out="$(node "$ROOT/scripts/monitoring-config.mjs" --config "$MON_CONFIG" --out "$MON_DIR.new" --token-file "$MON_DIR/receiver.token" 2>&1)" ||
    { fail monitoring "could not write the configuration from $MON_CONFIG: $out"; rm -rf "$MON_DIR.new"; return 1; }
  # Check before anything sees it: a running Prometheus would ignore a bad file on reload, and keep the old one.
  promtool check config "$MON_DIR.new/prometheus.yml" >"$LOGS/monitoring-check.log" 2>&1 &&
    amtool check-config "$MON_DIR.new/alertmanager.yml" >>"$LOGS/monitoring-check.log" 2>&1 ||
    { fail monitoring "the generated configuration does not pass promtool/amtool" "$LOGS/monitoring-check.log"; return 1; }
  mv -f "$MON_DIR.new/prometheus.yml" "$MON_DIR.new/alertmanager.yml" "$MON_DIR/"
  [[ "$out" == *receiver_token=yes* ]] || rm -f "$MON_DIR/receiver.token"
  printf '%s\n' "$out" >"$MON_DIR/ports"
  rm -rf "$MON_DIR.new"
  mon_ports_from "$MON_DIR/ports"
  while IFS= read -r line; do [[ "$line" != note=* ]] || say "monitoring: NOTE: ${line#note=}"; done <<<"$out"
  # node-exporter first: Prometheus scrapes it; Alertmanager before Prometheus sends to it.
  for d in node-exporter alertmanager prometheus; do mon_start "$d" || rc=1; done
  ((rc == 0)) || return 1
  say "monitoring: Prometheus http://127.0.0.1:$MON_PORT_prometheus, Alertmanager http://127.0.0.1:$MON_PORT_alertmanager, node-exporter :$MON_PORT_node_exporter ($(since "$t0"); config $MON_CONFIG, files in $MON_DIR)"
}
monitoring_status() {
  local d rc=0 port
  mon_ports_from "$MON_DIR/ports"
  for d in "${MON_DAEMONS[@]}"; do
    port="$(mon_port "$d")"
    if mon_ready "$d"; then say "$d: up on 127.0.0.1:$port$(owner "$(mon_pidfile "$d")")"
    else say "$d: DOWN (nothing answers $(mon_ready_url "$d"))"; rc=1; fi
  done
  return "$rc"
}
monitoring_stop() {
  local d
  for d in prometheus alertmanager node-exporter; do stop_pidfile "$d" "$(mon_pidfile "$d")"; done
}
