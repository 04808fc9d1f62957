import type { ResolvedConfig } from '../config/resolve.js';
import { isCachedDeployError } from '../errors.js';
import type { GitLabApi, PipelineSchedule, ScheduleFields } from './client.js';
import type { GitLabProject } from './project.js';

/**
 * The seed's pipeline schedule on GitLab, which the YAML cannot declare (docs/gitlab-ci.md): a
 * pipeline on the main branch at `seed.schedule`, in UTC, whose pipeline source `schedule` runs
 * the seed job and the branch-cache sweep. `apply` creates it, or updates it when the config
 * changed, and otherwise leaves it alone. It is found by its description, and no other schedule
 * of the project is ever changed.
 */

/**
 * How `apply` recognises its schedule among the project's: never change this text, or every
 * project would get a second schedule.
 */
export const SEED_SCHEDULE_DESCRIPTION =
  'create-cached-deploy: seed cache refresh and branch-cache sweep';
/** seed.schedule is a UTC cron, as on GitHub Actions. */
export const SEED_SCHEDULE_TIMEZONE = 'UTC';

export function desiredSeedSchedule(
  config: ResolvedConfig,
  project: GitLabProject,
): ScheduleFields {
  return {
    description: SEED_SCHEDULE_DESCRIPTION,
    ref: project.mainBranch,
    cron: config.seed.schedule,
    cronTimezone: SEED_SCHEDULE_TIMEZONE,
    active: true,
  };
}

export interface ScheduleChange {
  field: 'ref' | 'cron' | 'cronTimezone' | 'active';
  from: string;
  to: string;
}

export type SchedulePlan =
  | { action: 'create'; duplicates: number[] }
  | {
      action: 'update' | 'in-sync';
      id: number;
      owner?: string;
      changes: ScheduleChange[];
      /** Other schedules with our description: reported, never changed. */
      duplicates: number[];
    };

/** GitLab may answer a branch as `refs/heads/<name>`: the same ref. */
const branchOf = (ref: string) => ref.replace(/^refs\/heads\//, '');

/** Pure: what to do about the project's schedules to end with `desired`. */
export function planSeedSchedule(
  existing: readonly PipelineSchedule[],
  desired: ScheduleFields,
): SchedulePlan {
  const ours = existing
    .filter((schedule) => schedule.description === desired.description)
    .sort((a, b) => a.id - b.id);
  const [first, ...others] = ours;
  const duplicates = others.map((schedule) => schedule.id);
  if (!first) return { action: 'create', duplicates };
  const changes: ScheduleChange[] = [];
  if (branchOf(first.ref) !== branchOf(desired.ref)) {
    changes.push({ field: 'ref', from: first.ref, to: desired.ref });
  }
  if (first.cron !== desired.cron)
    changes.push({ field: 'cron', from: first.cron, to: desired.cron });
  if (first.cronTimezone !== desired.cronTimezone) {
    changes.push({ field: 'cronTimezone', from: first.cronTimezone, to: desired.cronTimezone });
  }
  if (first.active !== desired.active) {
    changes.push({ field: 'active', from: String(first.active), to: String(desired.active) });
  }
  return {
    action: changes.length > 0 ? 'update' : 'in-sync',
    id: first.id,
    ...(first.owner === undefined ? {} : { owner: first.owner }),
    changes,
    duplicates,
  };
}

export interface ScheduleReport {
  /** `group/project` on `instance`. */
  project: string;
  instance: string;
  description: string;
  desired: Omit<ScheduleFields, 'description'>;
  /**
   * `in-sync`; `pending` (a dry run found a change); `done`; `failed`; `manual` (no token: what to
   * do by hand is in `instructions`); `not-run` (the ECR part failed or was refused first).
   */
  status: 'in-sync' | 'pending' | 'done' | 'failed' | 'manual' | 'not-run';
  action?: 'create' | 'update';
  id?: number;
  owner?: string;
  changes?: ScheduleChange[];
  duplicates?: number[];
  error?: string;
  instructions?: string[];
}

function baseReport(config: ResolvedConfig, project: GitLabProject): ScheduleReport {
  const { description, ...desired } = desiredSeedSchedule(config, project);
  return {
    project: project.path,
    instance: project.instanceUrl,
    description,
    desired,
    status: 'in-sync',
  };
}

/** Reads the project's schedules, then (without `dryRun`) creates or updates the seed's. */
export async function applySeedSchedule(
  api: GitLabApi,
  config: ResolvedConfig,
  project: GitLabProject,
  options: { dryRun?: boolean } = {},
): Promise<ScheduleReport> {
  const report = baseReport(config, project);
  const desired = desiredSeedSchedule(config, project);
  try {
    const plan = planSeedSchedule(await api.listPipelineSchedules(project.path), desired);
    if (plan.duplicates.length > 0) report.duplicates = plan.duplicates;
    if (plan.action === 'in-sync') return { ...report, id: plan.id, ...ownerOf(plan) };
    report.action = plan.action;
    if (plan.action === 'update') {
      Object.assign(report, { id: plan.id, ...ownerOf(plan), changes: plan.changes });
    }
    if (options.dryRun) return { ...report, status: 'pending' };
    if (plan.action === 'create') {
      const created = await api.createPipelineSchedule(project.path, desired);
      return { ...report, status: 'done', id: created.id, ...ownerOf(created) };
    }
    const changes = Object.fromEntries(
      plan.changes.map((change) => [change.field, desired[change.field]]),
    );
    await api.editPipelineSchedule(project.path, plan.id, changes, {
      403: `only the schedule's owner${plan.owner ? ` (${plan.owner})` : ''} may change it: take ownership of it in the project's CI/CD schedules (it then runs as you), or run apply with the owner's token`,
    });
    return { ...report, status: 'done' };
  } catch (error) {
    if (!isCachedDeployError(error)) throw error;
    return { ...report, status: 'failed', error: error.message };
  }
}

function ownerOf(schedule: { owner?: string }): { owner?: string } {
  return schedule.owner === undefined ? {} : { owner: schedule.owner };
}

/** Without a token: the report says what to do by hand, and nothing is read. */
export function manualSeedSchedule(config: ResolvedConfig, project: GitLabProject): ScheduleReport {
  const report = baseReport(config, project);
  const { desired } = report;
  return {
    ...report,
    status: 'manual',
    instructions: [
      `glab schedule create --repo ${shellQuote(project.path)} --description ${shellQuote(report.description)} --ref ${shellQuote(desired.ref)} --cron ${shellQuote(desired.cron)} --cronTimeZone ${desired.cronTimezone}`,
      `or in ${project.instanceUrl}/${project.path}/-/pipeline_schedules: description "${report.description}", interval ${desired.cron}, time zone UTC, target branch ${desired.ref}, activated`,
      'or give apply a token with the api scope and the Maintainer role (GITLAB_TOKEN or --gitlab-token)',
    ],
  };
}

/** A word for a POSIX shell: single-quoted unless it needs no quotes at all. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@+-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
