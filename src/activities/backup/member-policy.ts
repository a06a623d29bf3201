/**
 * The policy a restore applies to a file archive before anything is extracted (and to the extracted tree, by
 * lstat, before it is swapped in): only regular files, directories and symlinks that resolve inside the target —
 * no device nodes, FIFOs, hard links, setuid/setgid/sticky bits, absolute or `..` names, duplicates, or members
 * under a symlink of the archive. Pure code.
 */
import { MAX_NAME_BYTES, UnsafeArchiveError, type MemberType, type TarMember } from './tar-members.js';

/** Components of a member name relative to the target root, or a reason why it is not such a name. */
function components(name: string): string[] | string {
  if (name.includes('\0')) return 'has a NUL byte in its name';
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) return `has a name longer than ${MAX_NAME_BYTES} bytes`;
  if (name.startsWith('/')) return 'has an absolute path';
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return 'has a ".." path component';
  return parts;
}

const WHAT: Record<MemberType, string> = {
  file: 'regular file',
  directory: 'directory',
  symlink: 'symlink',
  hardlink: 'hard link',
  'character-device': 'character device node',
  'block-device': 'block device node',
  fifo: 'FIFO (named pipe)',
  other: 'entry of an unsupported type',
};

/**
 * Checks members one at a time as they are read (type, mode, name, duplicates) and, with {@link finish}, the
 * whole archive (symlink targets and paths through symlinks, which depend on members anywhere in the archive).
 * Throws {@link UnsafeArchiveError} for the first bad member, in archive order.
 */
export class MemberPolicy {
  private readonly seen = new Set<string>();
  private readonly symlinks = new Map<string, string>();
  /** Member keys in archive order (for the whole-archive pass). */
  private readonly order: { key: string; name: string }[] = [];

  check(m: TarMember): void {
    if (m.type === 'hardlink') throw new UnsafeArchiveError(m.name, `is a hard link to ${JSON.stringify(m.linkname)} (restores accept no hard links; llmchat-ops writes archives with --hard-dereference)`);
    if (m.type !== 'file' && m.type !== 'directory' && m.type !== 'symlink') {
      throw new UnsafeArchiveError(m.name, `is a ${WHAT[m.type]}${m.type === 'other' ? ` (tar type ${JSON.stringify(m.typeflag)})` : ''}; only regular files, directories and symlinks are restored`);
    }
    if (m.type !== 'symlink' && m.mode & 0o7000) {
      const bits = [m.mode & 0o4000 ? 'setuid' : '', m.mode & 0o2000 ? 'setgid' : '', m.mode & 0o1000 ? 'sticky' : ''].filter(Boolean).join('+');
      throw new UnsafeArchiveError(m.name, `has the ${bits} bit (mode ${m.mode.toString(8).padStart(4, '0')})`);
    }
    const parts = components(m.name);
    if (typeof parts === 'string') throw new UnsafeArchiveError(m.name, parts);
    if (parts.length === 0 && m.type !== 'directory') throw new UnsafeArchiveError(m.name, `names the target directory itself but is a ${WHAT[m.type]}`);
    const key = parts.join('/');
    if (this.seen.has(key)) throw new UnsafeArchiveError(m.name, 'appears twice in the archive (a later copy would replace the earlier one)');
    this.seen.add(key);
    if (m.type === 'symlink') {
      if (m.linkname === '') throw new UnsafeArchiveError(m.name, 'is a symlink with an empty target');
      if (m.linkname.startsWith('/')) throw new UnsafeArchiveError(m.name, `is a symlink to the absolute path ${JSON.stringify(m.linkname)}`);
      if (m.linkname.includes('\0')) throw new UnsafeArchiveError(m.name, 'is a symlink whose target has a NUL byte');
      this.symlinks.set(key, m.linkname);
    }
    this.order.push({ key, name: m.name });
  }

  /** Whole-archive checks; call after the last member. */
  finish(): void {
    for (const { key, name } of this.order) {
      const parts = key === '' ? [] : key.split('/');
      for (let i = 1; i < parts.length; i++) {
        const ancestor = parts.slice(0, i).join('/');
        if (this.symlinks.has(ancestor)) throw new UnsafeArchiveError(name, `lies under ${JSON.stringify(ancestor)}, which the archive makes a symlink (it would be written through the link)`);
      }
      const link = this.symlinks.get(key);
      if (link !== undefined && this.resolve(parts.slice(0, -1), link, 0) === undefined) {
        throw new UnsafeArchiveError(name, `is a symlink to ${JSON.stringify(link)}, which resolves outside the target`);
      }
    }
  }

  /** Resolves `rel` from directory `from` inside the archive's tree, following the archive's own symlinks. */
  private resolve(from: string[], rel: string, hops: number): string[] | undefined {
    if (hops > 40 || rel.startsWith('/')) return undefined; // a loop (ELOOP) or an absolute hop
    let stack = [...from];
    for (const part of rel.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (stack.length === 0) return undefined;
        stack.pop();
        continue;
      }
      stack.push(part);
      const target = this.symlinks.get(stack.join('/'));
      if (target !== undefined) {
        const next = this.resolve(stack.slice(0, -1), target, hops + 1);
        if (next === undefined) return undefined;
        stack = next;
      }
    }
    return stack;
  }
}
