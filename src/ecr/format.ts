import { plural } from '../text.js';
import type { ApplyReport, ExpiringImage, RepositoryReport } from './apply-ecr.js';

/** At most this many expiring images are listed per repository (the JSON has them all). */
const MAX_LISTED = 10;

/** The text summary of `apply`: per repository what it needed and what was done, then a verdict. */
export function formatApplyReport(report: ApplyReport): string {
  const out: string[] = [];
  const where = `ECR registry ${report.registry.accountId} in ${report.registry.region}`;
  out.push(report.dryRun ? `${where} (dry run: nothing is written)` : where);
  for (const warning of report.warnings) out.push(`warning: ${warning}`);
  for (const repo of report.repositories) out.push(...formatRepository(report, repo));
  out.push('', verdict(report));
  return `${out.join('\n')}\n`;
}

function formatRepository(report: ApplyReport, repo: RepositoryReport): string[] {
  const head = `${repo.name} (${repo.kind} repository, ${repo.policyFile})`;
  if (repo.actions.length === 0) return [`  ${head}: in sync`];
  const lines = [`  ${head}`];
  for (const action of repo.actions) {
    lines.push(`    ${marker(report, action.status)} ${action.description}`);
  }
  if (repo.preview && repo.preview.expiring.length > 0) {
    lines.push('      the preview would expire:');
    const listed = repo.preview.expiring.slice(0, MAX_LISTED);
    for (const image of listed) lines.push(`        ${describeImage(image)}`);
    const more = repo.preview.expiring.length - listed.length;
    if (more > 0) lines.push(`        ... and ${more} more (--json lists them all)`);
  }
  for (const image of repo.protectedExpiring) {
    lines.push(`      PROTECTED: ${describeImage(image)}: ${image.reason}`);
  }
  return lines;
}

function marker(report: ApplyReport, status: string): string {
  if (status === 'done') return 'done   ';
  if (status === 'failed') return 'FAILED ';
  if (status === 'not-run') return 'not run';
  return report.dryRun || report.status === 'refused' ? 'would  ' : 'pending';
}

function describeImage(image: ExpiringImage): string {
  const tags = image.tags.length > 0 ? image.tags.join(', ') : '<untagged>';
  const digest = image.digest.replace(/^sha256:/, '').slice(0, 12);
  const pushed = image.pushedAt ? `, pushed ${image.pushedAt.slice(0, 10)}` : '';
  const rule = image.rulePriority !== undefined ? `, rule ${image.rulePriority}` : '';
  return `${tags} (${digest}${pushed}${rule})`;
}

function verdict(report: ApplyReport): string {
  const changed = report.repositories.filter((repo) => repo.actions.length > 0).length;
  const protectedCount = report.repositories.reduce(
    (sum, repo) => sum + repo.protectedExpiring.length,
    0,
  );
  switch (report.status) {
    case 'in-sync':
      return `In sync: ${repositories(report.repositories.length)} match the committed files.`;
    case 'pending':
      return `Changes pending in ${repositories(changed)}: run \`create-cached-deploy apply\` to make them.`;
    case 'applied':
      return `Applied: ${repositories(changed)} updated.`;
    case 'refused':
      return `Refused: the new lifecycle policies would expire ${plural(protectedCount, 'protected image')} (marked PROTECTED). Nothing was written. Fix the policy, or rerun with --force to put it anyway.`;
    case 'failed':
      return `Failed: ${report.error ?? 'unknown error'}`;
  }
}

const repositories = (count: number) => `${count} ${count === 1 ? 'repository' : 'repositories'}`;
