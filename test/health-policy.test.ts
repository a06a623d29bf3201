import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema } from '../src/common/config/index.js';
import { aggregateHealthStatus, evaluateHealth, type Measurements } from '../src/common/health.js';

const thresholds = configSchema.shape.environments.valueType.shape.thresholds.parse(undefined);

function measurements(over: Partial<Measurements> = {}): Measurements {
  const probe = (name: 'service' | 'database' | 'redis') => ({ name, url: `http://x/${name}`, ok: true, httpStatus: 200, responseTimeMs: 3 });
  return {
    endpoints: [probe('service'), probe('database'), probe('redis')],
    disks: [{ path: '/', usedPercent: 40, totalBytes: 100, availableBytes: 60 }],
    memory: { usedPercent: 30, totalBytes: 100, availableBytes: 70 },
    log: { file: '/l/app.log', exists: true, errorLines: 0, lines: 100, bytes: 1000, ageMinutes: 1 },
    ...over,
  };
}

describe('health policy (the guide\'s aggregateHealthStatus and thresholds)', () => {
  it('aggregates like the guide: none unhealthy → healthy, fewer than half → degraded, else unhealthy', () => {
    const s = (...st: ('healthy' | 'warning' | 'unhealthy')[]) => aggregateHealthStatus(st.map((status) => ({ status })));
    assert.equal(s('healthy', 'warning', 'healthy', 'healthy'), 'healthy');
    assert.equal(s('unhealthy', 'healthy', 'healthy', 'healthy', 'healthy', 'healthy'), 'degraded');
    assert.equal(s('unhealthy', 'unhealthy', 'healthy', 'healthy', 'healthy', 'healthy'), 'degraded');
    assert.equal(s('unhealthy', 'unhealthy', 'unhealthy', 'healthy', 'healthy', 'healthy'), 'unhealthy');
    assert.equal(s('unhealthy', 'healthy'), 'unhealthy');
  });

  it('uses the guide\'s defaults: disk 80 %, memory 80 %, 10 ERROR lines, 60 minutes', () => {
    assert.deepEqual(
      { d: thresholds.diskPercent, m: thresholds.memoryPercent, e: thresholds.logErrorLines, s: thresholds.logStaleMinutes },
      { d: 80, m: 80, e: 10, s: 60 },
    );
  });

  it('all fine → healthy, six checks, no alerts', () => {
    const r = evaluateHealth('production', measurements(), thresholds);
    assert.equal(r.status, 'healthy');
    assert.deepEqual(r.checks.map((c) => c.name), ['service', 'database', 'redis', 'disk', 'memory', 'log']);
    assert.deepEqual(r.alerts, []);
  });

  it('a failed endpoint is unhealthy with a critical alert naming it; one of six → degraded', () => {
    const m = measurements();
    m.endpoints[2] = { name: 'redis', url: 'http://x/health/redis', ok: false, httpStatus: 503, responseTimeMs: 4 };
    const r = evaluateHealth('production', m, thresholds);
    assert.equal(r.status, 'degraded');
    assert.equal(r.alerts.length, 1);
    assert.equal(r.alerts[0]?.severity, 'critical');
    assert.equal(r.alerts[0]?.type, 'endpoint_down');
    assert.match(r.alerts[0]?.message ?? '', /production: redis \(\/health\/redis\) failed: HTTP 503/);
  });

  it('thresholds are strict "greater than", as in the guide (80 is fine, 80.01 alerts)', () => {
    const at = evaluateHealth('p', measurements({ memory: { usedPercent: 80, totalBytes: 1, availableBytes: 0 } }), thresholds);
    assert.equal(at.alerts.length, 0);
    const over = evaluateHealth('p', measurements({ memory: { usedPercent: 80.01, totalBytes: 1, availableBytes: 0 }, disks: [{ path: '/data', usedPercent: 93.456, totalBytes: 1, availableBytes: 0 }] }), thresholds);
    assert.deepEqual(over.alerts.map((a) => [a.type, a.severity, a.value]), [['disk_usage', 'warning', 93.46], ['memory_usage', 'warning', 80.01]]);
    assert.equal(over.status, 'healthy', 'warnings do not make the service unhealthy');
    assert.equal(over.checks.find((c) => c.name === 'disk')?.status, 'warning');
  });

  it('log: more than 10 ERROR lines, a stale file, and a missing file each alert', () => {
    const noisy = evaluateHealth('p', measurements({ log: { file: 'f', exists: true, errorLines: 11, lines: 20, bytes: 1, ageMinutes: 61 } }), thresholds);
    assert.deepEqual(noisy.alerts.map((a) => a.type), ['log_errors', 'log_stale']);
    const ten = evaluateHealth('p', measurements({ log: { file: 'f', exists: true, errorLines: 10, lines: 20, bytes: 1, ageMinutes: 59 } }), thresholds);
    assert.deepEqual(ten.alerts, []);
    const missing = evaluateHealth('p', measurements({ log: { file: 'f', exists: false, errorLines: 0, lines: 0, bytes: 0 } }), thresholds);
    assert.deepEqual(missing.alerts.map((a) => a.type), ['log_missing']);
  });
});
