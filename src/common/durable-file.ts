/**
 * Atomic, durable replacement of a small state file: written under a temporary name in the same directory,
 * fsynced, renamed over the old one, and (with `syncDir`) the directory fsynced too, so a crash leaves either the
 * old content or the new, never a torn file, and a rename that was reported done survives a power loss.
 */
import { mkdir, open, rename } from 'node:fs/promises';
import path from 'node:path';

export async function replaceFileDurably(file: string, content: string, opts: { mode?: number; syncDir?: boolean } = {}): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.${Date.now()}.partial`;
  const fh = await open(tmp, 'w', opts.mode ?? 0o644);
  try {
    await fh.writeFile(content);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  if (!opts.syncDir) return;
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
