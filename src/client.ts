/** The client side shared by the CLI, schedules and tests: connection and business-key workflow ids. */
import { Client, Connection } from '@temporalio/client';
import type { OpsConfig } from './config.js';

export async function connectClient(cfg: OpsConfig): Promise<Client> {
  const connection = await Connection.connect({ address: cfg.temporal.address, connectTimeout: '5 seconds' });
  return new Client({ connection, namespace: cfg.temporal.namespace });
}

/**
 * Workflow ids are business keys: one health check per environment at a time (a second request joins the
 * running one instead of starting a duplicate).
 */
export const workflowIds = {
  dailyHealthCheck: (environment: string) => `dailyHealthCheck-${environment}`,
};
