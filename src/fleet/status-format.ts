import { inline } from '../diff/markdown.js';
import { printable } from '../text.js';
import { type FleetStatusResult, type RepoPullRequestStatus, stateOf } from './status.js';
import { alignedTable, failedSection } from './summary.js';

/**
 * `fleet --status` printed: a table (text), a markdown table (`--report`), JSON (`--json`,
 * formatVersion 1). Everything from a host (titles, URLs, messages) goes through `printable()`.
 */

export function formatStatusTotals(result: FleetStatusResult): string {
  const c = result.counts;
  const n = result.repositories.length;
  const of = n === result.total ? '' : ` (of ${result.total} in the fleet)`;
  return `${n} ${n === 1 ? 'repository' : 'repositories'}${of}: ${c.open} open, ${c.merged} merged, ${c.closed} closed, ${c.none} without a pull request, ${c.error} error`;
}

function cells(status: RepoPullRequestStatus): string[] {
  const pull = status.pullRequest;
  const state = stateOf(status);
  return [
    printable(status.repository),
    pull?.draft && state === 'open' ? 'open (draft)' : state,
    pull ? pull.review : '-',
    pull ? pull.checks : '-',
    generatorCell(status),
    status.error !== undefined ? printable(status.error) : pull ? printable(pull.url) : '',
  ];
}

function generatorCell(status: RepoPullRequestStatus): string {
  if (status.generatorOnDefaultBranch === undefined) return '?';
  return status.generatorOnDefaultBranch === null
    ? 'none'
    : printable(status.generatorOnDefaultBranch);
}

const HEADER = ['REPOSITORY', 'STATE', 'REVIEW', 'CHECKS', 'DEFAULT BRANCH ON', 'PULL REQUEST'];

export function formatStatusTable(result: FleetStatusResult): string {
  const failed = result.repositories.flatMap((status): [string, string][] =>
    status.error === undefined ? [] : [[status.repository, status.error]],
  );
  return `${alignedTable(HEADER, result.repositories.map(cells))}${formatStatusTotals(result)}\n${failedSection(failed)}`;
}

export function formatStatusMarkdown(result: FleetStatusResult): string {
  const lines = [
    `## create-cached-deploy fleet --status (${inline(result.branch)})`,
    '',
    `${formatStatusTotals(result)}.`,
    '',
    '| repository | state | review | checks | default branch on | pull request |',
    '|---|---|---|---|---|---|',
    ...result.repositories.map((status) => {
      const [repository, state, review, checks, generator, link] = cells(status);
      const pull = status.pullRequest;
      const target =
        status.error !== undefined
          ? inline(status.error)
          : pull
            ? `[${inline(`${status.kind === 'gitlab' ? '!' : '#'}${pull.number}`)}](${linkTarget(pull.url)})`
            : inline(link ?? '');
      return `| ${inline(repository ?? '')} | ${state} | ${review} | ${checks} | ${inline(generator ?? '')} | ${target} |`;
    }),
  ];
  return `${lines.join('\n')}\n`;
}

/** formatVersion 1: the result as it is, every string as the host sent it (JSON escapes it). */
export function formatStatusJson(result: FleetStatusResult): string {
  const { repositories, ...rest } = result;
  return `${JSON.stringify({ formatVersion: 1, ...rest, repositories }, null, 2)}\n`;
}

/** A URL inside markdown link parentheses: no space, parenthesis or angle bracket can end it. */
function linkTarget(url: string): string {
  return encodeURI(url).replace(
    /[()<>]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
