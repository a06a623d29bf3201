/**
 * The real Temporal server (go.temporal.io/server/cmd/server, built by `scripts/services.sh up temporalserver` into
 * .tools/temporal-server/bin), started by a test on its own free ports — SQLite in memory here, optionally with TLS
 * (and mTLS) on the frontend — and test certificates made with openssl.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { ALL_SEARCH_ATTRIBUTES } from '../../src/common/search-attributes.js';
import { ROOT, waitFor } from './services.js';
import { temporalBinary } from './temporal.js';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export const SERVER_BIN = path.join(ROOT, '.tools/temporal-server/bin/server');

export interface TestCerts {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here. */
  wrongCa: string;
}

/** A CA, a server certificate for localhost/127.0.0.1 (server + client auth) and a client certificate, by openssl. */
export async function makeCerts(dir: string): Promise<TestCerts> {
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execa('openssl', args, { cwd: dir });
  for (const ca of ['ca', 'wrong-ca']) {
    await ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${ca}.key`), '-out', f(`${ca}.pem`), '-days', '2', '-subj', `/CN=llmchat-ops test ${ca}`);
  }
  const ext = f('ext.cnf');
  await writeFile(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  for (const [name, cn] of [['server', 'localhost'], ['client', 'llmchat-ops worker']] as const) {
    await ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`);
    await ssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f(`${name}.pem`), '-days', '2', '-extfile', ext);
  }
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key'), wrongCa: f('wrong-ca.pem') };
}

export interface RealServer {
  address: string;
  /** Flags for the `temporal` CLI to reach it. */
  cliFlags: string[];
  stop(): Promise<void>;
  /** SIGKILL, as a crash: nothing is flushed. */
  kill9(): Promise<void>;
  /** Starts it again on the same config (persistence and ports) and waits until it serves. */
  restart(): Promise<void>;
}

export interface PostgresPersistence {
  /** Scratch databases this test owns (made by {@link createTemporalDatabases}). */
  database: string;
  visibility: string;
  user: string;
  password: string;
  port: number;
}

export const SQL_BIN = path.join(ROOT, '.tools/temporal-server/bin/sql');
export const SCHEMA_DIR = path.join(ROOT, '.tools/temporal-server/schema/postgresql/v12');

/** The two databases with Temporal's schema, by the module's own sql tool (create, setup-schema 0.0, update-schema). */
export async function createTemporalDatabases(p: PostgresPersistence): Promise<void> {
  for (const [db, dir] of [[p.database, 'temporal'], [p.visibility, 'visibility']] as const) {
    const sql = (...args: string[]) => execa(SQL_BIN, ['--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(p.port), '-u', p.user, '--pw', p.password, '--db', db, ...args]);
    await sql('create');
    await sql('setup-schema', '-v', '0.0');
    await sql('update-schema', '-d', path.join(SCHEMA_DIR, dir, 'versioned'));
  }
}

/** Starts the server (SQLite in memory or `postgres`; TLS with `certs`), registers namespace `default` and our search attributes. */
export async function startRealServer(dir: string, certs?: TestCerts, postgres?: PostgresPersistence): Promise<RealServer> {
  if (!existsSync(SERVER_BIN)) throw new Error(`the Temporal server is not built: run scripts/services.sh up temporalserver (${SERVER_BIN})`);
  // PostgreSQL's schema keeps membership ports as smallint: every port below 32768.
  const ports: number[] = [];
  while (ports.length < 11) {
    const p = 20_000 + Math.floor(Math.random() * 12_000);
    if (!ports.includes(p) && (await portFree(p))) ports.push(p);
  }
  const [fe, feM, feH, hi, hiM, ma, maM, wo, woM, metrics] = ports;
  const sqlite = (db: string) => ({ sql: { pluginName: 'sqlite', databaseName: db, connectAddr: 'localhost', connectProtocol: 'tcp', connectAttributes: { mode: 'memory', cache: 'private' }, maxConns: 1, maxIdleConns: 1, maxConnLifetime: '1h' } });
  const pgStore = (p: PostgresPersistence, db: string) => ({ sql: { pluginName: 'postgres12', databaseName: db, connectAddr: `127.0.0.1:${p.port}`, connectProtocol: 'tcp', user: p.user, password: p.password, maxConns: 10, maxIdleConns: 10, maxConnLifetime: '1h' } });
  const rpc = (grpcPort: number, membershipPort: number, httpPort?: number) => ({ rpc: { grpcPort, membershipPort, bindOnLocalHost: true, ...(httpPort ? { httpPort } : {}) } });
  const config = {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'default',
      visibilityStore: 'visibility',
      numHistoryShards: postgres ? 4 : 1,
      datastores: postgres ? { default: pgStore(postgres, postgres.database), visibility: pgStore(postgres, postgres.visibility) } : { default: sqlite('default'), visibility: sqlite('default') },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      metrics: { prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${metrics}` } },
      ...(certs
        ? {
            tls: {
              frontend: {
                server: { certFile: certs.serverCert, keyFile: certs.serverKey, requireClientAuth: true, clientCaFiles: [certs.ca] },
                client: { serverName: 'localhost', rootCaFiles: [certs.ca] },
              },
              systemWorker: { certFile: certs.clientCert, keyFile: certs.clientKey, client: { serverName: 'localhost', rootCaFiles: [certs.ca] } },
            },
          }
        : {}),
    },
    services: { frontend: rpc(fe!, feM!, feH), history: rpc(hi!, hiM!), matching: rpc(ma!, maM!), worker: rpc(wo!, woM!) },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: { active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: `localhost:${fe}`, httpAddress: `localhost:${feH}` } },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: path.join(dir, 'dynamicconfig.yaml'), pollInterval: '10s' },
  };
  // As the dev server does: search attributes registered a moment ago are usable at once.
  await writeFile(config.dynamicConfigClient.filepath, stringify({ 'system.forceSearchAttributesCacheRefreshOnRead': [{ value: true, constraints: {} }] }));
  const file = path.join(dir, 'temporal-server.yaml');
  await writeFile(file, stringify(config));
  let child: ChildProcess;
  let exited = false;
  const launch = () => {
    const log = openSync(path.join(dir, 'temporal-server.log'), 'a');
    child = spawn(SERVER_BIN, ['--config-file', file, '--allow-no-auth', 'start'], { stdio: ['ignore', log, log] });
    exited = false;
    child.once('exit', () => (exited = true));
  };
  const address = `127.0.0.1:${fe}`;
  const cliFlags = ['--address', address, ...(certs ? ['--tls-ca-path', certs.ca, '--tls-cert-path', certs.clientCert, '--tls-key-path', certs.clientKey, '--tls-server-name', 'localhost'] : [])];
  const cli = (...args: string[]) => execa(temporalBinary(), [...args, ...cliFlags], { reject: false });
  const serving = () =>
    waitFor('the Temporal server to answer', async () => {
      if (exited) throw new Error(`the Temporal server exited; see ${path.join(dir, 'temporal-server.log')}`);
      return (await cli('operator', 'cluster', 'health', '--command-timeout', '3s')).stdout.includes('SERVING');
    }, 90_000, 500);
  launch();
  try {
    await serving();
    await waitFor('namespace default', async () => {
      const r = await cli('operator', 'namespace', 'create', '--namespace', 'default', '--retention', '72h');
      return r.exitCode === 0 || /already exists|AlreadyExists/.test(r.stderr);
    }, 60_000, 1000);
    // One --type per --name (a single --type registers only the first name).
    const sa = ALL_SEARCH_ATTRIBUTES.flatMap((k) => ['--name', k.name, '--type', 'Keyword']);
    await waitFor('search attributes', async () => (await cli('operator', 'search-attribute', 'create', '--namespace', 'default', ...sa)).exitCode === 0, 60_000, 1000);
  } catch (err) {
    child!.kill('SIGKILL');
    throw err;
  }
  const kill = async (signal: NodeJS.Signals) => {
    if (exited) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  };
  return {
    address,
    cliFlags,
    stop: () => kill('SIGTERM'),
    kill9: () => kill('SIGKILL'),
    restart: async () => {
      launch();
      await serving();
    },
  };
}
