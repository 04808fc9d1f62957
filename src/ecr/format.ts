import type { ScheduleReport } from '../gitlab-api/seed-schedule.js';
import { plural, printable } from '../text.js';
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
  if (report.pipelineSchedule) out.push(...formatSchedule(report, report.pipelineSchedule));
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

/** The seed's GitLab pipeline schedule: what it needs, what was done, or what to do by hand. */
function formatSchedule(report: ApplyReport, schedule: ScheduleReport): string[] {
  const { desired } = schedule;
  const wanted = `ref ${desired.ref}, cron ${desired.cron} (${desired.cronTimezone}), ${desired.active ? 'active' : 'inactive'}`;
  const head = `  pipeline schedule "${schedule.description}" of ${schedule.project} (${schedule.instance})`;
  const id = schedule.id === undefined ? '' : ` #${schedule.id}`;
  const owner = schedule.owner ? `, owned by ${printable(schedule.owner)}` : '';
  const lines = [head];
  switch (schedule.status) {
    case 'in-sync':
      lines[0] = `${head}: in sync${id}${owner}`;
      break;
    case 'manual':
      lines.push(
        `    not checked: no GitLab token. It must exist with ${wanted}; create it once:`,
        ...(schedule.instructions ?? []).map((line) => `      ${line}`),
      );
      break;
    case 'not-run':
      lines.push('    not run: the repositories come first');
      break;
    default: {
      const verb = schedule.status === 'failed' ? 'FAILED ' : marker(report, schedule.status);
      if (schedule.action === 'create') lines.push(`    ${verb} create it: ${wanted}${id}`);
      else {
        const changes = (schedule.changes ?? [])
          .map((change) => `${change.field} ${printable(change.from)} -> ${change.to}`)
          .join(', ');
        lines.push(`    ${verb} update${id}${owner}: ${changes}`);
      }
      if (schedule.error) lines.push(`      ${schedule.error}`);
    }
  }
  if (schedule.duplicates?.length) {
    lines.push(
      `    note: ${plural(schedule.duplicates.length, 'other schedule')} with this description (${schedule.duplicates.map((each) => `#${each}`).join(', ')}) left as they are; delete them by hand`,
    );
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
  const schedule = report.pipelineSchedule?.status;
  const protectedCount = report.repositories.reduce(
    (sum, repo) => sum + repo.protectedExpiring.length,
    0,
  );
  switch (report.status) {
    case 'in-sync':
      return `In sync: ${repositories(report.repositories.length)} match the committed files${schedule === 'in-sync' ? ', and the pipeline schedule its config' : ''}.`;
    case 'pending':
      return `Changes pending in ${[...(changed > 0 ? [repositories(changed)] : []), ...(schedule === 'pending' ? ['the pipeline schedule'] : [])].join(' and ')}: run \`create-cached-deploy apply\` to make them.`;
    case 'applied':
      return `Applied: ${[...(changed > 0 ? [`${repositories(changed)} updated`] : []), ...(schedule === 'done' ? ['the pipeline schedule made to match'] : [])].join(', ')}.`;
    case 'refused':
      return `Refused: the new lifecycle policies would expire ${plural(protectedCount, 'protected image')} (marked PROTECTED). Nothing was written. Fix the policy, or rerun with --force to put it anyway.`;
    case 'failed':
      return `Failed: ${report.error ?? 'unknown error'}`;
  }
}

const repositories = (count: number) => `${count} ${count === 1 ? 'repository' : 'repositories'}`;
