/**
 * A parser for the Prometheus text exposition format (what the app's /metrics serves), enough for counters,
 * gauges and histograms: `name{label="value",…} value [timestamp]`, comments skipped. The text is untrusted:
 * malformed lines are counted and skipped, label values are unescaped, and sizes are bounded by the caller.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedMetrics {
  samples: Sample[];
  /** Lines that were neither comments nor valid samples. */
  malformed: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(raw: string): number | undefined {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  if (raw === 'NaN') return NaN;
  const n = Number(raw);
  return raw.trim() !== '' && !Number.isNaN(n) ? n : undefined;
}

/** Parses one sample line, or returns undefined if it is not one. */
export function parseSampleLine(line: string): Sample | undefined {
  const nameMatch = NAME.exec(line);
  if (!nameMatch) return undefined;
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = Object.create(null) as Record<string, string>;
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const ln = LABEL_NAME.exec(line.slice(i));
      if (!ln) return undefined;
      i += ln[0].length;
      if (line[i] !== '=' || line[i + 1] !== '"') return undefined;
      i += 2;
      let value = '';
      for (;;) {
        const c = line[i];
        if (c === undefined) return undefined;
        if (c === '"') break;
        if (c === '\\') {
          const n = line[i + 1];
          value += n === 'n' ? '\n' : (n ?? '');
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      i++;
      labels[ln[0]] = value;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const value = parseValue(rest[0] ?? '');
  if (value === undefined || rest.length > 2) return undefined;
  return { name, labels, value };
}

export function parsePrometheusText(text: string): ParsedMetrics {
  const samples: Sample[] = [];
  let malformed = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = parseSampleLine(line);
    if (s) samples.push(s);
    else malformed++;
  }
  return { samples, malformed };
}
