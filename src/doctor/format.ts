import { formatBytes } from '../text.js';
/**
 * Prints a DoctorReport: a table per image, its findings, then the verdict and what to do.
 * `--json` prints the report itself instead (versioned by `formatVersion`).
 */
import { type CacheReport, type DoctorReport, reportLabel } from './doctor.js';

const COLUMNS = [
  'cache',
  'tag',
  'age',
  'layers',
  'size',
  'steps',
  'reusable',
  'health',
  "the seed's steps",
];

export function formatDoctorReport(report: DoctorReport): string {
  const lines: string[] = [`Registry: ${report.registry}`, ''];
  for (const image of report.images) {
    const branchRead = image.caches.some((cache) => cache.kind === 'branch');
    const where = branchRead
      ? `${image.cacheRepository}; branch caches in ${image.branchCacheRepository}`
      : image.cacheRepository;
    lines.push(`${reportLabel(image)} (${where}): ${image.status}`);
    const rows = image.caches.map(cacheRow);
    lines.push(...table([COLUMNS, ...rows]).map((line) => `  ${line}`));
    for (const finding of image.findings) lines.push(`  - ${finding}`);
    lines.push('');
  }
  const verdict = {
    healthy: 'Healthy: builds can reuse what the caches hold; nothing to do.',
    degraded: 'Degraded: a seed or main cache needs attention (see above).',
    error: 'Error: some caches could not be read or the reseed failed.',
  }[report.status];
  lines.push(verdict);
  for (const recommendation of report.recommendations) {
    lines.push(`Recommendation: ${recommendation.text}.`);
  }
  if (report.reseed) {
    lines.push(
      {
        triggered: `Reseed triggered: ${report.reseed.url}`,
        'not-needed': 'Reseed not needed: nothing was triggered.',
        failed: `Reseed failed: ${report.reseed.error}`,
      }[report.reseed.status],
    );
  }
  return `${lines.join('\n')}\n`;
}

function cacheRow(cache: CacheReport): string[] {
  const stats = cache.stats;
  if (!stats) return [cache.kind, cache.tag, cache.status];
  const against = cache.againstSeed;
  const seedSteps = against
    ? [
        `${against.kept} kept`,
        ...(against.lost > 0 ? [`${against.lost} lost`] : []),
        ...(against.different > 0 ? [`${against.different} differ`] : []),
      ].join(', ')
    : '';
  return [
    cache.kind,
    cache.tag,
    cache.ageSeconds === undefined ? '?' : formatAge(cache.ageSeconds),
    String(stats.layers),
    formatBytes(stats.bytes),
    String(stats.steps),
    String(stats.reusableSteps),
    percent(stats.health),
    seedSteps,
  ];
}

const percent = (fraction: number) => `${Math.round(fraction * 100)}%`;

/** Ages and periods for people: the largest unit that keeps a readable number. */
export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 2 * 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 2 * 86400) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function table(rows: string[][]): string[] {
  const widths = (rows[0] ?? []).map((_, i) =>
    Math.max(...rows.map((row) => (row[i] ?? '').length)),
  );
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}
