/**
 * The front's config compared with what llmchat-ops last wrote (src/activities/release/front-drift.ts), with the real nginx:
 * every write is recorded; a hand edit is detected and kept (once) before the next write overwrites it; a config
 * from before the record existed is recognised as ours when it is what we would write, and kept when it is not.
 */
import assert from 'node:assert/strict';
import { lstat, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { checkFrontDrift, KEPT } from '../src/activities/release/front-drift.js';
import { applyFront, frontSpec, renderedFor, stopFront, type FrontSpec } from '../src/activities/release/nginx-front.js';
import { freePort, tempDir } from './support/services.js';

const kept = async (spec: FrontSpec) => (await readdir(spec.prefix)).filter((n) => KEPT.test(n)).sort();
const check = (spec: FrontSpec, now?: Date) => checkFrontDrift(spec.prefix, (t) => renderedFor(spec, t), now);

describe('front config drift (real nginx)', () => {
  const specs: FrontSpec[] = [];
  const newSpec = async () => {
    const spec = frontSpec(tempDir('front-drift'), `http://127.0.0.1:${await freePort()}`, 'nginx');
    specs.push(spec);
    return spec;
  };
  after(async () => {
    for (const s of specs) await stopFront(s).catch(() => undefined);
  });

  it('records each write; a hand edit is detected, kept once, and kept again only when it changes', async () => {
    const spec = await newSpec();
    assert.equal((await check(spec)).state, 'absent');
    assert.equal(await applyFront(spec, await freePort(), 'blue'), 'started');
    const first = await check(spec);
    assert.equal(first.state, 'as-written');
    assert.match(first.detail, /front config as written at 20/);
    const record = JSON.parse(await readFile(path.join(spec.prefix, 'front-config.json'), 'utf8')) as { sha256: string; slot: string };
    assert.equal(record.slot, 'blue');
    assert.match(record.sha256, /^[0-9a-f]{64}$/);

    const conf = path.join(spec.prefix, 'nginx.conf');
    const edited = (await readFile(conf, 'utf8')).replace('http {\n', 'http {\n  # bob: hand edit\n');
    await writeFile(conf, edited);
    const d = await check(spec, new Date('2026-12-05T10:00:00.123Z'));
    assert.equal(d.state, 'edited');
    assert.equal(d.writtenAt, first.writtenAt);
    assert.equal(path.basename(d.keptAs ?? ''), 'nginx.conf.hand-edit-2026-12-05T10-00-00-123Z');
    assert.match(d.detail, /edited by hand since llmchat-ops wrote it at 20.*kept as nginx\.conf\.hand-edit-2026-12-05T10-00-00-123Z/);
    assert.equal(await readFile(d.keptAs as string, 'utf8'), edited);
    // the same edit checked again (the switch after the plan) is not kept twice
    assert.equal((await check(spec, new Date('2026-12-05T10:05:00Z'))).keptAs, d.keptAs);
    assert.equal((await kept(spec)).length, 1);

    // the next write overwrites it (the copy stays), and is recorded: as written again
    assert.equal(await applyFront(spec, await freePort(), 'green'), 'reloaded');
    assert.ok(!(await readFile(conf, 'utf8')).includes('bob: hand edit'));
    assert.equal((await check(spec)).state, 'as-written');
    assert.deepEqual(await kept(spec), [path.basename(d.keptAs as string)]);

    // an edit made right before a write (no plan in between) is kept by the write itself
    await writeFile(conf, (await readFile(conf, 'utf8')).replace('http {\n', 'http {\n  # carol: another edit\n'));
    await applyFront(spec, await freePort(), 'blue');
    const all = await kept(spec);
    assert.equal(all.length, 2);
    const carol = all.find((n) => n !== path.basename(d.keptAs as string)) as string;
    assert.match(await readFile(path.join(spec.prefix, carol), 'utf8'), /carol: another edit/);
  });

  it('without a record: our own rendering is recognised, anything else is kept and reported as unknown', async () => {
    const spec = await newSpec();
    await applyFront(spec, await freePort(), 'blue');
    await rm(path.join(spec.prefix, 'front-config.json'));
    const ours = await check(spec);
    assert.equal(ours.state, 'as-written');
    assert.match(ours.detail, /no record of the write yet/);
    const conf = path.join(spec.prefix, 'nginx.conf');
    await writeFile(conf, `${await readFile(conf, 'utf8')}# older template\n`);
    const unknown = await check(spec);
    assert.equal(unknown.state, 'no-record');
    assert.equal((await kept(spec)).length, 1);
    assert.equal((await check(spec)).keptAs, unknown.keptAs, 'kept once');
  });

  it('a kept copy is never written through a symlink planted in its place', async () => {
    const spec = await newSpec();
    await applyFront(spec, await freePort(), 'blue');
    const conf = path.join(spec.prefix, 'nginx.conf');
    await writeFile(conf, `${await readFile(conf, 'utf8')}# edit\n`);
    const outside = path.join(tempDir('front-drift-outside'), 'victim');
    await writeFile(outside, 'untouched');
    const now = new Date('2026-12-05T11:00:00Z');
    await symlink(outside, path.join(spec.prefix, 'nginx.conf.hand-edit-2026-12-05T11-00-00-000Z'));
    // rename replaces the planted link itself: the victim is untouched, the copy is a regular file with the edit
    const d = await check(spec, now);
    assert.equal(d.state, 'edited');
    assert.equal(await readFile(outside, 'utf8'), 'untouched');
    assert.ok((await lstat(d.keptAs as string)).isFile());
    assert.match(await readFile(d.keptAs as string, 'utf8'), /# edit\n$/);
  });
});
