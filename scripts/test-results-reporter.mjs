// A node:test reporter for scripts/test.sh: one JSON line per finished test (not suites), naming its file, so the
// script can tell which files failed, run those once more, and count the results. The spec reporter still prints
// everything a person reads. Lines are appended synchronously to $LLMCHAT_TEST_RESULTS: the runner exits right
// after its summary (--test-force-exit), before a stream could flush its last lines.
import { appendFileSync } from 'node:fs';

const out = process.env.LLMCHAT_TEST_RESULTS;
if (!out) throw new Error('test-results-reporter: LLMCHAT_TEST_RESULTS must name the file to append results to');

export default async function* testResults(source) {
  for await (const { type, data } of source) {
    if (type !== 'test:pass' && type !== 'test:fail') continue;
    if (data.details?.type === 'suite') continue;
    appendFileSync(out, `${JSON.stringify({
      file: data.file ?? '',
      name: data.name,
      ok: type === 'test:pass',
      skipped: Boolean(data.skip || data.todo),
      cancelled: type === 'test:fail' && data.details?.error?.failureType === 'cancelledByParent',
    })}\n`);
  }
  yield '';
}
