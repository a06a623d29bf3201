/** Bench-only workflow: does nothing, so its latency is the floor any workflow run pays on this server. */
export async function emptyWorkflow(): Promise<string> {
  return 'healthy';
}
