import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, getEnvironment, loadConfig, parseConfig, resolveSecret, UnknownEnvironmentError, MissingSecretError } from '../src/common/config/index.js';
import { ROOT } from './support/services.js';

describe('config', () => {
  it('loads the shipped ops.config.yaml with defaults filled in and paths made absolute', () => {
    const cfg = loadConfig(path.join(ROOT, 'ops.config.yaml'));
    assert.deepEqual(Object.keys(cfg.environments).sort(), ['production', 'staging']);
    const prod = getEnvironment(cfg, 'production');
    assert.equal(prod.url, 'http://127.0.0.1:3001');
    assert.equal(prod.thresholds.diskPercent, 80);
    assert.equal(prod.thresholds.logStaleMinutes, 60);
    assert.ok(path.isAbsolute(prod.paths.logs), prod.paths.logs);
    assert.equal(prod.compose.file, path.join(ROOT, 'app/compose/docker-compose.production.yml'));
    assert.equal(cfg.temporal.taskQueue, 'llmchat-ops');
    assert.deepEqual(cfg.notifications.routes.critical, ['email', 'slack', 'webhook']);
    assert.deepEqual(cfg.schedules.dailyHealthCheck?.environments, ['production']);
    assert.equal(cfg.backup.approvalTimeout, 24 * 3_600_000, 'durations are read as milliseconds');
    assert.equal(cfg.backup.compression.program, 'zstd');
    assert.deepEqual(cfg.backup.exclude, ['node_modules', 'dist', '.git']);
  });

  it('resolves a command named by a relative path against the config file; a bare program name stays for PATH', () => {
    const shipped = readFileSync(path.join(ROOT, 'ops.config.yaml'), 'utf8');
    const cfg = parseConfig(shipped, 't', '/etc/llmchat-ops');
    assert.deepEqual(cfg.environments.production?.commands.build, ['/etc/llmchat-ops/app/build-images.sh']);
    const bare = parseConfig(shipped.replace('commands: { build: [app/build-images.sh] }', 'commands: { build: [npm, run, build], test: [/usr/bin/make, test] }'), 't', '/etc/llmchat-ops');
    assert.deepEqual(bare.environments.production?.commands, { build: ['npm', 'run', 'build'], test: ['/usr/bin/make', 'test'] });
  });

  it('reads backup durations and rejects malformed ones with the key path', () => {
    const shipped = readFileSync(path.join(ROOT, 'ops.config.yaml'), 'utf8');
    assert.match(shipped, /approvalTimeout: 24h/);
    const with30m = shipped.replace('approvalTimeout: 24h', 'approvalTimeout: 30m');
    assert.equal(parseConfig(with30m, 't', ROOT).backup.approvalTimeout, 30 * 60_000);
    const bad = shipped.replace('approvalTimeout: 24h', 'approvalTimeout: 1 week');
    assert.throws(() => parseConfig(bad, 't', ROOT), /backup\.approvalTimeout: must be a duration like 30m/);
  });

  it('names backup secrets by variable only: signing keys (current and previous) and the restore-test role', () => {
    const shipped = readFileSync(path.join(ROOT, 'ops.config.yaml'), 'utf8');
    const cfg = parseConfig(shipped, 't', ROOT);
    assert.equal(cfg.backup.signingKeyEnv, 'LLMCHAT_BACKUP_SIGNING_KEY');
    assert.deepEqual(cfg.backup.previousSigningKeyEnvs, []);
    assert.deepEqual(cfg.backup.restoreTest, { role: 'llmchat_restore_test', passwordEnv: 'LLMCHAT_RESTORE_TEST_DB_PASSWORD' });
    const rotated = shipped.replace('previousSigningKeyEnvs: []', 'previousSigningKeyEnvs: [LLMCHAT_BACKUP_SIGNING_KEY_2025]');
    assert.deepEqual(parseConfig(rotated, 't', ROOT).backup.previousSigningKeyEnvs, ['LLMCHAT_BACKUP_SIGNING_KEY_2025']);
    const literal = shipped.replace('signingKeyEnv: LLMCHAT_BACKUP_SIGNING_KEY', 'signingKeyEnv: "s3cr3t key"');
    assert.throws(() => parseConfig(literal, 't', ROOT), /backup\.signingKeyEnv: must be an environment variable name/);
    const superRole = shipped.replace('role: llmchat_restore_test', 'role: "postgres; DROP"');
    assert.throws(() => parseConfig(superRole, 't', ROOT), /backup\.restoreTest\.role: must be a plain lowercase PostgreSQL role name/);
  });

  it('deploy.databaseRollback: migrate-down by default, restore-backup only with the pre-deploy backup', () => {
    const shipped = readFileSync(path.join(ROOT, 'ops.config.yaml'), 'utf8');
    assert.match(shipped, /databaseRollback: migrate-down/);
    assert.equal(parseConfig(shipped, 't', ROOT).environments.staging?.deploy.databaseRollback, 'migrate-down');
    const restore = shipped.replace('databaseRollback: migrate-down', 'databaseRollback: restore-backup');
    assert.equal(parseConfig(restore, 't', ROOT).environments.production?.deploy.databaseRollback, 'restore-backup');
    const noBackup = restore.replace('backupBeforeDeploy: true', 'backupBeforeDeploy: false');
    assert.throws(() => parseConfig(noBackup, 't', ROOT), /environments\.production\.deploy\.databaseRollback: restore-backup restores the pre-deploy backup: it needs backupBeforeDeploy: true/);
    const typo = shipped.replace('databaseRollback: migrate-down', 'databaseRollback: restore');
    assert.throws(() => parseConfig(typo, 't', ROOT), /environments\.production\.deploy\.databaseRollback/);
  });

  it('lists every problem of a malformed config at once, each with the path of the offending key', () => {
    const yaml = `
environments:
  Prod!: { url: x }
  production:
    url: ftp://example.com
    database: { name: "llmchat; drop", user: llmchat, passwordEnv: lower-case }
    redis: { url: "redis://127.0.0.1:6379/0" }
    compose: { file: c.yml, project: p, service: app }
    paths: { logs: l, uploads: u, config: c, backups: b, temp: t, app: a }
    thresholds: { diskPercent: 180 }
    colour: blue
timezone: Mars/Olympus
schedules:
  dailyHealthCheck: { cron: "every day", environments: [nowhere] }
`;
    const err = (() => {
      try {
        parseConfig(yaml, 'bad.yaml', '/');
      } catch (e) {
        return e;
      }
      assert.fail('expected a ConfigError');
    })();
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    for (const expected of [
      'environments.Prod!',
      'environments.production.url',
      'environments.production.database.name',
      'environments.production.database.passwordEnv',
      'environments.production.thresholds.diskPercent',
      'environments.production',
      'schedules.dailyHealthCheck.cron',
    ]) {
      assert.ok(text.includes(`${expected}:`), `missing ${expected} in:\n${text}`);
    }
    assert.match(text, /colour/);
    assert.equal(err.problems.length, 7, text);
    assert.match(err.message, /^Invalid config bad\.yaml:/);
  });

  it('reports cross-field problems (unknown schedule environment, timezone) once the shape is valid', () => {
    const yaml = `
timezone: Mars/Olympus
environments:
  production:
    url: http://127.0.0.1:3001
    database: { name: llmchat, user: llmchat }
    redis: { url: "redis://127.0.0.1:6379/0" }
    compose: { file: c.yml, project: p, service: app }
    paths: { logs: l, uploads: u, config: c, backups: b, temp: t, app: a }
schedules:
  dailyHealthCheck: { cron: "0 8 * * *", environments: [production, nowhere] }
`;
    assert.throws(() => parseConfig(yaml, 'x.yaml', '/'), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.ok(e.problems.some((p) => p.startsWith('schedules.dailyHealthCheck.environments.1: unknown environment "nowhere"')), e.message);
      assert.ok(e.problems.some((p) => p.startsWith('timezone: unknown IANA timezone')), e.message);
      return true;
    });
  });

  it('rejects YAML that does not parse, and a missing file, with the file named', () => {
    assert.throws(() => parseConfig('environments: [unclosed', 'broken.yaml', '/'), /Invalid config broken\.yaml:\n {2}- not valid YAML/);
    assert.throws(() => loadConfig('/nonexistent/ops.yaml'), /Invalid config \/nonexistent\/ops\.yaml:\n {2}- cannot read the file: ENOENT/);
  });

  it('expands ${VAR:-default} from the environment and flags unset variables without default', () => {
    process.env.LLMCHAT_TEST_PORT = '3999';
    const base = (url: string) => `
environments:
  production:
    url: ${url}
    database: { name: llmchat, user: llmchat }
    redis: { url: "redis://127.0.0.1:6379/0" }
    compose: { file: c.yml, project: p, service: app }
    paths: { logs: "\${LLMCHAT_TEST_NOPE:-/var/log/llmchat}", uploads: u, config: c, backups: b, temp: t, app: a }
`;
    const cfg = parseConfig(base('"http://127.0.0.1:${LLMCHAT_TEST_PORT}"'), 'x', '/srv');
    assert.equal(cfg.environments.production?.url, 'http://127.0.0.1:3999');
    assert.equal(cfg.environments.production?.paths.logs, '/var/log/llmchat');
    assert.equal(cfg.environments.production?.paths.uploads, '/srv/u');
    assert.throws(() => parseConfig(base('"http://${LLMCHAT_TEST_UNSET_VAR}"'), 'x', '/'), /environments\.production\.url: environment variable LLMCHAT_TEST_UNSET_VAR is not set/);
  });

  it('names the known environments for an unknown one, and never resolves inherited keys', () => {
    const cfg = loadConfig(path.join(ROOT, 'ops.config.yaml'));
    assert.throws(() => getEnvironment(cfg, 'prod'), (e: unknown) => e instanceof UnknownEnvironmentError && /known environments: production, staging/.test(e.message));
    assert.throws(() => getEnvironment(cfg, 'constructor'), UnknownEnvironmentError);
  });

  it('resolves secrets only by variable name, failing clearly when unset', () => {
    process.env.LLMCHAT_TEST_SECRET = 's3cret';
    assert.equal(resolveSecret('LLMCHAT_TEST_SECRET'), 's3cret');
    assert.equal(resolveSecret(undefined), undefined);
    assert.throws(() => resolveSecret('LLMCHAT_TEST_MISSING_SECRET'), (e: unknown) => e instanceof MissingSecretError && /LLMCHAT_TEST_MISSING_SECRET is not set on the worker/.test(e.message));
  });
});
