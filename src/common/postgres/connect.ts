/**
 * Every PostgreSQL connection the worker opens comes from here, with an 'error' handler attached before it
 * connects: a session terminated from outside (pg_terminate_backend, a server restart, a network cut) while the
 * client sits idle is then an error the owner sees at its next query or through {@link lostSignal} — never an
 * unhandled 'error' event that ends the worker process.
 */
import pg from 'pg';
import { resolveSecret, type EnvironmentConfig } from '../config/index.js';

/** The database every server has; used for CREATE/DROP/ALTER DATABASE and for the data lock (it is never renamed). */
export const MAINTENANCE_DB = 'postgres';

/** PostgreSQL keeps application_name to NAMEDATALEN - 1 bytes. */
const APPLICATION_NAME_BYTES = 63;

export function applicationName(text: string): string {
  let out = text.replace(/[^\x20-\x7e]/g, '?');
  while (Buffer.byteLength(out) > APPLICATION_NAME_BYTES) out = out.slice(0, -1);
  return out;
}

const lost = new WeakMap<pg.Client, AbortController>();

export interface ConnectOptions {
  /** Shown in pg_stat_activity (and so in "locked by" messages); default `llmchat-ops`. */
  applicationName?: string;
  /** Called once when the connection fails after it was established (not when it is ended by us). */
  onLost?: (err: Error) => void;
}

/** Opens a client to `database` of the environment's server; the password is read on the worker by its variable name. */
export async function connectPg(env: EnvironmentConfig, database: string, opts: ConnectOptions = {}): Promise<pg.Client> {
  const client = new pg.Client({
    host: env.database.host,
    port: env.database.port,
    user: env.database.user,
    password: resolveSecret(env.database.passwordEnv),
    database,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    application_name: applicationName(opts.applicationName ?? 'llmchat-ops'),
  });
  const controller = new AbortController();
  lost.set(client, controller);
  let ending = false;
  const fail = (err: Error) => {
    if (ending || controller.signal.aborted) return;
    controller.abort(err);
    opts.onLost?.(err);
  };
  client.on('error', (err) => fail(new Error(`PostgreSQL connection to ${database} lost: ${err.message}`, { cause: err })));
  client.on('end', () => fail(new Error(`PostgreSQL connection to ${database} closed by the server`)));
  const end = client.end.bind(client);
  client.end = ((cb?: (err?: Error) => void) => {
    ending = true;
    return cb ? end(cb) : end();
  }) as typeof client.end;
  try {
    await client.connect();
  } catch (err) {
    ending = true;
    await end().catch(() => {});
    throw err;
  }
  return client;
}

/** Fires when `client` (opened by {@link connectPg}) loses its connection. */
export function lostSignal(client: pg.Client): AbortSignal {
  const c = lost.get(client);
  if (!c) throw new Error('lostSignal: client was not opened by connectPg');
  return c.signal;
}

/** Runs `fn` with a fresh client and always ends it. */
export async function withPg<T>(env: EnvironmentConfig, database: string, fn: (c: pg.Client) => Promise<T>, opts?: ConnectOptions): Promise<T> {
  const client = await connectPg(env, database, opts);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}
