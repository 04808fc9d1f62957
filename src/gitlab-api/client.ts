import { CachedDeployError } from '../errors.js';
import {
  array,
  bool,
  field,
  optionalText,
  positiveInteger,
  record,
  text,
  webUrl,
} from '../net/answers.js';
import type { HttpClient } from '../net/bounded-fetch.js';
import { gitbeakerConfig, gitlabCallError, type StatusHints } from '../net/gitbeaker.js';
import { defaultPolicy, HostConnection, type HostPolicy } from '../net/host-connection.js';

/**
 * The GitLab REST API calls of `apply` (the seed's pipeline schedule) and `doctor --reseed` (a
 * pipeline on the main branch), through `@gitbeaker/rest` over the code hosts' bounded transport
 * (net/host-connection.ts: deadlines, bounded answers, the host's rate limits, the token kept
 * out of every message). Answers are read without trusting them (net/answers.ts).
 * GitLab docs: https://docs.gitlab.com/api/pipeline_schedules/, https://docs.gitlab.com/api/pipelines/
 * (docs/gitlab-ci.md).
 */

export interface PipelineSchedule {
  id: number;
  description: string;
  ref: string;
  cron: string;
  cronTimezone: string;
  active: boolean;
  /** The owner's username: a pipeline schedule runs as its owner, and only they may edit it. */
  owner?: string;
}

export type ScheduleFields = Omit<PipelineSchedule, 'id' | 'owner'>;

export interface CreatedPipeline {
  id: number;
  webUrl?: string;
}

export interface GitLabApi {
  /** The instance, for messages (`gitlab.com`). */
  readonly label: string;
  listPipelineSchedules(project: string): Promise<PipelineSchedule[]>;
  createPipelineSchedule(project: string, schedule: ScheduleFields): Promise<PipelineSchedule>;
  editPipelineSchedule(
    project: string,
    id: number,
    changes: Partial<ScheduleFields>,
    hints?: StatusHints,
  ): Promise<PipelineSchedule>;
  createPipeline(
    project: string,
    ref: string,
    variables: Record<string, string>,
    hints?: StatusHints,
  ): Promise<CreatedPipeline>;
}

export interface GitLabConnectOptions {
  instanceUrl: string;
  token: string;
  /** Overrides of the transport policy (tests: a clock, a deadline). */
  policy?: Partial<HostPolicy>;
  /** The bounded HTTP client of the command, when its deadline covers these calls too. */
  http?: HttpClient;
}

/** Schedules a project can hold before a listing is taken for one that does not end. */
const MAX_SCHEDULE_PAGES = 50;
const SCHEDULES_PER_PAGE = 100;

const COMMON_HINTS: StatusHints = {
  401: 'the token is invalid or expired',
  403: 'the token lacks the api scope, or the Maintainer role in the project',
  404: 'no such project, or the token cannot see it',
};

export async function connectGitLab(options: GitLabConnectOptions): Promise<GitLabApi> {
  const gitbeaker = await import('@gitbeaker/rest');
  const label = new URL(options.instanceUrl).host;
  const connection = new HostConnection(
    'gitlab',
    label,
    defaultPolicy('gitlab', { rerunHint: 'run it again', ...options.policy }),
    [options.token],
    ...(options.http ? [options.http] : []),
  );
  const config = await gitbeakerConfig({
    apiUrl: options.instanceUrl,
    token: options.token,
    connection,
  });
  const schedules = new gitbeaker.PipelineSchedules(config);
  const pipelines = new gitbeaker.Pipelines(config);

  async function call<T>(action: string, hints: StatusHints, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw gitlabCallError(connection, action, error, { ...COMMON_HINTS, ...hints });
    }
  }

  return {
    label,
    async listPipelineSchedules(project) {
      const found: PipelineSchedule[] = [];
      for (let page = 1; ; ) {
        const answer = await call(`list the pipeline schedules of ${project}`, {}, () =>
          schedules.all(project, { perPage: SCHEDULES_PER_PAGE, page, showExpanded: true }),
        );
        const { data, paginationInfo } = record(answer, 'pipeline_schedules') as {
          data: unknown;
          paginationInfo?: { next?: number | null };
        };
        const where = `pipeline_schedules (page ${page})`;
        found.push(...array(parseSchedule, SCHEDULES_PER_PAGE)(data, where));
        const next = paginationInfo?.next ?? null;
        if (next === null) return found;
        if (!Number.isSafeInteger(next) || next <= page) {
          throw new CachedDeployError(
            'IO',
            `${label}: the pipeline schedules of ${project}: page ${page} names page ${next} as the next one; stopped instead of looping`,
          );
        }
        if (next > MAX_SCHEDULE_PAGES) {
          throw new CachedDeployError(
            'IO',
            `${label}: ${project} has more than ${MAX_SCHEDULE_PAGES * SCHEDULES_PER_PAGE} pipeline schedules; not all were read, so none is changed`,
          );
        }
        page = next;
      }
    },
    async createPipelineSchedule(project, schedule) {
      const answer = await call(`create a pipeline schedule in ${project}`, {}, () =>
        schedules.create(project, schedule.description, schedule.ref, schedule.cron, {
          cronTimezone: schedule.cronTimezone,
          active: schedule.active,
        }),
      );
      return parseSchedule(answer, 'pipeline_schedule');
    },
    async editPipelineSchedule(project, id, changes, hints = {}) {
      const answer = await call(`update pipeline schedule ${id} of ${project}`, hints, () =>
        schedules.edit(project, id, changes),
      );
      return parseSchedule(answer, 'pipeline_schedule');
    },
    async createPipeline(project, ref, variables, hints = {}) {
      const answer = await call(`start a pipeline on ${ref} in ${project}`, hints, () =>
        pipelines.create(project, ref, {
          variables: Object.entries(variables).map(([key, value]) => ({
            key,
            value,
            variable_type: 'env_var' as const,
          })),
        }),
      );
      const pipeline = record(answer, 'pipeline');
      const url = pipeline.web_url;
      return {
        id: field(pipeline, 'id', positiveInteger, 'pipeline'),
        ...(url === undefined || url === null ? {} : { webUrl: webUrl(url, 'pipeline.web_url') }),
      };
    },
  };
}

function parseSchedule(value: unknown, where: string): PipelineSchedule {
  const schedule = record(value, where);
  const owner = schedule.owner;
  return {
    id: field(schedule, 'id', positiveInteger, where),
    description: field(schedule, 'description', optionalText(255), where),
    ref: field(schedule, 'ref', text(1024), where),
    cron: field(schedule, 'cron', text(255), where),
    cronTimezone: field(schedule, 'cron_timezone', text(255), where),
    active: field(schedule, 'active', bool, where),
    ...(owner === null || owner === undefined
      ? {}
      : { owner: field(record(owner, `${where}.owner`), 'username', text(255), `${where}.owner`) }),
  };
}
