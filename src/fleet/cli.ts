import { writeFileSync } from 'node:fs';
import { CachedDeployError } from '../errors.js';
import { printable } from '../text.js';
import { createProgress } from './progress.js';
import { type FleetMode, runFleet } from './run-fleet.js';
import { formatSummaryJson, formatSummaryMarkdown, formatSummaryTable } from './summary.js';

/** What `create-cached-deploy fleet` parses from its flags (commander's camelCase names). */
export interface FleetCommandOptions {
  check?: boolean;
  diff?: boolean;
  write?: boolean;
  status?: boolean;
  openPr?: boolean;
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
  const modes = (['check', 'diff', 'write', 'status'] as const).filter((mode) => options[mode]);
  if (modes.length > 1) {
    throw new CachedDeployError(
      'USAGE',
      `choose one of --check, --diff, --write and --status (got --${modes.join(', --')})`,
    );
  }
  if (modes[0] === 'status') return statusCommand(file, options, io);
  const mode: FleetMode = modes[0] ?? 'check';
  const concurrency = parseConcurrency(options.concurrency);
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
    openPr: options.openPr,
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

/** `fleet --status`: every repository's pull request, from its code host. Exit 2 while any is open. */
async function statusCommand(file: string, options: FleetCommandOptions, io: FleetIo) {
  for (const flag of ['force', 'push', 'openPr', 'onlyFailed', 'workers'] as const) {
    if (options[flag]) {
      const name = flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
      throw new CachedDeployError('USAGE', `--${name} does not go with --status`);
    }
  }
  const { runFleetStatus } = await import('./status.js');
  const format = await import('./status-format.js');
  const concurrency = parseConcurrency(options.concurrency);
  let done = 0;
  const result = await runFleetStatus(file, {
    ...(options.branch !== undefined ? { branch: options.branch } : {}),
    ...(options.shard !== undefined ? { shard: options.shard } : {}),
    ...(concurrency !== undefined ? { concurrency } : {}),
    onDone: (repository, state, message) => {
      done++;
      if (io.progressTTY) {
        io.stderr(`\r\x1b[2K[${done}] ${state} ${printable(repository)}`.slice(0, 120));
      } else {
        io.stderr(
          `[${done}] ${state.padEnd(6)} ${printable(repository)}${message ? `: ${printable(message)}` : ''}\n`,
        );
      }
    },
  });
  if (io.progressTTY) io.stderr('\r\x1b[2K');
  const table = format.formatStatusTable(result);
  if (options.json) {
    io.stdout(format.formatStatusJson(result));
    io.stderr(table);
  } else {
    io.stdout(table);
  }
  if (options.report) writeReport(options.report, format.formatStatusMarkdown(result));
  return result.exitCode;
}

function parseConcurrency(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const concurrency = Number(value);
  if (!/^\d+$/.test(value) || concurrency < 1) {
    throw new CachedDeployError('USAGE', `--concurrency: "${value}" is not a positive integer`);
  }
  return concurrency;
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
