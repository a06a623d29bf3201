/**
 * A stand-in for the front's nginx binary, in front of the real one (deploy.front.nginx): a mode written with
 * `mode()` makes the next `-s reload` go wrong once, in a way a real front can —
 *   `refuse`: nginx refuses the reload (exit 1, nothing reloaded);
 *   `kill-new <compose project>`: the slot the new config points at is killed just before the reload (the new
 *     slot dies at the switch);
 *   `hang <file>`: the reload is done, `<file>` is created, and the command then hangs (a worker killed there is
 *     killed between the reload and the check).
 * Every other call is the real nginx.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

export async function nginxStandIn(dir: string): Promise<{ bin: string; mode: (m: string) => Promise<void> }> {
  await mkdir(dir, { recursive: true });
  const bin = path.join(dir, 'nginx');
  const modeFile = path.join(dir, 'mode');
  await writeFile(
    bin,
    `#!/usr/bin/env bash
set -u
mode="$(cat '${modeFile}' 2>/dev/null || true)"
if [[ " $* " == *" -s reload "* && -n "$mode" ]]; then
  rm -f '${modeFile}'
  conf=""; prev=""
  for a in "$@"; do [[ "$prev" == "-c" ]] && conf="$a"; prev="$a"; done
  case "$mode" in
    refuse) echo "nginx: [alert] kill(1234, 1) failed (1: Operation not permitted)" >&2; exit 1 ;;
    kill-new*)
      slot="$(sed -n 's/^# serving slot: \\([a-z]*\\) .*/\\1/p' "$conf")"
      project="\${mode#kill-new }"
      docker ps -q --filter "label=com.docker.compose.project=$project-$slot" | xargs -r docker kill >/dev/null ;;
    hang*)
      nginx "$@" || exit $?
      touch "\${mode#hang }"
      sleep 60
      exit 0 ;;
  esac
fi
exec nginx "$@"
`,
  );
  await chmod(bin, 0o755);
  return { bin, mode: (m) => writeFile(modeFile, m) };
}
