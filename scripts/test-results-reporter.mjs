// A node:test reporter for scripts/test.sh: one JSON line per finished test (not suites), naming its file, so the
// script can tell which files failed, run those once more, and count the results. The spec reporter still prints
// everything a person reads.
export default async function* testResults(source) {
  for await (const { type, data } of source) {
    if (type !== 'test:pass' && type !== 'test:fail') continue;
    if (data.details?.type === 'suite') continue;
    yield `${JSON.stringify({
      file: data.file ?? '',
      name: data.name,
      ok: type === 'test:pass',
      skipped: Boolean(data.skip || data.todo),
      cancelled: type === 'test:fail' && data.details?.error?.failureType === 'cancelledByParent',
    })}\n`;
  }
}
