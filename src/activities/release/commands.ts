/** The environment's configured host commands (the guide's `npm test` before a deploy), run as argument arrays. */
import { Context } from '@temporalio/activity';
import { execa } from 'execa';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { guarded, permanent, progress } from '../common/activity-support.js';

export function createCommandActivities(cfg: OpsConfig) {
  return {
    /**
     * Runs `commands.test` in the application directory with LLMCHAT_VERSION set to the version under test. A
     * failure is permanent and carries the tail of the output.
     */
    async runTests(input: { environment: string; version: string }): Promise<{ ran: boolean; durationMs: number; outputTail: string }> {
      return guarded(async () => {
        const env = getEnvironment(cfg, input.environment);
        const cmd = env.commands.test;
        if (!cmd) return { ran: false, durationMs: 0, outputTail: 'no test command configured' };
        const started = Date.now();
        progress('tests')({ command: cmd.join(' ') });
        const r = await execa(cmd[0] as string, cmd.slice(1), {
          cwd: env.paths.app,
          env: { LLMCHAT_VERSION: input.version, LLMCHAT_ENVIRONMENT: input.environment },
          reject: false,
          all: true,
          stdin: 'ignore',
          cancelSignal: Context.current().cancellationSignal,
          maxBuffer: 10_000_000,
        });
        const outputTail = (r.all ?? '').split('\n').slice(-30).join('\n');
        if (r.exitCode !== 0) throw permanent(`tests failed (${cmd.join(' ')}, exit ${r.exitCode ?? r.signal}):\n${outputTail}`, 'TestsFailed');
        return { ran: true, durationMs: Date.now() - started, outputTail };
      });
    },
  };
}
