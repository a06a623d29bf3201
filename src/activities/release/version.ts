/**
 * The release-name grammar of deploy and rollback. Pure and deterministic: the workflow bundle imports it.
 *
 * A release name is an image tag, git tag or commit id. It becomes part of an image reference and of command
 * arguments, so it is held to the image-tag grammar: letters, digits, `.`, `_`, `-`; no leading `-` or `.`
 * (never an option, never a relative path), no `..`, at most 128 characters.
 */
export const RELEASE_VERSION = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function parseVersion(value: unknown, what = 'version'): string {
  const shown = typeof value === 'string' ? JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value) : (JSON.stringify(value)?.slice(0, 60) ?? String(value));
  if (typeof value !== 'string' || !RELEASE_VERSION.test(value) || value.includes('..')) {
    throw new Error(
      `Expected \`${what}\` to be a release name (an image tag, git tag or commit id: letters, digits, . _ -, not starting with - or ., no .., at most 128 characters), got ${shown}`,
    );
  }
  return value;
}
