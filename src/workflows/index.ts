/** Every workflow the worker runs; the worker bundles this file. */
export { dailyHealthCheck } from './health/daily-health-check.js';
export { backup, scheduledBackup, verifyBackup } from './backup/backup.js';
export { restore, listBackups } from './backup/restore.js';
export { importBackup } from './backup/import-backup.js';
export { weeklyDatabaseMaintenance } from './maintenance/weekly-database-maintenance.js';
export { weeklyCleanup } from './maintenance/weekly-cleanup.js';
export { databaseOptimization } from './maintenance/database-optimization.js';
export { faultDetection } from './faults/fault-detection.js';
export { alertLifecycle } from './faults/alert-lifecycle.js';
export { deploy } from './release/deploy.js';
export { rollback, listReleases } from './release/rollback.js';
export { monthlyPerformanceReport } from './report/monthly-performance-report.js';
