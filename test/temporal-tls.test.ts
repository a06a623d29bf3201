/**
 * Connection settings by the SDK's conventions: the precedence of defaults < TOML profile < TEMPORAL_* env <
 * ops.config.yaml, and the real Temporal server (built from go.temporal.io/server) with mTLS on its frontend and
 * certificates made here with openssl: the worker process, `schedules apply` and the CLI connect through a TOML
 * profile or TEMPORAL_TLS_* variables; a wrong CA, a missing client certificate and plaintext fail with one
 * readable line.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { parse as parseYaml, stringify } from 'yaml';
import { resolveTemporalSettings, type TemporalConfig } from '../src/common/temporal-config.js';
import { freePort, PG, ROOT, scratchDatabase, tempDir, waitFor } from './support/services.js';
import { temporalBinary, testConfigYaml } from './support/temporal.js';
import { makeCerts, startRealServer, type RealServer, type TestCerts } from './support/temporal-server.js';

const t = (over: Partial<TemporalConfig> = {}): TemporalConfig => ({ taskQueue: 'q', codecServer: { host: '127.0.0.1', port: 8888, tokenEnv: 'X', corsOrigins: [] }, ...over });

describe('temporal connection settings: precedence', () => {
  it('defaults < TOML profile < TEMPORAL_* env < ops.config.yaml', async () => {
    const dir = tempDir('envconfig');
    const toml = path.join(dir, 'temporal.toml');
    await writeFile(toml, '[profile.default]\naddress = "toml-default:7233"\n\n[profile.prod]\naddress = "toml-prod:7233"\nnamespace = "prod-ns"\n[profile.prod.grpc_meta]\nx-team = "ops"\n');
    assert.equal(resolveTemporalSettings(t(), {}).address, '127.0.0.1:7233', 'default');
    assert.equal(resolveTemporalSettings(t(), {}).namespace, 'default');
    assert.equal(resolveTemporalSettings(t(), { TEMPORAL_CONFIG_FILE: toml }).address, 'toml-default:7233', 'the default profile');
    const prod = resolveTemporalSettings(t({ configFile: toml, profile: 'prod' }), {});
    assert.deepEqual([prod.address, prod.namespace, prod.metadata], ['toml-prod:7233', 'prod-ns', { 'x-team': 'ops' }]);
    assert.equal(resolveTemporalSettings(t(), { TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' }).namespace, 'prod-ns');
    const env = resolveTemporalSettings(t({ configFile: toml, profile: 'prod' }), { TEMPORAL_ADDRESS: 'env:7233', TEMPORAL_NAMESPACE: 'env-ns' });
    assert.deepEqual([env.address, env.namespace], ['env:7233', 'env-ns'], 'env over the profile');
    const ops = resolveTemporalSettings(t({ configFile: toml, profile: 'prod', address: 'ops:7233', namespace: 'ops-ns' }), { TEMPORAL_ADDRESS: 'env:7233', TEMPORAL_NAMESPACE: 'env-ns' });
    assert.deepEqual([ops.address, ops.namespace], ['ops:7233', 'ops-ns'], 'ops.config.yaml over env');
    assert.throws(() => resolveTemporalSettings(t({ configFile: toml, profile: 'nope' }), {}), /Profile 'nope' not found/);
  });

  it('an API key turns TLS on (Temporal Cloud); apiKeyEnv names the variable; plaintext unless asked', () => {
    assert.equal(resolveTemporalSettings(t(), {}).tls, undefined);
    const cloud = resolveTemporalSettings(t({ address: 'ns.acct.tmprl.cloud:7233', apiKeyEnv: 'MY_KEY' }), { MY_KEY: 'k-123' });
    assert.equal(cloud.apiKey, 'k-123');
    assert.equal(cloud.tls, true);
    assert.match(cloud.describe, /TLS \(system CAs\), API key/);
    assert.equal(resolveTemporalSettings(t(), { TEMPORAL_API_KEY: 'k-env' }).apiKey, 'k-env');
    assert.throws(() => resolveTemporalSettings(t({ apiKeyEnv: 'MY_KEY' }), {}), /MY_KEY \(the Temporal API key\) is not set/);
    assert.throws(() => resolveTemporalSettings(t({ tls: { serverCaCert: '/nonexistent/ca.pem' } }), {}), /cannot read \/nonexistent\/ca.pem/);
  });
});

describe('temporal connection over mTLS (real Temporal server, openssl certificates)', () => {
  let server: RealServer;
  let certs: TestCerts;
  let dir: string;
  let configFile: string;
  let toml: string;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let worker: ChildProcess | undefined;
  let workerLog = '';
  const taskQueue = `test-tls-${randomUUID()}`;
  const baseEnv = () => {
    const e: NodeJS.ProcessEnv = { ...process.env, LLMCHAT_DB_PASSWORD: PG.password, LLMCHAT_OPS_METRICS_PORT: '0' };
    for (const k of Object.keys(e)) if (k.startsWith('TEMPORAL_') && k !== 'TEMPORAL_CLI_PATH') delete e[k];
    return e;
  };
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, env: { ...baseEnv(), ...env }, extendEnv: false, reject: false });

  before(async () => {
    dir = tempDir('tls');
    let metricsPort: number;
    [certs, db, metricsPort] = await Promise.all([makeCerts(dir), scratchDatabase(), freePort()]);
    server = await startRealServer(dir, certs);
    // The ops config names no address: it comes from the TOML profile (or TEMPORAL_* in the tests below).
    const doc = parseYaml(testConfigYaml({ address: 'x', taskQueue, metricsPort, environments: { production: { url: 'http://127.0.0.1:1', logs: dir, database: db.name } }, schedules: { dailyHealthCheck: { cron: '0 8 * * *', environments: ['production'], paused: true } } })) as { temporal: Record<string, unknown> };
    doc.temporal = { taskQueue };
    configFile = path.join(dir, 'ops.config.yaml');
    await writeFile(configFile, stringify(doc));
    toml = path.join(dir, 'temporal.toml');
    await writeFile(toml, `[profile.selfhosted]\naddress = "${server.address}"\nnamespace = "default"\n[profile.selfhosted.tls]\nserver_ca_cert_path = "${certs.ca}"\nclient_cert_path = "${certs.clientCert}"\nclient_key_path = "${certs.clientKey}"\nserver_name = "localhost"\n`);
  });

  after(async () => {
    worker?.kill('SIGTERM');
    await server?.stop();
    await db?.drop();
  });

  const profileEnv = () => ({ TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'selfhosted' });
  const tlsEnv = (ca: string) => ({ TEMPORAL_ADDRESS: server.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca, TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey, TEMPORAL_TLS_SERVER_NAME: 'localhost' });

  it('config check names the resolved connection: profile, TLS with the CA, client certificate', async () => {
    const r = await cli(['config', 'check'], profileEnv());
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Temporal ${server.address} namespace default, TLS \\(CA ${certs.ca.replace(/[.]/g, '\\.')}, client certificate\\), profile selfhosted of ${toml.replace(/[.]/g, '\\.')}`));
  });

  it('schedules apply connects through the TOML profile (mTLS)', async () => {
    const r = await cli(['schedules', 'apply'], profileEnv());
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /dailyHealthCheck-production/);
    const list = await execa(temporalBinary(), ['schedule', 'list', ...server.cliFlags], { reject: false });
    assert.match(list.stdout, /dailyHealthCheck-production/);
  });

  it('the worker connects with TEMPORAL_TLS_* variables and runs a health check the CLI starts', async () => {
    worker = spawn('node', ['dist/src/worker.js', configFile], { cwd: ROOT, env: { ...baseEnv(), ...tlsEnv(certs.ca) }, stdio: ['ignore', 'pipe', 'pipe'] });
    worker.stdout!.on('data', (c: Buffer) => (workerLog += c.toString()));
    worker.stderr!.on('data', (c: Buffer) => (workerLog += c.toString()));
    await waitFor('the worker to start', async () => /llmchat-ops worker started/.test(workerLog), 60_000);
    assert.match(workerLog, /"temporal":"127\.0\.0\.1:\d+ namespace default, TLS \(CA [^)]*, client certificate\)"/);
    const r = await cli(['health', '--env', 'production', '--json'], profileEnv());
    assert.ok(r.exitCode === 0 || r.exitCode === 2, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { environment: string }).environment, 'production');
  });

  it('a wrong CA fails with one readable line naming the CA file', async () => {
    if (worker && worker.exitCode === null) {
      const gone = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGTERM');
      await gone; // frees its metrics port for the worker below
    }
    const r = await cli(['schedules', 'list'], tlsEnv(certs.wrongCa));
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /^llmchat-ops: cannot connect to Temporal at 127\.0\.0\.1:\d+ namespace default, TLS \(CA [^)]*wrong-ca\.pem, client certificate\): the server's TLS certificate is not signed by the trusted CA \(CA file [^)]*wrong-ca\.pem\)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    // The worker (Rust core connection) says the same and exits 1.
    const w = await execa('node', ['dist/src/worker.js', configFile], { cwd: ROOT, env: { ...baseEnv(), ...tlsEnv(certs.wrongCa) }, extendEnv: false, reject: false, timeout: 60_000 });
    assert.equal(w.exitCode, 1);
    assert.match(w.stderr, /cannot connect to Temporal at .*wrong-ca\.pem.*not signed by the trusted CA/);
    process.stdout.write(`# wrong CA (CLI): ${r.stderr.trim()}\n# wrong CA (worker): ${w.stderr.trim()}\n`);
  });

  it('no client certificate, plaintext, or nothing listening: each fails readably too', async () => {
    const noCert = await cli(['schedules', 'list'], { TEMPORAL_ADDRESS: server.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.ca, TEMPORAL_TLS_SERVER_NAME: 'localhost' });
    assert.equal(noCert.exitCode, 1);
    assert.match(noCert.stderr, /^llmchat-ops: cannot connect to Temporal at .*TLS \(CA .*\): the server requires a client certificate it trusts \(mTLS\) and rejected ours \(none configured\)/);
    const plain = await cli(['schedules', 'list'], { TEMPORAL_ADDRESS: server.address });
    assert.equal(plain.exitCode, 1);
    assert.match(plain.stderr, /^llmchat-ops: cannot connect to Temporal at 127\.0\.0\.1:\d+ namespace default, plaintext: the server speaks TLS on this port/);
    const nobody = await cli(['schedules', 'list'], { TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
    assert.equal(nobody.exitCode, 1);
    assert.match(nobody.stderr, /plaintext: nothing listens there/);
    process.stdout.write(`# no client certificate: ${noCert.stderr.trim()}\n# plaintext: ${plain.stderr.trim()}\n# nothing listening: ${nobody.stderr.trim()}\n`);
  });
});
