/**
 * What a file archive would create, read from its tar headers by our own parser (not from `tar --list`
 * output, whose quoting and formats we do not control). The policy a restore applies to the members is in
 * member-policy.ts.
 *
 * The parser understands ustar, GNU (long names `L`/`K`, base-256 sizes) and pax (`x` path/linkpath/size)
 * headers, verifies every header checksum, and never buffers file contents: data blocks are skipped as they
 * stream past. Pure code (no I/O), fed chunk by chunk.
 */

export type MemberType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'character-device' | 'block-device' | 'fifo' | 'other';

export interface TarMember {
  /** The name as stored (after long-name / pax overrides), for messages. */
  name: string;
  type: MemberType;
  /** The raw typeflag character, for messages about `other`. */
  typeflag: string;
  /** Permission bits including setuid/setgid/sticky (mode & 0o7777). */
  mode: number;
  size: number;
  linkname: string;
}

/** The archive cannot be restored safely; names the first offending member. Permanent: a retry reads the same bytes. */
export class UnsafeArchiveError extends Error {
  override readonly name = 'UnsafeArchive';
  constructor(
    readonly member: string,
    readonly reason: string,
  ) {
    super(`archive member ${JSON.stringify(member.slice(0, 300))} ${reason}`);
  }
}

/** The bytes are not a readable tar archive (bad checksum, truncated, oversized metadata). */
export class CorruptArchiveError extends Error {
  override readonly name = 'CorruptArchive';
}

const BLOCK = 512;
/** Bounds on metadata we buffer: a long name or pax header larger than this is refused, not allocated. */
const MAX_META_BYTES = 1 << 20;
export const MAX_NAME_BYTES = 4096;

function cstring(buf: Buffer, start: number, length: number): string {
  const slice = buf.subarray(start, start + length);
  const nul = slice.indexOf(0);
  return (nul === -1 ? slice : slice.subarray(0, nul)).toString('utf8');
}

/** Octal (NUL/space padded) or GNU base-256 (high bit of the first byte set). */
function number(buf: Buffer, start: number, length: number, what: string, offset: number): number {
  const field = buf.subarray(start, start + length);
  if (field[0]! & 0x80) {
    if (field[0] === 0xff) throw new CorruptArchiveError(`negative ${what} in the tar header at byte ${offset}`);
    let n = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) {
      n = n * 256 + field[i]!;
      if (n > Number.MAX_SAFE_INTEGER) throw new CorruptArchiveError(`${what} too large in the tar header at byte ${offset}`);
    }
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new CorruptArchiveError(`${what} field ${JSON.stringify(text)} is not octal in the tar header at byte ${offset}`);
  const n = parseInt(text, 8);
  if (!Number.isSafeInteger(n)) throw new CorruptArchiveError(`${what} too large in the tar header at byte ${offset}`);
  return n;
}

function typeOf(flag: string): MemberType {
  switch (flag) {
    case '0':
    case '\0':
      return 'file';
    case '5':
      return 'directory';
    case '2':
      return 'symlink';
    case '1':
      return 'hardlink';
    case '3':
      return 'character-device';
    case '4':
      return 'block-device';
    case '6':
      return 'fifo';
    default:
      return 'other'; // 7 contiguous, S sparse, D dumpdir, M multivolume, V label, vendor extensions…
  }
}

/** pax extended header records: "<len> <key>=<value>\n". */
function parsePax(data: Buffer, offset: number): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space === -1) break;
    const len = Number(data.subarray(i, space).toString('latin1'));
    if (!Number.isInteger(len) || len <= space - i || i + len > data.length) throw new CorruptArchiveError(`malformed pax header record at byte ${offset}`);
    const record = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq === -1) throw new CorruptArchiveError(`malformed pax header record at byte ${offset}`);
    out.set(record.slice(0, eq), record.slice(eq + 1));
    i += len;
  }
  return out;
}

type State = { kind: 'header' } | { kind: 'skip'; left: number } | { kind: 'meta'; flag: string; size: number; left: number; parts: Buffer[]; at: number };

/**
 * Push parser: feed decompressed archive bytes with {@link push}; each complete member header is passed to
 * `onMember`. {@link end} checks the archive was complete (end-of-archive blocks, or at least no truncated member).
 */
export class TarParser {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private offset = 0;
  private state: State = { kind: 'header' };
  private longName: string | undefined;
  private longLink: string | undefined;
  private pax: Map<string, string> | undefined;
  private zeroBlocks = 0;
  private finished = false;
  count = 0;

  constructor(private readonly onMember: (m: TarMember) => void) {}

  push(chunk: Buffer): void {
    if (this.finished) return; // bytes after the end-of-archive marker (tar pads to a record size)
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    this.drain();
  }

  end(): void {
    if (this.finished) return;
    if (this.state.kind !== 'header' || this.bufferedBytes > 0) throw new CorruptArchiveError(`archive truncated at byte ${this.offset} (inside a member)`);
    if (this.longName !== undefined || this.longLink !== undefined || this.pax !== undefined) throw new CorruptArchiveError('archive ends after an extended header without its member');
    // A missing end-of-archive marker after complete members is what some writers produce; tar accepts it too.
  }

  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.bufferedBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.buffered = rest.length ? [rest] : [];
    this.bufferedBytes = rest.length;
    this.offset += n;
    return out;
  }

  private drain(): void {
    while (!this.finished) {
      const s = this.state;
      if (s.kind === 'skip') {
        const n = Math.min(s.left, this.bufferedBytes);
        if (n === 0) return;
        this.take(n);
        s.left -= n;
        if (s.left === 0) this.state = { kind: 'header' };
        continue;
      }
      if (s.kind === 'meta') {
        const n = Math.min(s.left, this.bufferedBytes);
        if (n === 0) return;
        s.parts.push(Buffer.from(this.take(n)));
        s.left -= n;
        if (s.left === 0) {
          this.meta(s.flag, Buffer.concat(s.parts).subarray(0, s.size), s.at);
          this.state = { kind: 'header' };
        }
        continue;
      }
      if (this.bufferedBytes < BLOCK) return;
      const at = this.offset;
      this.header(Buffer.from(this.take(BLOCK)), at);
    }
  }

  private header(h: Buffer, at: number): void {
    if (h.every((b) => b === 0)) {
      if (++this.zeroBlocks === 2) this.finished = true;
      return;
    }
    if (this.zeroBlocks > 0) throw new CorruptArchiveError(`data after an empty block at byte ${at}`);
    const stored = number(h, 148, 8, 'checksum', at);
    let unsigned = 0;
    let signed = 0;
    for (let i = 0; i < BLOCK; i++) {
      const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
      unsigned += b;
      signed += b > 127 ? b - 256 : b;
    }
    if (stored !== unsigned && stored !== signed) throw new CorruptArchiveError(`tar header checksum mismatch at byte ${at} (not a tar archive, or corrupt)`);

    const flag = String.fromCharCode(h[156]!);
    const size = number(h, 124, 12, 'size', at);
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'L' || flag === 'K' || flag === 'x' || flag === 'g') {
      if (size > MAX_META_BYTES) throw new CorruptArchiveError(`extended header of ${size} bytes at byte ${at} (limit ${MAX_META_BYTES})`);
      if (padded === 0) this.meta(flag, Buffer.alloc(0), at);
      else this.state = { kind: 'meta', flag, size, left: padded, parts: [], at };
      return;
    }

    const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
    const prefix = ustar ? cstring(h, 345, 155) : '';
    let name = this.longName ?? (prefix ? `${prefix}/${cstring(h, 0, 100)}` : cstring(h, 0, 100));
    let linkname = this.longLink ?? cstring(h, 157, 100);
    let realSize = size;
    if (this.pax) {
      const p = this.pax;
      if (p.has('path')) name = p.get('path')!;
      if (p.has('linkpath')) linkname = p.get('linkpath')!;
      if (p.has('size')) {
        const n = Number(p.get('size'));
        if (!Number.isSafeInteger(n) || n < 0) throw new CorruptArchiveError(`bad pax size at byte ${at}`);
        realSize = n;
      }
    }
    this.longName = this.longLink = this.pax = undefined;
    const type = typeOf(flag);
    const member: TarMember = { name, type, typeflag: flag, mode: number(h, 100, 8, 'mode', at) & 0o7777, size: realSize, linkname };
    this.count++;
    this.onMember(member);
    // Links, devices, directories and FIFOs carry no data in tar, whatever their size field says (GNU tar agrees).
    const dataBytes = type === 'file' || type === 'other' ? Math.ceil(realSize / BLOCK) * BLOCK : 0;
    if (dataBytes > 0) this.state = { kind: 'skip', left: dataBytes };
  }

  private meta(flag: string, data: Buffer, at: number): void {
    if (flag === 'L' || flag === 'K') {
      const value = cstring(data, 0, data.length);
      if (Buffer.byteLength(value) > MAX_NAME_BYTES) throw new CorruptArchiveError(`name longer than ${MAX_NAME_BYTES} bytes at byte ${at}`);
      if (flag === 'L') this.longName = value;
      else this.longLink = value;
      return;
    }
    const records = parsePax(data, at);
    if (flag === 'g') {
      // Global headers apply to every later member; a global path or size would rename or resize them all.
      for (const key of ['path', 'linkpath', 'size']) if (records.has(key)) throw new CorruptArchiveError(`global pax header sets "${key}" at byte ${at}`);
      return;
    }
    this.pax = records;
  }
}
