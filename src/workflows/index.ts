/** Every workflow the worker runs; the worker bundles this file. */
export { dailyHealthCheck } from './daily-health-check.js';
