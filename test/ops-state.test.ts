/**
 * The shared ops state (src/common/postgres/ops-state.ts) on the real PostgreSQL: a round trip, concurrent changes of one
 * row serialised by its advisory lock (each on its own connection, as two workers would), a hostile row refused
 * with its name, the upgrade from the old file, fault detection falling back to this host's file when the
 * state database is unreachable, and a state session terminated in the middle of a change.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { z } from 'zod';
import type { EnvironmentConfig } from '../src/common/config/index.js';
import { loadReleases, readReleases, releaseFile, updateReleases } from '../src/activities/release/release-store.js';
import { changeFaultState } from '../src/activities/faults/shared-state.js';
import { faultStateKey, faultStatePath } from '../src/activities/faults/state-file.js';
import { OPS_DATABASE, readOpsState, updateOpsState } from '../src/common/postgres/ops-state.js';
import { stateDirOf } from '../src/common/config/index.js';
import { PG, tempDir } from './support/services.js';
import { testConfig } from './support/temporal.js';

process.env.LLMCHAT_DB_PASSWORD ??= PG.password;

/** A fresh environment: its own (never created) database name keys its rows, its own dirs hold the files. */
const made: string[] = [];
function freshEnv(): EnvironmentConfig {
  const logs = tempDir('ops-state');
  const cfg = testConfig({ address: '127.0.0.1:1', taskQueue: 'unused', environments: { production: { url: 'http://127.0.0.1:1', logs, database: `ops_${randomUUID().slice(0, 8)}` } } });
  const env = cfg.environments.production as EnvironmentConfig;
  made.push(env.database.name);
  return env;
}

const release = (version: string) => ({ version, image: `llmchat-app:${version}`, slot: 'blue' as const, port: 18081, migrationLevel: 1, deployedAt: new Date().toISOString(), requestedBy: 'test', workflowId: 'w', runId: `r-${version}` });

describe('shared ops state (PostgreSQL)', { timeout: 120_000 }, () => {
  after(async () => {
    const c = new pg.Client({ ...PG, database: OPS_DATABASE });
    await c.connect();
    await c.query('DELETE FROM ops_state WHERE database_name = ANY($1)', [made]);
    await c.end();
  });

  it('round trip: a change is read back by a fresh read and mirrored to the file', async () => {
    const env = freshEnv();
    await updateReleases(env, 'production', (s) => {
      s.current = release('v1.0.0');
    });
    assert.equal((await loadReleases(env, 'production')).current?.version, 'v1.0.0');
    assert.equal((await readReleases(env.deploy.stateDir as string, 'production')).current?.version, 'v1.0.0', 'the file mirror');
    const c = new pg.Client({ ...PG, database: OPS_DATABASE });
    await c.connect();
    try {
      const r = await c.query('SELECT key FROM ops_state WHERE environment = $1 AND database_name = $2', ['production', env.database.name]);
      assert.deepEqual(r.rows, [{ key: 'releases' }]);
    } finally {
      await c.end();
    }
  });

  it('concurrent read-modify-write cycles of one row, each on its own connection, serialise (none is lost)', async () => {
    const env = freshEnv();
    const key = { environment: 'production', key: `counter-${randomUUID()}` };
    const opts = { schema: z.strictObject({ n: z.number(), by: z.array(z.number()) }), initial: () => ({ n: 0, by: [] as number[] }) };
    await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        updateOpsState(env, key, opts, async (v) => {
          const seen = v.n;
          await new Promise((r) => setTimeout(r, 30)); // a lost update without the lock
          v.n = seen + 1;
          v.by.push(i);
        }),
      ),
    );
    const v = await readOpsState(env, key, opts);
    assert.equal(v.n, 12);
    assert.equal(new Set(v.by).size, 12);
  });

  it('a row that fails its schema is an error naming the row, and is never replaced', async () => {
    const env = freshEnv();
    await updateReleases(env, 'production', () => {}); // creates database, table and row
    const c = new pg.Client({ ...PG, database: OPS_DATABASE });
    await c.connect();
    try {
      await c.query(`UPDATE ops_state SET value = '{"schema":1,"environment":"production","current":{"version":"x;rm -rf /"},"previous":null,"lease":null,"history":[]}' WHERE environment = 'production' AND database_name = $1 AND key = 'releases'`, [env.database.name]);
      const name = new RegExp(`ops_state\\(environment=production, database=${env.database.name}, key=releases\\)`);
      await assert.rejects(loadReleases(env, 'production'), (err: Error) => err.name === 'OpsStateError' && name.test(err.message) && /current/.test(err.message));
      await assert.rejects(updateReleases(env, 'production', (s) => void (s.lease = null)), name);
      const r = await c.query(`SELECT value->'current'->>'version' AS v FROM ops_state WHERE database_name = $1`, [env.database.name]);
      assert.equal(r.rows[0].v, 'x;rm -rf /', 'the row is left for the operator');
    } finally {
      await c.end();
    }
  });

  it('upgrade: a missing row is read once from the old file; after that the row wins', async () => {
    const env = freshEnv();
    const dir = env.deploy.stateDir as string;
    await mkdir(dir, { recursive: true });
    const old = { schema: 1, environment: 'production', current: release('v0.9.0'), previous: null, lease: null, history: [] };
    await writeFile(releaseFile(dir), JSON.stringify(old));
    assert.equal((await loadReleases(env, 'production')).current?.version, 'v0.9.0');
    await updateReleases(env, 'production', (s) => {
      s.previous = s.current;
      s.current = release('v1.0.0');
    });
    await writeFile(releaseFile(dir), JSON.stringify({ ...old, current: release('v0.1.0') })); // a stale file
    const now = await loadReleases(env, 'production');
    assert.equal(now.current?.version, 'v1.0.0');
    assert.equal(now.previous?.version, 'v0.9.0');
  });

  it('fault state: with the state database unreachable, this host\'s file is used, with a warning', async () => {
    const env = freshEnv();
    const key = faultStateKey('production', env);
    const validate = (v: unknown) => (Array.isArray(v) ? (v as number[]) : undefined);
    const warnings: string[] = [];
    const warn = (m: string) => void warnings.push(m);
    assert.equal(await changeFaultState(env, key, 'recovery-ledger', validate, async (cur) => ({ next: [...(cur ?? []), 1], result: cur?.length ?? 0 }), warn), 0);
    assert.equal(warnings.length, 0);
    const down: EnvironmentConfig = { ...env, database: { ...env.database, port: 1 } };
    const seen = await changeFaultState(down, key, 'recovery-ledger', validate, async (cur) => ({ next: [...(cur ?? []), 2], result: cur }), warn);
    assert.deepEqual(seen, [1], 'the fallback starts from the mirror of the last shared value');
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]), /unreachable; using this host's fault-state file/);
    const file = JSON.parse(await readFile(faultStatePath(stateDirOf(env), key, 'recovery-ledger'), 'utf8')) as { data: number[] };
    assert.deepEqual(file.data, [1, 2]);
    assert.ok(path.isAbsolute(faultStatePath(stateDirOf(env), key, 'recovery-ledger')));
  });
  it('a state session terminated in the middle of a change: nothing is written, the row\'s lock is freed, the next change goes through', async () => {
    const env = freshEnv();
    const opts = { schema: z.object({ n: z.number() }), initial: () => ({ n: 0 }) };
    const k = { environment: 'production', key: 'terminated' };
    await updateOpsState(env, k, opts, (v) => {
      v.n = 1;
    });
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    let resume!: () => void;
    const held = new Promise<void>((r) => (resume = r));
    const doomed = updateOpsState(env, k, opts, async (v) => {
      v.n = 99;
      entered();
      await held;
    });
    await inside;
    // The session holding this row's advisory lock (the same key ops-state.ts locks), terminated as a DBA or a
    // failover would, between the read and the write of the change.
    const admin = new pg.Client({ ...PG, database: OPS_DATABASE });
    await admin.connect();
    try {
      const { rows } = await admin.query<{ pid: number; ok: boolean }>(
        `SELECT l.pid, pg_terminate_backend(l.pid) AS ok FROM pg_locks l
         WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)`,
        [`llmchat-ops ops_state\n${k.environment}\n${env.database.name}\n${k.key}`],
      );
      assert.equal(rows.length, 1, 'one session holds the row\'s lock');
      assert.equal(rows[0]!.ok, true);
    } finally {
      await admin.end();
    }
    resume();
    await assert.rejects(doomed, /terminat|Connection|closed/i);
    assert.deepEqual(await readOpsState(env, k, opts), { n: 1 }, 'the interrupted change wrote nothing');
    const t0 = Date.now();
    await updateOpsState(env, k, opts, (v) => {
      v.n += 1;
    });
    assert.ok(Date.now() - t0 < 5000, `the next change did not wait for a lock left behind (${Date.now() - t0} ms)`);
    assert.deepEqual(await readOpsState(env, k, opts), { n: 2 });
  });
});
