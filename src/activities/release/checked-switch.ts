/**
 * A checked switch of the front, which always leaves a serving app (issue 15). Before the reload the switch is
 * recorded as in flight (`<deploy.stateDir>/front-switch.json`: from which slot to which, when, and where the
 * front's access log stood); after the reload the front itself is asked, over fresh connections, which config and
 * which slot answered (X-Llmchat-Slot, X-Llmchat-Served-By) and which version they serve. Any failure from the
 * record on — the reload refused, the new slot not answering through the front, another version answering — puts
 * the front back on the slot that served before at once, checks that through the front (healthy, previous
 * version), counts the requests the front failed meanwhile in its access log, and only then reports. A record
 * left behind (the worker died between the reload and the check) is found by the next attempt, by `restoreFront`
 * and by the next release's plan, and the front goes back before anything else.
 */
import { open, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from '../../common/durable-file.js';
import { z } from 'zod';
import type { EnvironmentConfig } from '../../common/config/index.js';
import { readOpsState, transactOpsState, type OpsRowKey, type OpsRowOptions } from '../../common/postgres/ops-state.js';
import { ENDPOINTS } from '../../common/health.js';
import { accessLog, applyFront, configuredUpstream, freshGet, type FrontSpec } from './nginx-front.js';

const slotRef = z.strictObject({ slot: z.enum(['blue', 'green', 'main']), port: z.number().int().min(1).max(65535), version: z.string() });
export type SlotRef = z.infer<typeof slotRef>;

const recordSchema = z.strictObject({
  schema: z.literal(1),
  workflowId: z.string(),
  runId: z.string(),
  from: slotRef.nullable(),
  to: slotRef,
  startedAt: z.string(),
  reloadedAt: z.string().optional(),
  /** Size of the front's access log when the switch began: the failed requests are counted from there. */
  accessLogOffset: z.number().int().min(0),
});
export type SwitchRecord = z.infer<typeof recordSchema>;

export const switchRecordFile = (stateDir: string) => path.join(stateDir, 'front-switch.json');

/** The switch in flight, if any. A file that does not parse is an error (never taken for "no switch"). */
export async function readSwitchRecord(stateDir: string): Promise<SwitchRecord | undefined> {
  let text: string;
  try {
    text = await readFile(switchRecordFile(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = recordSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(`the switch record ${switchRecordFile(stateDir)} is unreadable: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** Atomic replace, fsynced (file and directory) before the reload it announces. */
export async function writeSwitchRecord(stateDir: string, record: SwitchRecord): Promise<void> {
  await replaceFileDurably(switchRecordFile(stateDir), `${JSON.stringify(recordSchema.parse(record), null, 2)}\n`, { syncDir: true });
}

export async function clearSwitchRecord(stateDir: string): Promise<void> {
  await rm(switchRecordFile(stateDir), { force: true });
}

/**
 * The switch record shared by every worker (row `front-switch` in src/common/postgres/ops-state.ts; null: none in
 * flight). The file stays its mirror and is read once on upgrade.
 */
function switchRow(env: EnvironmentConfig, environment: string): [OpsRowKey, OpsRowOptions<SwitchRecord | null>] {
  const stateDir = env.deploy.stateDir as string;
  return [
    { environment, key: 'front-switch' },
    {
      schema: recordSchema.nullable(),
      initial: () => null,
      legacy: async () => (await readSwitchRecord(stateDir)) ?? undefined,
      mirror: (r) => (r ? writeSwitchRecord(stateDir, r) : clearSwitchRecord(stateDir)),
    },
  ];
}

export async function loadSwitchRecord(env: EnvironmentConfig, environment: string): Promise<SwitchRecord | undefined> {
  const [key, opts] = switchRow(env, environment);
  return (await readOpsState(env, key, opts)) ?? undefined;
}

/** Records the switch (or, with null, its end) in one locked transaction; the mirror is fsynced before commit. */
export async function saveSwitchRecord(env: EnvironmentConfig, environment: string, record: SwitchRecord | null): Promise<void> {
  const [key, opts] = switchRow(env, environment);
  await transactOpsState(env, key, opts, () => ({ next: record, result: undefined }));
}

export function describeRecord(r: SwitchRecord): string {
  return `a switch of the front from ${r.from ? `${r.from.version} (slot ${r.from.slot})` : 'nothing'} to ${r.to.version} (slot ${r.to.slot}) by workflow ${r.workflowId} (run ${r.runId}), begun ${r.startedAt}${r.reloadedAt ? `, nginx reloaded ${r.reloadedAt}` : ''}, did not finish`;
}

export async function accessLogSize(spec: FrontSpec): Promise<number> {
  return stat(accessLog(spec)).then((s) => s.size, () => 0);
}

/** Requests the front answered with 5xx (or could not answer) since `offset` of its access log, and all of them. */
export async function failedSince(spec: FrontSpec, offset: number): Promise<{ failed: number; total: number }> {
  let text = '';
  try {
    const fh = await open(accessLog(spec), 'r');
    try {
      const { size } = await fh.stat();
      const from = size >= offset ? offset : 0; // reopened/rotated meanwhile: all of the new file
      const buf = Buffer.alloc(Math.min(size - from, 64 * 1024 * 1024));
      await fh.read(buf, 0, buf.length, from);
      text = buf.toString('utf8');
    } finally {
      await fh.close();
    }
  } catch {
    return { failed: 0, total: 0 };
  }
  let failed = 0;
  let total = 0;
  for (const line of text.split('\n')) {
    const m = /" (\d{3}) /.exec(line);
    if (!m) continue;
    total++;
    if (Number(m[1]) >= 500 || m[1] === '499') failed++;
  }
  return { failed, total };
}

interface Answer {
  status?: number;
  version?: string;
  /** The slot of the config whose worker answered. */
  slot?: string;
  /** The slot that answered behind nginx (none: no upstream answered). */
  servedBy?: string;
  error?: string;
}

async function ask(env: EnvironmentConfig, pathname: string, timeoutMs: number): Promise<Answer> {
  try {
    const r = await freshGet(new URL(pathname, env.url).toString(), timeoutMs);
    let version: string | undefined;
    if (pathname === env.deploy.versionPath && r.status === 200) {
      try {
        const v = (JSON.parse(r.body) as { version?: unknown }).version;
        version = typeof v === 'string' ? v : JSON.stringify(v);
      } catch {
        version = undefined;
      }
    }
    const h = (name: string) => (typeof r.headers[name] === 'string' ? (r.headers[name] as string) : undefined);
    return { status: r.status, ...(version !== undefined ? { version } : {}), ...(h('x-llmchat-slot') ? { slot: h('x-llmchat-slot') } : {}), ...(h('x-llmchat-served-by') ? { servedBy: h('x-llmchat-served-by') } : {}) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** What the front serves now, in words: the config (slot) that answered, the slot behind it and the version. */
export async function frontServes(env: EnvironmentConfig): Promise<string> {
  const a = await ask(env, env.deploy.versionPath, 2000);
  if (a.error) return `the front did not answer (${a.error})`;
  return `the front answered from slot ${a.slot ?? '(unknown)'}${a.servedBy && a.servedBy !== a.slot ? ` (served by slot ${a.servedBy})` : ''} with ${a.version ?? `HTTP ${a.status}`}`;
}

export type CheckResult = { ok: true; afterMs: number } | { ok: false; problem: string; afterMs: number };

/**
 * Asks the front until `successes` answers in a row come from `want`'s config and slot with `want`'s version, and
 * then its health endpoints answer healthy from that slot. Answers of the config before the reload (an old nginx
 * worker finishing) are waited out for `graceMs`; any other wrong answer fails at once — nothing is retried while
 * an unverified build serves.
 */
export async function checkThroughFront(env: EnvironmentConfig, want: SlotRef, opts: { graceMs: number; successes: number; timeoutMs?: number }): Promise<CheckResult> {
  const started = Date.now();
  const timeout = opts.timeoutMs ?? 2000;
  const fail = (problem: string): CheckResult => ({ ok: false, problem, afterMs: Date.now() - started });
  const judge = (a: Answer, what: string): string | 'old' | undefined => {
    if (a.error) return `the front did not answer ${what} (${a.error})`;
    if (a.slot !== want.slot) return 'old';
    if (a.servedBy !== want.slot) {
      return `slot ${want.slot} did not answer through the front (${a.servedBy && a.servedBy !== 'none' ? `nginx fell back to slot ${a.servedBy}` : 'no slot answered'}; ${what} → HTTP ${a.status})`;
    }
    if (a.status === undefined || a.status >= 400) return `${what} through the front answered HTTP ${a.status}`;
    return undefined;
  };
  let streak = 0;
  for (;;) {
    const a = await ask(env, env.deploy.versionPath, timeout);
    const bad = judge(a, `GET ${env.deploy.versionPath}`);
    if (bad === 'old') {
      streak = 0;
      if (Date.now() - started > opts.graceMs) return fail(`the front still answered from slot ${a.slot ?? '(unknown)'} ${Date.now() - started} ms after the reload (nginx did not apply the new config)`);
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    if (bad) return fail(bad);
    if (a.version !== want.version) return fail(`it served ${a.version}'s build (GET ${env.deploy.versionPath} reported ${JSON.stringify(a.version)}, not ${want.version})`);
    if (++streak < opts.successes) continue;
    for (const p of Object.values(ENDPOINTS)) {
      for (;;) {
        const h = await ask(env, p, timeout);
        const hb = judge(h, `GET ${p}`);
        // Right after a reload an old nginx worker may still take a new connection: asked again, within the grace.
        if (hb === 'old' && Date.now() - started <= opts.graceMs) continue;
        if (hb === 'old') return fail(`the front still answered GET ${p} from slot ${h.slot ?? '(unknown)'} ${Date.now() - started} ms after the reload`);
        if (hb) return fail(hb);
        break;
      }
    }
    return { ok: true, afterMs: Date.now() - started };
  }
}

/**
 * Points the front back at `to` (the slot that served before) and checks through the front that it serves
 * healthy with `to`'s version. Throws when it does not.
 */
export async function putFrontBack(env: EnvironmentConfig, spec: FrontSpec, to: SlotRef): Promise<{ at: string; afterMs: number }> {
  await applyFront(spec, to.port, to.slot);
  const at = new Date().toISOString();
  const c = await checkThroughFront(env, to, { graceMs: 5000, successes: 3 });
  if (!c.ok) {
    const now = await configuredUpstream(spec);
    throw new Error(`putting the front back on ${to.version} (slot ${to.slot}) FAILED at ${at}: ${c.problem}; the front's config points at slot ${now?.slot ?? '(unreadable)'}`);
  }
  return { at, afterMs: c.afterMs };
}
