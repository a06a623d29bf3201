/**
 * Client libraries loaded on first use instead of at worker start. dockerode (with ssh2), ioredis and nodemailer
 * together took about 1.2 s of a 2-core machine's start-up and 25 MB of its memory, for activities most runs never
 * call (a restart, a cache flush, an email). They are CommonJS packages, so a synchronous require() keeps every
 * caller as it was.
 */
import { createRequire } from 'node:module';
import type DockerType from 'dockerode';
import type * as IoRedis from 'ioredis';
import type NodemailerType from 'nodemailer';

const require = createRequire(import.meta.url);

export function dockerode(): typeof DockerType {
  return require('dockerode') as typeof DockerType;
}

export function ioredis(): typeof IoRedis.Redis {
  return (require('ioredis') as typeof IoRedis).Redis;
}

export function nodemailer(): typeof NodemailerType {
  return require('nodemailer') as typeof NodemailerType;
}
