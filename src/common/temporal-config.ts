/**
 * Where the Temporal server is and how to reach it, by the SDK's conventions (@temporalio/envconfig), in this order
 * (later wins):
 *
 *   1. defaults: 127.0.0.1:7233, namespace `default`, plaintext;
 *   2. a profile of a TOML client config file (the `temporal` CLI's format: `[profile.<name>]` with address,
 *      namespace, api_key, `tls` and `grpc_meta`), from `temporal.configFile`, else $TEMPORAL_CONFIG_FILE, else
 *      ~/.config/temporalio/temporal.toml; profile `temporal.profile`, else $TEMPORAL_PROFILE, else `default`;
 *   3. the SDK's environment variables: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,
 *      TEMPORAL_TLS_SERVER_CA_CERT_PATH|_DATA, TEMPORAL_TLS_CLIENT_CERT_PATH|_DATA, TEMPORAL_TLS_CLIENT_KEY_PATH|_DATA,
 *      TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_*;
 *   4. the `temporal` keys of ops.config.yaml (address, namespace, apiKeyEnv, tls).
 *
 * An API key turns TLS on (Temporal Cloud); a CA file, client certificate or `tls.enabled: true` turn it on too.
 */
import path from 'node:path';
import { loadClientConfigProfile, toClientOptions, type ClientConfigProfile } from '@temporalio/envconfig';
import type { TLSConfig } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { z } from 'zod';
import { codecSchema, codecServerSchema } from './codec-config.js';

const envVarName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name like TEMPORAL_CLOUD_API_KEY');

export const DEFAULT_ADDRESS = '127.0.0.1:7233';
export const DEFAULT_NAMESPACE = 'default';

const tlsSchema = z.strictObject({
  /** true: TLS with the system's CAs unless serverCaCert is set; false: plaintext even if the profile says TLS. */
  enabled: z.boolean().optional(),
  /** PEM file of the CA that signed the server's certificate (default: the system's CAs). */
  serverCaCert: z.string().min(1).optional(),
  /** The name the server's certificate must carry, when it differs from the address's host. */
  serverName: z.string().min(1).optional(),
  /** mTLS: the client's certificate and key (PEM files). Both or neither. */
  clientCert: z.string().min(1).optional(),
  clientKey: z.string().min(1).optional(),
});

export const temporalSchema = z
  .strictObject({
    /** host:port of the frontend; overrides the TOML profile and TEMPORAL_ADDRESS. */
    address: z.string().min(1).optional(),
    namespace: z.string().min(1).optional(),
    taskQueue: z.string().min(1).default('llmchat-ops'),
    /** The TOML client config file (default $TEMPORAL_CONFIG_FILE, then ~/.config/temporalio/temporal.toml). */
    configFile: z.string().min(1).optional(),
    /** The profile of that file (default $TEMPORAL_PROFILE, then `default`). */
    profile: z.string().min(1).optional(),
    /** The NAME of the environment variable that holds an API key (Temporal Cloud). The key is never written here. */
    apiKeyEnv: envVarName.optional(),
    tls: tlsSchema.optional(),
    /** Payload encryption (src/common/codec.ts). */
    encryption: codecSchema.optional(),
    /** The codec endpoint for the Web UI and the CLI (`llmchat-ops codec-server`). */
    codecServer: codecServerSchema.default(codecServerSchema.parse({})),
  })
  .superRefine((t, ctx) => {
    if (t.tls && !t.tls.clientCert !== !t.tls.clientKey) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'clientCert and clientKey go together (mTLS): set both or neither' });
    }
  });

export type TemporalConfig = z.infer<typeof temporalSchema>;

/** Relative file paths of the temporal section are relative to the config file, like every other path. */
export function resolveTemporalPaths(t: TemporalConfig, baseDir: string): void {
  if (t.configFile) t.configFile = path.resolve(baseDir, t.configFile);
  if (t.tls) for (const k of ['serverCaCert', 'clientCert', 'clientKey'] as const) if (t.tls[k]) t.tls[k] = path.resolve(baseDir, t.tls[k]);
  if (t.encryption?.keysFile) t.encryption.keysFile = path.resolve(baseDir, t.encryption.keysFile);
}

/** Everything a Connection / NativeConnection needs, plus where it came from (for logs and error messages). */
export interface TemporalSettings {
  address: string;
  namespace: string;
  apiKey?: string;
  tls?: TLSConfig | boolean;
  metadata?: Record<string, string>;
  /** Human-readable: which file/profile was read, whether TLS is on and with which CA. */
  describe: string;
  /** The CA file, if one was configured (named in TLS error messages). */
  caSource?: string;
}

export class TemporalConfigError extends Error {
  override readonly name = 'TemporalConfigError';
}

/** Resolves the four layers above. `env` is the process environment (tests pass their own). */
export function resolveTemporalSettings(t: TemporalConfig, env: NodeJS.ProcessEnv = process.env): TemporalSettings {
  const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
  let profile: ClientConfigProfile;
  const file = t.configFile ?? vars.TEMPORAL_CONFIG_FILE;
  try {
    profile = loadClientConfigProfile({
      profile: t.profile,
      configSource: t.configFile ? { path: t.configFile } : undefined,
      overrideEnvVars: vars,
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const what = code === 'ENOENT' ? `not found` : (err as Error).message;
    throw new TemporalConfigError(`Temporal client config${file ? ` ${file}` : ''}: ${what}`);
  }
  const caSource = t.tls?.serverCaCert ?? vars.TEMPORAL_TLS_SERVER_CA_CERT_PATH ?? (profile.tls?.serverCACert && 'path' in profile.tls.serverCACert ? profile.tls.serverCACert.path : undefined);
  // Layer 4: ops.config.yaml.
  if (t.address) profile.address = t.address;
  if (t.namespace) profile.namespace = t.namespace;
  if (t.apiKeyEnv) {
    const key = env[t.apiKeyEnv];
    if (!key) throw new TemporalConfigError(`temporal.apiKeyEnv: environment variable ${t.apiKeyEnv} (the Temporal API key) is not set`);
    profile.apiKey = key;
  }
  if (t.tls) {
    const tls = { ...profile.tls };
    if (t.tls.enabled !== undefined) tls.disabled = !t.tls.enabled;
    else if (t.tls.serverCaCert || t.tls.clientCert) tls.disabled = false;
    if (t.tls.serverCaCert) tls.serverCACert = { path: t.tls.serverCaCert };
    if (t.tls.serverName) tls.serverName = t.tls.serverName;
    if (t.tls.clientCert) tls.clientCert = { path: t.tls.clientCert };
    if (t.tls.clientKey) tls.clientKey = { path: t.tls.clientKey };
    profile.tls = tls;
  }
  let options;
  try {
    options = toClientOptions(profile);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TemporalConfigError(`Temporal TLS files: ${e.code === 'ENOENT' ? `cannot read ${e.path ?? 'a certificate or key file'}` : e.message}`);
  }
  const { connectionOptions: c } = options;
  const address = c.address ?? DEFAULT_ADDRESS;
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const tlsOn = c.tls !== undefined && c.tls !== false && c.tls !== null;
  const mtls = tlsOn && typeof c.tls === 'object' && !!c.tls?.clientCertPair;
  const describe = [
    `${address} namespace ${namespace}`,
    tlsOn ? `TLS (${caSource ? `CA ${caSource}` : 'system CAs'}${mtls ? ', client certificate' : ''})` : 'plaintext',
    c.apiKey ? 'API key' : undefined,
    profile && (t.configFile || vars.TEMPORAL_CONFIG_FILE || t.profile || vars.TEMPORAL_PROFILE) ? `profile ${t.profile ?? vars.TEMPORAL_PROFILE ?? 'default'}${file ? ` of ${file}` : ''}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
  return {
    address,
    namespace,
    apiKey: c.apiKey,
    tls: c.tls === null ? undefined : c.tls,
    metadata: profile.grpcMeta && Object.keys(profile.grpcMeta).length ? profile.grpcMeta : undefined,
    describe,
    caSource,
  };
}
