/**
 * The workflow bundle `npm run build` writes (issue 18 §3): used only while it matches the compiled code; a bundle
 * that is missing, tampered with, or older than the code is refused with the reason (and the worker bundles at
 * start). Checked on a copy of dist/, so the suite's own bundle is never touched.
 */
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BUNDLE_PATHS, loadWorkflowBundle, prebuiltProblem, type BundlePaths } from '../src/workflow-bundle.js';
import { tempDir } from './support/services.js';

function copyOfDist(): BundlePaths {
  const dir = tempDir('bundle');
  cpSync(BUNDLE_PATHS.sourceDir, path.join(dir, 'src'), { recursive: true });
  cpSync(BUNDLE_PATHS.bundleFile, path.join(dir, 'workflow-bundle.js'));
  cpSync(BUNDLE_PATHS.digestFile, path.join(dir, 'workflow-bundle.json'));
  return { sourceDir: path.join(dir, 'src'), bundleFile: path.join(dir, 'workflow-bundle.js'), digestFile: path.join(dir, 'workflow-bundle.json') };
}

describe('prebuilt workflow bundle', () => {
  it('the build wrote a bundle that matches the compiled code, and the worker loads it', async () => {
    assert.equal(prebuiltProblem(), undefined);
    const loaded = await loadWorkflowBundle();
    assert.deepEqual(loaded.source, { kind: 'prebuilt' });
    assert.equal(loaded.bundle.code, readFileSync(BUNDLE_PATHS.bundleFile, 'utf8'));
    assert.equal(prebuiltProblem(copyOfDist()), undefined, 'a faithful copy is accepted too');
  });

  it('compiled code changed after the bundle was built: refused', () => {
    const p = copyOfDist();
    appendFileSync(path.join(p.sourceDir, 'workflows/index.js'), '\n// edited\n');
    assert.match(prebuiltProblem(p) ?? '', /compiled code changed after the bundle was built; run npm run build/);
    const q = copyOfDist();
    writeFileSync(path.join(q.sourceDir, 'workflows/added.js'), 'export const x = 1;\n');
    assert.match(prebuiltProblem(q) ?? '', /compiled code changed/, 'a new module counts as a change');
  });

  it('a tampered bundle, a broken record or a missing file: refused', () => {
    const p = copyOfDist();
    appendFileSync(p.bundleFile, '\n;globalThis.injected = 1;\n');
    assert.match(prebuiltProblem(p) ?? '', /does not match its digest record/);
    for (const record of ['null', '[]', '{"sources":1}', 'not json']) {
      const q = copyOfDist();
      writeFileSync(q.digestFile, record);
      assert.ok(prebuiltProblem(q), `record ${record} refused`);
    }
    const r = copyOfDist();
    rmSync(r.bundleFile);
    assert.match(prebuiltProblem(r) ?? '', /no prebuilt workflow bundle \(ENOENT\)/);
  });
});
