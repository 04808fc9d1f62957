import { CachedDeployError, isCachedDeployError } from '../../errors.js';
import { gitbeakerConfig, gitlabCallError, HttpStatusError } from '../../net/gitbeaker.js';
import { type HostConnection, hostText } from '../../net/host-connection.js';
import {
  approvalStatus,
  type MergeRequest,
  parseMergeRequest,
  parseMergeRequests,
  pipelineChecks,
  rawFile,
  userId,
} from './gitlab-schema.js';
import {
  type CodeHost,
  type PullRequest,
  type PullRequestChanges,
  type PullRequestContent,
  PullRequestExistsError,
  type PullRequestReview,
} from './host.js';

/**
 * GitLab (gitlab.com and self-managed) through `@gitbeaker/rest`'s resources, with a requester of
 * our own (`requesterFn`, a documented option) over the connection's fetch: gitbeaker's default
 * retries a 429 ten times within a quarter of a second and ignores Retry-After. Merge requests are
 * the pull requests. The calls, per merge request:
 *
 *   find     GET  /projects/:id/merge_requests?source_branch=…&state=…
 *   open     POST /projects/:id/merge_requests (labels, assignee_ids, reviewer_ids in the same
 *                 call; user ids from GET /users?username=…, once per name per run)
 *   update   PUT  /projects/:id/merge_requests/:iid (title, description, add_labels, assignee_ids)
 *   close    POST /projects/:id/merge_requests/:iid/notes, PUT …/:iid state_event=close
 *   status   GET  /projects/:id/merge_requests/:iid (head pipeline), …/:iid/approvals
 *   file     GET  /projects/:id/repository/files/:path/raw?ref=HEAD (the default branch)
 */

/** The API takes descriptions up to 1,048,576 characters; we stay under a round million. */
export const GITLAB_BODY_LIMIT = 1_000_000;
const MAX_FILE_BYTES = 1024 * 1024;
const DRAFT = 'Draft: ';

interface Resources {
  MergeRequests: import('@gitbeaker/rest').MergeRequests;
  MergeRequestNotes: import('@gitbeaker/rest').MergeRequestNotes;
  MergeRequestApprovals: import('@gitbeaker/rest').MergeRequestApprovals;
  RepositoryFiles: import('@gitbeaker/rest').RepositoryFiles;
  Users: import('@gitbeaker/rest').Users;
}

export async function createGitLabHost(options: {
  apiUrl: string;
  label: string;
  token: string;
  connection: HostConnection;
}): Promise<CodeHost> {
  const gitbeaker = await import('@gitbeaker/rest');
  const config = await gitbeakerConfig(options);
  const resources: Resources = {
    MergeRequests: new gitbeaker.MergeRequests(config),
    MergeRequestNotes: new gitbeaker.MergeRequestNotes(config),
    MergeRequestApprovals: new gitbeaker.MergeRequestApprovals(config),
    RepositoryFiles: new gitbeaker.RepositoryFiles(config),
    Users: new gitbeaker.Users(config),
  };
  return new GitLabHost(resources, options.label, options.connection);
}

class GitLabHost implements CodeHost {
  readonly kind = 'gitlab' as const;
  readonly bodyLimit = GITLAB_BODY_LIMIT;
  /** username → its id, shared by the fleet's merge requests (one lookup per name per run). */
  private readonly userIds = new Map<string, Promise<number>>();

  constructor(
    private readonly api: Resources,
    readonly label: string,
    private readonly connection: HostConnection,
  ) {}

  async findPullRequest(project: string, branch: string, options: { state: 'open' | 'all' }) {
    const answer = await this.call(`list the merge requests of ${project}`, () =>
      this.api.MergeRequests.all({
        projectId: project,
        sourceBranch: branch,
        ...(options.state === 'open' ? { state: 'opened' as const } : {}),
        orderBy: 'created_at',
        sort: 'desc',
        perPage: 20,
        page: 1,
      }),
    );
    const requests = parseMergeRequests(answer).filter((mr) => mr.headBranch === branch);
    return requests.find((mr) => mr.state === 'open') ?? requests[0];
  }

  async openPullRequest(
    project: string,
    request: PullRequestContent & { head: string; base: string },
  ): Promise<PullRequest> {
    const teams = request.reviewers.filter((name) => name.includes('/'));
    if (teams.length > 0) {
      throw new CachedDeployError(
        'USAGE',
        `${this.label}: GitLab has no team reviewers (${teams.join(', ')}): name users in pullRequests.reviewers`,
      );
    }
    const assigneeIds = await Promise.all(request.assignees.map((name) => this.userId(name)));
    const reviewerIds = await Promise.all(request.reviewers.map((name) => this.userId(name)));
    const answer = await this.call(`open a merge request in ${project}`, () =>
      this.api.MergeRequests.create(
        project,
        request.head,
        request.base,
        request.draft ? `${DRAFT}${request.title}` : request.title,
        {
          description: request.body,
          ...(request.labels.length > 0 ? { labels: request.labels.join(',') } : {}),
          ...(assigneeIds.length > 0 ? { assigneeIds } : {}),
          ...(reviewerIds.length > 0 ? { reviewerIds } : {}),
        },
      ),
    );
    return parseMergeRequest(answer);
  }

  async updatePullRequest(project: string, pull: PullRequest, changes: PullRequestChanges) {
    const existing = pull as MergeRequest;
    const addIds = await Promise.all((changes.addAssignees ?? []).map((name) => this.userId(name)));
    const options = {
      // A draft stays a draft: the prefix is how GitLab knows.
      ...(changes.title !== undefined
        ? { title: pull.draft ? `${DRAFT}${changes.title}` : changes.title }
        : {}),
      ...(changes.body !== undefined ? { description: changes.body } : {}),
      ...(changes.addLabels?.length ? { addLabels: changes.addLabels.join(',') } : {}),
      ...(addIds.length > 0
        ? { assigneeIds: [...new Set([...(existing.assigneeIds ?? []), ...addIds])] }
        : {}),
    };
    if (Object.keys(options).length === 0) return;
    await this.call(`update merge request !${pull.number} in ${project}`, () =>
      this.api.MergeRequests.edit(project, pull.number, options),
    );
  }

  async closePullRequest(project: string, pull: PullRequest, comment: string) {
    const where = `merge request !${pull.number} in ${project}`;
    await this.call(`comment on ${where}`, () =>
      this.api.MergeRequestNotes.create(project, pull.number, comment),
    );
    await this.call(`close ${where}`, () =>
      this.api.MergeRequests.edit(project, pull.number, { stateEvent: 'close' }),
    );
  }

  async pullRequestStatus(project: string, pull: PullRequest): Promise<PullRequestReview> {
    const where = `merge request !${pull.number} in ${project}`;
    // The list answer has no head pipeline; the single one does.
    const full = parseMergeRequest(
      await this.call(`read ${where}`, () => this.api.MergeRequests.show(project, pull.number)),
    );
    const approvals = await this.call(`read the approvals of ${where}`, () =>
      this.api.MergeRequestApprovals.showConfiguration(project, { mergerequestIId: pull.number }),
    );
    return {
      review: approvalStatus(approvals, full.detailedMergeStatus),
      checks: pipelineChecks(full.pipelineStatus),
    };
  }

  async readFileOnDefaultBranch(project: string, path: string) {
    try {
      const answer = await this.call(`read ${path} in ${project}`, () =>
        // HEAD: the default branch, without asking the project for its name first.
        this.api.RepositoryFiles.showRaw(project, path, 'HEAD'),
      );
      return await rawFile(answer, MAX_FILE_BYTES);
    } catch (error) {
      if (error instanceof NotFound) return undefined;
      throw error;
    }
  }

  private userId(username: string): Promise<number> {
    const key = username.toLowerCase();
    let id = this.userIds.get(key);
    if (!id) {
      id = this.call(`look up the user ${username}`, () =>
        this.api.Users.all({ username, perPage: 20, page: 1 }),
      ).then((answer) => {
        const found = userId(answer, username);
        if (found === undefined) {
          throw new CachedDeployError('USAGE', `${this.label}: no user named ${username}`);
        }
        return found;
      });
      this.userIds.set(key, id);
    }
    return id;
  }

  private async call<T>(action: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.translate(action, error);
    }
  }

  private translate(action: string, error: unknown): Error {
    if (isCachedDeployError(error)) return error;
    const secrets = this.connection.secrets;
    if (error instanceof HttpStatusError) {
      if (error.status === 404) return new NotFound(`${this.label}: ${action}: not found`);
      if (error.status === 409 && /already exists/i.test(error.description)) {
        return new PullRequestExistsError(hostText(error.description, secrets));
      }
    }
    return gitlabCallError(this.connection, action, error, {
      401: 'the token is invalid or expired',
      403: 'the token lacks the api scope, or the Developer role in the project',
    });
  }
}

class NotFound extends CachedDeployError {
  constructor(message: string) {
    super('IO', message);
  }
}
