/**
 * The archive member policy against crafted archives: device nodes, FIFOs, setuid/setgid/sticky files and
 * hard links made by GNU tar itself (as root), and hand-built headers for what GNU tar will not write
 * (absolute and `..` names, members through a symlink of the same archive, pax/GNU long-name overrides).
 * Each must be refused naming the member; a real archive of a realistic tree must pass and list completely.
 */
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync, chmodSync, linkSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { execa, execaSync } from 'execa';
import { checkTree, extractArchive, listArchive, openPlainFile } from '../src/activities/backup/archive-check.js';
import type { CompressionProgram } from '../src/activities/backup/manifest.js';
import { MemberPolicy } from '../src/activities/backup/member-policy.js';
import { CorruptArchiveError, TarParser, UnsafeArchiveError, type TarMember } from '../src/activities/backup/tar-members.js';
import { tempDir } from './support/services.js';
import { craftTar, type CraftedEntry } from './support/tar-craft.js';

const isRoot = process.getuid?.() === 0;
const work = tempDir('tar-members');
after(() => rmSync(work, { recursive: true, force: true }));
let seq = 0;

/** Parses an uncompressed archive in small chunks (to exercise header/data boundaries) and applies the policy. */
function check(archive: Buffer, chunk = 97): TarMember[] {
  const members: TarMember[] = [];
  const policy = new MemberPolicy();
  const parser = new TarParser((m) => {
    members.push(m);
    policy.check(m);
  });
  for (let i = 0; i < archive.length; i += chunk) parser.push(archive.subarray(i, i + chunk));
  parser.end();
  policy.finish();
  return members;
}

function refused(archive: Buffer, member: string, reason: RegExp): void {
  assert.throws(
    () => check(archive),
    (err: unknown) => {
      assert.ok(err instanceof UnsafeArchiveError, `expected UnsafeArchiveError, got ${String(err)}`);
      assert.equal(err.member, member);
      assert.match(err.message, reason);
      return true;
    },
  );
}

const ok: CraftedEntry[] = [
  { name: './', type: '5' },
  { name: './docs/', type: '5' },
  { name: './docs/readme.txt', data: 'hello' },
];

/** A directory tree made by `build`, archived by GNU tar (as the backup does), optionally compressed. */
async function gnuTar(build: (dir: string) => void, program: CompressionProgram = 'none', extra: string[] = []): Promise<string> {
  const dir = path.join(work, `src-${++seq}`);
  mkdirSync(dir);
  build(dir);
  const out = path.join(work, `a-${seq}.tar${program === 'zstd' ? '.zst' : program === 'gzip' ? '.gz' : ''}`);
  const compress = program === 'zstd' ? ['--zstd'] : program === 'gzip' ? ['--gzip'] : [];
  await execa('tar', ['--create', `--file=${out}`, ...compress, '--numeric-owner', ...extra, `--directory=${dir}`, '.']);
  return out;
}

async function listFile(file: string, program: CompressionProgram) {
  const fh = await openPlainFile(path.dirname(file), path.basename(file));
  try {
    return await listArchive(fh, program);
  } finally {
    await fh.close();
  }
}

async function refusedFile(file: string, program: CompressionProgram, member: RegExp, reason: RegExp): Promise<void> {
  await assert.rejects(listFile(file, program), (err: unknown) => {
    assert.ok(err instanceof UnsafeArchiveError, `expected UnsafeArchiveError, got ${String(err)}`);
    assert.match(err.member, member);
    assert.match(err.message, reason);
    return true;
  });
}

describe('tar member parser', { timeout: 60_000 }, () => {
  it('lists every member of a GNU tar archive with long names (GNU L headers) and of a pax one, zstd and gzip', async () => {
    const deep = 'd'.repeat(60) + '/' + 'e'.repeat(60) + '/' + 'f'.repeat(120) + '.txt';
    const build = (dir: string) => {
      mkdirSync(path.join(dir, path.dirname(deep)), { recursive: true });
      writeFileSync(path.join(dir, deep), 'x'.repeat(70_000));
      writeFileSync(path.join(dir, 'small.txt'), 'y');
      writeFileSync(path.join(dir, 'ünïcode name.txt'), 'z');
      symlinkSync('small.txt', path.join(dir, 'link-to-small'));
      symlinkSync('../' + 'f'.repeat(120) + '.txt', path.join(dir, path.dirname(deep), 'rel-link'));
    };
    for (const [program, format] of [['zstd', 'gnu'], ['gzip', 'pax'], ['none', 'ustar']] as const) {
      if (format === 'ustar') continue; // ustar cannot hold a 120-character file name; covered by crafted headers
      const file = await gnuTar(build, program, [`--format=${format}`]);
      const listed = await listFile(file, program);
      const expected = (await execa('tar', ['--list', `--file=${file}`, ...(program === 'zstd' ? ['--zstd'] : ['--gzip'])])).stdout.split('\n').length;
      assert.equal(listed.members, expected, `${program}/${format}: every member listed`);
      const sha = (await execa('sha256sum', [file])).stdout.split(' ')[0];
      assert.equal(listed.sha256, sha, 'the compressed bytes are hashed in the same pass');
    }
  });

  it('refuses a corrupt header and a truncated archive', () => {
    const good = craftTar(ok);
    assert.equal(check(good).length, 3);
    const flipped = Buffer.from(good);
    flipped[512 + 10] = flipped[512 + 10]! ^ 0x20;
    assert.throws(() => check(flipped), CorruptArchiveError);
    assert.throws(() => check(craftTar([{ name: 'big', data: 'x'.repeat(2000) }]).subarray(0, 1024)), /truncated/);
  });

  it('parses pax and GNU long-name overrides (they decide the real name)', () => {
    const members = check(craftTar([{ name: 'p/'.repeat(80) + 'file', pax: true, data: 'a' }, { name: 'q/'.repeat(70) + 'file', gnuLong: true }]));
    assert.deepEqual(members.map((m) => m.name), ['p/'.repeat(80) + 'file', 'q/'.repeat(70) + 'file']);
  });
});

describe('tar member policy: crafted members are refused, naming the member', { timeout: 120_000 }, () => {
  it('absolute names, also hidden in pax and GNU long-name headers', () => {
    refused(craftTar([...ok, { name: '/etc/cron.d/evil', data: 'x' }]), '/etc/cron.d/evil', /absolute path/);
    refused(craftTar([...ok, { name: '/etc/passwd', pax: true, data: 'x' }]), '/etc/passwd', /absolute path/);
    refused(craftTar([...ok, { name: '/' + 'a'.repeat(120), gnuLong: true, data: 'x' }]), '/' + 'a'.repeat(120), /absolute path/);
  });

  it('`..` components anywhere in the name', () => {
    refused(craftTar([...ok, { name: '../escape', data: 'x' }]), '../escape', /"\.\." path component/);
    refused(craftTar([...ok, { name: './docs/../../escape', data: 'x' }]), './docs/../../escape', /"\.\."/);
    refused(craftTar([...ok, { name: 'docs/..', type: '5' }]), 'docs/..', /"\.\."/);
  });

  it('symlinks that resolve outside the target: absolute, `..`, and through another symlink of the archive', () => {
    refused(craftTar([...ok, { name: './etc', type: '2', linkname: '/etc' }]), './etc', /absolute path "\/etc"/);
    refused(craftTar([...ok, { name: './docs/up', type: '2', linkname: '../../..' }]), './docs/up', /resolves outside/);
    // s → . is harmless alone; x → s/.. then means the parent of the target.
    refused(craftTar([...ok, { name: 's', type: '2', linkname: '.' }, { name: 'x', type: '2', linkname: 's/..' }]), 'x', /resolves outside/);
    // The order does not matter: the link used by the escape may come later in the archive.
    refused(craftTar([...ok, { name: 'x', type: '2', linkname: 'docs/s/..' }, { name: 'docs/s', type: '2', linkname: '..' }]), 'x', /resolves outside/);
    refused(craftTar([...ok, { name: 'loop1', type: '2', linkname: 'loop2/a' }, { name: 'loop2', type: '2', linkname: 'loop1/b' }]), 'loop1', /resolves outside/);
  });

  it('symlinks inside the target pass (relative, up and back down)', () => {
    const members = check(craftTar([...ok, { name: 'docs/r', type: '2', linkname: '../docs/readme.txt' }, { name: 'top', type: '2', linkname: 'docs' }, { name: 'dangling', type: '2', linkname: 'not/yet' }]));
    assert.equal(members.length, 6);
  });

  it('a member written through a symlink planted earlier in the same archive', () => {
    refused(craftTar([...ok, { name: 'out', type: '2', linkname: 'docs' }, { name: 'out/evil', data: 'x' }]), 'out/evil', /lies under "out", which the archive makes a symlink/);
    // Even when the link points inside: tar would write through it, and a later member could retarget it.
    refused(craftTar([...ok, { name: 'docs/x', type: '2', linkname: '.' }, { name: 'docs/x/deeper/file', data: 'x' }]), 'docs/x/deeper/file', /under "docs\/x"/);
  });

  it('the same name twice (a later member would replace a checked one)', () => {
    refused(craftTar([...ok, { name: 'docs/readme.txt', type: '2', linkname: '../..' }]), 'docs/readme.txt', /appears twice/);
    refused(craftTar([...ok, { name: './docs', type: '5' }]), './docs', /appears twice/);
  });

  it('device nodes, FIFOs, hard links, setuid/setgid/sticky bits and unknown types (hand-built headers)', () => {
    refused(craftTar([...ok, { name: 'null', type: '3' }]), 'null', /character device/);
    refused(craftTar([...ok, { name: 'sda', type: '4' }]), 'sda', /block device/);
    refused(craftTar([...ok, { name: 'pipe', type: '6' }]), 'pipe', /FIFO/);
    refused(craftTar([...ok, { name: 'hl', type: '1', linkname: 'docs/readme.txt' }]), 'hl', /hard link/);
    refused(craftTar([...ok, { name: 'hl-out', type: '1', linkname: '/etc/shadow' }]), 'hl-out', /hard link/);
    refused(craftTar([...ok, { name: 'suid', mode: 0o4755, data: '#!/bin/sh\n' }]), 'suid', /setuid bit \(mode 4755\)/);
    refused(craftTar([...ok, { name: 'sgid-dir', type: '5', mode: 0o2775 }]), 'sgid-dir', /setgid/);
    refused(craftTar([...ok, { name: 'tmp', type: '5', mode: 0o1777 }]), 'tmp', /sticky/);
    refused(craftTar([...ok, { name: 'contig', type: '7', data: 'x' }]), 'contig', /unsupported type.*"7"/);
    refused(craftTar([{ name: './', type: '0', data: 'x' }]), './', /target directory itself/);
  });

  it('device nodes, FIFOs, setuid/setgid files, sticky dirs and hard links made by GNU tar as root', { skip: !isRoot && 'needs root to create device nodes' }, async () => {
    const cases: [string, (dir: string) => void, RegExp, RegExp][] = [
      ['char device', (d) => void execaSync('mknod', [path.join(d, 'devnull'), 'c', '1', '3']), /devnull$/, /character device/],
      ['block device', (d) => void execaSync('mknod', [path.join(d, 'disk'), 'b', '7', '0']), /disk$/, /block device/],
      ['fifo', (d) => void execaSync('mkfifo', [path.join(d, 'pipe')]), /pipe$/, /FIFO/],
      ['setuid', (d) => (writeFileSync(path.join(d, 'suid'), '#!/bin/sh\n'), chmodSync(path.join(d, 'suid'), 0o4755)), /suid$/, /setuid/],
      ['setgid', (d) => (writeFileSync(path.join(d, 'sgid'), 'x'), chmodSync(path.join(d, 'sgid'), 0o2755)), /sgid$/, /setgid/],
      ['sticky', (d) => (mkdirSync(path.join(d, 'tmp')), chmodSync(path.join(d, 'tmp'), 0o1777)), /tmp\/?$/, /sticky/],
      ['hard link', (d) => (writeFileSync(path.join(d, 'a'), 'x'), linkSync(path.join(d, 'a'), path.join(d, 'b'))), /\/[ab]$/, /hard link/],
      ['symlink out', (d) => symlinkSync('/etc', path.join(d, 'etc')), /etc$/, /absolute path/],
      ['symlink up', (d) => symlinkSync('../../../root', path.join(d, 'up')), /up$/, /outside/],
    ];
    for (const [what, build, member, reason] of cases) {
      const file = await gnuTar((d) => {
        writeFileSync(path.join(d, 'fine.txt'), 'fine');
        build(d);
      }, 'zstd');
      await refusedFile(file, 'zstd', member, reason).catch((err: Error) => assert.fail(`${what}: ${err.message}`));
    }
  });

  it('the hard links of a source tree are stored as files with --hard-dereference (as backups write them) and pass', async () => {
    const file = await gnuTar((d) => (writeFileSync(path.join(d, 'a'), 'x'), linkSync(path.join(d, 'a'), path.join(d, 'b'))), 'zstd', ['--hard-dereference']);
    assert.equal((await listFile(file, 'zstd')).members, 3);
  });
});

describe('extraction and the lstat walk', { timeout: 60_000 }, () => {
  it('extracts a checked archive from the same open file with no special bits, and the walk agrees', async () => {
    const file = await gnuTar((d) => {
      mkdirSync(path.join(d, 'sub'));
      writeFileSync(path.join(d, 'sub', 'f'), 'data');
      chmodSync(path.join(d, 'sub', 'f'), 0o640);
      symlinkSync('sub/f', path.join(d, 'link'));
    }, 'zstd', ['--owner=4242', '--group=4242']);
    const fh = await openPlainFile(path.dirname(file), path.basename(file));
    const into = path.join(work, `x-${++seq}`);
    await mkdir(into);
    try {
      assert.equal((await listArchive(fh, 'zstd')).members, 4);
      await extractArchive(fh, 'zstd', into);
    } finally {
      await fh.close();
    }
    assert.equal(await checkTree(into), 3);
    const { stdout } = await execa('stat', ['-c', '%u %a', path.join(into, 'sub', 'f')]);
    assert.equal(stdout, `${process.getuid?.()} 640`, 'owner is the worker, not the archive (4242)');
  });

  it('the walk refuses what must never be live: a FIFO, a setuid file, a symlink out', async () => {
    for (const [plant, reason] of [
      [(d: string) => execaSync('mkfifo', [path.join(d, 'p')]), /FIFO/],
      [(d: string) => (writeFileSync(path.join(d, 's'), 'x'), chmodSync(path.join(d, 's'), 0o4755)), /setuid/],
      [(d: string) => symlinkSync('../../outside', path.join(d, 'l')), /outside/],
    ] as const) {
      const dir = path.join(work, `w-${++seq}`);
      await mkdir(path.join(dir, 'ok'), { recursive: true });
      await writeFile(path.join(dir, 'ok', 'f'), 'x');
      plant(dir);
      await assert.rejects(checkTree(dir), reason);
    }
  });

  it('opens artifacts only as plain names and never through a symlink', async () => {
    const dir = path.join(work, `o-${++seq}`);
    await mkdir(dir);
    await writeFile(path.join(dir, 'real.tar'), craftTar(ok));
    symlinkSync('real.tar', path.join(dir, 'link.tar'));
    await assert.rejects(openPlainFile(dir, 'link.tar'), /is a symlink/);
    await assert.rejects(openPlainFile(dir, '../real.tar'), /not a plain file name/);
    await assert.rejects(openPlainFile(dir, '.'), /not a plain file name/);
    await (await openPlainFile(dir, 'real.tar')).close();
  });
});

