// scripts/test.sh's last words: the counts over the first run, with the files that failed in it replaced by their
// second run (when there was one), and every test that failed and then passed named as FLAKY — a second run
// hides nothing: the first run's failures stay printed above, and these lines say which tests needed it.
//   node scripts/test-summary.mjs <first-run results> [<second-run results>]
//   node scripts/test-summary.mjs --check <results> <runner output>   (exit 1 unless they count the same tests)
//   node scripts/test-summary.mjs --failed-files <results>   (the files to run again, one per line; none when a
//                                                              failure names no file)
import { readFileSync } from 'node:fs';

const read = (file) =>
  readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line));
if (process.argv[2] === '--check') {
  // Do the recorded results account for every test the runner's own summary counted ("ℹ tests N")?
  const recorded = read(process.argv[3]).length;
  const counts = [...readFileSync(process.argv[4], 'utf8').matchAll(/^ℹ tests (\d+)$/gm)];
  const counted = counts.length ? Number(counts[counts.length - 1][1]) : NaN;
  if (recorded !== counted) {
    console.log(`the results recorded (${recorded} tests) do not match the runner's count (${Number.isNaN(counted) ? 'none printed' : counted}): no file is run again`);
    process.exit(1);
  }
  process.exit(0);
}
if (process.argv[2] === '--failed-files') {
  const failures = read(process.argv[3]).filter((r) => !r.ok);
  if (failures.every((r) => r.file)) for (const file of new Set(failures.map((r) => r.file))) console.log(file);
  process.exit(0);
}
const [first, second] = process.argv.slice(2);
const run1 = read(first);
const run2 = second ? read(second) : [];
const rerunFiles = new Set(run2.map((r) => r.file));
const finalResults = [...run1.filter((r) => !rerunFiles.has(r.file)), ...run2];
const key = (r) => `${r.file}\u0000${r.name}`;
const failedFirst = new Set(run1.filter((r) => !r.ok).map(key));
const flaky = run2.filter((r) => r.ok && failedFirst.has(key(r)));
const passed = finalResults.filter((r) => r.ok && !r.skipped).length;
const skipped = finalResults.filter((r) => r.skipped).length;
const failed = finalResults.filter((r) => !r.ok);
const short = (file) => file.replace(/^.*\/dist\//, 'dist/');
if (second) {
  console.log(`\n== summary: the first run had ${run1.filter((r) => !r.ok).length} failed test(s); their ${rerunFiles.size} file(s) were run once more, alone`);
  for (const r of flaky) console.log(`FLAKY (failed, then passed when its file ran again): ${short(r.file)} — ${r.name}`);
}
for (const r of failed) console.log(`FAILED${r.cancelled ? ' (cancelled)' : ''}: ${short(r.file)} — ${r.name}`);
if (run1.length === 0) console.log('no test results were recorded (did the build or the runner fail?)');
console.log(`${passed} passed, ${failed.length + (run1.length === 0 ? 1 : 0)} failed${skipped ? `, ${skipped} skipped` : ''}${flaky.length ? ` (${flaky.length} flaky: passed on the second run)` : ''}`);
process.exitCode = failed.length === 0 && run1.length > 0 ? 0 : 1;
