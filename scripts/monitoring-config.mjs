#!/usr/bin/env node
// Writes the Prometheus and Alertmanager configuration that `scripts/services.sh up monitoring` runs, from
// monitoring/'s files and the llmchat-ops config (the built dist/src/common/config/index.js reads it, with its ${VAR:-default}
// interpolation), so scrape targets and the receiver URL always match the config:
//
//   node scripts/monitoring-config.mjs --config ops.config.yaml --out <dir> [--token-file <path>]
//
// Only addresses change; rules, routes, intervals and labels stay as monitoring/ has them:
//   - Prometheus listens on report.prometheusUrl's port (when that URL is on loopback; else
//     $LLMCHAT_PROMETHEUS_PORT, default 9090), Alertmanager on $LLMCHAT_ALERTMANAGER_PORT (9093), node-exporter on
//     $LLMCHAT_NODE_EXPORTER_PORT (9100), all on 127.0.0.1;
//   - job llmchat-app (named report.job) scrapes every environment's url, labelled environment=<name>; job
//     llmchat-ops scrapes worker.metricsPort; rule_files point at monitoring/prometheus/;
//   - Alertmanager's llmchat-ops receiver posts to alertmanagerReceiver's host:port/alertmanager, with the bearer
//     token (see receiverToken below) as a credentials_file when the receiver wants one.
// Writes <dir>/prometheus.yml and <dir>/alertmanager.yml (and the token file, mode 0600, when needed: --token-file,
// default <dir>/receiver.token; Alertmanager's config names that path), then
// prints `name=value` lines (prometheus_port, alertmanager_port, node_exporter_port, receiver_token) for the caller.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MON = path.join(ROOT, 'monitoring');
const die = (msg) => {
  console.error(`monitoring-config: ${msg}`);
  process.exit(2);
};

const { values } = parseArgs({ options: { config: { type: 'string' }, out: { type: 'string' }, 'token-file': { type: 'string' } } });
if (!values.out) die('usage: monitoring-config.mjs --config <ops.config.yaml> --out <dir> [--token-file <path>]');
const configModule = path.join(ROOT, 'dist/src/common/config/index.js');
if (!existsSync(configModule)) die(`${configModule} is missing: build first (npx tsc -p tsconfig.json)`);
const { loadConfig, configPath } = await import(pathToFileURL(configModule).href);

let cfg;
try {
  cfg = loadConfig(configPath(values.config));
} catch (err) {
  die(err.message);
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const portOf = (name, fallback) => {
  const raw = process.env[name] || String(fallback);
  if (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) die(`${name} must be a port number, got ${JSON.stringify(raw)}`);
  return Number(raw);
};
const hostPort = (url) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
};

// Prometheus: where the monthly report looks for it, when that is this machine.
let prometheusPort;
let note = '';
const reportUrl = cfg.report.prometheusUrl ? new URL(cfg.report.prometheusUrl) : undefined;
if (reportUrl && LOOPBACK.has(reportUrl.hostname) && reportUrl.protocol === 'http:') {
  prometheusPort = Number(reportUrl.port || 80);
  if (reportUrl.pathname !== '/' && reportUrl.pathname !== '') die(`report.prometheusUrl ${reportUrl} has a path: a local Prometheus serves at /`);
} else {
  prometheusPort = portOf('LLMCHAT_PROMETHEUS_PORT', 9090);
  note = reportUrl
    ? `report.prometheusUrl is ${reportUrl.origin}, not this machine: the monthly report reads that one, not the local Prometheus on 127.0.0.1:${prometheusPort}`
    : `report.prometheusUrl is not set: the monthly report cannot read the local Prometheus on 127.0.0.1:${prometheusPort} (set it to http://127.0.0.1:${prometheusPort})`;
}
const alertmanagerPort = portOf('LLMCHAT_ALERTMANAGER_PORT', 9093);
const nodeExporterPort = portOf('LLMCHAT_NODE_EXPORTER_PORT', 9100);
const ports = [prometheusPort, alertmanagerPort, nodeExporterPort, cfg.worker.metricsPort, cfg.alertmanagerReceiver.port];
for (const [i, p] of ports.slice(0, 3).entries()) {
  if (ports.indexOf(p) !== i) die(`port ${p} is used twice (Prometheus ${prometheusPort}, Alertmanager ${alertmanagerPort}, node-exporter ${nodeExporterPort}, worker metrics ${cfg.worker.metricsPort}, Alertmanager receiver ${cfg.alertmanagerReceiver.port})`);
}

// ------------------------------------------------------------------ prometheus.yml
const prom = parse(readFileSync(path.join(MON, 'prometheus/prometheus.yml'), 'utf8'));
prom.rule_files = (prom.rule_files ?? []).map((f) => path.resolve(MON, 'prometheus', f));
prom.alerting = { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${alertmanagerPort}`] }] }] };
const environments = Object.keys(cfg.environments);
const hostEnvironment = (labels) => (labels?.environment && environments.includes(labels.environment) ? labels.environment : environments[0]);
for (const job of prom.scrape_configs) {
  const labels = job.static_configs?.[0]?.labels;
  switch (job.job_name) {
    case 'llmchat-app':
      job.job_name = cfg.report.job;
      job.static_configs = Object.entries(cfg.environments).map(([name, env]) => ({ targets: [hostPort(env.url)], labels: { environment: name } }));
      break;
    case 'llmchat-ops':
      job.static_configs = [{ targets: [`127.0.0.1:${cfg.worker.metricsPort}`] }];
      break;
    case 'node':
      job.static_configs = [{ targets: [`127.0.0.1:${nodeExporterPort}`], labels: { ...labels, environment: hostEnvironment(labels) } }];
      break;
    case 'prometheus':
      job.static_configs = [{ targets: [`127.0.0.1:${prometheusPort}`] }];
      break;
    default: // a job added to monitoring/ by hand: kept as it is
  }
}

// ------------------------------------------------------------------ alertmanager.yml
/**
 * The receiver's bearer token, isolated here so the token's origin can change without touching the rest:
 * alertmanagerReceiver.tokenFile (what ops.config.yaml names; scripts/receiver-token.sh generates it) is used as it
 * is; else $LLMCHAT_RECEIVER_TOKEN_FILE (a file that already holds it); else the value of the variable
 * alertmanagerReceiver.tokenEnv names, copied to `out` (0600). Neither: no token.
 */
function receiverToken(out) {
  const { tokenEnv, tokenFile: configured } = cfg.alertmanagerReceiver;
  if (configured) {
    if (!existsSync(configured)) die(`alertmanagerReceiver.tokenFile ${configured} does not exist: scripts/receiver-token.sh ${configured} generates it`);
    return path.resolve(configured);
  }
  if (!tokenEnv) return undefined;
  const file = process.env.LLMCHAT_RECEIVER_TOKEN_FILE;
  if (file) {
    if (!existsSync(file)) die(`LLMCHAT_RECEIVER_TOKEN_FILE names ${file}, which does not exist`);
    return path.resolve(file);
  }
  const token = process.env[tokenEnv];
  if (!token) die(`alertmanagerReceiver.tokenEnv is ${tokenEnv}, but ${tokenEnv} is not set: Alertmanager could not authenticate to the receiver`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, token, { mode: 0o600 });
  chmodSync(out, 0o600);
  return out;
}

mkdirSync(values.out, { recursive: true });
const am = parse(readFileSync(path.join(MON, 'alertmanager/alertmanager.yml'), 'utf8'));
const receiver = am.receivers?.find((r) => r.name === 'llmchat-ops');
const hook = receiver?.webhook_configs?.[0];
if (!hook) die('monitoring/alertmanager/alertmanager.yml has no llmchat-ops receiver with a webhook_config');
const r = cfg.alertmanagerReceiver;
const receiverHost = r.host === '0.0.0.0' || r.host === '::' ? '127.0.0.1' : r.host.includes(':') ? `[${r.host}]` : r.host;
hook.url = `http://${receiverHost}:${r.port}/alertmanager`;
const tokenFile = receiverToken(path.resolve(values['token-file'] ?? path.join(values.out, 'receiver.token')));
if (tokenFile) hook.http_config = { ...hook.http_config, authorization: { type: 'Bearer', credentials_file: tokenFile } };
else delete hook.http_config;
if (!r.enabled) note ||= 'alertmanagerReceiver.enabled is false: Alertmanager will post to a receiver the worker does not start';

const header = `# Written by scripts/monitoring-config.mjs from monitoring/ and ${configPath(values.config)}; regenerated at every start.\n`;
writeFileSync(path.join(values.out, 'prometheus.yml'), header + stringify(prom));
writeFileSync(path.join(values.out, 'alertmanager.yml'), header + stringify(am));
console.log(`prometheus_port=${prometheusPort}`);
console.log(`alertmanager_port=${alertmanagerPort}`);
console.log(`node_exporter_port=${nodeExporterPort}`);
console.log(`receiver_token=${tokenFile ? 'yes' : 'no'}`);
if (note) console.log(`note=${note}`);
