/** `llmchat-ops codec-server`: the codec endpoint of src/common/codec-server.ts, in the foreground until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { codecFromConfig } from '../common/codec.js';
import { startCodecServer } from '../common/codec-server.js';
import type { OpsConfig } from '../common/config/index.js';

export function addCodecCommands(program: Command, cfg: () => OpsConfig): void {
  program
    .command('codec-server')
    .description('serve the payload codec for the Web UI and `temporal --codec-endpoint` (token-protected, loopback)')
    .option('-p, --port <port>', 'port (default: temporal.codecServer.port)')
    .action(async (opts: { port?: string }) => {
      const config = cfg();
      const codec = codecFromConfig(config.temporal.encryption);
      if (!codec) throw new Error('temporal.encryption is not configured: there is nothing to decode');
      const sc = config.temporal.codecServer;
      const token = process.env[sc.tokenEnv] ?? '';
      const server = await startCodecServer({
        codec,
        config: sc,
        token,
        port: opts.port !== undefined ? Number(opts.port) : undefined,
        log: (msg, meta) => console.error(JSON.stringify({ time: new Date().toISOString(), level: 'WARN', msg, ...meta })),
      });
      console.log(`codec endpoint ${server.url} (token from ${sc.tokenEnv}; CORS: ${sc.corsOrigins.join(', ')})`);
      console.log(`  Web UI: Configure data encoder → ${server.url}/t/<token>    CLI: temporal … --codec-endpoint ${server.url} --codec-auth "Bearer <token>"`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
    });
}
