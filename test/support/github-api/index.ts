/**
 * A GitHub REST API test double on 127.0.0.1, driven by the real `@octokit/rest`: the paths,
 * query parameters, status codes and answer shapes octokit uses for pull requests, issues (labels,
 * assignees, comments), reviews, combined statuses, check runs and contents; pagination with Link
 * headers; rate-limit headers on every answer (and a primary limit that runs out); injectable
 * faults (a 403 secondary rate limit with retry-after, a 429, anything). A repository's git content
 * comes from a real bare repository (what the fleet pushed) or from memory.
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
export type { CallRecord, FaultHandle, FaultRule } from '../fake-api/server.js';

export type ReviewState = 'APPROVED' | 'CHANGES_REQUESTED' | 'COMMENTED' | 'DISMISSED';

export interface FakePull {
  number: number;
  title: string;
  body: string | null;
  state: 'open' | 'closed';
  merged: boolean;
  draft: boolean;
  head: string;
  /** The head commit when it was closed (an open one follows its branch). */
  headShaAtClose?: string;
  base: string;
  labels: string[];
  assignees: string[];
  requestedReviewers: string[];
  requestedTeams: string[];
  comments: string[];
  reviews: { user: string; state: ReviewState }[];
  createdAt: string;
  author: string;
}

interface FakeRepo {
  owner: string;
  name: string;
  source: RepositorySource;
  pulls: FakePull[];
  /** Issues and pull requests share numbers. */
  nextNumber: number;
  statuses: Map<string, { context: string; state: 'success' | 'pending' | 'failure' | 'error' }[]>;
  checkRuns: Map<string, { name: string; status: string; conclusion: string | null }[]>;
}

export interface GitHubApiOptions {
  /** The token every call must carry (`Authorization: token …` or `Bearer …`). */
  token: string;
  /** The login the token belongs to (the author of what it creates). */
  login?: string;
  /** Primary rate limit: calls allowed before 403 with x-ratelimit-remaining: 0. */
  rateLimit?: number;
  /** Epoch seconds of the primary limit's reset. */
  rateLimitReset?: () => number;
}

export class FakeGitHubApi {
  readonly http: FakeHttpServer;
  private readonly repos = new Map<string, FakeRepo>();
  private used = 0;
  private readonly login: string;

  constructor(private readonly options: GitHubApiOptions) {
    this.login = options.login ?? 'fleet-bot';
    this.http = new FakeHttpServer(
      () => this.rateHeaders(),
      (request) => this.authenticate(request),
    );
    this.routes();
  }

  /** The API base octokit is given (`baseUrl`). */
  get url(): string {
    return this.http.url;
  }

  start(): Promise<string> {
    return this.http.start();
  }

  stop(): Promise<void> {
    return this.http.stop();
  }

  addRepository(project: string, source: RepositorySource): void {
    const [owner = '', name = ''] = project.split('/');
    this.repos.set(project.toLowerCase(), {
      owner,
      name,
      source,
      pulls: [],
      nextNumber: 1,
      statuses: new Map(),
      checkRuns: new Map(),
    });
  }

  /** The pull requests of `project`, as the server holds them (tests read and change them). */
  pulls(project: string): FakePull[] {
    return this.repo(project).pulls;
  }

  pull(project: string, number: number): FakePull {
    const pull = this.pulls(project).find((candidate) => candidate.number === number);
    if (!pull) throw new Error(`no pull request #${number} in ${project}`);
    return pull;
  }

  /** An existing pull request, as if opened earlier by someone (or an earlier run). */
  seedPull(project: string, fields: Partial<FakePull> & { head: string }): FakePull {
    const repo = this.repo(project);
    const pull: FakePull = {
      number: repo.nextNumber++,
      title: 'earlier',
      body: '',
      state: 'open',
      merged: false,
      draft: false,
      base: repo.source.defaultBranch,
      labels: [],
      assignees: [],
      requestedReviewers: [],
      requestedTeams: [],
      comments: [],
      reviews: [],
      createdAt: new Date().toISOString(),
      author: this.login,
      ...fields,
    };
    repo.pulls.push(pull);
    return pull;
  }

  review(project: string, number: number, user: string, state: ReviewState): void {
    this.pull(project, number).reviews.push({ user, state });
  }

  async setStatus(
    project: string,
    ref: string,
    context: string,
    state: 'success' | 'pending' | 'failure' | 'error',
  ) {
    const repo = this.repo(project);
    const sha = (await repo.source.branchSha(ref)) ?? ref;
    const list = repo.statuses.get(sha) ?? [];
    repo.statuses.set(sha, [...list.filter((s) => s.context !== context), { context, state }]);
  }

  async setCheckRun(
    project: string,
    ref: string,
    name: string,
    status: string,
    conclusion: string | null,
  ) {
    const repo = this.repo(project);
    const sha = (await repo.source.branchSha(ref)) ?? ref;
    const list = repo.checkRuns.get(sha) ?? [];
    repo.checkRuns.set(sha, [...list.filter((r) => r.name !== name), { name, status, conclusion }]);
  }

  /** Merges as `PUT …/pulls/{n}/merge` does: a merge commit on the base branch, then merged. */
  async merge(project: string, number: number): Promise<string> {
    const repo = this.repo(project);
    const pull = this.pull(project, number);
    const sha = await repo.source.merge(pull.base, pull.head, `Merge pull request #${number}`);
    if (!sha) throw new Error(`cannot merge #${number} in ${project}`);
    pull.headShaAtClose = await repo.source.branchSha(pull.head);
    pull.state = 'closed';
    pull.merged = true;
    return sha;
  }

  private repo(project: string): FakeRepo {
    const repo = this.repos.get(project.toLowerCase());
    if (!repo) throw new Error(`the fake GitHub has no repository ${project}`);
    return repo;
  }

  private rateHeaders(): Record<string, string> {
    const limit = this.options.rateLimit ?? 5000;
    const reset = this.options.rateLimitReset?.() ?? Math.floor(Date.now() / 1000) + 3600;
    return {
      'x-ratelimit-limit': String(limit),
      'x-ratelimit-remaining': String(Math.max(0, limit - this.used)),
      'x-ratelimit-used': String(Math.min(limit, this.used)),
      'x-ratelimit-reset': String(reset),
      'x-ratelimit-resource': 'core',
      'x-github-media-type': 'github.v3; format=json',
    };
  }

  private authenticate(request: FakeRequest): FakeResponse | undefined {
    const header = String(request.headers.authorization ?? '');
    const token = /^(?:token|bearer)\s+(.+)$/i.exec(header)?.[1];
    if (token !== this.options.token) {
      return {
        status: 401,
        body: { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' },
      };
    }
    this.used++;
    const limit = this.options.rateLimit ?? 5000;
    if (this.used > limit) {
      return {
        status: 403,
        body: {
          message: 'API rate limit exceeded for user ID 1.',
          documentation_url: 'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api',
        },
      };
    }
    return undefined;
  }

  private withRepo(
    handler: (
      repo: FakeRepo,
      request: FakeRequest,
      params: Params,
    ) => FakeResponse | Promise<FakeResponse>,
  ) {
    return (request: FakeRequest, params: Params) => {
      const repo = this.repos.get(`${params.owner}/${params.repo}`.toLowerCase());
      if (!repo) return notFound();
      return handler(repo, request, params);
    };
  }

  private withPull(
    handler: (
      repo: FakeRepo,
      pull: FakePull,
      request: FakeRequest,
    ) => FakeResponse | Promise<FakeResponse>,
  ) {
    return this.withRepo((repo, request, params) => {
      const pull = repo.pulls.find((candidate) => candidate.number === Number(params.number));
      if (!pull) return notFound();
      return handler(repo, pull, request);
    });
  }

  private routes(): void {
    const repoPath = '^/repos/(?<owner>[^/]+)/(?<repo>[^/]+)';
    const http = this.http;
    http.route(
      'GET',
      new RegExp(`${repoPath}$`),
      this.withRepo((repo, request) => ({
        status: 200,
        body: {
          full_name: `${repo.owner}/${repo.name}`,
          default_branch: repo.source.defaultBranch,
          html_url: `${request.base}/${repo.owner}/${repo.name}`,
        },
      })),
    );
    http.route(
      'GET',
      new RegExp(`${repoPath}/pulls$`),
      this.withRepo(async (repo, request) => {
        const state = request.query.get('state') ?? 'open';
        const head = request.query.get('head');
        const base = request.query.get('base');
        let pulls = repo.pulls.filter((pull) => state === 'all' || pull.state === state);
        if (head) {
          const [owner, branch] = head.includes(':') ? head.split(':', 2) : [repo.owner, head];
          pulls = pulls.filter(
            (pull) => owner?.toLowerCase() === repo.owner.toLowerCase() && pull.head === branch,
          );
        }
        if (base) pulls = pulls.filter((pull) => pull.base === base);
        // GitHub: desc by default when sorting by creation (the default sort), else asc.
        const sortedBy = request.query.get('sort') ?? 'created';
        const direction =
          request.query.get('direction') ?? (sortedBy === 'created' ? 'desc' : 'asc');
        pulls = [...pulls].sort((a, b) =>
          direction === 'desc' ? b.number - a.number : a.number - b.number,
        );
        return this.page(request, pulls, (pull) => this.pullJson(repo, pull, request));
      }),
    );
    http.route(
      'POST',
      new RegExp(`${repoPath}/pulls$`),
      this.withRepo(async (repo, request) => {
        const body = asObject(request.body);
        const title = body.title;
        const head = String(body.head ?? '').replace(/^[^:]+:/, '');
        const base = String(body.base ?? '');
        if (typeof title !== 'string' || title === '') {
          return invalid([{ resource: 'PullRequest', field: 'title', code: 'missing_field' }]);
        }
        if (typeof body.body === 'string' && body.body.length > 65_536) {
          return invalid([
            {
              resource: 'Issue',
              code: 'custom',
              field: 'body',
              message: 'body is too long (maximum is 65536 characters)',
            },
          ]);
        }
        if (!(await repo.source.branchSha(head))) {
          return invalid([{ resource: 'PullRequest', field: 'head', code: 'invalid' }]);
        }
        if (!(await repo.source.branchSha(base))) {
          return invalid([{ resource: 'PullRequest', field: 'base', code: 'invalid' }]);
        }
        if (
          repo.pulls.some(
            (pull) => pull.state === 'open' && pull.head === head && pull.base === base,
          )
        ) {
          return invalid([
            {
              resource: 'PullRequest',
              code: 'custom',
              message: `A pull request already exists for ${repo.owner}:${head}.`,
            },
          ]);
        }
        const pull = this.seedPull(`${repo.owner}/${repo.name}`, {
          title,
          body: typeof body.body === 'string' ? body.body : null,
          head,
          base,
          draft: body.draft === true,
        });
        return { status: 201, body: await this.pullJson(repo, pull, request) };
      }),
    );
    http.route(
      'GET',
      new RegExp(`${repoPath}/pulls/(?<number>\\d+)$`),
      this.withPull(async (repo, pull, request) => ({
        status: 200,
        body: await this.pullJson(repo, pull, request),
      })),
    );
    http.route(
      'PATCH',
      new RegExp(`${repoPath}/pulls/(?<number>\\d+)$`),
      this.withPull(async (repo, pull, request) => {
        const body = asObject(request.body);
        if (typeof body.body === 'string' && body.body.length > 65_536) {
          return invalid([
            {
              resource: 'Issue',
              code: 'custom',
              field: 'body',
              message: 'body is too long (maximum is 65536 characters)',
            },
          ]);
        }
        if (typeof body.title === 'string') pull.title = body.title;
        if (typeof body.body === 'string') pull.body = body.body;
        if (body.state === 'closed' && pull.state === 'open') {
          pull.headShaAtClose = await repo.source.branchSha(pull.head);
          pull.state = 'closed';
        }
        if (body.state === 'open' && pull.state === 'closed' && !pull.merged) pull.state = 'open';
        return { status: 200, body: await this.pullJson(repo, pull, request) };
      }),
    );
    http.route(
      'PUT',
      new RegExp(`${repoPath}/pulls/(?<number>\\d+)/merge$`),
      this.withPull(async (repo, pull) => {
        if (pull.state !== 'open') {
          return { status: 405, body: { message: 'Pull Request is not mergeable' } };
        }
        const sha = await this.merge(`${repo.owner}/${repo.name}`, pull.number).catch(
          () => undefined,
        );
        if (!sha) return { status: 405, body: { message: 'Pull Request is not mergeable' } };
        return {
          status: 200,
          body: { sha, merged: true, message: 'Pull Request successfully merged' },
        };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${repoPath}/pulls/(?<number>\\d+)/requested_reviewers$`),
      this.withPull(async (repo, pull, request) => {
        const body = asObject(request.body);
        const reviewers = stringList(body.reviewers);
        if (reviewers.some((user) => user.toLowerCase() === pull.author.toLowerCase())) {
          return {
            status: 422,
            body: { message: 'Review cannot be requested from pull request author.' },
          };
        }
        pull.requestedReviewers = union(pull.requestedReviewers, reviewers);
        pull.requestedTeams = union(pull.requestedTeams, stringList(body.team_reviewers));
        return { status: 201, body: await this.pullJson(repo, pull, request) };
      }),
    );
    http.route(
      'GET',
      new RegExp(`${repoPath}/pulls/(?<number>\\d+)/reviews$`),
      this.withPull((_repo, pull, request) =>
        this.page(request, pull.reviews, (review, index) => ({
          id: index + 1,
          user: { login: review.user, type: 'User' },
          state: review.state,
          body: '',
          submitted_at: new Date().toISOString(),
        })),
      ),
    );
    const issuePath = `${repoPath}/issues/(?<number>\\d+)`;
    http.route(
      'PATCH',
      new RegExp(`${issuePath}$`),
      this.withPull(async (repo, pull, request) => {
        const body = asObject(request.body);
        if (Array.isArray(body.labels)) pull.labels = stringList(body.labels);
        if (Array.isArray(body.assignees)) pull.assignees = stringList(body.assignees);
        if (typeof body.title === 'string') pull.title = body.title;
        return { status: 200, body: this.issueJson(repo, pull, request) };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${issuePath}/labels$`),
      this.withPull((_repo, pull, request) => {
        pull.labels = union(pull.labels, stringList(asObject(request.body).labels));
        return { status: 200, body: pull.labels.map((name) => ({ name, color: 'ededed' })) };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${issuePath}/assignees$`),
      this.withPull((repo, pull, request) => {
        pull.assignees = union(pull.assignees, stringList(asObject(request.body).assignees));
        return { status: 201, body: this.issueJson(repo, pull, request) };
      }),
    );
    http.route(
      'POST',
      new RegExp(`${issuePath}/comments$`),
      this.withPull((repo, pull, request) => {
        const text = asObject(request.body).body;
        if (typeof text !== 'string' || text === '') {
          return invalid([{ resource: 'IssueComment', field: 'body', code: 'missing_field' }]);
        }
        pull.comments.push(text);
        return {
          status: 201,
          body: {
            id: pull.comments.length,
            body: text,
            html_url: `${request.base}/${repo.owner}/${repo.name}/pull/${pull.number}#issuecomment-${pull.comments.length}`,
          },
        };
      }),
    );
    http.route(
      'GET',
      new RegExp(`${repoPath}/commits/(?<ref>[^/]+)/status$`),
      this.withRepo(async (repo, request, params) => {
        const sha = (await repo.source.branchSha(params.ref as string)) ?? (params.ref as string);
        const statuses = repo.statuses.get(sha) ?? [];
        const states = statuses.map((status) => status.state);
        const state =
          states.includes('failure') || states.includes('error')
            ? 'failure'
            : states.length > 0 && states.every((s) => s === 'success')
              ? 'success'
              : 'pending';
        const { page } = paginate(statuses, request.query, { defaultPerPage: 30, maxPerPage: 100 });
        return {
          status: 200,
          body: {
            state,
            sha,
            total_count: statuses.length,
            statuses: page.map((status, index) => ({ id: index + 1, ...status })),
          },
        };
      }),
    );
    http.route(
      'GET',
      new RegExp(`${repoPath}/commits/(?<ref>[^/]+)/check-runs$`),
      this.withRepo(async (repo, request, params) => {
        const sha = (await repo.source.branchSha(params.ref as string)) ?? (params.ref as string);
        const runs = repo.checkRuns.get(sha) ?? [];
        const { page } = paginate(runs, request.query, { defaultPerPage: 30, maxPerPage: 100 });
        return {
          status: 200,
          body: {
            total_count: runs.length,
            check_runs: page.map((run, index) => ({ id: index + 1, head_sha: sha, ...run })),
          },
        };
      }),
    );
    http.route(
      'GET',
      new RegExp(`${repoPath}/contents/(?<path>.+)$`),
      this.withRepo(async (repo, request, params) => {
        const ref = request.query.get('ref') ?? repo.source.defaultBranch;
        const text = await repo.source.readFile(ref, params.path as string);
        if (text === undefined) return notFound();
        const content = Buffer.from(text, 'utf8').toString('base64').replace(/.{60}/g, '$&\n');
        return {
          status: 200,
          body: {
            type: 'file',
            encoding: 'base64',
            size: Buffer.byteLength(text),
            name: (params.path as string).split('/').at(-1),
            path: params.path,
            content,
          },
        };
      }),
    );
  }

  private async page<T>(
    request: FakeRequest,
    items: readonly T[],
    render: (item: T, index: number) => unknown,
  ): Promise<FakeResponse> {
    const { page, current, last } = paginate(items, request.query, {
      defaultPerPage: 30,
      maxPerPage: 100,
    });
    const link = last > 1 ? linkHeader(request, current, last) : undefined;
    return {
      status: 200,
      ...(link ? { headers: { link } } : {}),
      body: await Promise.all(page.map(render)),
    };
  }

  private async pullJson(repo: FakeRepo, pull: FakePull, request: FakeRequest) {
    const sha =
      pull.state === 'open' ? await repo.source.branchSha(pull.head) : pull.headShaAtClose;
    const web = `${request.base}/${repo.owner}/${repo.name}`;
    return {
      url: `${request.base}/repos/${repo.owner}/${repo.name}/pulls/${pull.number}`,
      html_url: `${web}/pull/${pull.number}`,
      number: pull.number,
      state: pull.state,
      title: pull.title,
      body: pull.body,
      draft: pull.draft,
      merged: pull.merged,
      merged_at: pull.merged ? new Date().toISOString() : null,
      user: { login: pull.author },
      created_at: pull.createdAt,
      head: { ref: pull.head, sha: sha ?? null, label: `${repo.owner}:${pull.head}` },
      base: { ref: pull.base, label: `${repo.owner}:${pull.base}` },
      labels: pull.labels.map((name) => ({ name })),
      assignees: pull.assignees.map((login) => ({ login })),
      requested_reviewers: pull.requestedReviewers.map((login) => ({ login })),
      requested_teams: pull.requestedTeams.map((slug) => ({ slug })),
    };
  }

  private issueJson(repo: FakeRepo, pull: FakePull, request: FakeRequest) {
    return {
      number: pull.number,
      title: pull.title,
      state: pull.state,
      html_url: `${request.base}/${repo.owner}/${repo.name}/pull/${pull.number}`,
      labels: pull.labels.map((name) => ({ name })),
      assignees: pull.assignees.map((login) => ({ login })),
      pull_request: {
        url: `${request.base}/repos/${repo.owner}/${repo.name}/pulls/${pull.number}`,
      },
    };
  }
}

function notFound(): FakeResponse {
  return {
    status: 404,
    body: {
      message: 'Not Found',
      documentation_url: 'https://docs.github.com/rest',
      status: '404',
    },
  };
}

function invalid(errors: object[]): FakeResponse {
  return {
    status: 422,
    body: {
      message: 'Validation Failed',
      errors,
      documentation_url: 'https://docs.github.com/rest/pulls/pulls#create-a-pull-request',
      status: '422',
    },
  };
}

function asObject(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function stringList(value: unknown): string[] {
  return Array.isArray(value)
    ? value.filter((item): item is string => typeof item === 'string')
    : [];
}

function union(list: string[], more: string[]): string[] {
  const out = [...list];
  for (const item of more) {
    if (!out.some((existing) => existing.toLowerCase() === item.toLowerCase())) out.push(item);
  }
  return out;
}

/** A 403 secondary rate limit, as GitHub answers it (`retry-after` in seconds). */
export function secondaryRateLimit(retryAfterSeconds: number): FakeResponse {
  return {
    status: 403,
    headers: { 'retry-after': String(retryAfterSeconds) },
    body: {
      message:
        'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
      documentation_url:
        'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
      status: '403',
    },
  };
}
