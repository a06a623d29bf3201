/**
 * The workflow bundle, built once by `npm run build` instead of by webpack at every worker start.
 *
 * `npm run build` (tsc, then `node dist/src/workflow-bundle.js`) writes `dist/workflow-bundle.js` and, beside it,
 * `dist/workflow-bundle.json`: the sha256 of every compiled file under `dist/src` it was built from. A worker
 * uses the file only when that digest still matches what is on disk now; a bundle that is missing, unreadable or
 * older than the code (a `tsc` without the bundle step, a hand edit of dist/) is rebuilt in memory at start, with a
 * warning, so a stale bundle can never run other workflow code than the activities beside it.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, DefaultLogger, type Logger, type WorkflowBundle } from '@temporalio/worker';

export const WORKFLOWS_PATH = fileURLToPath(new URL('./workflows/index.js', import.meta.url));
/** Where the bundle, its digest record and the compiled sources it is checked against live. */
export interface BundlePaths {
  /** dist/src: every compiled module a workflow may import lives under it. */
  sourceDir: string;
  bundleFile: string;
  digestFile: string;
}
export const BUNDLE_PATHS: BundlePaths = {
  sourceDir: fileURLToPath(new URL('.', import.meta.url)),
  bundleFile: fileURLToPath(new URL('../workflow-bundle.js', import.meta.url)),
  digestFile: fileURLToPath(new URL('../workflow-bundle.json', import.meta.url)),
};

const quiet: Logger = new DefaultLogger('ERROR');

/** sha256 over the names and contents of every .js file under dist/src, in a fixed order. */
export function sourceDigest(dir = BUNDLE_PATHS.sourceDir): string {
  const hash = createHash('sha256');
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile() && entry.name.endsWith('.js')) hash.update(relative(dir, p)).update('\0').update(readFileSync(p)).update('\0');
    }
  };
  walk(dir);
  return hash.digest('hex');
}

/** Bundles the workflows and writes the bundle with the digest of its sources (write-then-rename). */
export async function writeWorkflowBundle(): Promise<{ file: string; bytes: number; ms: number }> {
  const { bundleFile: BUNDLE_FILE, digestFile: DIGEST_FILE } = BUNDLE_PATHS;
  const started = Date.now();
  const digest = sourceDigest();
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quiet });
  writeFileSync(`${BUNDLE_FILE}.partial`, code);
  renameSync(`${BUNDLE_FILE}.partial`, BUNDLE_FILE);
  writeFileSync(`${DIGEST_FILE}.partial`, `${JSON.stringify({ sources: digest, bundleSha256: createHash('sha256').update(code).digest('hex') })}\n`);
  renameSync(`${DIGEST_FILE}.partial`, DIGEST_FILE);
  return { file: BUNDLE_FILE, bytes: Buffer.byteLength(code), ms: Date.now() - started };
}

export type BundleSource = { kind: 'prebuilt' } | { kind: 'rebuilt'; reason: string };

/**
 * The prebuilt bundle when it matches the compiled code on disk, else a bundle made now. The reason a prebuilt one
 * was not used is returned for the worker to log.
 */
export async function loadWorkflowBundle(logger: Logger = quiet): Promise<{ bundle: WorkflowBundle; source: BundleSource }> {
  const reason = prebuiltProblem();
  if (reason === undefined) return { bundle: { code: readFileSync(BUNDLE_PATHS.bundleFile, 'utf8') }, source: { kind: 'prebuilt' } };
  const bundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger });
  return { bundle, source: { kind: 'rebuilt', reason } };
}

/** Why the prebuilt bundle at `paths` cannot be used, or undefined when it matches the compiled code. */
export function prebuiltProblem(paths: BundlePaths = BUNDLE_PATHS): string | undefined {
  let recorded: { sources?: unknown; bundleSha256?: unknown };
  let code: Buffer;
  try {
    recorded = JSON.parse(readFileSync(paths.digestFile, 'utf8')) as typeof recorded;
    code = readFileSync(paths.bundleFile);
  } catch (err) {
    return `no prebuilt workflow bundle (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run npm run build`;
  }
  if (typeof recorded?.sources !== 'string' || typeof recorded?.bundleSha256 !== 'string') return 'the prebuilt bundle has no valid digest record';
  if (createHash('sha256').update(code).digest('hex') !== recorded.bundleSha256) return 'the prebuilt bundle does not match its digest record';
  if (sourceDigest(paths.sourceDir) !== recorded.sources) return 'the compiled code changed after the bundle was built; run npm run build';
  return undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeWorkflowBundle().then(
    ({ file, bytes, ms }) => console.log(`workflow bundle: ${file} (${(bytes / 1024).toFixed(0)} KiB, ${ms} ms)`),
    (err: Error) => {
      console.error(`workflow bundle failed: ${err.message}`);
      process.exit(1);
    },
  );
}
