/**
 * Host activities of the weekly cleanup: old logs, temp files and uploads (src/activities/maintenance/cleanup.ts), the
 * backup retention plan for a dry run (src/activities/backup/retention.ts), and OS package upgrades (apt-get, through
 * execa with argument arrays, only when the config enables them).
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { execa } from 'execa';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { applyRetention, type RetentionResult } from '../backup/retention.js';
import { cleanTree, globToRegExp, isLogName, UnsafeRootError, type CleanupCategory, type CleanupResult, type CleanupRule } from './cleanup.js';
import { asFailure } from '../common/failures.js';

export interface CleanupPlan {
  backup: boolean;
  osUpgrades: boolean;
}

export interface OsUpgradeResult {
  status: 'disabled' | 'listed' | 'upgraded' | 'unavailable';
  /** Packages with an upgrade (name, current → new version), from apt-get's simulation. */
  packages: { name: string; from: string; to: string }[];
  detail: string;
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

const CATEGORIES: readonly CleanupCategory[] = ['logs', 'temp', 'uploads'];

/** `Inst libfoo [1.0-1] (1.0-2 Debian:12.x/stable [amd64])` lines of `apt-get -s upgrade`. */
export function parseAptSimulation(out: string): OsUpgradeResult['packages'] {
  const packages: OsUpgradeResult['packages'] = [];
  for (const m of out.matchAll(/^Inst (\S+) \[([^\]]+)\] \((\S+)/gm)) packages.push({ name: m[1]!, from: m[2]!, to: m[3]! });
  return packages;
}

export function createHostCleanupActivities(cfg: OpsConfig) {
  return {
    async cleanupPlan(environment: string): Promise<CleanupPlan> {
      try {
        getEnvironment(cfg, environment);
      } catch (err) {
        throw asFailure(err);
      }
      return { backup: cfg.cleanup.backup, osUpgrades: cfg.cleanup.osUpgrades };
    },

    /**
     * Deletes (or, in a dry run, lists) the files of one category older than its window. Roots come from the
     * config only; an unsafe root fails permanently before anything is deleted.
     */
    async cleanupFiles(input: { environment: string; category: CleanupCategory; dryRun: boolean }): Promise<CleanupResult> {
      if (!CATEGORIES.includes(input.category)) throw ApplicationFailure.nonRetryable(`Unknown cleanup category ${JSON.stringify(input.category)}`, 'BadInput');
      if (typeof input.dryRun !== 'boolean') throw ApplicationFailure.nonRetryable('Expected `dryRun` to be true or false', 'BadInput');
      let e;
      try {
        e = getEnvironment(cfg, input.environment);
      } catch (err) {
        throw asFailure(err);
      }
      const c = cfg.cleanup;
      const temp = globToRegExp(c.tempPattern);
      const rules: Record<CleanupCategory, CleanupRule> = {
        logs: { category: 'logs', root: e.paths.logs, maxAgeDays: c.logsDays, matches: isLogName },
        temp: { category: 'temp', root: e.paths.temp, maxAgeDays: c.tempDays, matches: (n) => temp.test(n) },
        uploads: { category: 'uploads', root: e.paths.uploads, maxAgeDays: c.uploadsDays, matches: () => true },
      };
      const rule = rules[input.category];
      // Never under a root that holds what cleanup must not touch (other categories' roots are fine: the logs
      // directory may hold uploads/, each rule only matches its own names).
      const protectedDirs = [e.paths.app, e.paths.config, e.paths.backups].filter((p) => p !== rule.root);
      const ctx = activityContext();
      let examined = 0;
      const beat = ctx && !ctx.info.isLocal ? setInterval(() => ctx.heartbeat({ category: input.category, examined }), 1000) : undefined;
      try {
        return await cleanTree(rule, protectedDirs, {
          dryRun: input.dryRun,
          onProgress: (n) => (examined = n),
          ...(ctx ? { signal: ctx.cancellationSignal } : {}),
        });
      } catch (err) {
        if (err instanceof UnsafeRootError) throw ApplicationFailure.nonRetryable(err.message, 'UnsafeRoot');
        throw err;
      } finally {
        if (beat) clearInterval(beat);
      }
    },

    /** What backup retention would remove, without removing anything (the dry run's step 5). */
    async planBackupRetention(input: { environment: string }): Promise<RetentionResult> {
      try {
        const e = getEnvironment(cfg, input.environment);
        return await applyRetention(e.paths.backups, input.environment, cfg.backup.retention, { dryRun: true });
      } catch (err) {
        throw asFailure(err);
      }
    },

    /**
     * The guide's `apt-get update && apt-get upgrade -y`, only when `cleanup.osUpgrades` is on and this is not a
     * dry run. A dry run lists the upgrades (`apt-get -s upgrade`: a simulation, changes nothing).
     */
    async osPackageUpgrades(input: { dryRun: boolean }): Promise<OsUpgradeResult> {
      if (!input.dryRun && !cfg.cleanup.osUpgrades) return { status: 'disabled', packages: [], detail: 'cleanup.osUpgrades is off (the default)' };
      const apt = await execa('apt-get', ['--version'], { reject: false });
      if (apt.exitCode !== 0) return { status: 'unavailable', packages: [], detail: 'apt-get not found on the worker host' };
      const env = { DEBIAN_FRONTEND: 'noninteractive' };
      if (input.dryRun) {
        const sim = await execa('apt-get', ['-s', '-o', 'Debug::NoLocking=1', 'upgrade'], { reject: false, env });
        if (sim.exitCode !== 0) return { status: 'unavailable', packages: [], detail: `apt-get -s upgrade failed: ${sim.stderr.split('\n')[0]}` };
        const packages = parseAptSimulation(sim.stdout);
        return { status: 'listed', packages, detail: `${packages.length} package(s) would be upgraded${cfg.cleanup.osUpgrades ? '' : ' if cleanup.osUpgrades were on'}` };
      }
      await execa('apt-get', ['update'], { env });
      const sim = await execa('apt-get', ['-s', 'upgrade'], { env, reject: false });
      await execa('apt-get', ['-y', '-o', 'DPkg::Lock::Timeout=300', 'upgrade'], { env });
      const packages = parseAptSimulation(sim.stdout);
      return { status: 'upgraded', packages, detail: `${packages.length} package(s) upgraded` };
    },
  };
}
