/** Field types shared by several config sections. */
import { z } from 'zod';

export const ENV_VAR_NAME = /^[A-Z_][A-Z0-9_]*$/;
/** The NAME of an environment variable (secrets are never written in the config, only where to find them). */
export const envVarName = z.string().regex(ENV_VAR_NAME, 'must be an environment variable name like LLMCHAT_DB_PASSWORD');
export const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
/** Ports may come from `${VAR}` interpolation, so numeric strings are accepted. */
export const port = z.coerce.number().int().min(1).max(65535);
export const percent = z.number().min(0).max(100);
/** A command as an argument vector; never a shell string. */
export const argv = z.array(z.string().min(1)).min(1, 'must name a program and its arguments as a list');
/** A plain lowercase PostgreSQL identifier (table, index). */
export const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a plain lowercase PostgreSQL identifier');
