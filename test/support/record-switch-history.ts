/**
 * Records, for the replay test, the history of a deploy whose checked switch fails after the reload (issue 15):
 * v1's image tagged under another name reports v1, the front goes back to v1 at once and the new slot is stopped
 * (`node dist/test/support/record-switch-history.js`; services and images up first). Re-run only on purpose.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { startDeployStack } from './deploy-fixture.js';
import { ROOT } from './services.js';
import { temporalBinary } from './temporal.js';

async function run(): Promise<void> {
  const taskQueue = 'record-deploy-switch-failed';
  const name = 'deploy-switch-failed';
  const wrong = 'v9rec';
  await execa('docker', ['tag', 'llmchat-app:v1', `llmchat-app:${wrong}`]);
  const stack = await startDeployStack({ taskQueue, alerts: true, deploy: { backupBeforeDeploy: false } });
  const { env } = stack;
  try {
    const h = await env.client.workflow.start('deploy', { taskQueue, workflowId: name, args: [{ environment: 'production', version: wrong, requestedBy: 'recorder', bakeSeconds: 0 }] });
    const failure = await h.result().then(() => undefined, (e: Error) => e);
    const text = String((failure as { cause?: Error })?.cause?.message);
    if (!/it served v1's build.*switched back to v1/.test(text)) throw new Error(`the deploy did not end with a switch put back: ${text}`);
    const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', name, '--address', env.address, '--output', 'json']);
    const file = path.join(ROOT, 'test/histories', `${name}.json`);
    // stack traces name the checkout: the neutral path, as in the other histories
    await writeFile(file, stdout.split(`${ROOT}/`).join('/llmchat-ops/'));
    console.log(`recorded ${path.relative(ROOT, file)}: ${text}`);
  } finally {
    await stack.stop();
    await execa('docker', ['rmi', `llmchat-app:${wrong}`], { reject: false });
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
