/**
 * File artifacts: `tar | <compressor>` of the application directory (without excluded names), config or uploads,
 * and their restore — into a new directory under temp/restores, or over the live directory by a rename swap.
 */
import { refuseDuringRelease } from '../common/temporal.js';
import { lstat, mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { parseBackupId, parseKind, parseTarget, type FileKind } from './ids.js';
import { PARTIAL_SUFFIX, type Artifact } from './manifest.js';
import {
  compressThroughFifo,
  compressionSuffix,
  compressStage,
  exists,
  runPipeline,
  writeArtifact,
  writeFileAtomic,
  type Stage,
} from './process.js';
import { guarded, permanent, progress, signal, token } from '../common/activity-support.js';
import type { RestoreResult } from './backup-catalogue.js';
import { archiveFailure, backupDir, openArtifact, readManifest, registerSigning, requireChecksum, sourceDir } from './backup-store.js';
import { checkTree, extractArchive, listArchive } from './archive-check.js';

export function createBackupArchiveActivities(cfg: OpsConfig) {
  const settings = cfg.backup;
  const env = (name: string) => getEnvironment(cfg, name);
  registerSigning(cfg);

  return {
    /** `tar | <compressor>` of the application dir (without excluded names), config or uploads. */
    async archiveFiles(input: { environment: string; backupId: string; kind: FileKind }): Promise<Artifact> {
      return guarded(async () => {
        const e = env(input.environment);
        parseBackupId(input.backupId, input.environment);
        const kind = parseKind(input.kind);
        if (kind === 'database') throw permanent('archiveFiles archives files; use dumpDatabase for the database', 'BadInput');
        const src = sourceDir(e, kind);
        const info = await lstat(src).catch(() => undefined);
        if (!info?.isDirectory()) throw permanent(`Cannot back up ${kind}: ${src} is not a directory`, 'SourceMissing');
        const started = Date.now();
        const c = settings.compression;
        const file = `${kind}.tar${compressionSuffix(c.program)}`;
        const dest = path.join(backupDir(e, input.backupId), file);
        await rm(dest, { force: true });
        const excluded = kind === 'application' ? settings.exclude : [];
        const tar = (out: string): Stage => ({
          file: 'tar',
          // --hard-dereference: hard links are stored as files, because restores accept no hard links at all.
          args: ['--create', `--file=${out}`, '--numeric-owner', '--hard-dereference', ...excluded.map((x) => `--exclude=${x}`), `--directory=${src}`, '.'],
        });
        const compress = compressStage(c);
        const beat = progress(`tar ${kind}`);
        const written = await writeArtifact(
          dest,
          (sink) =>
            compress
              ? compressThroughFifo({ fifo: `${dest}.fifo${PARTIAL_SUFFIX}`, producer: tar, compress, sink, signal: signal() })
              : runPipeline({ stages: [tar('-')], sink, signal: signal() }),
          (bytes) => beat({ bytes }),
        );
        return {
          kind,
          file,
          bytes: written.bytes,
          sha256: written.sha256,
          durationMs: Date.now() - started,
          compression: { program: c.program, level: c.level },
          format: 'tar',
          source: src,
          excluded,
        } satisfies Artifact;
      });
    },

    /**
     * Restores a file archive. Into a new target: extract under temp/restores/<target>. Over live files: extract
     * into a sibling staging directory, carry over the excluded entries (node_modules…) of the current one, then
     * swap by renames; a retry resumes from the state it finds.
     */
    async restoreFiles(input: { environment: string; backupId: string; kind: FileKind; target?: string; runToken: string }): Promise<RestoreResult> {
      return guarded(async () => {
        const e = env(input.environment);
        const kind = parseKind(input.kind);
        if (kind === 'database') throw permanent('restoreFiles restores files; use restoreDatabase', 'BadInput');
        const target = parseTarget(kind, input.target);
        const m = await readManifest(e, input.environment, input.backupId);
        const started = Date.now();
        const t = token(input.runToken);
        const live = target === undefined;
        if (live) await refuseDuringRelease(input.environment, `restore of ${kind} from ${m.id}`);
        const dest = live ? sourceDir(e, kind) : path.join(e.paths.temp, 'restores', target);
        const staging = `${dest}.restore-${t}`;
        const previous = `${dest}.pre-restore-${t}`;
        const markerName = `.llmchat-ops-restore-${t}`;
        const doneMarker = path.join(dest, markerName);
        const result = (): RestoreResult => ({ backupId: m.id, kind, target: dest, live, durationMs: Date.now() - started, mismatches: [] });

        const carryOver = async () => {
          // Entries the archive leaves out (node_modules, dist, .git) come from the directory being replaced.
          if (!live) return;
          for (const name of settings.exclude) {
            const from = path.join(previous, name);
            if ((await exists(from)) && !(await exists(path.join(dest, name)))) await rename(from, path.join(dest, name));
          }
        };
        if (await exists(doneMarker)) {
          // The swap happened in an earlier attempt; finish its clean-up.
          await carryOver();
          await rm(previous, { recursive: true, force: true });
          if (live) await rm(doneMarker, { force: true });
          return result();
        }
        if (!live && (await exists(dest))) throw permanent(`${dest} already exists; restore into a new target name`, 'TargetExists');
        if (!(await exists(path.join(staging, markerName)))) {
          const artifact = m.artifacts[kind];
          if (!artifact) throw permanent(`Backup ${m.id} has no ${kind} artifact (it holds: ${Object.keys(m.artifacts).join(', ') || 'nothing'})`, 'KindNotInBackup');
          const program = artifact.compression.program;
          // One open file for the check and the extraction: what was checked is what is extracted.
          const fh = await openArtifact(e, m, artifact);
          try {
            await rm(staging, { recursive: true, force: true });
            // Every member checked (and the checksum compared) before anything is extracted, even into staging.
            const beat = progress(`list ${kind}`);
            const listing = await listArchive(fh, program, { signal: signal(), onBytes: (b) => beat({ bytes: b, of: artifact.bytes }) });
            requireChecksum(m, artifact, listing);
            await mkdir(staging, { recursive: true, mode: 0o700 });
            progress(`extract ${kind}`)({ members: listing.members });
            await extractArchive(fh, program, staging, signal());
            // Second line of defence before the tree can become live: what is really on disk, by lstat.
            await checkTree(staging);
            await writeFileAtomic(path.join(staging, markerName), `${m.id}\n`);
          } catch (err) {
            await rm(staging, { recursive: true, force: true });
            throw archiveFailure(m, artifact, err);
          } finally {
            await fh.close();
          }
        }
        await mkdir(path.dirname(dest), { recursive: true });
        if ((await exists(dest)) && !(await exists(previous))) await rename(dest, previous);
        await rename(staging, dest);
        await carryOver();
        await rm(previous, { recursive: true, force: true });
        // A restored inspection copy keeps its marker (it says where it came from); live files do not.
        if (live) await rm(doneMarker, { force: true });
        return result();
      });
    },
  };
}
