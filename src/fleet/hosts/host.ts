import type { HostKind } from '../fleet-file.js';

/**
 * One shape for the code hosts a fleet's pull requests live on (GitHub, GitLab), so the fleet
 * never asks which one it talks to: each host's folder of quirks (github.ts, gitlab.ts, and the
 * schemas of their answers) stays behind this interface. GitLab's merge requests are "pull
 * requests" here; `number` is GitLab's iid.
 *
 * Every answer is untrusted: the implementations read bounded responses, validate the shape of
 * what they use, and return plain values; text from them is printed through `printable()`.
 */

export type PullRequestState = 'open' | 'closed' | 'merged';
export type ReviewStatus = 'approved' | 'changes-requested' | 'pending';
export type CheckStatus = 'success' | 'failure' | 'pending' | 'none';

export interface PullRequest {
  /** GitHub's number, GitLab's iid. */
  number: number;
  /** The web page (https). */
  url: string;
  state: PullRequestState;
  /** Without GitLab's `Draft:` prefix. */
  title: string;
  body: string;
  draft: boolean;
  headBranch: string;
  /** The commit its head branch points at, when the host said. */
  headSha: string | undefined;
  baseBranch: string;
  labels: string[];
  /** User names. */
  assignees: string[];
}

/** What the fleet file and the diff ask a pull request to say. */
export interface PullRequestContent {
  title: string;
  body: string;
  labels: string[];
  /** Users, or org/team (GitHub teams). */
  reviewers: string[];
  assignees: string[];
  draft: boolean;
}

/** Only what differs from the pull request as it is (labels and assignees are added, never removed). */
export interface PullRequestChanges {
  title?: string;
  body?: string;
  addLabels?: string[];
  addAssignees?: string[];
}

export interface PullRequestReview {
  review: ReviewStatus;
  checks: CheckStatus;
}

export interface CodeHost {
  readonly kind: HostKind;
  /** How messages name it: github.com, gitlab.acme.com. */
  readonly label: string;
  /** The largest body (description) it stores, in characters. */
  readonly bodyLimit: number;
  /** The open one whose head is `branch` (`state: 'all'`: the newest, open ones first). */
  findPullRequest(
    project: string,
    branch: string,
    options: { state: 'open' | 'all' },
  ): Promise<PullRequest | undefined>;
  /** Throws `PullRequestExistsError` when the host already has an open one for `head`. */
  openPullRequest(
    project: string,
    request: PullRequestContent & { head: string; base: string },
  ): Promise<PullRequest>;
  updatePullRequest(
    project: string,
    pullRequest: PullRequest,
    changes: PullRequestChanges,
  ): Promise<void>;
  /** Comments `comment`, then closes it. */
  closePullRequest(project: string, pullRequest: PullRequest, comment: string): Promise<void>;
  pullRequestStatus(project: string, pullRequest: PullRequest): Promise<PullRequestReview>;
  /** The file on the default branch; undefined when it has none. */
  readFileOnDefaultBranch(project: string, path: string): Promise<string | undefined>;
}

/** The host refused to open a second pull request for a head branch (GitHub 422, GitLab 409). */
export class PullRequestExistsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PullRequestExistsError';
  }
}
