import { writeFileSync } from 'node:fs';
import { CachedDeployError } from '../errors.js';
import { createProgress } from './progress.js';
import { type FleetMode, runFleet } from './run-fleet.js';
import { formatSummaryJson, formatSummaryMarkdown, formatSummaryTable } from './summary.js';

/** What `create-cached-deploy fleet` parses from its flags (commander's camelCase names). */
export interface FleetCommandOptions {
  check?: boolean;
  diff?: boolean;
  write?: boolean;
  force?: boolean;
  branch?: string;
  push?: boolean;
  report?: string;
  json?: boolean;
  concurrency?: string;
  workers?: string;
  onlyFailed?: boolean;
  shard?: string;
  workDir?: string;
  /** `--no-fetch` sets it false. */
  fetch?: boolean;
}

export interface FleetIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** stderr is a terminal: draw the progress bar in place (else one line per repository). */
  progressTTY?: boolean;
}

/**
 * The CLI shell of `runFleet`. stdout carries the result (the summary table; with `--diff` the
 * unified diff; with `--json` the JSON), so it can be piped; progress goes to stderr, and the
 * table too when stdout carries a diff or JSON. Returns the exit code.
 */
export async function fleetCommand(
  file: string,
  options: FleetCommandOptions,
  io: FleetIo,
): Promise<number> {
  const modes = (['check', 'diff', 'write'] as const).filter((mode) => options[mode]);
  if (modes.length > 1) {
    throw new CachedDeployError(
      'USAGE',
      `choose one of --check, --diff and --write (got --${modes.join(', --')})`,
    );
  }
  const mode: FleetMode = modes[0] ?? 'check';
  let concurrency: number | undefined;
  if (options.concurrency !== undefined) {
    concurrency = Number(options.concurrency);
    if (!/^\d+$/.test(options.concurrency) || concurrency < 1) {
      throw new CachedDeployError(
        'USAGE',
        `--concurrency: "${options.concurrency}" is not a positive integer`,
      );
    }
  }
  let workers: number | undefined;
  if (options.workers !== undefined) {
    workers = Number(options.workers);
    if (!/^\d+$/.test(options.workers)) {
      throw new CachedDeployError(
        'USAGE',
        `--workers: "${options.workers}" is not a number of threads (0 for none)`,
      );
    }
  }
  const progress = createProgress(
    { write: io.stderr, columns: process.stderr.columns },
    { tty: Boolean(io.progressTTY) },
  );
  const result = await runFleet(file, {
    mode,
    force: options.force,
    branch: options.branch,
    push: options.push,
    onlyFailed: options.onlyFailed,
    shard: options.shard,
    concurrency,
    workers,
    workDir: options.workDir,
    fetch: options.fetch,
    progress,
  });

  const table = formatSummaryTable(result);
  if (mode === 'diff') {
    const format = await import('../diff/format.js');
    const diffs = result.diffs ?? [];
    io.stdout(options.json ? format.formatJson(diffs) : format.formatUnified(diffs));
    io.stderr(table);
    if (options.report) writeReport(options.report, format.formatMarkdown(diffs));
  } else {
    if (options.json) {
      io.stdout(formatSummaryJson(result));
      io.stderr(table);
    } else {
      io.stdout(table);
    }
    if (options.report) writeReport(options.report, formatSummaryMarkdown(result));
  }
  if (result.counts.error + result.counts.conflict > 0) {
    io.stderr(`Results recorded in ${result.resultsFile}; rerun just those with --only-failed.\n`);
  }
  return result.exitCode;
}

function writeReport(file: string, text: string): void {
  try {
    writeFileSync(file, text);
  } catch (error) {
    throw new CachedDeployError(
      'IO',
      `--report: could not write ${file}: ${(error as Error).message}`,
    );
  }
}
