/**
 * What does checking every member of a file archive before a restore cost? Our listArchive (one pass: sha256 of
 * the compressed bytes + zstd -d + our tar header parser + the member policy) against the raw tools doing the
 * same two jobs one after the other: `sha256sum` of the file and `tar --list --zstd`. Interleaved over
 * BENCH_ROUNDS rounds (default 5) on a tree of BENCH_FILES small files (default 20000) plus BENCH_MB of larger
 * incompressible files (default 200). Prints each side's p50, the ratio and MB/s. Goal: ratio ≤ 1.10×.
 * Run: `npm run build && node dist/bench/archive-check.js`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { listArchive, openPlainFile } from '../src/activities/backup/archive-check.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const FILES = Number(process.env.BENCH_FILES ?? 20_000);
const BIG_MB = Number(process.env.BENCH_MB ?? 200);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const root = path.join(os.tmpdir(), `llmchat-ops-bench-archive-${process.pid}`);
  const tree = path.join(root, 'tree');
  try {
    for (let d = 0; d < 100; d++) {
      const dir = path.join(tree, `dir-${d}`, 'nested');
      await mkdir(dir, { recursive: true });
      for (let i = 0; i < FILES / 100; i++) await writeFile(path.join(dir, `file-${i}.txt`), `upload ${d}/${i}\n`.repeat(20));
    }
    for (let i = 0; i < BIG_MB / 10; i++) await writeFile(path.join(tree, `big-${i}.bin`), randomBytes(10 << 20));
    const archive = path.join(root, 'uploads.tar.zst');
    await execa('tar', ['--create', '--zstd', `--file=${archive}`, `--directory=${tree}`, '.']);
    const { size } = await (await import('node:fs/promises')).stat(archive);

    const ours: number[] = [];
    const raw: number[] = [];
    let members = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (const side of r % 2 ? ['raw', 'ours'] : ['ours', 'raw']) {
        const t = performance.now();
        if (side === 'ours') {
          const fh = await openPlainFile(root, 'uploads.tar.zst');
          try {
            members = (await listArchive(fh, 'zstd')).members;
          } finally {
            await fh.close();
          }
          ours.push(performance.now() - t);
        } else {
          await execa('sha256sum', [archive]);
          await execa('tar', ['--list', '--zstd', `--file=${archive}`], { stdout: 'ignore' });
          raw.push(performance.now() - t);
        }
      }
    }
    const o = median(ours);
    const w = median(raw);
    console.log(`archive: ${(size / 2 ** 20).toFixed(1)} MB compressed, ${members} members; ${ROUNDS} rounds, load ${os.loadavg()[0]!.toFixed(2)}`);
    console.log(`ours  listArchive (sha256 + zstd -d + parse + policy, one pass): p50 ${(o / 1000).toFixed(2)} s`);
    console.log(`raw   sha256sum, then tar --list --zstd:                        p50 ${(w / 1000).toFixed(2)} s`);
    console.log(`ratio ours/raw ${(o / w).toFixed(2)}x  (goal <= 1.10x: ${o / w <= 1.1 ? 'MET' : 'NOT MET'})`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
