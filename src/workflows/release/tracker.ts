/** Progress of a release (deploy, rollback): the `progress` query, the Web UI's current details, one line per step. */
import {
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ReleaseOutcome } from '../../activities/release/release-store.js';
import { OutcomeKey } from '../../common/search-attributes.js';
import { progressQuery, type ReleaseProgress, type StepProgress } from './shared.js';
import { message } from './failures.js';


export class Tracker {
  readonly progress: ReleaseProgress;
  constructor(init: Omit<ReleaseProgress, 'step' | 'steps'>, steps: string[]) {
    this.progress = { ...init, step: steps[0] ?? 'plan', steps: steps.map((name) => ({ name, state: 'pending' })) };
    setHandler(progressQuery, () => this.progress);
    this.details();
  }

  private details(): void {
    const p = this.progress;
    const lines = p.steps.map((s) => `${s.state === 'done' ? '✔' : s.state === 'running' ? '▶' : s.state === 'failed' ? '✘' : s.state === 'skipped' ? '–' : '·'} ${s.name}${s.detail ? ` — ${s.detail}` : ''}`);
    setCurrentDetails(`**${p.operation} ${p.environment}: ${p.fromVersion ?? '(none)'} → ${p.version}** (by ${p.requestedBy})\n\n${p.waitingFor ? `waiting for: ${p.waitingFor}\n\n` : ''}${lines.join('\n')}${p.outcome ? `\n\noutcome: **${p.outcome}**` : ''}`);
  }

  private entry(name: string): StepProgress {
    let s = this.progress.steps.find((x) => x.name === name);
    if (!s) {
      s = { name, state: 'pending' };
      this.progress.steps.push(s);
    }
    return s;
  }

  async step<T>(name: string, fn: () => Promise<T>, detail?: (r: T) => string): Promise<T> {
    const s = this.entry(name);
    s.state = 'running';
    s.startedAt = new Date().toISOString();
    this.progress.step = name;
    this.details();
    try {
      const r = await fn();
      s.state = 'done';
      if (detail) s.detail = detail(r);
      return r;
    } catch (err) {
      s.state = 'failed';
      s.detail = message(err);
      throw err;
    } finally {
      s.finishedAt = new Date().toISOString();
      this.details();
    }
  }

  skip(name: string, why: string): void {
    const s = this.entry(name);
    s.state = 'skipped';
    s.detail = why;
    this.details();
  }

  waiting(what: string | undefined): void {
    if (what) this.progress.waitingFor = what;
    else delete this.progress.waitingFor;
    this.details();
  }

  /** The new version serves and is verified: the deploy is done for whoever waits on `servingVerified`. */
  serving(): void {
    this.progress.servingAt = new Date().toISOString();
    this.details();
  }

  finish(outcome: ReleaseOutcome, msg: string): void {
    this.progress.outcome = outcome;
    this.progress.step = 'done';
    this.progress.finishedAt = new Date().toISOString();
    this.progress.message = msg;
    upsertSearchAttributes([{ key: OutcomeKey, value: outcome }]);
    this.details();
  }
}
