/**
 * Name rules shared by the config (worker side) and workflow input validation (workflow side); no imports,
 * so the workflow bundle can use them.
 */

/** Environment names double as workflow-id and compose-project parts, so they are kept shell- and path-safe. */
export const ENVIRONMENT_NAME = /^[a-z][a-z0-9-]{0,31}$/;
