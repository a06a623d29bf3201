export class TimeoutError extends Error {
  constructor(what, ms) {
    super(`${what} timed out after ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

// Resolve/reject with the promise, or reject after ms (the promise keeps running; callers must not care).
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(what, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The URL with its password (if any) masked, for logs and /version. */
export function redactUrl(url) {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<invalid url>';
  }
}
