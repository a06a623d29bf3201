#!/usr/bin/env bash
# Generates the bearer token of llmchat-ops' Alertmanager receiver (alertmanagerReceiver.tokenFile in
# ops.config.yaml), once: 32 random bytes as 64 hex characters, mode 0600, written under a temporary name and
# renamed. An existing token is kept (run it as often as you like; delete the file to rotate, then restart the
# worker and reload Alertmanager). Alertmanager sends the same file (credentials_file in monitoring/alertmanager).
#   scripts/receiver-token.sh [file]      (default: $LLMCHAT_OPS_STATE/alertmanager-receiver.token)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
file="${1:-${LLMCHAT_OPS_STATE:-$ROOT/.state}/alertmanager-receiver.token}"
if [[ -L "$file" ]]; then echo "receiver-token: $file is a symlink; refusing" >&2; exit 1; fi
if [[ -f "$file" && -s "$file" ]]; then
  chmod 600 "$file"
  exit 0
fi
mkdir -p "$(dirname "$file")"
umask 077
tmp="$(mktemp "$(dirname "$file")/.receiver-token.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$tmp"
echo >>"$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$file"
trap - EXIT
echo "receiver-token: generated $file"
