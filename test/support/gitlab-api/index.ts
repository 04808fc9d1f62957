/**
 * A GitLab REST API (v4) test double on 127.0.0.1, driven by the real `@gitbeaker/rest`: project
 * ids as numbers or URL-encoded paths (`group%2Fsub%2Fname`), merge requests (list with state and
 * source_branch filters, create with 409 for a second open one, update, state_event close, merge),
 * notes, approvals, head pipelines, raw files, users; pipeline schedules (list, create, edit by
 * the owner only, as GitLab 14.10+ allows; a branch ref answered as `refs/heads/<name>`, as newer
 * GitLab stores it) and pipelines (create, with variables refused when the project allows no one
 * to set them); offset pagination with Link and x-next-page / x-page / x-per-page / x-total /
 * x-total-pages headers; injectable faults (a 429 with Retry-After and RateLimit-* headers,
 * anything). Git content from a bare repository or from memory.
 */

import type { RepositorySource } from '../fake-api/repos.js';
import {
  FakeHttpServer,
  type FakeRequest,
  type FakeResponse,
  linkHeader,
  type Params,
  paginate,
} from '../fake-api/server.js';

export { BareRepository, MemoryRepository } from '../fake-api/repos.js';

export interface FakeMergeRequest {
  iid: number;
  title: string;
  description: string | null;
  state: 'opened' | 'closed' | 'merged';
  sourceBranch: string;
  targetBranch: string;
  shaAtClose?: string;
  labels: string[];
  assigneeIds: number[];
  reviewerIds: number[];
  notes: string[];
  approvedBy: number[];
  changesRequestedBy: number[];
  pipeline?: { id: number; status: string };
  createdAt: string;
}

export interface FakeSchedule {
  id: number;
  description: string;
  ref: string;
  cron: string;
  cronTimezone: string;
  active: boolean;
  /** The owner's user id: the only user who may edit it. */
  ownerId: number;
}

export interface FakePipeline {
  id: number;
  ref: string;
  source: 'api' | 'schedule';
  variables: { key: string; value: string; variable_type?: string }[];
}

interface FakeProject {
  id: number;
  path: string;
  source: RepositorySource;
  mergeRequests: FakeMergeRequest[];
  nextIid: number;
  approvalsRequired: number;
  schedules: FakeSchedule[];
  pipelines: FakePipeline[];
  /** Who may set pipeline variables (ci_pipeline_variables_minimum_override_role). */
  pipelineVariables: 'developer' | 'no_one_allowed';
}

export interface GitLabApiOptions {
  token: string;
  /** The user the token belongs to (default fleet-bot). */
  username?: string;
}

export class FakeGitLabApi {
  readonly http: FakeHttpServer;
  private readonly projects = new Map<string, FakeProject>();
  private readonly users = new Map<string, { id: number; username: string }>();
  private nextProjectId = 100;
  private nextScheduleId = 1;
  private nextPipelineId = 5000;

  constructor(private readonly options: GitLabApiOptions) {
    this.http = new FakeHttpServer(
      () => ({}),
      (request) => this.authenticate(request),
    );
    this.routes();
    this.scheduleRoutes();
    this.addUser(options.username ?? 'fleet-bot');
  }

  /** The id of the user the token belongs to. */
  get currentUserId(): number {
    return this.userId(this.options.username ?? 'fleet-bot');
  }

  /** The instance URL gitbeaker is given (`host`; it adds /api/v4). */
  get url(): string {
    return this.http.url;
  }

  start(): Promise<string> {
    return this.http.start();
  }

  stop(): Promise<void> {
    return this.http.stop();
  }

  addUser(username: string): number {
    const existing = this.users.get(username.toLowerCase());
    if (existing) return existing.id;
    const id = this.users.size + 1;
    this.users.set(username.toLowerCase(), { id, username });
    return id;
  }

  userId(username: string): number {
    const user = this.users.get(username.toLowerCase());
    if (!user) throw new Error(`no user ${username}`);
    return user.id;
  }

  addProject(
    path: string,
    source: RepositorySource,
    options: {
      approvalsRequired?: number;
      pipelineVariables?: FakeProject['pipelineVariables'];
    } = {},
  ) {
    const project: FakeProject = {
      id: this.nextProjectId++,
      path,
      source,
      mergeRequests: [],
      nextIid: 1,
      approvalsRequired: options.approvalsRequired ?? 1,
      schedules: [],
      pipelines: [],
      pipelineVariables: options.pipelineVariables ?? 'developer',
    };
    this.projects.set(path.toLowerCase(), project);
    return project.id;
  }

  schedules(path: string): FakeSchedule[] {
    return this.project(path).schedules;
  }

  pipelines(path: string): FakePipeline[] {
    return this.project(path).pipelines;
  }

  /** A schedule made by someone (by default the token's user), as the UI would. */
  seedSchedule(path: string, fields: Partial<FakeSchedule> & { description: string }) {
    const project = this.project(path);
    const schedule: FakeSchedule = {
      id: this.nextScheduleId++,
      ref: `refs/heads/${project.source.defaultBranch}`,
      cron: '0 1 * * *',
      cronTimezone: 'UTC',
      active: true,
      ownerId: this.currentUserId,
      ...fields,
    };
    project.schedules.push(schedule);
    return schedule;
  }

  mergeRequests(path: string): FakeMergeRequest[] {
    return this.project(path).mergeRequests;
  }

  mergeRequest(path: string, iid: number): FakeMergeRequest {
    const mr = this.mergeRequests(path).find((candidate) => candidate.iid === iid);
    if (!mr) throw new Error(`no merge request !${iid} in ${path}`);
    return mr;
  }

  seedMergeRequest(path: string, fields: Partial<FakeMergeRequest> & { sourceBranch: string }) {
    const project = this.project(path);
    const mr: FakeMergeRequest = {
      iid: project.nextIid++,
      title: 'earlier',
      description: '',
      state: 'opened',
      targetBranch: project.source.defaultBranch,
      labels: [],
      assigneeIds: [],
      reviewerIds: [],
      notes: [],
      approvedBy: [],
      changesRequestedBy: [],
      createdAt: new Date().toISOString(),
      ...fields,
    };
    project.mergeRequests.push(mr);
    return mr;
  }

  approve(path: string, iid: number, username: string): void {
    const mr = this.mergeRequest(path, iid);
    mr.approvedBy.push(this.addUser(username));
  }

  requestChanges(path: string, iid: number, username: string): void {
    this.mergeRequest(path, iid).changesRequestedBy.push(this.addUser(username));
  }

  setPipeline(path: string, iid: number, status: string): void {
    this.mergeRequest(path, iid).pipeline = { id: 1000 + iid, status };
  }

  async merge(path: string, iid: number): Promise<string> {
    const project = this.project(path);
    const mr = this.mergeRequest(path, iid);
    const sha = await project.source.merge(
      mr.targetBranch,
      mr.sourceBranch,
      `Merge branch '${mr.sourceBranch}'`,
    );
    if (!sha) throw new Error(`cannot merge !${iid} in ${path}`);
    mr.shaAtClose = await project.source.branchSha(mr.sourceBranch);
    mr.state = 'merged';
    return sha;
  }

  private project(path: string): FakeProject {
    const project = this.projects.get(path.toLowerCase());
    if (!project) throw new Error(`the fake GitLab has no project ${path}`);
    return project;
  }

  private authenticate(request: FakeRequest): FakeResponse | undefined {
    const privateToken = request.headers['private-token'];
    const bearer = /^bearer\s+(.+)$/i.exec(String(request.headers.authorization ?? ''))?.[1];
    if ((privateToken ?? bearer) !== this.options.token) {
      return { status: 401, body: { message: '401 Unauthorized' } };
    }
    return undefined;
  }

  private withProject(
    handler: (
      project: FakeProject,
      request: FakeRequest,
      params: Params,
    ) => FakeResponse | Promise<FakeResponse>,
  ) {
    return (request: FakeRequest, params: Params) => {
      const id = params.id as string;
      const project = /^\d+$/.test(id)
        ? [...this.projects.values()].find((candidate) => candidate.id === Number(id))
        : this.projects.get(id.toLowerCase());
      if (!project) return { status: 404, body: { message: '404 Project Not Found' } };
      return handler(project, request, params);
    };
  }

  private withMergeRequest(
    handler: (
      project: FakeProject,
      mr: FakeMergeRequest,
      request: FakeRequest,
    ) => FakeResponse | Promise<FakeResponse>,
  ) {
    return this.withProject((project, request, params) => {
      const mr = project.mergeRequests.find((candidate) => candidate.iid === Number(params.iid));
      if (!mr) return { status: 404, body: { message: '404 Not found' } };
      return handler(project, mr, request);
    });
  }

  private routes(): void {
    const projectPath = '^/api/v4/projects/(?<id>[^/]+)';
    const mrPath = `${projectPath}/merge_requests/(?<iid>\\d+)`;
    const http = this.http;
    http.route(
      'GET',
      new RegExp(`${projectPath}/merge_requests$`),
      this.withProject(async (project, request) => {
        const state = request.query.get('state') ?? 'all';
        const source = request.query.get('source_branch');
        const target = request.query.get('target_branch');
        let list = project.mergeRequests.filter(
          (mr) =>
            (state === 'all' || mr.state === state) &&
            (!source || mr.sourceBranch === source) &&
            (!target || mr.targetBranch === target),
        );
        const sort = request.query.get('sort') ?? 'desc';
        list = [...list].sort((a, b) => (sort === 'asc' ? a.iid - b.iid : b.iid - a.iid));
        const { page, current, last, perPage } = paginate(list, request.query, {
          defaultPerPage: 20,
          maxPerPage: 100,
        });
        const headers: Record<string, string> = {
          'x-page': String(current),
          'x-per-page': String(perPage),
          'x-total': String(list.length),
          'x-total-pages': String(last),
          'x-next-page': current < last ? String(current + 1) : '',
          'x-prev-page': current > 1 ? String(current - 1) : '',
        };
        const link = linkHeader(request, current, last);
        if (link) headers.link = link;
        return {
          status: 200,
          headers,
          body: await Promise.all(page.map((mr) => this.mrJson(project, mr, request, false))),
        };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${projectPath}/merge_requests$`),
      this.withProject(async (project, request) => {
        const body = asObject(request.body);
        const source = String(body.source_branch ?? '');
        const target = String(body.target_branch ?? '');
        const title = body.title;
        if (typeof title !== 'string' || title === '') {
          return { status: 400, body: { message: 'title is missing' } };
        }
        if (!(await project.source.branchSha(source))) {
          return { status: 400, body: { message: { source_branch: ['is invalid'] } } };
        }
        if (!(await project.source.branchSha(target))) {
          return { status: 400, body: { message: { target_branch: ['is invalid'] } } };
        }
        const open = project.mergeRequests.find(
          (mr) => mr.state === 'opened' && mr.sourceBranch === source && mr.targetBranch === target,
        );
        if (open) {
          return {
            status: 409,
            body: {
              message: [
                `Another open merge request already exists for this source branch: !${open.iid}`,
              ],
            },
          };
        }
        const mr = this.seedMergeRequest(project.path, {
          title,
          description: typeof body.description === 'string' ? body.description : null,
          sourceBranch: source,
          targetBranch: target,
          labels: labelList(body.labels),
          assigneeIds: idList(body.assignee_ids),
          reviewerIds: idList(body.reviewer_ids),
        });
        return { status: 201, body: await this.mrJson(project, mr, request, true) };
      }),
    );
    http.route(
      'GET',
      new RegExp(`${mrPath}$`),
      this.withMergeRequest(async (project, mr, request) => ({
        status: 200,
        body: await this.mrJson(project, mr, request, true),
      })),
    );
    http.route(
      'PUT',
      new RegExp(`${mrPath}$`),
      this.withMergeRequest(async (project, mr, request) => {
        const body = asObject(request.body);
        if (typeof body.title === 'string') mr.title = body.title;
        if (typeof body.description === 'string') mr.description = body.description;
        if (body.labels !== undefined) mr.labels = labelList(body.labels);
        if (body.add_labels !== undefined) {
          for (const label of labelList(body.add_labels))
            if (!mr.labels.includes(label)) mr.labels.push(label);
        }
        if (body.assignee_ids !== undefined) mr.assigneeIds = idList(body.assignee_ids);
        if (body.reviewer_ids !== undefined) mr.reviewerIds = idList(body.reviewer_ids);
        if (body.state_event === 'close' && mr.state === 'opened') {
          mr.shaAtClose = await project.source.branchSha(mr.sourceBranch);
          mr.state = 'closed';
        }
        if (body.state_event === 'reopen' && mr.state === 'closed') mr.state = 'opened';
        return { status: 200, body: await this.mrJson(project, mr, request, true) };
      }),
    );
    http.route(
      'PUT',
      new RegExp(`${mrPath}/merge$`),
      this.withMergeRequest(async (project, mr, request) => {
        if (mr.state !== 'opened')
          return { status: 405, body: { message: '405 Method Not Allowed' } };
        const sha = await this.merge(project.path, mr.iid).catch(() => undefined);
        if (!sha) return { status: 422, body: { message: 'Branch cannot be merged' } };
        return { status: 200, body: await this.mrJson(project, mr, request, true) };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${mrPath}/notes$`),
      this.withMergeRequest((_project, mr, request) => {
        const text = asObject(request.body).body;
        if (typeof text !== 'string' || text === '') {
          return { status: 400, body: { message: 'body is missing' } };
        }
        mr.notes.push(text);
        return { status: 201, body: { id: mr.notes.length, body: text, noteable_iid: mr.iid } };
      }),
    );
    http.route(
      'GET',
      new RegExp(`${mrPath}/approvals$`),
      this.withMergeRequest((project, mr) => ({
        status: 200,
        body: {
          iid: mr.iid,
          approved: mr.approvedBy.length >= project.approvalsRequired,
          approvals_required: project.approvalsRequired,
          approvals_left: Math.max(0, project.approvalsRequired - mr.approvedBy.length),
          approved_by: mr.approvedBy.map((id) => ({ user: this.userJson(id) })),
        },
      })),
    );
    http.route(
      'GET',
      new RegExp(`${projectPath}/repository/files/(?<path>[^/]+)/raw$`),
      this.withProject(async (project, request, params) => {
        const ref = request.query.get('ref') ?? 'HEAD';
        const text = await project.source.readFile(ref, params.path as string);
        if (text === undefined) return { status: 404, body: { message: '404 File Not Found' } };
        return {
          status: 200,
          headers: { 'content-type': 'text/plain; charset=utf-8' },
          body: text,
        };
      }),
    );
    http.route('GET', /^\/api\/v4\/users$/, (request) => {
      const username = request.query.get('username');
      const users = [...this.users.values()].filter(
        (user) => !username || user.username.toLowerCase() === username.toLowerCase(),
      );
      return { status: 200, body: users.map((user) => this.userJson(user.id)) };
    });
  }

  private scheduleRoutes(): void {
    const projectPath = '^/api/v4/projects/(?<id>[^/]+)';
    const http = this.http;
    const scheduleJson = (schedule: FakeSchedule) => ({
      id: schedule.id,
      description: schedule.description,
      ref: schedule.ref,
      cron: schedule.cron,
      cron_timezone: schedule.cronTimezone,
      next_run_at: '2026-12-07T04:00:00.000Z',
      active: schedule.active,
      created_at: '2026-11-01T00:00:00.000Z',
      updated_at: '2026-11-01T00:00:00.000Z',
      owner: this.userJson(schedule.ownerId),
    });
    /** A branch, as newer GitLab stores a schedule's ref; 400 when it does not exist. */
    const branchRef = async (project: FakeProject, ref: unknown) => {
      const branch = typeof ref === 'string' ? ref.replace(/^refs\/heads\//, '') : '';
      return branch && (await project.source.branchSha(branch))
        ? `refs/heads/${branch}`
        : undefined;
    };
    const validCron = (cron: unknown) =>
      typeof cron === 'string' && cron.trim().split(/\s+/).length === 5;
    http.route(
      'GET',
      new RegExp(`${projectPath}/pipeline_schedules$`),
      this.withProject((project, request) => {
        const { page, current, last, perPage } = paginate(project.schedules, request.query, {
          defaultPerPage: 20,
          maxPerPage: 100,
        });
        const headers: Record<string, string> = {
          'x-page': String(current),
          'x-per-page': String(perPage),
          'x-total': String(project.schedules.length),
          'x-total-pages': String(last),
          'x-next-page': current < last ? String(current + 1) : '',
          'x-prev-page': current > 1 ? String(current - 1) : '',
        };
        const link = linkHeader(request, current, last);
        if (link) headers.link = link;
        return { status: 200, headers, body: page.map(scheduleJson) };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${projectPath}/pipeline_schedules$`),
      this.withProject(async (project, request) => {
        const body = asObject(request.body);
        if (typeof body.description !== 'string' || body.description === '') {
          return { status: 400, body: { error: 'description is missing' } };
        }
        if (!validCron(body.cron)) {
          return { status: 400, body: { message: { cron: ['is invalid syntax'] } } };
        }
        const ref = await branchRef(project, body.ref);
        if (!ref) return { status: 400, body: { message: { ref: ['does not exist'] } } };
        const schedule = this.seedSchedule(project.path, {
          description: body.description,
          ref,
          cron: String(body.cron),
          cronTimezone: typeof body.cron_timezone === 'string' ? body.cron_timezone : 'UTC',
          active: body.active === undefined ? true : body.active === true || body.active === 'true',
        });
        return { status: 201, body: scheduleJson(schedule) };
      }),
    );
    http.route(
      'PUT',
      new RegExp(`${projectPath}/pipeline_schedules/(?<sid>\\d+)$`),
      this.withProject(async (project, request, params) => {
        const schedule = project.schedules.find((each) => each.id === Number(params.sid));
        if (!schedule) return { status: 404, body: { message: '404 Not found' } };
        if (schedule.ownerId !== this.currentUserId) {
          return { status: 403, body: { message: '403 Forbidden' } };
        }
        const body = asObject(request.body);
        if (body.cron !== undefined && !validCron(body.cron)) {
          return { status: 400, body: { message: { cron: ['is invalid syntax'] } } };
        }
        if (body.ref !== undefined) {
          const ref = await branchRef(project, body.ref);
          if (!ref) return { status: 400, body: { message: { ref: ['does not exist'] } } };
          schedule.ref = ref;
        }
        if (typeof body.description === 'string') schedule.description = body.description;
        if (typeof body.cron === 'string') schedule.cron = body.cron;
        if (typeof body.cron_timezone === 'string') schedule.cronTimezone = body.cron_timezone;
        if (body.active !== undefined)
          schedule.active = body.active === true || body.active === 'true';
        return { status: 200, body: scheduleJson(schedule) };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${projectPath}/pipeline$`),
      this.withProject(async (project, request) => {
        const body = asObject(request.body);
        const ref = typeof body.ref === 'string' ? body.ref : '';
        const sha = ref ? await project.source.branchSha(ref) : undefined;
        if (!sha) return { status: 400, body: { message: { base: ['Reference not found'] } } };
        const variables = Array.isArray(body.variables)
          ? body.variables
              .map((each) => asObject(each))
              .map((each) => ({
                key: String(each.key),
                value: String(each.value),
                ...(typeof each.variable_type === 'string'
                  ? { variable_type: each.variable_type }
                  : {}),
              }))
          : [];
        if (variables.length > 0 && project.pipelineVariables === 'no_one_allowed') {
          return {
            status: 400,
            body: { message: { base: ['Insufficient permissions to set pipeline variables'] } },
          };
        }
        const pipeline: FakePipeline = { id: this.nextPipelineId++, ref, source: 'api', variables };
        project.pipelines.push(pipeline);
        return {
          status: 201,
          body: {
            id: pipeline.id,
            iid: project.pipelines.length,
            project_id: project.id,
            sha,
            ref,
            status: 'created',
            source: 'api',
            web_url: `${request.base}/${project.path}/-/pipelines/${pipeline.id}`,
          },
        };
      }),
    );
  }

  private userJson(id: number) {
    const user = [...this.users.values()].find((candidate) => candidate.id === id);
    return {
      id,
      username: user?.username ?? `user${id}`,
      name: user?.username ?? `user${id}`,
      state: 'active',
    };
  }

  private async mrJson(
    project: FakeProject,
    mr: FakeMergeRequest,
    request: FakeRequest,
    single: boolean,
  ) {
    const sha =
      mr.state === 'opened' ? await project.source.branchSha(mr.sourceBranch) : mr.shaAtClose;
    const draft = /^(?:draft:|\[draft\]|\(draft\))/i.test(mr.title);
    const approved = mr.approvedBy.length >= project.approvalsRequired;
    const json: Record<string, unknown> = {
      id: project.id * 1000 + mr.iid,
      iid: mr.iid,
      project_id: project.id,
      title: mr.title,
      description: mr.description,
      state: mr.state,
      draft,
      work_in_progress: draft,
      source_branch: mr.sourceBranch,
      target_branch: mr.targetBranch,
      sha: sha ?? null,
      labels: mr.labels,
      assignees: mr.assigneeIds.map((id) => this.userJson(id)),
      reviewers: mr.reviewerIds.map((id) => this.userJson(id)),
      web_url: `${request.base}/${project.path}/-/merge_requests/${mr.iid}`,
      created_at: mr.createdAt,
      references: { short: `!${mr.iid}`, full: `${project.path}!${mr.iid}` },
    };
    if (single) {
      json.head_pipeline = mr.pipeline ? { ...mr.pipeline, sha } : null;
      json.detailed_merge_status =
        mr.state !== 'opened'
          ? 'not_open'
          : mr.changesRequestedBy.length > 0
            ? 'requested_changes'
            : draft
              ? 'draft_status'
              : !approved
                ? 'not_approved'
                : 'mergeable';
    }
    return json;
  }
}

function asObject(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function labelList(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
  if (typeof value === 'string')
    return value
      .split(',')
      .map((label) => label.trim())
      .filter(Boolean);
  return [];
}

function idList(value: unknown): number[] {
  if (Array.isArray(value)) return value.map(Number).filter((id) => Number.isInteger(id) && id > 0);
  if (typeof value === 'number') return [value];
  return [];
}

/** A 429 as GitLab's Rack::Attack answers it. */
export function tooManyRequests(retryAfterSeconds: number): FakeResponse {
  const reset = Math.floor(Date.now() / 1000) + retryAfterSeconds;
  return {
    status: 429,
    headers: {
      'retry-after': String(retryAfterSeconds),
      'ratelimit-name': 'throttle_authenticated_api',
      'ratelimit-limit': '2000',
      'ratelimit-observed': '2001',
      'ratelimit-remaining': '0',
      'ratelimit-reset': String(reset),
      'ratelimit-resettime': new Date(reset * 1000).toUTCString(),
      'content-type': 'text/plain; charset=utf-8',
    },
    body: 'Retry later\n',
  };
}
