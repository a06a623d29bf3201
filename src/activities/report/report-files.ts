/** Host activity of the monthly report: renders it (src/activities/report/render.ts) and writes both files atomically. */
import { mkdir, open, rename } from 'node:fs/promises';
import path from 'node:path';
import type { OpsConfig } from '../../common/config/index.js';
import type { DatabasePerformance, PerformanceAnalysis, PerformanceFigures } from './analysis.js';
import { renderHtml, renderMarkdown } from './render.js';

async function writeAtomically(file: string, text: string): Promise<void> {
  const partial = `${file}.partial`;
  const fh = await open(partial, 'w', 0o644);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(partial, file);
}

export function createReportFileActivities(cfg: OpsConfig) {
  return {
    /** The guide's report thresholds from the config. */
    async reportThresholds(): Promise<OpsConfig['report']['thresholds']> {
      return cfg.report.thresholds;
    },

    /** `<report.directory>/performance-report-<env>-<YYYY-MM>.md` and `.html`; rewriting the same month replaces them. */
    async writePerformanceReport(input: { figures: PerformanceFigures; database: DatabasePerformance; analysis: PerformanceAnalysis; generatedAt: string }): Promise<{ markdownFile: string; htmlFile: string }> {
      const { figures, database, analysis, generatedAt } = input;
      // Names come from validated values (environment name, YYYY-MM), never from free text.
      if (!/^[a-z][a-z0-9-]{0,31}$/.test(figures.environment) || !/^\d{4}-\d\d$/.test(figures.month)) throw new Error('bad report name parts');
      const dir = cfg.report.directory;
      await mkdir(dir, { recursive: true });
      const base = path.join(dir, `performance-report-${figures.environment}-${figures.month}`);
      await writeAtomically(`${base}.md`, renderMarkdown(figures, database, analysis, generatedAt));
      await writeAtomically(`${base}.html`, renderHtml(figures, database, analysis, generatedAt));
      return { markdownFile: `${base}.md`, htmlFile: `${base}.html` };
    },
  };
}
