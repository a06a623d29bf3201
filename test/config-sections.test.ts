/**
 * Config by section (issue 16): one duration type for every duration key, cron expressions checked by a cron
 * parser when the config loads (`config check`, the worker's start, `schedules apply`), every problem listed at
 * once with its key path.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { ConfigError, parseConfig, type OpsConfig } from '../src/common/config/index.js';
import { ROOT } from './support/services.js';

const BASE = `
environments:
  production:
    url: http://127.0.0.1:3001
    database: { name: llmchat, user: llmchat }
    redis: { url: "redis://127.0.0.1:6379/0" }
    compose: { file: c.yml, project: p, service: app }
    paths: { logs: l, uploads: u, config: c, backups: b, temp: t, app: a }
`;

/** BASE plus `extra` top-level YAML, and `env` YAML inside the production environment (both indented by the caller). */
function config(extra = '', env = ''): string {
  return `${BASE}${env}${extra}`;
}

function problemsOf(yaml: string): string[] {
  try {
    parseConfig(yaml, 'x.yaml', '/srv');
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  return assert.fail('expected a ConfigError');
}

function parse(yaml: string): OpsConfig {
  return parseConfig(yaml, 'x.yaml', '/srv');
}

describe('config sections: one duration type', () => {
  it('every millisecond duration key takes the same <number><unit> syntax: 500ms, 1.5h and 2w where one key or another refused them', () => {
    const cfg = parse(
      config(
        `
worker: { shutdownGraceTime: 1h, heartbeatThrottle: 1.5s }
backup: { approvalTimeout: 2w }
maintenance: { maxWait: 500ms, lockTimeout: 0.5s, lockRetryFor: 1.5h }
alerts: { escalateAfter: 1w, grace: 250ms }
`,
        `    deploy: { healthTimeout: 500ms, approvalTimeout: 1.5d, bake: { duration: 90s, interval: 2500ms } }
    faultDetection: { recovery: { per: 2w, healthyTimeout: 1.5m } }
`,
      ),
    );
    const prod = cfg.environments.production!;
    assert.equal(cfg.worker.shutdownGraceTime, 3_600_000);
    assert.equal(cfg.worker.heartbeatThrottle, 1500);
    assert.equal(cfg.backup.approvalTimeout, 14 * 86_400_000);
    assert.equal(cfg.maintenance.maxWait, 500);
    assert.equal(cfg.maintenance.lockTimeout, 500);
    assert.equal(cfg.maintenance.lockRetryFor, 5_400_000);
    assert.equal(cfg.alerts.escalateAfter, 7 * 86_400_000);
    assert.equal(cfg.alerts.grace, 250);
    assert.equal(prod.deploy.healthTimeout, 500);
    assert.equal(prod.deploy.approvalTimeout, 36 * 3_600_000);
    assert.equal(prod.deploy.bake.duration, 90_000);
    assert.equal(prod.deploy.bake.interval, 2500);
    assert.equal(prod.faultDetection.recovery.per, 14 * 86_400_000);
    assert.equal(prod.faultDetection.recovery.healthyTimeout, 90_000);
  });

  it('keys named with their unit keep plain numbers and also take a duration converted to that unit', () => {
    const cfg = parse(
      config(
        `
maintenance: { batchTargetMs: 0.05s, sessionIdleDays: 4w, orphanMessageDays: 90 }
cleanup: { logsDays: 7d, tempDays: 1, uploadsDays: "30" }
report: { slowQueryMs: 0.25s, thresholds: { averageLatencyMs: 500 } }
backup: { retention: { maxAgeDays: 6w } }
`,
        `    thresholds: { logStaleMinutes: 2h, httpTimeoutMs: 5s }
    faultDetection: { thresholds: { logStaleMinutes: 30, responseTimeMs: 1.5s } }
`,
      ),
    );
    const prod = cfg.environments.production!;
    assert.equal(cfg.maintenance.batchTargetMs, 50);
    assert.equal(cfg.maintenance.sessionIdleDays, 28);
    assert.equal(cfg.maintenance.orphanMessageDays, 90);
    assert.deepEqual([cfg.cleanup.logsDays, cfg.cleanup.tempDays, cfg.cleanup.uploadsDays], [7, 1, 30]);
    assert.equal(cfg.report.slowQueryMs, 250);
    assert.equal(cfg.report.thresholds.averageLatencyMs, 500);
    assert.equal(cfg.backup.retention.maxAgeDays, 42);
    assert.equal(prod.thresholds.logStaleMinutes, 120);
    assert.equal(prod.thresholds.httpTimeoutMs, 5000);
    assert.equal(prod.faultDetection.thresholds.logStaleMinutes, 30);
    assert.equal(prod.faultDetection.thresholds.responseTimeMs, 1500);
  });

  it('day keys take only d and w: "7m" is refused, not read as 7 minutes; the key limits still hold after conversion', () => {
    const problems = problemsOf(config('\ncleanup: { logsDays: 7m, tempDays: 12h }\nmaintenance: { sessionIdleDays: 11y, orphanMessageDays: 600w }\n'));
    assert.equal(problems.length, 4, problems.join('\n'));
    assert.match(problems.find((p) => p.startsWith('cleanup.logsDays:')) ?? '', /unit d, w/);
    assert.match(problems.find((p) => p.startsWith('cleanup.tempDays:')) ?? '', /unit d, w/);
    assert.match(problems.find((p) => p.startsWith('maintenance.sessionIdleDays:')) ?? '', /unit d, w/);
    assert.match(problems.find((p) => p.startsWith('maintenance.orphanMessageDays:')) ?? '', /at most 3650 days/);
  });

  it('refuses what no duration key takes: no unit, spaces, upper case, negative, exponent, unknown unit', () => {
    for (const bad of ['5', '2 days', '5M', '-1s', '1e3', '5x', '']) {
      const problems = problemsOf(config(`\nmaintenance: { maxWait: ${JSON.stringify(bad)} }\n`));
      assert.equal(problems.length, 1, `${bad}: ${problems.join('\n')}`);
      assert.match(problems[0]!, /^maintenance\.maxWait: must be a duration like 30m/, bad);
    }
    assert.match(problemsOf(config('\nmaintenance: { lockTimeout: 11m }\n')).join('\n'), /maintenance\.lockTimeout: must be between 10ms and 10m/);
    assert.match(problemsOf(config('\nworker: { heartbeatThrottle: 1.0005s }\n')).join('\n'), /worker\.heartbeatThrottle: must be a whole number of milliseconds/);
  });
});

describe('config sections: cron expressions checked by a cron parser', () => {
  const withCron = (cron: string) => config(`\nschedules:\n  dailyHealthCheck: { cron: ${JSON.stringify(cron)}, environments: [production] }\n`);

  it('accepts the five-field crons Temporal runs (numbers, names, ranges, steps, lists, 29 February)', () => {
    for (const cron of ['0 8 * * *', '*/15 * * * *', '0 3 * * mon-fri', '30 2 1-7 * 0', '0 4 * jan,jul 7', '0 8 29 2 *', '5,35 0-23/2 * * 1-5']) {
      assert.equal(parse(withCron(cron)).schedules.dailyHealthCheck?.cron, cron);
    }
  });

  it('refuses junk, out-of-range fields, never-existing dates and extensions Temporal does not run, with the key path', () => {
    const cases: [string, RegExp][] = [
      ['0 8 31 2 *', /never runs: no month in "2" has a day "31"/],
      ['0 8 30,31 2 *', /never runs/],
      ['0 8 31 4,6,9,11 *', /never runs/],
      ['0 8 30-31 feb *', /never runs/],
      ['61 8 * * *', /0-59/],
      ['0 24 * * *', /0-23/],
      ['0 8 0 * *', /1-31/],
      ['0 8 * 13 *', /1-12/],
      ['0 8 * * 8', /0-7/],
      ['5-1 * * * *', /range/i],
      ['*/0 * * * *', /every 0/],
      ['a b c d e', /not cron syntax/],
      ['0 8 L * *', /"L" is not cron syntax/],
      ['0 8 * * 5L', /"L" is not cron syntax/],
      ['0 8 * * 1#2', /"#" is not cron syntax/],
      ['0 8 ? * *', /"\?" is not cron syntax/],
      ['H 8 * * *', /"H" is not cron syntax/],
      ['0 8 15W * *', /"W" is not cron syntax/],
      ['@daily', /five-field/],
      ['0 0 8 * * *', /five-field/],
    ];
    for (const [cron, why] of cases) {
      const problems = problemsOf(withCron(cron));
      assert.equal(problems.length, 1, `${cron}: ${problems.join('\n')}`);
      assert.ok(problems[0]!.startsWith('schedules.dailyHealthCheck.cron: '), `${cron}: ${problems[0]}`);
      assert.match(problems[0]!, why, cron);
    }
  });
});

describe('config sections: every problem at once', () => {
  it('lists duration, day-key, cron and other section problems together, each with its key path', () => {
    const problems = problemsOf(
      config(
        `
worker: { shutdownGraceTime: 30 }
cleanup: { logsDays: 7m }
maintenance: { lockTimeout: 5ms }
alerts: { grace: soon }
schedules:
  dailyHealthCheck: { cron: "0 8 31 2 *", environments: [production] }
  weeklyMaintenance: { cron: "0 3 * * 1#2", environments: [production] }
`,
        `    deploy: { healthTimeout: 2 minutes }
    thresholds: { httpTimeoutMs: 90s }
`,
      ),
    );
    const keys = problems.map((p) => p.slice(0, p.indexOf(':')));
    assert.deepEqual(keys.sort(), [
      'alerts.grace',
      'cleanup.logsDays',
      'environments.production.deploy.healthTimeout',
      'environments.production.thresholds.httpTimeoutMs',
      'maintenance.lockTimeout',
      'schedules.dailyHealthCheck.cron',
      'schedules.weeklyMaintenance.cron',
      'worker.shutdownGraceTime',
    ]);
  });

  it('config check, the worker and schedules apply refuse a never-existing cron date before they connect, naming the key', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'config-sections-'));
    const shipped = readFileSync(path.join(ROOT, 'ops.config.yaml'), 'utf8');
    const cron = /cron: "([^"]+)"/.exec(shipped)?.[1];
    assert.ok(cron, 'the shipped config has a quoted cron');
    const file = path.join(dir, 'ops.config.yaml');
    writeFileSync(file, shipped.replace(`cron: "${cron}"`, 'cron: "0 8 31 2 *"'));
    const env = { ...process.env, LLMCHAT_OPS_CONFIG: file };
    const runs = [
      await execa('node', [path.join(ROOT, 'bin/llmchat-ops.js'), 'config', 'check', '--config', file], { reject: false, env }),
      await execa('node', [path.join(ROOT, 'dist/src/worker.js'), file], { reject: false, env, timeout: 60_000 }),
      await execa('node', [path.join(ROOT, 'dist/src/schedules.js'), file], { reject: false, env, timeout: 60_000 }),
    ];
    for (const r of runs) {
      assert.notEqual(r.exitCode, 0, `${r.command}\n${r.stdout}`);
      assert.match(`${r.stdout}\n${r.stderr}`, /schedules\.\w+\.cron: never runs/, r.command);
    }
  });
});
