/** Every workflow the worker runs; the worker bundles this file. */
export { dailyHealthCheck } from './daily-health-check.js';
export { backup, scheduledBackup, verifyBackup } from './backup.js';
export { restore, listBackups } from './restore.js';
export { importBackup } from './import-backup.js';
export { weeklyDatabaseMaintenance } from './weekly-database-maintenance.js';
export { weeklyCleanup } from './weekly-cleanup.js';
export { databaseOptimization } from './database-optimization.js';
export { faultDetection } from './fault-detection.js';
export { alertLifecycle } from './alert-lifecycle.js';
export { deploy } from './deploy.js';
export { rollback, listReleases } from './rollback.js';
export { monthlyPerformanceReport } from './monthly-performance-report.js';
