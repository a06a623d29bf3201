/**
 * Hand-built tar archives for hostile-input tests: names and types GNU tar refuses to create (absolute paths,
 * `..`, members through a symlink of the same archive, pax and GNU long-name overrides), byte for byte.
 */

export interface CraftedEntry {
  name: string;
  /** tar typeflag: '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' directory, '6' FIFO. */
  type?: string;
  mode?: number;
  linkname?: string;
  data?: string | Buffer;
  uid?: number;
  /** Put the name in a pax 'x' header (path=…) instead of the ustar name field. */
  pax?: boolean;
  /** Put the name in a GNU 'L' long-name header. */
  gnuLong?: boolean;
}

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, type: string, size: number, opts: { mode?: number; linkname?: string; uid?: number }): Buffer {
  const h = Buffer.alloc(512);
  h.write(name.slice(0, 100), 0, 'utf8');
  h.write(octal(opts.mode ?? (type === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  h.write(octal(opts.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(1_700_000_000, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write(type, 156, 'latin1');
  h.write((opts.linkname ?? '').slice(0, 100), 157, 'utf8');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

function withData(h: Buffer, data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return [h, data, Buffer.alloc(pad)];
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return `${len}${body}`;
}

/** An uncompressed tar archive of `entries`, ended by two zero blocks. */
export function craftTar(entries: CraftedEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? '0';
    const data = typeof e.data === 'string' ? Buffer.from(e.data) : (e.data ?? Buffer.alloc(0));
    let name = e.name;
    if (e.pax) {
      const pax = Buffer.from(paxRecord('path', e.name) + (e.linkname ? paxRecord('linkpath', e.linkname) : ''));
      parts.push(...withData(header('PaxHeaders/x', 'x', pax.length, {}), pax));
      name = 'placeholder';
    } else if (e.gnuLong) {
      const long = Buffer.from(e.name + '\0');
      parts.push(...withData(header('././@LongLink', 'L', long.length, {}), long));
      name = e.name.slice(0, 99);
    }
    parts.push(...withData(header(name, type, type === '0' ? data.length : 0, e), type === '0' ? data : Buffer.alloc(0)));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
