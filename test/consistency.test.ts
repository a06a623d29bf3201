/** Things that are written down in more than one place must agree: the search attributes the workflows write. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ALL_SEARCH_ATTRIBUTES } from '../src/common/search-attributes.js';
import { ROOT } from './support/services.js';

const expected = ALL_SEARCH_ATTRIBUTES.map((k) => k.name).sort();

describe('search attribute registrations', () => {
  it('scripts/services.sh registers exactly the attributes of src/common/search-attributes.ts', async () => {
    const script = await readFile(path.join(ROOT, 'scripts/services.sh'), 'utf8');
    const list = /SEARCH_ATTRIBUTES=\(([^)]*)\)/.exec(script)?.[1];
    assert.ok(list, 'SEARCH_ATTRIBUTES=(...) found in services.sh');
    assert.deepEqual(list.split(/\s+/).filter(Boolean).sort(), expected);
  });

  it('docker-compose.temporal.yml registers the same attributes, as Keyword', async () => {
    const compose = parse(await readFile(path.join(ROOT, 'docker-compose.temporal.yml'), 'utf8')) as {
      services: { temporal: { command: string[] } };
    };
    const flags = compose.services.temporal.command.filter((a) => a.startsWith('--search-attribute='));
    assert.deepEqual(flags.map((f) => f.slice('--search-attribute='.length)).sort(), expected.map((n) => `${n}=Keyword`));
  });
});
