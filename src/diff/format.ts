import { unifiedDiff } from '../plan/diff.js';
import { conflictReason, type FileAction, type FileChange } from '../plan/plan.js';
import { formatBytes, plural } from '../text.js';
import { GENERATOR_VERSION } from '../version.js';
import { code, escapeHtml, inline } from './markdown.js';
import { hasChanges, type PolicyImpact, type RepoDiff } from './report.js';

/**
 * The three renderings of a diff report: `unified` (a patch with the explanations as `#` lines
 * before it), `markdown` (a PR comment, bounded in size) and `json` (formatVersion 1, documented in
 * docs/json-reports.md).
 */

export interface MarkdownOptions {
  /** Upper bound of the UTF-8 size of the whole comment. GitHub allows 65,536 characters. */
  maxBytes?: number;
  /** The heading (default "create-cached-deploy diff"). */
  title?: string;
}

export const DEFAULT_MARKDOWN_MAX_BYTES = 60_000;

export type ActionCounts = Record<FileAction, number>;

export function countActions(changes: FileChange[]): ActionCounts {
  const counts: ActionCounts = { create: 0, update: 0, delete: 0, conflict: 0, unchanged: 0 };
  for (const change of changes) counts[change.action] += 1;
  return counts;
}

function pending(diff: RepoDiff): FileChange[] {
  return diff.changes.filter((change) => change.action !== 'unchanged');
}

function conflictNote(change: FileChange): string {
  return `${conflictReason(change).sentence}: generate refuses it without --force`;
}

// --- unified ---

export function formatUnified(diffs: RepoDiff[]): string {
  const many = diffs.length > 1;
  const out: string[] = [];
  for (const diff of diffs) {
    const header: string[] = [];
    if (many) header.push(`# ${diff.repository}`);
    if (diff.error) {
      out.push(`${[...header, `# error: ${diff.error}`].join('\n')}\n`);
      continue;
    }
    const changes = pending(diff);
    if (changes.length === 0) {
      if (many) out.push(`${header.join('\n')}\n# in sync\n`);
      continue;
    }
    if (diff.generatorBefore !== undefined && diff.generatorBefore !== diff.generatorAfter) {
      header.push(`# generator ${diff.generatorBefore} -> ${diff.generatorAfter}`);
    }
    for (const sentence of diff.explanations) header.push(`# ${sentence}`);
    for (const impact of diff.impact ?? []) header.push(`# ${impactSentence(impact)}`);
    for (const change of changes) {
      if (change.action === 'conflict')
        header.push(`# conflict: ${change.path} ${conflictNote(change)}`);
    }
    const body = changes.map((change) => unifiedDiff(change)).join('');
    out.push(header.length > 0 ? `${header.join('\n')}\n\n${body}` : body);
  }
  return out.join(many ? '\n' : '');
}

export function impactSentence(impact: PolicyImpact): string {
  const parts = [
    `${impact.repository} (${impact.images} images): the new ${impact.policyFile} expires ${impact.newlyExpired.length} images (${formatBytes(impact.newlyExpiredBytes)}) that the current one keeps`,
  ];
  if (impact.noLongerExpired.length > 0) {
    parts.push(`and keeps ${impact.noLongerExpired.length} that it expires`);
  }
  return parts.join(' ');
}

// --- markdown ---

export function formatMarkdown(diffs: RepoDiff[], options: MarkdownOptions = {}): string {
  const maxBytes = options.maxBytes ?? DEFAULT_MARKDOWN_MAX_BYTES;
  const title = options.title ?? 'create-cached-deploy diff';
  const changed = diffs.filter((diff) => !diff.error && hasChanges(diff));
  const failed = diffs.filter((diff) => diff.error);
  const totals = countActions(diffs.flatMap((diff) => diff.changes));
  const pendingFiles = totals.create + totals.update + totals.delete + totals.conflict;

  // Summary first: always present, trimmed last.
  const summary: string[] = [`## ${title}`, ''];
  if (pendingFiles === 0 && failed.length === 0) {
    summary.push(
      diffs.length === 1
        ? `No changes: all ${totals.unchanged} generated files are up to date.`
        : `No changes: all ${diffs.length} repositories are up to date.`,
    );
  } else {
    const of = diffs.length === 1 ? '' : ` in ${changed.length} of ${diffs.length} repositories`;
    const errors = failed.length > 0 ? `; ${failed.length} repositories failed` : '';
    summary.push(`**${plural(pendingFiles, 'generated file')} would change${of}**${errors}.`);
  }
  summary.push('');

  // The counts table: repositories with changes or errors; in-sync ones as one line.
  const rows = diffs.filter((diff) => diff.error || hasChanges(diff));
  const tableHead = [
    '| repository | generator | created | updated | deleted | conflicts | unchanged |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ];
  const tableRows = rows.map((diff) => {
    if (diff.error) return `| ${inline(diff.repository)} | error | | | | | ${inline(diff.error)} |`;
    const counts = countActions(diff.changes);
    return `| ${inline(diff.repository)} | ${inline(generatorCell(diff))} | ${counts.create} | ${counts.update} | ${counts.delete} | ${counts.conflict} | ${counts.unchanged} |`;
  });
  const inSync = diffs.length - rows.length;
  if (rows.length === 0) {
    tableRows.push(
      `| ${diffs.length === 1 ? inline(diffs[0]?.repository ?? '') : `${diffs.length} repositories`} | ${inline(diffs.length === 1 && diffs[0] ? generatorCell(diffs[0]) : reportVersion(diffs))} | 0 | 0 | 0 | 0 | ${totals.unchanged} |`,
    );
  }

  const explanations: string[] = [];
  for (const diff of diffs) {
    const prefix = diffs.length > 1 ? `**${inline(diff.repository)}**: ` : '';
    for (const sentence of diff.explanations) explanations.push(`- ${prefix}${inline(sentence)}`);
    for (const change of pending(diff)) {
      if (change.action === 'conflict') {
        explanations.push(`- ${prefix}⚠️ ${code(change.path)} ${inline(conflictNote(change))}`);
      }
    }
  }
  const impacts: string[] = [];
  for (const diff of diffs) {
    for (const impact of diff.impact ?? [])
      impacts.push(...impactMarkdown(diff, impact, diffs.length > 1));
  }

  // Files: one <details> block per changed file, added while they fit.
  const blocks: { text: string; repository: string | undefined; change: FileChange }[] = [];
  for (const diff of diffs) {
    for (const change of pending(diff)) {
      const repository = diffs.length > 1 ? diff.repository : undefined;
      blocks.push({ repository, change, text: detailsBlock(repository, change) });
    }
  }

  const budget = new Budget(maxBytes);
  const out: string[] = [];
  const cut: string[] = [];
  const add = (text: string) => {
    out.push(text);
    budget.spend(text);
  };
  // Reserve room for the cut note, which may be needed at the end.
  const reserve = 400;
  add(`${summary.join('\n')}\n`);
  // Table rows that do not fit are counted in the cut note.
  let tableText = `${tableHead.join('\n')}\n`;
  let rowsShown = 0;
  for (const row of tableRows) {
    if (!budget.fits(tableText + row, reserve)) break;
    tableText += `${row}\n`;
    rowsShown += 1;
  }
  add(tableText);
  if (rowsShown < tableRows.length) cut.push(`${tableRows.length - rowsShown} table rows`);
  if (inSync > 0 && rows.length > 0)
    add(
      `\n${plural(inSync, 'more repository', 'more repositories')} ${inSync === 1 ? 'is' : 'are'} up to date.\n`,
    );

  const section = (heading: string, lines: string[], what: string) => {
    if (lines.length === 0) return;
    const head = `\n### ${heading}\n\n`;
    if (!budget.fits(head, reserve)) {
      cut.push(`${lines.length} ${what}`);
      return;
    }
    add(head);
    let shown = 0;
    for (const line of lines) {
      if (!budget.fits(`${line}\n`, reserve)) break;
      add(`${line}\n`);
      shown += 1;
    }
    if (shown < lines.length) cut.push(`${lines.length - shown} ${what}`);
  };
  section('What changes', explanations, 'explanations');
  section('Impact on images in ECR', impacts, 'impact lines');

  if (blocks.length > 0) {
    const head = '\n### Files\n\n';
    let shown = 0;
    let truncated = 0;
    let cutBytes = 0;
    if (budget.fits(head, reserve)) {
      add(head);
      // In order, and none after the first that does not fit, so what is shown is a prefix; the
      // first that does not fit is shown cut short when a useful part of it fits.
      let full = false;
      for (const block of blocks) {
        if (full || !budget.fits(block.text, reserve)) {
          const room = budget.remaining(reserve);
          // Even cut to no lines at all, a block may not fit (a very long repository name).
          const short =
            !full && room >= MIN_TRUNCATED_BLOCK
              ? detailsBlock(block.repository, block.change, room)
              : undefined;
          if (short !== undefined && budget.fits(short, reserve)) {
            add(short);
            truncated += 1;
          } else {
            cutBytes += byteLength(block.text);
          }
          full = true;
          continue;
        }
        add(block.text);
        shown += 1;
      }
    } else {
      cutBytes = blocks.reduce((total, block) => total + byteLength(block.text), 0);
    }
    if (truncated > 0) cut.push('the end of 1 file diff');
    if (shown + truncated < blocks.length) {
      const left = blocks.length - shown - truncated;
      cut.push(`${plural(left, 'file diff')} (${formatBytes(cutBytes)})`);
    }
  }

  if (cut.length > 0) {
    add(
      `\n> [!NOTE]\n> Cut to stay within ${maxBytes} bytes: ${cut.join(', ')} left out. Run \`npx create-cached-deploy diff\` for the full diff.\n`,
    );
  }
  return out.join('');
}

class Budget {
  private used = 0;
  constructor(private readonly max: number) {}
  spend(text: string): void {
    this.used += byteLength(text);
  }
  fits(text: string, reserve: number): boolean {
    return this.used + byteLength(text) + reserve <= this.max;
  }
  remaining(reserve: number): number {
    return this.max - this.used - reserve;
  }
}

function byteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** The version that would generate the files (a fleet run may pin another than this package's). */
function reportVersion(diffs: RepoDiff[]): string {
  return diffs[0]?.generatorAfter ?? GENERATOR_VERSION;
}

function generatorCell(diff: RepoDiff): string {
  if (diff.generatorBefore === undefined) return `new → ${diff.generatorAfter}`;
  if (diff.generatorBefore === diff.generatorAfter) return diff.generatorAfter;
  return `${diff.generatorBefore} → ${diff.generatorAfter}`;
}

function impactMarkdown(diff: RepoDiff, impact: PolicyImpact, many: boolean): string[] {
  const prefix = many ? `**${inline(diff.repository)}** ` : '';
  const lines = [`- ${prefix}${inline(impactSentence(impact))}`];
  const limit = 10;
  for (const image of impact.newlyExpired.slice(0, limit)) {
    const tags = image.tags.length > 0 ? image.tags.map(code).join(', ') : 'untagged';
    lines.push(
      `  - ${code(image.digest.slice(0, 19))} ${tags}, pushed ${image.pushedAt.slice(0, 10)}, ${formatBytes(image.sizeInBytes)} (by "${inline(image.rule)}")`,
    );
  }
  if (impact.newlyExpired.length > limit) {
    lines.push(`  - … and ${impact.newlyExpired.length - limit} more`);
  }
  return lines;
}

function diffStat(text: string): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('+++') || line.startsWith('---')) continue;
    if (line.startsWith('+')) added += 1;
    else if (line.startsWith('-')) removed += 1;
  }
  return { added, removed };
}

/** A diff cut short is shown only when at least this much of the comment is left for it. */
const MIN_TRUNCATED_BLOCK = 1_000;

/** One file's diff, collapsed; with `maxBytes`, the patch is cut at a line to fit. */
function detailsBlock(
  repository: string | undefined,
  change: FileChange,
  maxBytes = Number.POSITIVE_INFINITY,
): string {
  const full = unifiedDiff(change);
  const { added, removed } = diffStat(full);
  const render = (patch: string) => detailsText(repository, change, patch, added, removed);
  const whole = render(full);
  if (byteLength(whole) <= maxBytes) return whole;
  const lines = full.replace(/\n$/, '').split('\n');
  const cutAt = (keep: number) =>
    render(`${lines.slice(0, keep).join('\n')}\n… ${lines.length - keep} more lines cut\n`);
  // Keep the longest run of leading lines that fits, saying how many were dropped.
  let size = byteLength(cutAt(0));
  let keep = 0;
  while (keep < lines.length && size + byteLength(`${lines[keep]}\n`) <= maxBytes) {
    size += byteLength(`${lines[keep]}\n`);
    keep += 1;
  }
  let text = cutAt(keep);
  // A cut can shorten the code fence, never lengthen it, but stay exact whatever happens.
  while (keep > 0 && byteLength(text) > maxBytes) {
    keep -= 1;
    text = cutAt(keep);
  }
  return text;
}

function detailsText(
  repository: string | undefined,
  change: FileChange,
  patch: string,
  added: number,
  removed: number,
): string {
  const where = repository ? `${escapeHtml(repository)}: ` : '';
  const verb = {
    create: 'created',
    update: 'updated',
    delete: 'deleted',
    conflict: `conflict (${conflictReason(change).label})`,
    unchanged: 'unchanged',
  }[change.action];
  // A fence longer than any backtick run in the patch, so the patch cannot close it.
  const longest = Math.max(2, ...[...patch.matchAll(/`+/g)].map((match) => match[0].length));
  const fence = '`'.repeat(longest + 1);
  return [
    '<details>',
    `<summary>${where}<code>${escapeHtml(change.path)}</code>: ${verb} (+${added} −${removed})</summary>`,
    '',
    `${fence}diff`,
    patch.replace(/\n$/, ''),
    fence,
    '',
    '</details>',
    '',
    '',
  ].join('\n');
}

// --- json ---

/** The JSON report, formatVersion 1 (docs/json-reports.md; extend, never change, fields). */
export function formatJson(diffs: RepoDiff[]): string {
  const totals = countActions(diffs.flatMap((diff) => diff.changes));
  const report = {
    formatVersion: 1,
    generator: reportVersion(diffs),
    summary: {
      repositories: diffs.length,
      changed: diffs.filter((diff) => !diff.error && hasChanges(diff)).length,
      failed: diffs.filter((diff) => diff.error).length,
      files: totals,
    },
    repositories: diffs.map((diff) => ({
      repository: diff.repository,
      status: diff.error ? 'error' : hasChanges(diff) ? 'changed' : 'unchanged',
      ...(diff.error ? { error: diff.error } : {}),
      generatorBefore: diff.generatorBefore ?? null,
      generatorAfter: diff.generatorAfter,
      counts: countActions(diff.changes),
      explanations: diff.explanations,
      files: diff.changes.map((change) => ({
        path: change.path,
        action: change.action,
        ...(change.reason ? { reason: change.reason } : {}),
        ...(change.action === 'unchanged' ? {} : { diff: unifiedDiff(change) }),
      })),
      ...(diff.impact ? { impact: diff.impact } : {}),
    })),
  };
  return `${JSON.stringify(report, null, 2)}\n`;
}
