/**
 * File archives read back from disk are untrusted: before a restore extracts one, every member is listed by our
 * own tar parser (src/activities/backup/tar-members.ts) from the decompressed stream and checked against the policy, while
 * the same pass hashes the compressed bytes for the manifest's checksum. Extraction then reads the *same open
 * file* (so a file swapped in by rename after the check is never extracted), with GNU tar told to take no
 * owners, permissions' special bits, ACLs, xattrs or SELinux labels from the archive; and the extracted tree is
 * walked with lstat before it is swapped into place.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CompressionProgram } from './manifest.js';
import { decompressStage, runPipeline, type Stage } from './process.js';
import { MemberPolicy } from './member-policy.js';
import { CorruptArchiveError, TarParser, UnsafeArchiveError, type MemberType } from './tar-members.js';

/** Opens a file inside `dir` by plain name, refusing symlinks (O_NOFOLLOW) and anything but a regular file. */
export async function openPlainFile(dir: string, name: string): Promise<FileHandle> {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) throw new UnsafeArchiveError(name, 'is not a plain file name');
  let fh: FileHandle;
  try {
    fh = await open(path.join(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new UnsafeArchiveError(name, 'is a symlink (artifacts and manifests are never read through links)');
    throw err;
  }
  const info = await fh.stat();
  if (!info.isFile()) {
    await fh.close();
    throw new UnsafeArchiveError(name, 'is not a regular file');
  }
  return fh;
}

export interface ArchiveListing {
  members: number;
  bytes: number;
  sha256: string;
}

/**
 * Lists and checks every member of a (compressed) tar archive read from `fh`, hashing the compressed bytes on
 * the way. Throws {@link UnsafeArchiveError} (first bad member) or {@link CorruptArchiveError}.
 */
export async function listArchive(
  fh: FileHandle,
  program: CompressionProgram,
  opts: { signal?: AbortSignal; onBytes?: (bytes: number) => void } = {},
): Promise<ArchiveListing> {
  const policy = new MemberPolicy();
  const parser = new TarParser((m) => policy.check(m));
  let parseError: Error | undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      try {
        parser.push(chunk);
        done();
      } catch (err) {
        parseError = err as Error;
        done(err as Error);
      }
    },
  });
  const hash = createHash('sha256');
  let bytes = 0;
  const digest = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      opts.onBytes?.(bytes);
      done(null, chunk);
    },
  });
  const reading = pipeline(fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 1 << 20 }), digest);
  reading.catch(() => {}); // awaited below; a failure downstream may end it first
  const unpack = decompressStage(program);
  try {
    if (unpack) await runPipeline({ stages: [unpack], source: digest, sink, signal: opts.signal });
    else await pipeline(digest, sink, { signal: opts.signal });
    await reading;
    parser.end();
    policy.finish();
  } catch (err) {
    // The parser's own error says which member was bad; the pipeline only says a stream failed.
    throw parseError ?? err;
  }
  return { members: parser.count, bytes, sha256: hash.digest('hex') };
}

/**
 * Extracts the archive from the same open file into `dir` (which must exist and be empty). GNU tar as root
 * would otherwise restore owners and setuid bits; these flags keep everything owned by the worker's user.
 */
export async function extractArchive(fh: FileHandle, program: CompressionProgram, dir: string, signal?: AbortSignal): Promise<void> {
  const unpack = decompressStage(program);
  const tar: Stage = {
    file: 'tar',
    args: ['--extract', '--file=-', '--no-same-owner', '--no-same-permissions', '--no-acls', '--no-xattrs', '--no-selinux', '--no-overwrite-dir', `--directory=${dir}`],
  };
  await runPipeline({ stages: unpack ? [unpack, tar] : [tar], source: fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 1 << 20 }), signal });
}

function lstatType(info: import('node:fs').Stats): MemberType {
  if (info.isFile()) return info.nlink > 1 ? 'hardlink' : 'file';
  if (info.isDirectory()) return 'directory';
  if (info.isSymbolicLink()) return 'symlink';
  if (info.isCharacterDevice()) return 'character-device';
  if (info.isBlockDevice()) return 'block-device';
  if (info.isFIFO()) return 'fifo';
  return 'other';
}

/**
 * Walks an extracted tree with lstat and applies the same policy to what is really there — the second line of
 * defence, before a swap makes the tree live. Returns the number of entries.
 */
export async function checkTree(root: string): Promise<number> {
  const policy = new MemberPolicy();
  let count = 0;
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(path.join(root, rel))) {
      const name = rel ? `${rel}/${entry}` : entry;
      const info = await lstat(path.join(root, name));
      const type = lstatType(info);
      const linkname = type === 'symlink' ? await readlink(path.join(root, name)) : type === 'hardlink' ? '(another name of the same file)' : '';
      policy.check({ name, type, typeflag: '', mode: info.mode & 0o7777, size: info.size, linkname });
      count++;
      if (type === 'directory') await walk(name);
    }
  };
  await walk('');
  policy.finish();
  return count;
}

export { CorruptArchiveError, UnsafeArchiveError };
