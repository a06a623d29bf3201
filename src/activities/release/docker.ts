/**
 * The Docker engine side of deploys and rollbacks: images (present, built by the configured command, or pulled),
 * the app's compose projects (one per slot), and migrations run inside an image.
 *
 * Container contract (used by fault detection, issue 9): every app container of an environment carries the
 * compose labels `com.docker.compose.project` = `<compose.project>` (strategy recreate) or
 * `<compose.project>-blue|green` (blue/green), `com.docker.compose.service` = `<compose.service>`, and the
 * labels `org.llmchat.environment` and `org.llmchat.slot` from the compose file. {@link findServingAppContainers}
 * returns the container(s) that serve the environment now (the slot the release records name), so a restart
 * of "the affected compose service" restarts the serving one, not a stopped or draining slot. Restarting it
 * in place (docker restart) keeps its labels and port; never `compose up` it with other variables.
 */
import { Context } from '@temporalio/activity';
import type Docker from 'dockerode';
import { dockerode } from '../../common/lazy-modules.js';
import { execa } from 'execa';
import { getEnvironment, resolveSecret, type EnvironmentConfig, type OpsConfig } from '../../common/config/index.js';
import { readFile } from 'node:fs/promises';
import { loadReleases, releaseFile, type SlotName } from './release-store.js';
import { context, guarded, permanent, progress, token } from '../common/activity-support.js';
import { refuseInResetRun } from '../common/temporal.js';

let docker: Docker | undefined;
/** One dockerode client (DOCKER_HOST from the worker's environment); its errors are activity errors. */
export function dockerClient(): Docker {
  docker ??= new (dockerode())();
  return docker;
}

export function imageRef(env: EnvironmentConfig, version: string): string {
  return env.deploy.image.replace('{version}', version);
}

/** The compose project of a slot: the configured one for recreate ("main"), `<project>-<slot>` for blue/green. */
export function slotProject(env: EnvironmentConfig, slot: SlotName): string {
  return slot === 'main' ? env.compose.project : `${env.compose.project}-${slot}`;
}

let composeCmd: Promise<string[]> | undefined;
/** `docker compose` (v2 plugin) if the docker CLI has it, else `docker-compose` (v1); LLMCHAT_COMPOSE overrides. */
function composeCommand(): Promise<string[]> {
  composeCmd ??= (async () => {
    const preset = process.env.LLMCHAT_COMPOSE;
    if (preset === 'docker compose' || preset === 'docker-compose') return preset.split(' ');
    const v2 = await execa('docker', ['compose', 'version'], { reject: false, stdin: 'ignore' });
    return v2.exitCode === 0 ? ['docker', 'compose'] : ['docker-compose'];
  })();
  return composeCmd;
}

function tail(text: string, lines = 20): string {
  return text.split('\n').filter((l) => l && !l.startsWith('WARNING: IPv4 forwarding')).slice(-lines).join('\n');
}

async function compose(env: EnvironmentConfig, project: string, args: string[], vars: Record<string, string>): Promise<void> {
  const [cmd, ...pre] = await composeCommand();
  const r = await execa(cmd as string, [...pre, '-p', project, '-f', env.compose.file, ...args], {
    env: { ...env.deploy.composeEnv, ...vars },
    reject: false,
    all: true,
    stdin: 'ignore',
    timeout: 5 * 60_000,
  });
  if (r.exitCode !== 0) throw new Error(`compose -p ${project} ${args.join(' ')} failed (exit ${r.exitCode ?? r.signal}):\n${tail(r.all ?? '')}`);
}

export interface AppContainer {
  id: string;
  name: string;
  project: string;
  service: string;
  slot: string;
  image: string;
  state: string;
  /** Docker's health status (healthy, unhealthy, starting) when the image has a HEALTHCHECK. */
  health?: string;
}

/** The app containers of one compose project (running or not). */
export async function projectContainers(env: EnvironmentConfig, project: string): Promise<AppContainer[]> {
  const list = await dockerClient().listContainers({
    all: true,
    filters: { label: [`com.docker.compose.project=${project}`, `com.docker.compose.service=${env.compose.service}`] },
  });
  return list.map((c) => {
    const health = /\((healthy|unhealthy|health: starting)\)/.exec(c.Status)?.[1]?.replace('health: ', '');
    return {
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
      project,
      service: env.compose.service,
      slot: c.Labels['org.llmchat.slot'] ?? 'main',
      image: c.Image,
      state: c.State,
      ...(health ? { health } : {}),
    };
  });
}

/**
 * The container(s) serving the environment now, as dockerode lists them (running or not): those of the compose
 * project of the slot the release records name as current (`<project>-blue|green`), or of the configured compose
 * project when nothing is recorded or the environment runs in place. A drop-in for a lookup by
 * `com.docker.compose.project=<compose.project>` (fault detection, issue 9): with blue/green that project is empty.
 */
export async function findServingAppContainers(env: EnvironmentConfig, environment?: string): Promise<Docker.ContainerInfo[]> {
  let slot: SlotName = 'main';
  // The shared records first (a deploy on another worker's host may have switched the slot); this host's mirror
  // file when the state database is unreachable — fault detection must not depend on the database it watches.
  const shared = environment ? await loadReleases(env, environment).catch(() => undefined) : undefined;
  try {
    const raw = shared ?? (JSON.parse(await readFile(releaseFile(env.deploy.stateDir as string), 'utf8')) as { current?: { slot?: unknown } | null });
    const s = raw.current?.slot;
    if (s === 'blue' || s === 'green' || s === 'main') slot = s;
  } catch {
    slot = 'main'; // no records yet (or unreadable: the deploy reports that itself)
  }
  return dockerClient().listContainers({
    all: true,
    filters: { label: [`com.docker.compose.project=${slotProject(env, slot)}`, `com.docker.compose.service=${env.compose.service}`] },
  });
}

function slotVars(env: EnvironmentConfig, version: string, slot: SlotName, port: number): Record<string, string> {
  const v = env.deploy.variables;
  return { [v.version]: version, [v.port]: String(port), [v.slot]: slot };
}

/** postgres://user@host:port/name — the password travels only as PGPASSWORD in the child's environment. */
function databaseUrl(env: EnvironmentConfig): string {
  const d = env.database;
  return `postgres://${d.user}@${d.host.includes(':') ? `[${d.host}]` : d.host}:${d.port}/${d.name}`;
}

interface MigrateResult {
  ok: boolean;
  current?: number;
  applied?: string[];
  reverted?: string[];
  warnings?: string[];
  error?: string;
}

/** Runs the image's migration runner (`deploy.migrate` + args) in a throw-away container on the host network. */
async function runMigrate(env: EnvironmentConfig, environment: string, image: string, args: string[]): Promise<MigrateResult> {
  const ctx = context();
  const name = `llmchat-migrate-${environment}-${token(ctx ? `${ctx.info.workflowExecution?.runId}/${ctx.info.activityId}/${ctx.info.attempt}` : `${process.pid}/${Date.now()}`)}`;
  const password = resolveSecret(env.database.passwordEnv);
  const run = execa(
    'docker',
    ['run', '--rm', '--name', name, '--network', 'host', '-e', `DATABASE_URL=${databaseUrl(env)}`, '-e', 'PGPASSWORD', image, ...env.deploy.migrate, ...args, '--json'],
    { env: { PGPASSWORD: password ?? '' }, reject: false, stdin: 'ignore', ...(ctx ? { cancelSignal: ctx.cancellationSignal } : {}), timeout: 30 * 60_000 },
  );
  let r;
  try {
    r = await run;
  } finally {
    // A killed `docker run` client leaves its container running: remove it (migrations run in transactions).
    if (ctx?.cancellationSignal.aborted) await execa('docker', ['rm', '-f', name], { reject: false, stdin: 'ignore' });
  }
  const last = r.stdout.trim().split('\n').pop() ?? '';
  let parsed: MigrateResult | undefined;
  try {
    parsed = JSON.parse(last) as MigrateResult;
  } catch {
    parsed = undefined;
  }
  if (r.exitCode !== 0 || !parsed?.ok) {
    const why = parsed?.error ?? tail(r.stderr);
    // The runner's own failure (bad SQL, missing down migration) will fail again; connection trouble may not.
    const transient = /ECONNREFUSED|ETIMEDOUT|timeout|Cannot connect to the Docker daemon/i.test(why);
    const message = `migrate ${args.join(' ')} with ${image} failed (exit ${r.exitCode ?? r.signal}): ${why}`;
    if (transient) throw new Error(message);
    throw permanent(message, 'MigrationFailed');
  }
  return parsed;
}

/** `compose down` of one slot's project (containers stop with SIGTERM and are removed); returns how many there were. */
export async function composeDownSlot(env: EnvironmentConfig, slot: SlotName, version: string, port: number, timeoutSeconds = 10): Promise<number> {
  const project = slotProject(env, slot);
  const before = await projectContainers(env, project);
  if (before.length === 0) return 0;
  await compose(env, project, ['down', '--remove-orphans', '--timeout', String(timeoutSeconds)], slotVars(env, version, slot, port));
  return before.length;
}

export function createDockerActivities(cfg: OpsConfig) {
  const envOf = (name: string) => getEnvironment(cfg, name);
  return {
    /**
     * Makes the version's image available: present locally, else the configured build command (given the version
     * as its last argument), else `docker pull`. Not found anywhere is permanent.
     */
    async prepareImage(input: { environment: string; version: string }): Promise<{ image: string; imageId: string; source: 'local' | 'built' | 'pulled' }> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const image = imageRef(env, input.version);
        const inspect = async () => (await dockerClient().getImage(image).inspect().catch((e: { statusCode?: number }) => (e.statusCode === 404 ? undefined : Promise.reject(e))))?.Id;
        const local = await inspect();
        if (local) return { image, imageId: local, source: 'local' as const };
        const build = env.commands.build;
        if (build) {
          progress('build')({ command: build[0] });
          const r = await execa(build[0] as string, [...build.slice(1), input.version], {
            cwd: env.paths.app,
            reject: false,
            all: true,
            stdin: 'ignore',
            cancelSignal: Context.current().cancellationSignal,
          });
          if (r.exitCode !== 0) throw permanent(`build of ${input.version} failed (${build.join(' ')} ${input.version}, exit ${r.exitCode ?? r.signal}):\n${tail(r.all ?? '')}`, 'BuildFailed');
          const built = await inspect();
          if (!built) throw permanent(`the build command succeeded but produced no image ${image}`, 'BuildFailed');
          return { image, imageId: built, source: 'built' as const };
        }
        progress('pull')({ image });
        const pull = await execa('docker', ['pull', image], { reject: false, all: true, stdin: 'ignore', cancelSignal: Context.current().cancellationSignal, timeout: 30 * 60_000 });
        const pulled = await inspect();
        if (pull.exitCode !== 0 || !pulled) throw permanent(`image ${image} is not present, no build command is configured, and docker pull failed: ${tail(pull.all ?? '', 3)}`, 'ImageUnavailable');
        return { image, imageId: pulled, source: 'pulled' as const };
      });
    },

    /** The database's migration level (highest applied migration), read with the given version's image. */
    async migrationLevel(input: { environment: string; version: string }): Promise<number> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const r = await runMigrate(env, input.environment, imageRef(env, input.version), ['status']);
        return r.current ?? 0;
      });
    },

    /**
     * Applies the version's pending migrations; returns the level before and after. `before`, when the workflow
     * just read it, saves a run of the image; the level after is the highest of `before` and what `up` applied.
     * Safe to retry.
     */
    async migrateUp(input: { environment: string; version: string; before?: number }): Promise<{ before: number; after: number; applied: string[] }> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const image = imageRef(env, input.version);
        const before = input.before ?? (await runMigrate(env, input.environment, image, ['status'])).current ?? 0;
        progress('migrate up')({ before });
        const up = await runMigrate(env, input.environment, image, ['up']);
        const applied = up.applied ?? [];
        const after = Math.max(before, ...applied.map((label) => Number(/^(\d+)/.exec(label)?.[1] ?? 0)));
        return { before, after, applied };
      });
    },

    /**
     * Reverts every migration newer than `to`, with the given version's image. Safe to retry. Refused in a reset
     * run of a deploy or rollback: the approval in its history was given for the schema of that time, and running
     * it again would drop whatever a later release has written into the newer schema since.
     */
    async migrateDown(input: { environment: string; version: string; to: number }): Promise<{ before: number; after: number; reverted: string[] }> {
      return guarded(async () => {
        if (!Number.isInteger(input.to) || input.to < 0) throw permanent(`Expected a migration level, got ${input.to}`, 'BadInput');
        const ctx = context();
        if (ctx) await refuseInResetRun(ctx, `migrate down to level ${input.to}`, `Run \`llmchat-ops rollback --env ${input.environment} --database\` (a new run, approved anew) if the schema must still go back`);
        const env = envOf(input.environment);
        const image = imageRef(env, input.version);
        const before = (await runMigrate(env, input.environment, image, ['status'])).current ?? 0;
        const down = await runMigrate(env, input.environment, image, ['down', '--to', String(input.to)]);
        const after = (await runMigrate(env, input.environment, image, ['status'])).current ?? 0;
        return { before, after, reverted: down.reverted ?? [] };
      });
    },

    /** `compose up -d` of one slot at a version and port (the guide's deploy step; idempotent). */
    async startSlot(input: { environment: string; version: string; slot: SlotName; port: number }): Promise<{ project: string; containers: AppContainer[] }> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const project = slotProject(env, input.slot);
        await compose(env, project, ['up', '-d', '--remove-orphans'], slotVars(env, input.version, input.slot, input.port));
        return { project, containers: await projectContainers(env, project) };
      });
    },

    /** `compose down` of one slot: its containers stop (SIGTERM, in-flight requests finish) and are removed. */
    async stopSlot(input: { environment: string; slot: SlotName; version: string; port: number; timeoutSeconds?: number }): Promise<{ project: string; removed: number }> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const removed = await composeDownSlot(env, input.slot, input.version, input.port, input.timeoutSeconds ?? 10);
        return { project: slotProject(env, input.slot), removed };
      });
    },

    /** The app containers of every slot of the environment (for status and tests). */
    async appContainers(input: { environment: string }): Promise<AppContainer[]> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const all = await Promise.all((['main', 'blue', 'green'] as const).map((s) => projectContainers(env, slotProject(env, s))));
        return all.flat();
      });
    },
  };
}
