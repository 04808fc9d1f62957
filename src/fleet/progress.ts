/**
 * Progress of a fleet run, on stderr. On a terminal: one line redrawn in place (a bar, counts per
 * status, the repository just finished), at most every 50 ms, cleared at the end. Otherwise (CI
 * logs, pipes): one plain line per finished repository, nothing redrawn.
 */

import { printable } from '../text.js';

export type RepoStatus = 'in-sync' | 'changed' | 'conflict' | 'error';

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Progress {
  start(total: number): void;
  /** One repository finished. */
  done(repository: string, status: RepoStatus, message: string): void;
  finish(): void;
}

export const silentProgress: Progress = { start() {}, done() {}, finish() {} };

export function createProgress(
  stream: ProgressStream,
  options: { tty?: boolean; now?: () => number } = {},
): Progress {
  const tty = options.tty ?? Boolean(stream.isTTY);
  return tty ? new BarProgress(stream, options.now ?? Date.now) : new LineProgress(stream);
}

class LineProgress implements Progress {
  private total = 0;
  private count = 0;
  constructor(private readonly stream: ProgressStream) {}
  start(total: number): void {
    this.total = total;
  }
  done(repository: string, status: RepoStatus, message: string): void {
    this.count++;
    const width = String(this.total).length;
    const line = `[${String(this.count).padStart(width)}/${this.total}] ${status.padEnd(8)} ${printable(repository)}`;
    this.stream.write(
      `${status === 'in-sync' || !message ? line : `${line}: ${printable(message)}`}\n`,
    );
  }
  finish(): void {}
}

class BarProgress implements Progress {
  private total = 0;
  private count = 0;
  private lastDraw = 0;
  private last = '';
  private readonly counts: Record<RepoStatus, number> = {
    'in-sync': 0,
    changed: 0,
    conflict: 0,
    error: 0,
  };
  constructor(
    private readonly stream: ProgressStream,
    private readonly now: () => number,
  ) {}
  start(total: number): void {
    this.total = total;
    this.draw(true);
  }
  done(repository: string, status: RepoStatus): void {
    this.count++;
    this.counts[status]++;
    this.last = printable(repository);
    this.draw(this.count === this.total);
  }
  finish(): void {
    this.stream.write('\r\x1b[2K');
  }
  private draw(force: boolean): void {
    const now = this.now();
    if (!force && now - this.lastDraw < 50) return;
    this.lastDraw = now;
    const width = 24;
    const filled = this.total === 0 ? width : Math.round((this.count / this.total) * width);
    const bar = `${'#'.repeat(filled)}${'-'.repeat(width - filled)}`;
    const c = this.counts;
    let line = `[${bar}] ${this.count}/${this.total}  ${c['in-sync']} in sync, ${c.changed} changed, ${c.conflict} conflict, ${c.error} error  ${this.last}`;
    const columns = this.stream.columns || 100;
    if (line.length > columns - 1) line = line.slice(0, Math.max(0, columns - 1));
    this.stream.write(`\r\x1b[2K${line}`);
  }
}
