/** The LLMChat backend's HTTP health endpoints, probed like the guide's `curl -f`. */
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { ENDPOINTS, type EndpointName, type EndpointProbe } from '../../common/health.js';
import { permanentOnKnownErrors } from '../common/failures.js';

/** GETs `url`; any 2xx/3xx is ok (what `curl -f` accepts), anything else or no answer in time is not. */
export async function probeUrl(name: EndpointName, url: string, timeoutMs: number): Promise<EndpointProbe> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.arrayBuffer(); // drain, so the connection is released
    return { name, url, ok: res.status < 400, httpStatus: res.status, responseTimeMs: elapsed() };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const error = e.name === 'TimeoutError' ? `timed out after ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    return { name, url, ok: false, responseTimeMs: elapsed(), error };
  }
}

export function createHttpHealthActivities(cfg: OpsConfig) {
  return {
    /** Probes one of the backend's health endpoints; an unhealthy answer is a result, not a failure. */
    async probeEndpoint(input: { environment: string; endpoint: EndpointName }): Promise<EndpointProbe> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      const path = ENDPOINTS[input.endpoint];
      if (!path) throw new TypeError(`Expected endpoint to be one of ${Object.keys(ENDPOINTS).join(', ')}, got ${JSON.stringify(input.endpoint)}`);
      return probeUrl(input.endpoint, new URL(path, env.url).toString(), env.thresholds.httpTimeoutMs);
    },
  };
}
