/** The client side shared by the CLI, schedules and tests: connection (src/common/temporal-connection.ts) and business-key workflow ids. */
export { connectClient } from './temporal-connection.js';

/**
 * Workflow ids are business keys: one health check per environment at a time (a second request joins the
 * running one instead of starting a duplicate).
 */
export const workflowIds = {
  dailyHealthCheck: (environment: string) => `dailyHealthCheck-${environment}`,
};
