/**
 * The one way llmchat-ops connects to Temporal — the worker, the CLI, `schedules apply`, the codec server and the
 * Alertmanager receiver all come through here: settings from src/common/temporal-config.ts (TOML profile, TEMPORAL_* env,
 * ops.config.yaml), the payload codec from src/common/codec.ts, and connection failures turned into one readable line.
 */
import { isIP } from 'node:net';
import tls from 'node:tls';
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { NativeConnection } from '@temporalio/worker';
import { dataConverterFromConfig } from './codec.js';
import type { OpsConfig } from './config/index.js';
import { resolveTemporalSettings, type TemporalSettings } from './temporal-config.js';

export class TemporalConnectionError extends Error {
  override readonly name = 'TemporalConnectionError';
}

/** Why a connection failed, in words an operator can act on; the library's own text follows in parentheses. */
export function explainConnectError(err: unknown, s: TemporalSettings, probed?: string): TemporalConnectionError {
  const raw = err instanceof Error ? err.message : String(err);
  if (probed) return new TemporalConnectionError(`cannot connect to Temporal at ${s.describe}: ${probed} (${raw.split('\n')[0]})`);
  const tlsOn = s.tls !== undefined && s.tls !== false;
  let why: string;
  if (/UnknownIssuer|unable to (get local issuer|verify the first) certificate|self[- ]signed certificate|certificate verify failed|CERTIFICATE_VERIFY_FAILED|BadSignature/i.test(raw)) {
    why = `the server's TLS certificate is not signed by the trusted CA (${s.caSource ? `CA file ${s.caSource}` : 'the system CAs'}): set temporal.tls.serverCaCert / TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA that issued it`;
  } else if (/NotValidForName|does not match|Hostname\/IP does not match|ERR_TLS_CERT_ALTNAME_INVALID/i.test(raw)) {
    why = `the server's TLS certificate is not issued for this host name: set temporal.tls.serverName / TEMPORAL_TLS_SERVER_NAME to the name in the certificate`;
  } else if (/CertificateRequired|certificate required|bad certificate|alert.*(certificate|handshake)|UnknownCA/i.test(raw)) {
    why = `the server rejected the client certificate (mTLS): check temporal.tls.clientCert/clientKey (TEMPORAL_TLS_CLIENT_CERT_PATH/_KEY_PATH)`;
  } else if (tlsOn && /InvalidContentType|wrong version number|http2|frame|CorruptMessage|InvalidMessage/i.test(raw)) {
    why = `TLS is on but the server does not speak TLS on this port (turn TLS off, or use the server's TLS port)`;
  } else if (!tlsOn && /Connection reset|RST_STREAM|Protocol error|EPROTO|unexpected EOF|broken pipe|h2 protocol error/i.test(raw)) {
    why = `the connection is plaintext but the server seems to require TLS: set temporal.tls / TEMPORAL_TLS=true and a CA`;
  } else if (/ECONNREFUSED|Connection refused|ConnectionRefused/i.test(raw)) {
    why = 'nothing listens there (is the server up? the address right?)';
  } else if (/Unauthenticated|UNAUTHENTICATED|PermissionDenied|PERMISSION_DENIED|Request unauthorized/i.test(raw)) {
    why = 'the server refused the credentials (API key or client certificate) for this namespace';
  } else if (/deadline|timed? ?out|Timeout/i.test(raw)) {
    why = 'no answer in time (firewall, wrong port, or a TLS/plaintext mismatch)';
  } else {
    why = 'connection failed';
  }
  return new TemporalConnectionError(`cannot connect to Temporal at ${s.describe}: ${why} (${raw.split('\n')[0]})`);
}

const CA_CODES = new Set(['SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_SIGNATURE_FAILURE']);

/**
 * gRPC reports most TLS failures only as "failed to connect before the deadline". A direct TLS handshake with the
 * same material tells which one it was. Undefined when the handshake (and the first moment after it) went fine.
 */
export async function probeTls(s: TemporalSettings, timeoutMs = 3000): Promise<string | undefined> {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s.address);
  if (!m) return undefined;
  const [host, port] = [m[1]!, Number(m[2])];
  const tlsOn = s.tls !== undefined && s.tls !== false;
  const material = typeof s.tls === 'object' ? s.tls : {};
  const servername = material.serverNameOverride ?? (isIP(host) ? undefined : host);
  return new Promise((resolve) => {
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(why);
    };
    const sock = tls.connect({
      host,
      port,
      servername,
      ALPNProtocols: ['h2'],
      rejectUnauthorized: tlsOn,
      ...(material.serverRootCACertificate ? { ca: [Buffer.from(material.serverRootCACertificate)] } : {}),
      ...(material.clientCertPair ? { cert: Buffer.from(material.clientCertPair.crt), key: Buffer.from(material.clientCertPair.key) } : {}),
      ...(servername ? {} : { checkServerIdentity: (_h: string, cert: tls.PeerCertificate) => tls.checkServerIdentity(host, cert) }),
    });
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.once('secureConnect', () => {
      if (!tlsOn) return done(`the server speaks TLS on this port but the connection is plaintext: turn TLS on (temporal.tls, TEMPORAL_TLS=true, or a CA / client certificate)`);
      sock.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'); // a rejected client certificate shows only after the handshake (TLS 1.3)
      setTimeout(() => done(undefined), 500);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      const msg = err.message;
      if (code === 'ECONNREFUSED') return done('nothing listens there (is the server up? the address right?)');
      if (!tlsOn) return done(undefined);
      if (CA_CODES.has(code)) done(`the server's TLS certificate is not signed by the trusted CA (${s.caSource ? `CA file ${s.caSource}` : 'the system CAs'}): set temporal.tls.serverCaCert / TEMPORAL_TLS_SERVER_CA_CERT_PATH to the CA that issued it`);
      else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') done(`the server's TLS certificate is not issued for this host name (${msg}): set temporal.tls.serverName / TEMPORAL_TLS_SERVER_NAME to the name in the certificate`);
      else if (/certificate required|bad certificate|unknown ca|certificate unknown/i.test(msg)) done(`the server requires a client certificate it trusts (mTLS) and rejected ours${material.clientCertPair ? '' : ' (none configured)'}: set temporal.tls.clientCert/clientKey or TEMPORAL_TLS_CLIENT_CERT_PATH/_KEY_PATH`);
      else if (/wrong version number|packet length too long|unexpected eof|EPROTO/i.test(msg + code)) done(`TLS is on but the server does not speak TLS on this port: turn TLS off or use its TLS port`);
      else done(undefined);
    });
  });
}

/** The settings and the data converter of a config (throws readable config errors before any network I/O). */
export function temporalOf(cfg: OpsConfig): { settings: TemporalSettings; dataConverter: DataConverter | undefined } {
  return { settings: resolveTemporalSettings(cfg.temporal), dataConverter: dataConverterFromConfig(cfg.temporal.encryption) };
}

/** A client Connection (gRPC-js) with the resolved address, TLS, API key and metadata. */
export async function connectConnection(settings: TemporalSettings, connectTimeout = '5 seconds'): Promise<Connection> {
  try {
    return await Connection.connect({
      address: settings.address,
      tls: settings.tls,
      apiKey: settings.apiKey,
      metadata: settings.metadata,
      connectTimeout,
    });
  } catch (err) {
    throw explainConnectError(err, settings, await probeTls(settings).catch(() => undefined));
  }
}

export async function connectClient(cfg: OpsConfig): Promise<Client> {
  const { settings, dataConverter } = temporalOf(cfg);
  const connection = await connectConnection(settings);
  return new Client({ connection, namespace: settings.namespace, dataConverter });
}

/** The worker's connection (Rust core). */
export async function connectNative(settings: TemporalSettings): Promise<NativeConnection> {
  try {
    return await NativeConnection.connect({ address: settings.address, tls: settings.tls, apiKey: settings.apiKey, metadata: settings.metadata });
  } catch (err) {
    throw explainConnectError(err, settings, await probeTls(settings).catch(() => undefined));
  }
}
