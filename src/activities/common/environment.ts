/** What a workflow may know about an environment: names, thresholds and routes — never URLs with secrets. */
import { getEnvironment, type Channel, type OpsConfig, type Severity, type Thresholds } from '../../common/config/index.js';
import { permanentOnKnownErrors } from './failures.js';

export interface EnvironmentSummary {
  name: string;
  thresholds: Thresholds;
  /** Channels each severity reaches, limited to channels that are configured. */
  alertRoutes: Record<Severity, Channel[]>;
}

export function createEnvironmentActivities(cfg: OpsConfig) {
  return {
    /** The rules for human approvals (four eyes unless the config allows self-approval). */
    async describeApprovalPolicy(): Promise<{ allowSelfApproval: boolean }> {
      return { allowSelfApproval: cfg.approvals.allowSelfApproval };
    },

    /** Validates the environment name (non-retryable error naming the known ones) and returns its summary. */
    async describeEnvironment(environment: string): Promise<EnvironmentSummary> {
      return permanentOnKnownErrors(() => {
        const env = getEnvironment(cfg, environment);
        const configured = (c: Channel) => cfg.notifications[c] !== undefined;
        const { routes } = cfg.notifications;
        return {
          name: environment,
          thresholds: env.thresholds,
          alertRoutes: {
            critical: routes.critical.filter(configured),
            warning: routes.warning.filter(configured),
            info: routes.info.filter(configured),
          },
        };
      });
    },
  };
}
