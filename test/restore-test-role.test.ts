/**
 * The verification restore test runs a dump as the restricted role: a function planted in the dump (called from a
 * CHECK constraint, so it runs for every restored row) tries to change the app role, run a program, load dblink
 * and SET ROLE to the app role. It runs — we see its one permitted effect, on the restricted role itself, which
 * the next run resets — and changes nothing outside the scratch database. Real PostgreSQL, real pg_dump/pg_restore.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createActivities } from '../src/activities/index.js';
import { makeBackupId } from '../src/activities/backup/ids.js';
import { resetRestoreTestRole } from '../src/activities/backup/restore-test-role.js';
import { query, seedFixture, type Fixture } from './support/backup-fixture.js';
import { PG } from './support/services.js';
import { testConfig } from './support/temporal.js';

const ROLE = 'llmchat_restore_test';
const MARK = `1234kB`;

/** Role-wide settings of `role` (ALTER ROLE … SET), e.g. ["work_mem=1234kB"]. */
async function roleSettings(role: string): Promise<string[]> {
  return query('postgres', async (c) => {
    const r = await c.query<{ s: string[] | null }>(`SELECT setconfig AS s FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = $1 AND s.setdatabase = 0`, [role]);
    return r.rows[0]?.s ?? [];
  });
}

describe('the verification restore test runs untrusted dumps as a restricted role', { timeout: 300_000 }, () => {
  let fx: Fixture;
  const programMarker = path.join(os.tmpdir(), `llmchat-ops-planted-${process.pid}-${Date.now()}`);

  before(async () => {
    process.env.LLMCHAT_RESTORE_TEST_DB_PASSWORD ??= 'llmchat-restore-test-demo';
    fx = await seedFixture(50);
    // The planted function: harmless where it was written, armed in any ops_verify_* scratch database.
    await query(fx.database.name, async (c) => {
      await c.query(`
        CREATE FUNCTION public.planted(x integer) RETURNS boolean LANGUAGE plpgsql AS $fn$
        BEGIN
          IF current_database() NOT LIKE 'ops_verify_%' THEN RETURN true; END IF;
          BEGIN EXECUTE 'ALTER ROLE llmchat SET work_mem = ''${MARK}'''; EXCEPTION WHEN others THEN NULL; END;
          BEGIN EXECUTE 'SET ROLE llmchat'; EXECUTE 'ALTER ROLE CURRENT_USER SET work_mem = ''${MARK}'''; EXCEPTION WHEN others THEN NULL; END;
          BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch ${programMarker}'''; EXCEPTION WHEN others THEN NULL; END;
          BEGIN EXECUTE 'CREATE EXTENSION IF NOT EXISTS dblink'; EXCEPTION WHEN others THEN NULL; END;
          BEGIN EXECUTE 'ALTER DATABASE ' || quote_ident(current_database()) || ' RENAME TO llmchat_hijacked'; EXCEPTION WHEN others THEN NULL; END;
          -- The one thing the restricted role may do: change itself. Proves the function really ran.
          EXECUTE 'ALTER ROLE CURRENT_USER SET work_mem = ''${MARK}''';
          RETURN true;
        END $fn$`);
      await c.query(`CREATE TABLE public.armed (id integer PRIMARY KEY CHECK (public.planted(id)))`);
      await c.query(`INSERT INTO public.armed SELECT g FROM generate_series(1, 3) g`);
    });
  });

  after(async () => {
    await fx?.database.drop();
    await rm(fx.root, { recursive: true, force: true });
    await rm(programMarker, { force: true });
  });

  it('restores and counts as the role; the planted function changes nothing outside the scratch database', async () => {
    const cfg = testConfig({ address: 'unused:7233', taskQueue: 'unused', environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
    const acts = createActivities(cfg);
    const backupId = makeBackupId('production', new Date(), 'abc123');
    await acts.beginBackup({ environment: 'production', backupId, kinds: ['database'], requestedBy: 'test', reason: 'planted', workflowId: 'wf', runId: 'run' });
    const artifact = await acts.dumpDatabase({ environment: 'production', backupId });
    await acts.sealBackup({ environment: 'production', backupId, artifacts: [artifact] });
    const llmchatBefore = await roleSettings('llmchat');

    const v = await acts.verifyBackup({ environment: 'production', backupId, restoreTest: true });
    assert.equal(v.status, 'verified', v.problems.join('; '));
    assert.ok(v.restoreTest && v.restoreTest !== 'skipped');
    assert.equal(v.restoreTest.role, ROLE);
    assert.deepEqual(v.restoreTest.mismatches, []);

    assert.ok((await roleSettings(ROLE)).includes(`work_mem=${MARK}`), 'the planted function ran (as the restricted role)');
    assert.deepEqual(await roleSettings('llmchat'), llmchatBefore, 'the app role is unchanged');
    assert.equal(existsSync(programMarker), false, 'no program ran on the server');
    const hijacked = await query('postgres', (c) => c.query(`SELECT 1 FROM pg_database WHERE datname = 'llmchat_hijacked'`));
    assert.equal(hijacked.rowCount, 0, 'the role cannot rename its database');
    const scratch = await query('postgres', (c) => c.query(`SELECT datname FROM pg_database WHERE datname LIKE 'ops_verify_%' AND datname LIKE $1`, [`%${v.restoreTest && v.restoreTest !== 'skipped' ? v.restoreTest.database : ''}%`]));
    assert.equal(scratch.rowCount, 0, 'the scratch database was dropped');

    // What the role changed about itself is reset before the next run.
    await query('postgres', (c) => resetRestoreTestRole(c, ROLE, process.env.LLMCHAT_RESTORE_TEST_DB_PASSWORD!, 'llmchat'));
    assert.deepEqual(await roleSettings(ROLE), []);
  });

  it('the role cannot connect to the app databases, and a misconfigured role is refused', async () => {
    const asRole = new pg.Client({ ...PG, user: ROLE, password: process.env.LLMCHAT_RESTORE_TEST_DB_PASSWORD, database: 'llmchat' });
    asRole.on('error', () => {});
    await assert.rejects(asRole.connect(), /permission denied for database "llmchat"/);
    await query('postgres', async (c) => {
      await assert.rejects(resetRestoreTestRole(c, 'llmchat', 'x', 'llmchat'), /must not be the app role/);
      await assert.rejects(resetRestoreTestRole(c, 'no_such_role_here', 'x', 'llmchat'), /does not exist/);
    });
  });
});
