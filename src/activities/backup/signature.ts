/**
 * Manifest signatures: a backup is restorable only if llmchat-ops wrote its manifest (or an operator imported
 * it). Every manifest the worker writes carries an HMAC-SHA256, with the current signing key, over the
 * canonical JSON of everything else in it — so the artifacts' checksums, kinds and status are covered, and with
 * them the artifacts themselves.
 *
 * Keys are held by reference (config `backup.signingKeyEnv` names an environment variable of the worker) and
 * resolved on the worker only. Rotation: put the new key in the current variable and list the variables of the
 * old keys in `backup.previousSigningKeyEnvs`; manifests signed with an old key still verify, and every manifest
 * written from then on (a new backup, a verification, an import) is signed with the new key. Worker-side only
 * (node:crypto): workflows never see keys or signatures being made.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { resolveSecret, type BackupSettings } from '../../common/config/index.js';
import type { BackupManifest, ManifestSignature } from './manifest.js';

/** Domain separation: a signature over a manifest can never be replayed as a signature over anything else. */
const DOMAIN = 'llmchat-ops backup manifest v1\n';
const MIN_KEY_BYTES = 16;

export interface SigningKey {
  /** The environment variable it came from (for messages; never the key). */
  variable: string;
  id: string;
  key: Buffer;
}

export interface SigningKeys {
  current: SigningKey;
  /** Keys accepted for verification only (rotation). */
  previous: SigningKey[];
}

export class SigningKeyError extends Error {
  override readonly name = 'SigningKeyInvalid';
}

/** The manifest's signature is missing, made with a key the worker does not hold, or does not match. */
export class SignatureError extends Error {
  override readonly name = 'ManifestSignatureInvalid';
}

export function keyId(key: Buffer): string {
  return createHmac('sha256', key).update('llmchat-ops key id').digest('hex').slice(0, 16);
}

function loadKey(variable: string): SigningKey {
  const value = resolveSecret(variable) as string; // throws MissingSecretError when unset
  const key = Buffer.from(value, 'utf8');
  if (key.length < MIN_KEY_BYTES) throw new SigningKeyError(`The backup signing key in ${variable} is ${key.length} bytes; use at least ${MIN_KEY_BYTES} (e.g. openssl rand -hex 32)`);
  return { variable, id: keyId(key), key };
}

/** Resolves the signing keys named by the config from the worker's environment. */
export function signingKeys(settings: Pick<BackupSettings, 'signingKeyEnv' | 'previousSigningKeyEnvs'>): SigningKeys {
  return { current: loadKey(settings.signingKeyEnv), previous: settings.previousSigningKeyEnvs.map(loadKey) };
}

/** JSON with object keys sorted at every level: the same manifest always gives the same bytes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function mac(key: Buffer, m: BackupManifest): Buffer {
  const { signature: _ignored, ...body } = m;
  return createHmac('sha256', key).update(DOMAIN).update(canonicalJson(body)).digest();
}

/** The manifest with a fresh signature by the current key (any earlier signature is replaced). */
export function signManifest(m: BackupManifest, keys: SigningKeys): BackupManifest {
  const signature: ManifestSignature = { algorithm: 'hmac-sha256', keyId: keys.current.id, value: mac(keys.current.key, m).toString('hex') };
  const { signature: _old, ...body } = m;
  return { ...body, signature };
}

/**
 * Checks the manifest's signature against the current and previous keys; returns the key that made it.
 * Throws {@link SignatureError} with the reason (unsigned, unknown key, mismatch).
 */
export function verifyManifest(m: BackupManifest, keys: SigningKeys, where: string): SigningKey {
  const sig = m.signature;
  if (!sig) throw new SignatureError(`${where} is not signed: llmchat-ops did not write it (import it with \`llmchat-ops backups import\` after checking what it holds)`);
  const key = [keys.current, ...keys.previous].find((k) => k.id === sig.keyId);
  if (!key) {
    throw new SignatureError(
      `${where} is signed with key ${sig.keyId}, which this worker does not hold (current ${keys.current.id} in ${keys.current.variable}${keys.previous.length ? `; previous ${keys.previous.map((k) => `${k.id} in ${k.variable}`).join(', ')}` : ''}); add the old key to backup.previousSigningKeyEnvs or import the backup`,
    );
  }
  const expected = mac(key.key, m);
  const actual = Buffer.from(sig.value, 'hex');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    throw new SignatureError(`${where} does not match its signature (key ${sig.keyId}): it was changed after llmchat-ops wrote it`);
  }
  return key;
}
