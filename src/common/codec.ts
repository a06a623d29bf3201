/**
 * Payload encryption: a PayloadCodec (AES-256-GCM) on the worker, the CLI and the schedules, so workflow inputs,
 * results, activity arguments, heartbeat details, signals, queries, updates and memos reach the Temporal server
 * only as ciphertext. The shape follows temporalio/samples-typescript's encryption sample: the whole Payload
 * (its metadata too, so even the encoding is hidden) is protobuf-encoded and encrypted; the stored payload has
 * `encoding: binary/encrypted` and `encryption-key-id: <id>` in its metadata and `iv(12) ‖ ciphertext ‖ tag(16)` as
 * data.
 *
 * Rotation: several keys may be configured; new payloads use `encryptWith` (default the first key), every
 * configured key decrypts. Payloads without the encrypted encoding pass through unchanged, so histories written
 * before encryption was turned on still replay and decode. Search attributes are not payload-encoded by Temporal
 * (they are indexed): they hold environment names, versions, operators — never secrets.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { METADATA_ENCODING_KEY, ValueError, type DataConverter, type Payload, type PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
const { temporal } = proto;
import type { CodecConfig } from './codec-config.js';

export const ENCODING_ENCRYPTED = 'binary/encrypted';
export const METADATA_KEY_ID = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;

export class CodecKeyError extends Error {
  override readonly name = 'CodecKeyError';
}

/** Parses `id:key` entries (commas or newlines; `#` comments); a key is 32 bytes as base64 or 64 hex digits. */
export function parseKeys(text: string, source: string): Map<string, Buffer> {
  const keys = new Map<string, Buffer>();
  const entries = text
    .split(/[,\n]/)
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
  for (const [i, entry] of entries.entries()) {
    const sep = entry.indexOf(':');
    const id = sep > 0 ? entry.slice(0, sep).trim() : '';
    const value = sep > 0 ? entry.slice(sep + 1).trim() : '';
    if (!KEY_ID.test(id)) throw new CodecKeyError(`${source}: entry ${i + 1} must be id:key with an id of letters, digits, ".", "_" or "-"`);
    const hex = /^[0-9a-fA-F]{64}$/.test(value);
    if (!hex && !/^[A-Za-z0-9+/]{43}=?$/.test(value)) {
      throw new CodecKeyError(`${source}: key ${id} must be 32 bytes, as base64 (openssl rand -base64 32) or 64 hex digits`);
    }
    const key = Buffer.from(value, hex ? 'hex' : 'base64');
    if (keys.has(id)) throw new CodecKeyError(`${source}: key id ${id} appears twice`);
    keys.set(id, key);
  }
  return keys;
}

/** The keys of a config: keysEnv's, then keysFile's. Throws {@link CodecKeyError} naming what is missing. */
export function loadKeys(cfg: CodecConfig, env: NodeJS.ProcessEnv = process.env): { keys: Map<string, Buffer>; encryptWith: string } {
  const keys = new Map<string, Buffer>();
  const add = (more: Map<string, Buffer>, source: string) => {
    for (const [id, key] of more) {
      if (keys.has(id)) throw new CodecKeyError(`${source}: key id ${id} is also defined elsewhere`);
      keys.set(id, key);
    }
  };
  if (cfg.keysEnv) {
    const text = env[cfg.keysEnv];
    if (!text) throw new CodecKeyError(`temporal.encryption.keysEnv: environment variable ${cfg.keysEnv} (the payload encryption keys) is not set`);
    add(parseKeys(text, `environment variable ${cfg.keysEnv}`), `environment variable ${cfg.keysEnv}`);
  }
  if (cfg.keysFile) {
    let text: string;
    try {
      text = readFileSync(cfg.keysFile, 'utf8');
    } catch (err) {
      throw new CodecKeyError(`temporal.encryption.keysFile: cannot read ${cfg.keysFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    add(parseKeys(text, cfg.keysFile), cfg.keysFile);
  }
  if (keys.size === 0) throw new CodecKeyError('temporal.encryption: no keys configured');
  const encryptWith = cfg.encryptWith ?? keys.keys().next().value!;
  if (!keys.has(encryptWith)) throw new CodecKeyError(`temporal.encryption.encryptWith: no key with id ${encryptWith} (have: ${[...keys.keys()].join(', ')})`);
  return { keys, encryptWith };
}

export class AesGcmCodec implements PayloadCodec {
  private readonly encryptWithBytes: Uint8Array;
  constructor(
    private readonly keys: ReadonlyMap<string, Buffer>,
    readonly encryptWith: string,
  ) {
    if (!keys.has(encryptWith)) throw new CodecKeyError(`no key with id ${encryptWith}`);
    this.encryptWithBytes = Buffer.from(encryptWith);
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.encryptWith)!;
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      const plain = temporal.api.common.v1.Payload.encode(payload).finish();
      const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return { metadata: { [METADATA_ENCODING_KEY]: Buffer.from(ENCODING_ENCRYPTED), [METADATA_KEY_ID]: this.encryptWithBytes }, data };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = payload.metadata?.[METADATA_ENCODING_KEY];
      if (!encoding || Buffer.from(encoding).toString() !== ENCODING_ENCRYPTED) return payload; // written before encryption
      const idBytes = payload.metadata?.[METADATA_KEY_ID];
      if (!idBytes) throw new ValueError('encrypted payload without an encryption-key-id');
      const id = Buffer.from(idBytes).toString();
      const key = this.keys.get(id);
      if (!key) throw new ValueError(`payload encrypted with key ${JSON.stringify(id)}, which is not configured (have: ${[...this.keys.keys()].join(', ')})`);
      const data = payload.data;
      if (!data || data.length < IV_BYTES + TAG_BYTES) throw new ValueError('encrypted payload too short');
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new ValueError(`payload encrypted with key ${JSON.stringify(id)} does not authenticate (wrong key material or tampered data)`);
      }
      return temporal.api.common.v1.Payload.decode(plain);
    });
  }
}

/** The codec of a config, or undefined when encryption is off. */
export function codecFromConfig(cfg: CodecConfig | undefined, env: NodeJS.ProcessEnv = process.env): AesGcmCodec | undefined {
  if (!cfg) return undefined;
  const { keys, encryptWith } = loadKeys(cfg, env);
  return new AesGcmCodec(keys, encryptWith);
}

/** The DataConverter for clients and workers (undefined = the SDK's default, plaintext). */
export function dataConverterFromConfig(cfg: CodecConfig | undefined, env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const codec = codecFromConfig(cfg, env);
  return codec ? { payloadCodecs: [codec] } : undefined;
}
