/** The config of payload encryption and of its codec endpoint (the `temporal.encryption` / `temporal.codecServer` keys). */
import { z } from 'zod';

const envVarName = z.string().regex(/^[A-Z_][A-Z0-9_]*$/, 'must be an environment variable name like LLMCHAT_OPS_CODEC_KEYS');
const keyId = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be a key id of letters, digits, ".", "_" or "-"');

export const codecSchema = z
  .strictObject({
    /**
     * The NAME of an environment variable holding keys as `id:key` entries separated by commas or newlines; a key is
     * 32 bytes in base64 or 64 hex digits (`openssl rand -base64 32`).
     */
    keysEnv: envVarName.optional(),
    /** A file of the same `id:key` lines (mode 0600 advised); read with keysEnv, ids must not repeat. */
    keysFile: z.string().min(1).optional(),
    /** The key new payloads are encrypted with (default: the first key). The others still decrypt (rotation). */
    encryptWith: keyId.optional(),
  })
  .refine((c) => c.keysEnv || c.keysFile, { message: 'name keysEnv or keysFile (where the encryption keys are)' });

export const codecServerSchema = z.strictObject({
  host: z.string().min(1).default('127.0.0.1'),
  /** 0 = any free port (printed at start). */
  port: z.coerce.number().int().min(0).max(65535).default(8888),
  /** The NAME of the variable holding the endpoint's token (`Authorization: Bearer <token>` or `/t/<token>/…`). */
  tokenEnv: envVarName.default('LLMCHAT_OPS_CODEC_TOKEN'),
  /** Browser origins allowed to call it (the Web UI's). */
  corsOrigins: z.array(z.string().regex(/^https?:\/\/[^/\s]+$/, 'must be an origin like http://127.0.0.1:8233')).default(['http://127.0.0.1:8233', 'http://localhost:8233']),
});

export type CodecConfig = z.infer<typeof codecSchema>;
export type CodecServerConfig = z.infer<typeof codecServerSchema>;
export { keyId as codecKeyIdSchema };
