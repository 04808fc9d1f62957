import { inline } from '../diff/markdown.js';
import { printable } from '../text.js';
import type { FleetResult, RepoResult } from './run-fleet.js';

/** The end-of-run summary: a table of every repository, then the totals. */

export function formatTotals(result: FleetResult): string {
  const c = result.counts;
  const of = result.results.length === result.total ? '' : ` (of ${result.total} in the fleet)`;
  return `${result.results.length} ${result.results.length === 1 ? 'repository' : 'repositories'}${of}: ${c['in-sync']} in sync, ${c.changed} changed, ${c.conflict} conflict, ${c.error} error`;
}

/** A plain-text table, aligned, one row per repository in fleet order. */
export function formatSummaryTable(result: FleetResult): string {
  // Names and messages come from fleet files and repositories: no control characters on a terminal.
  const rows = result.results.map((r) =>
    [r.repository, r.status, wasOn(r), r.message].map((cell) => printable(cell)),
  );
  const failed = result.results.filter((r) => r.status === 'error');
  return `${alignedTable(['REPOSITORY', 'STATUS', 'WAS ON', 'MESSAGE'], rows)}${formatTotals(result)}\n${failedSection(failed.map((r) => [r.repository, r.message]))}`;
}

/**
 * Rows under a header, each column but the last as wide as its widest cell (at most 60
 * characters: one long name must not push every row off the screen). Cells are printable already.
 */
export function alignedTable(header: string[], rows: string[][]): string {
  const last = header.length - 1;
  const widths = header.map((title, column) =>
    Math.min(60, Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0))),
  );
  const line = (row: string[]) =>
    row
      .map((cell, column) => (column < last ? cell.padEnd(widths[column] ?? 0) : cell))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

/** The failures again, together at the end: the table of a large fleet scrolls them away. */
export function failedSection(failed: [repository: string, message: string][]): string {
  if (failed.length === 0) return '';
  const lines = failed.map(
    ([repository, message]) => `  ${printable(repository)}: ${printable(message)}`,
  );
  return `Failed (${failed.length}):\n${lines.join('\n')}\n`;
}

/** The same as a markdown report (for `--report` with `--check` or `--write`). */
export function formatSummaryMarkdown(result: FleetResult): string {
  const lines = [
    `## create-cached-deploy fleet --${result.mode}`,
    '',
    `Generator ${result.generator}. ${formatTotals(result)}.`,
    '',
    '| repository | status | was on | message |',
    '|---|---|---|---|',
    // Names and messages come from the repositories (an error may quote their files): literal.
    ...result.results.map(
      (r) =>
        `| ${inline(r.repository)} | ${r.status} | ${inline(wasOn(r))} | ${inline(r.message)} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}

/** Versioned JSON (`formatVersion`) of the whole run. */
export function formatSummaryJson(result: FleetResult): string {
  const { diffs: _diffs, results, ...rest } = result;
  return `${JSON.stringify({ formatVersion: 1, ...rest, repositories: results }, null, 2)}\n`;
}

function wasOn(result: RepoResult): string {
  if (result.status === 'error' && result.generatorBefore === undefined) return '?';
  return result.generatorBefore ?? 'none';
}
