/**
 * The one meaning of "error" for the app's HTTP traffic, shared by fault detection (src/activities/faults/window.ts), the
 * deploy's bake check (src/activities/release/metrics.ts) and the monthly report (src/activities/report/prometheus.ts), so they
 * never disagree: a request is an error when the app answered 5xx; 4xx are the clients' mistakes, counted and
 * shown apart, never in the error rate; requests to the monitoring's own scrape route are not the users' and are
 * counted nowhere. The PromQL matchers are built from the same definitions. Pure: imported by workflow code too.
 */

/** Status codes that are errors of the app (server errors): 500–599. */
export const SERVER_ERROR_STATUS = '5[0-9][0-9]';
/** Status codes that are the client's mistakes: 400–499, shown apart, not errors of the app. */
export const CLIENT_ERROR_STATUS = '4[0-9][0-9]';
/** Routes of the monitoring itself (Prometheus scraping /metrics): not user traffic. */
export const MONITORING_ROUTES: readonly string[] = ['/metrics', 'metrics'];

const serverError = new RegExp(`^${SERVER_ERROR_STATUS}$`);
const clientError = new RegExp(`^${CLIENT_ERROR_STATUS}$`);

export const isServerError = (statusCode: string | number | undefined): boolean => serverError.test(String(statusCode ?? ''));
export const isClientError = (statusCode: string | number | undefined): boolean => clientError.test(String(statusCode ?? ''));
export const isMonitoringRoute = (route: string | undefined): boolean => route !== undefined && MONITORING_ROUTES.includes(route);

/** Error rate in percent: server errors over all user requests; undefined without requests. */
export function errorRatePercent(requests: number, serverErrors: number): number | undefined {
  return requests > 0 ? (serverErrors / requests) * 100 : undefined;
}

const promRegexEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\\\$&');

/** PromQL label matchers (without braces) selecting user traffic: every route but the monitoring's own. */
export const PROMQL_USER_TRAFFIC = `route!~"${MONITORING_ROUTES.map(promRegexEscape).join('|')}"`;
/** PromQL label matcher of the server errors. */
export const PROMQL_SERVER_ERRORS = `status_code=~"${SERVER_ERROR_STATUS}"`;
/** PromQL label matcher of the client errors. */
export const PROMQL_CLIENT_ERRORS = `status_code=~"${CLIENT_ERROR_STATUS}"`;
