import type { Octokit } from '@octokit/rest';
import { CachedDeployError, isCachedDeployError } from '../../errors.js';
import { array, record } from '../../net/answers.js';
import { type HostConnection, hostText } from '../../net/host-connection.js';
import { GENERATOR_VERSION } from '../../version.js';
import {
  checkRunsStatus,
  combineChecks,
  combinedStatus,
  fileContent,
  parsePull,
  parsePulls,
  reviewStatus,
} from './github-schema.js';
import {
  type CodeHost,
  type PullRequest,
  type PullRequestChanges,
  type PullRequestContent,
  PullRequestExistsError,
  type PullRequestReview,
} from './host.js';

/**
 * GitHub (github.com and GitHub Enterprise Server) through `@octokit/rest`, over the connection's
 * fetch (rate limits, pacing, bounded answers). The calls, per pull request:
 *
 *   find     GET   /repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=…
 *   open     POST  /repos/{owner}/{repo}/pulls, then PATCH /repos/{owner}/{repo}/issues/{n}
 *                  (labels and assignees in one call) and POST …/pulls/{n}/requested_reviewers
 *   update   PATCH /repos/{owner}/{repo}/pulls/{n} (title, body); POST …/issues/{n}/labels and
 *                  …/assignees only for ones it lacks
 *   close    POST  /repos/{owner}/{repo}/issues/{n}/comments, PATCH …/pulls/{n} state=closed
 *   status   GET   …/pulls/{n}/reviews, …/commits/{sha}/status, …/commits/{sha}/check-runs
 *   file     GET   /repos/{owner}/{repo}/contents/{path} (the default branch)
 */

/** "body is too long (maximum is 65536 characters)". */
export const GITHUB_BODY_LIMIT = 65_536;
const MAX_REVIEW_PAGES = 10;
const MAX_FILE_BYTES = 1024 * 1024;

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

export async function createGitHubHost(options: {
  apiUrl: string;
  label: string;
  token: string;
  connection: HostConnection;
}): Promise<CodeHost> {
  const { Octokit } = await import('@octokit/rest');
  const octokit = new Octokit({
    auth: options.token,
    baseUrl: options.apiUrl,
    userAgent: `create-cached-deploy/${GENERATOR_VERSION}`,
    log: quiet,
    request: { fetch: options.connection.fetch },
  });
  return new GitHubHost(octokit, options.label, options.connection);
}

class GitHubHost implements CodeHost {
  readonly kind = 'github' as const;
  readonly bodyLimit = GITHUB_BODY_LIMIT;

  constructor(
    private readonly octokit: Octokit,
    readonly label: string,
    private readonly connection: HostConnection,
  ) {}

  async findPullRequest(project: string, branch: string, options: { state: 'open' | 'all' }) {
    const { owner, repo } = split(project);
    const { data } = await this.call(`list the pull requests of ${project}`, () =>
      this.octokit.rest.pulls.list({
        owner,
        repo,
        head: `${owner}:${branch}`,
        state: options.state,
        sort: 'created',
        direction: 'desc',
        per_page: 20,
      }),
    );
    // The filter is the host's; a pull request from another branch is never ours to touch.
    const pulls = parsePulls(data).filter((pull) => pull.headBranch === branch);
    return pulls.find((pull) => pull.state === 'open') ?? pulls[0];
  }

  async openPullRequest(
    project: string,
    request: PullRequestContent & { head: string; base: string },
  ): Promise<PullRequest> {
    const { owner, repo } = split(project);
    const { data } = await this.call(`open a pull request in ${project}`, () =>
      this.octokit.rest.pulls.create({
        owner,
        repo,
        title: request.title,
        head: request.head,
        base: request.base,
        body: request.body,
        draft: request.draft,
      }),
    );
    const created = parsePull(data);
    if (request.labels.length > 0 || request.assignees.length > 0) {
      await this.call(`label and assign pull request #${created.number} in ${project}`, () =>
        this.octokit.rest.issues.update({
          owner,
          repo,
          issue_number: created.number,
          ...(request.labels.length > 0 ? { labels: request.labels } : {}),
          ...(request.assignees.length > 0 ? { assignees: request.assignees } : {}),
        }),
      );
      created.labels = [...request.labels];
      created.assignees = [...request.assignees];
    }
    if (request.reviewers.length > 0) {
      const teams = request.reviewers.filter((name) => name.includes('/'));
      await this.call(`request reviews on pull request #${created.number} in ${project}`, () =>
        this.octokit.rest.pulls.requestReviewers({
          owner,
          repo,
          pull_number: created.number,
          reviewers: request.reviewers.filter((name) => !name.includes('/')),
          team_reviewers: teams.map((team) => team.split('/')[1] as string),
        }),
      );
    }
    return created;
  }

  async updatePullRequest(project: string, pull: PullRequest, changes: PullRequestChanges) {
    const { owner, repo } = split(project);
    const where = `pull request #${pull.number} in ${project}`;
    if (changes.title !== undefined || changes.body !== undefined) {
      await this.call(`update ${where}`, () =>
        this.octokit.rest.pulls.update({
          owner,
          repo,
          pull_number: pull.number,
          ...(changes.title !== undefined ? { title: changes.title } : {}),
          ...(changes.body !== undefined ? { body: changes.body } : {}),
        }),
      );
    }
    if (changes.addLabels?.length) {
      const labels = changes.addLabels;
      await this.call(`label ${where}`, () =>
        this.octokit.rest.issues.addLabels({ owner, repo, issue_number: pull.number, labels }),
      );
    }
    if (changes.addAssignees?.length) {
      const assignees = changes.addAssignees;
      await this.call(`assign ${where}`, () =>
        this.octokit.rest.issues.addAssignees({
          owner,
          repo,
          issue_number: pull.number,
          assignees,
        }),
      );
    }
  }

  async closePullRequest(project: string, pull: PullRequest, comment: string) {
    const { owner, repo } = split(project);
    const where = `pull request #${pull.number} in ${project}`;
    await this.call(`comment on ${where}`, () =>
      this.octokit.rest.issues.createComment({
        owner,
        repo,
        issue_number: pull.number,
        body: comment,
      }),
    );
    await this.call(`close ${where}`, () =>
      this.octokit.rest.pulls.update({ owner, repo, pull_number: pull.number, state: 'closed' }),
    );
  }

  async pullRequestStatus(project: string, pull: PullRequest): Promise<PullRequestReview> {
    const { owner, repo } = split(project);
    const where = `pull request #${pull.number} in ${project}`;
    const reviews: unknown[] = [];
    let pages = 0;
    await this.call(`read the reviews of ${where}`, async () => {
      for await (const page of this.octokit.paginate.iterator(this.octokit.rest.pulls.listReviews, {
        owner,
        repo,
        pull_number: pull.number,
        per_page: 100,
      })) {
        reviews.push(...array((value) => value, 100)(page.data, 'reviews'));
        if (++pages >= MAX_REVIEW_PAGES) break;
      }
    });
    const review = reviewStatus(reviews);
    if (!pull.headSha) return { review, checks: 'none' };
    const ref = pull.headSha;
    const statuses = await this.call(`read the commit status of ${where}`, () =>
      this.octokit.rest.repos.getCombinedStatusForRef({ owner, repo, ref, per_page: 100 }),
    );
    const runs = await this.call(`read the check runs of ${where}`, () =>
      this.octokit.rest.checks.listForRef({ owner, repo, ref, per_page: 100 }),
    );
    return {
      review,
      checks: combineChecks(combinedStatus(statuses.data), checkRunsStatus(runs.data)),
    };
  }

  async readFileOnDefaultBranch(project: string, path: string) {
    const { owner, repo } = split(project);
    try {
      const { data } = await this.call(`read ${path} in ${project}`, () =>
        this.octokit.rest.repos.getContent({ owner, repo, path }),
      );
      return fileContent(data, MAX_FILE_BYTES);
    } catch (error) {
      if (error instanceof NotFound) return undefined;
      throw error;
    }
  }

  /** Runs one API call; turns its failure into one line naming the host, the call and the status. */
  private async call<T>(action: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.translate(action, error);
    }
  }

  private translate(action: string, error: unknown): Error {
    if (isCachedDeployError(error) || error instanceof PullRequestExistsError)
      return error as Error;
    const cause = (error as { cause?: unknown }).cause;
    if (isCachedDeployError(cause)) return cause;
    const status = (error as { status?: unknown }).status;
    const data = (error as { response?: { data?: unknown } }).response?.data;
    const secrets = this.connection.secrets;
    const detail = describeError(data, (error as Error).message ?? String(error));
    if (status === 404) return new NotFound(`${this.label}: ${action}: not found`);
    if (status === 422 && /pull request already exists/i.test(detail)) {
      return new PullRequestExistsError(hostText(detail, secrets));
    }
    const hint =
      status === 401
        ? ' (the token is invalid or expired)'
        : status === 403
          ? ' (the token lacks a permission: pull requests and issues write, contents read)'
          : '';
    return new CachedDeployError(
      'IO',
      `${this.label}: ${action} failed: ${typeof status === 'number' && status > 0 ? `HTTP ${status} ` : ''}${hostText(detail, secrets)}${hint}`,
    );
  }
}

class NotFound extends CachedDeployError {
  constructor(message: string) {
    super('IO', message);
  }
}

/** GitHub's error body: `message`, and each `errors[].message` (or its code and field). */
function describeError(data: unknown, fallback: string): string {
  try {
    const body = record(data, 'error');
    const message = typeof body.message === 'string' ? body.message : fallback;
    const details = Array.isArray(body.errors)
      ? body.errors
          .slice(0, 5)
          .map((item) =>
            typeof item === 'string'
              ? item
              : typeof item?.message === 'string'
                ? item.message
                : [item?.resource, item?.field, item?.code]
                    .filter((x) => typeof x === 'string')
                    .join(' '),
          )
          .filter(Boolean)
      : [];
    return details.length > 0 ? `${message}: ${details.join('; ')}` : message;
  } catch {
    return typeof data === 'string' && data.trim() !== '' ? data : fallback;
  }
}

function split(project: string): { owner: string; repo: string } {
  const [owner = '', repo = ''] = project.split('/');
  return { owner, repo };
}
