import { code } from '../diff/markdown.js';
import type { RepoDiff } from '../diff/report.js';
import { CachedDeployError } from '../errors.js';
import { printable } from '../text.js';
import type { FleetFile, FleetRepo } from './fleet-file.js';
import type { GitOptions } from './git.js';
import { originUrl } from './git-remote.js';
import { CodeHosts, type CodeHostsOptions } from './hosts/connect.js';
import {
  type CodeHost,
  type PullRequest,
  type PullRequestChanges,
  type PullRequestContent,
  PullRequestExistsError,
} from './hosts/host.js';
import { type HostTarget, resolveHostTarget } from './hosts/target.js';
import { commitSubject, errorMessage, type PullRequestOutcome, type RepoResult } from './local.js';
import { mapPool } from './map-pool.js';

/**
 * `--open-pr`: after a repository's branch is pushed, make its one pull request (GitLab: merge
 * request) say what the branch changes, and close it once the repository no longer needs it.
 *
 *   changed   no open pull request for the branch: open one (title and labels, reviewers,
 *             assignees, draft from the fleet file; body: the repository's `diff --format
 *             markdown`, bounded to the host's limit); the host says one exists (a race, or its
 *             list lagging): find it and update it. An open one: update what differs (title,
 *             body; labels and assignees it lacks), or nothing.
 *   in sync   close the open one, with a comment saying why; none open: nothing.
 *
 * One pull request per repository and branch, found by its head branch: a second run updates the
 * same one. A failure becomes the repository's error (recorded, so `--only-failed` retries it).
 */

export interface PullRequestRunOptions extends CodeHostsOptions {
  /** The head branch of every pull request. */
  branch: string;
  git: GitOptions;
}

export class PullRequestRun {
  readonly hosts: CodeHosts;
  private readonly targets = new Map<string, HostTarget | Error>();

  constructor(
    private readonly fleet: FleetFile,
    private readonly options: PullRequestRunOptions,
  ) {
    this.hosts = new CodeHosts(options);
  }

  /**
   * Resolves every repository's host and project (a local repository's from its origin remote),
   * and refuses to start when a token they need is missing: nothing is pushed for nothing.
   */
  async prepare(repos: readonly FleetRepo[], concurrency: number): Promise<void> {
    await mapPool(repos, concurrency, async (repo) => {
      try {
        const gitUrl =
          repo.kind === 'url'
            ? repo.url
            : repo.host && repo.project
              ? undefined
              : await originUrl(repo.path as string, this.options.git);
        this.targets.set(
          repo.repository,
          resolveHostTarget(repo, gitUrl, this.fleet.pullRequests.hosts),
        );
      } catch (error) {
        this.targets.set(repo.repository, error as Error);
      }
    });
    const resolved = [...this.targets.values()].filter(
      (target): target is HostTarget => !(target instanceof Error),
    );
    const missing = this.hosts.missingTokens(resolved);
    if (missing.length > 0) {
      throw new CachedDeployError(
        'USAGE',
        missing
          .map(
            ({ name, hosts }) =>
              `${name} is not set: the pull requests on ${[...hosts].join(', ')} need a token in it`,
          )
          .join('; '),
      );
    }
  }

  /** The repository's host and project; throws what `prepare` could not resolve. */
  targetFor(repo: FleetRepo): HostTarget {
    const target = this.targets.get(repo.repository);
    if (target === undefined) {
      throw new CachedDeployError('IO', 'its code host was not resolved (a bug)');
    }
    if (target instanceof Error) throw target;
    return target;
  }

  /**
   * Brings the repository's pull request in line with `diff`: what its branch changes against its
   * base (undefined: nothing, the repository is in sync). `result` is its status after the branch
   * was written and pushed; `base` names the branch a new pull request targets (only asked when
   * one is opened).
   */
  async reconcile(
    repo: FleetRepo,
    result: RepoResult,
    diff: RepoDiff | undefined,
    base: () => Promise<string>,
  ): Promise<RepoResult> {
    if (result.status === 'conflict' || result.status === 'error') return result;
    let target: HostTarget | undefined;
    try {
      target = this.targetFor(repo);
      const host = await this.hosts.get(target);
      // A diff: the branch changes something, so a pull request is wanted.
      const wanted = diff ? await this.content(repo, diff, host) : undefined;
      const outcome = wanted
        ? await this.ensure(host, target, wanted, base)
        : await this.closeIfOpen(host, target);
      return {
        ...result,
        message: joinMessage(result.message, describe(outcome)),
        pullRequest: outcome,
      };
    } catch (error) {
      return {
        ...result,
        status: 'error',
        message: joinMessage(result.message, `pull request: ${errorMessage(error)}`),
        ...(target ? { pullRequest: none(target) } : {}),
      };
    }
  }

  private async content(
    repo: FleetRepo,
    diff: RepoDiff,
    host: CodeHost,
  ): Promise<PullRequestContent> {
    const { formatMarkdown } = await import('../diff/format.js');
    const settings = this.fleet.pullRequests;
    return {
      // The versions of the diff: the base's (a continued branch may be on the new one already).
      title: pullRequestTitle(settings.title, repo, diff),
      body: formatMarkdown([diff], { maxBytes: host.bodyLimit }),
      labels: settings.labels,
      reviewers: settings.reviewers,
      assignees: settings.assignees,
      draft: settings.draft,
    };
  }

  private async ensure(
    host: CodeHost,
    target: HostTarget,
    wanted: PullRequestContent,
    base: () => Promise<string>,
  ): Promise<PullRequestOutcome> {
    const branch = this.options.branch;
    let existing = await host.findPullRequest(target.project, branch, { state: 'open' });
    if (!existing) {
      try {
        const created = await host.openPullRequest(target.project, {
          ...wanted,
          head: branch,
          base: await base(),
        });
        return outcome('opened', target, created);
      } catch (error) {
        if (!(error instanceof PullRequestExistsError)) throw error;
        existing = await host.findPullRequest(target.project, branch, { state: 'open' });
        if (!existing) {
          throw new CachedDeployError(
            'IO',
            `${host.label}: says a pull request for ${branch} exists, but lists none open`,
          );
        }
      }
    }
    const changes = changesFor(existing, wanted);
    if (Object.keys(changes).length === 0) return outcome('unchanged', target, existing);
    await host.updatePullRequest(target.project, existing, changes);
    return outcome('updated', target, existing);
  }

  private async closeIfOpen(host: CodeHost, target: HostTarget): Promise<PullRequestOutcome> {
    const open = await host.findPullRequest(target.project, this.options.branch, { state: 'open' });
    if (!open) return none(target);
    await host.closePullRequest(target.project, open, closingComment(open, this.fleet.file));
    return outcome('closed', target, open);
  }
}

/** The fleet file's title template (or the commit subject), filled in; one line, bounded. */
export function pullRequestTitle(
  template: string | undefined,
  repo: Pick<FleetRepo, 'repository'>,
  result: Pick<RepoResult, 'generatorBefore' | 'generatorAfter'>,
): string {
  if (template === undefined) return commitSubject(result);
  const values: Record<string, string> = {
    generator: result.generatorAfter,
    previous: result.generatorBefore ?? 'none',
    repository: repo.repository,
  };
  const title = template
    .replace(/\{(\w+)\}/g, (whole, name: string) => values[name] ?? whole)
    .replace(/\s+/g, ' ')
    .trim();
  return title.length > 250 ? `${title.slice(0, 249)}…` : title;
}

/** What to change in `existing` so it says what `wanted` says. */
export function changesFor(existing: PullRequest, wanted: PullRequestContent): PullRequestChanges {
  const changes: PullRequestChanges = {};
  if (existing.title !== wanted.title) changes.title = wanted.title;
  if (normalize(existing.body) !== normalize(wanted.body)) changes.body = wanted.body;
  const has = (list: string[], item: string) =>
    list.some((entry) => entry.toLowerCase() === item.toLowerCase());
  const labels = wanted.labels.filter((label) => !has(existing.labels, label));
  if (labels.length > 0) changes.addLabels = labels;
  const assignees = wanted.assignees.filter((user) => !has(existing.assignees, user));
  if (assignees.length > 0) changes.addAssignees = assignees;
  return changes;
}

function normalize(body: string): string {
  return body.replace(/\r\n/g, '\n').trimEnd();
}

function closingComment(pull: PullRequest, fleetFile: string): string {
  const name = fleetFile.split(/[\\/]/).at(-1) ?? 'fleet.yml';
  return [
    `The generated files on ${code(pull.baseBranch)} are up to date now, so this pull request is no longer needed.`,
    '',
    `Closed by \`create-cached-deploy fleet ${name} --open-pr\`; the next change reopens the review in a new one.`,
  ].join('\n');
}

function outcome(
  action: PullRequestOutcome['action'],
  target: HostTarget,
  pull: PullRequest,
): PullRequestOutcome {
  return { ...none(target), action, number: pull.number, url: pull.url };
}

function none(target: HostTarget): PullRequestOutcome {
  return { action: 'none', kind: target.kind, host: target.label, project: target.project };
}

function describe(outcome: PullRequestOutcome): string {
  const noun = outcome.kind === 'gitlab' ? 'merge request' : 'pull request';
  const which =
    outcome.number === undefined
      ? ''
      : outcome.kind === 'gitlab'
        ? ` !${outcome.number}`
        : ` #${outcome.number}`;
  const url = printable(outcome.url ?? '');
  switch (outcome.action) {
    case 'opened':
      return `opened ${noun}${which} ${url}`;
    case 'updated':
      return `updated ${noun}${which} ${url}`;
    case 'unchanged':
      return `${noun}${which} is up to date ${url}`;
    case 'closed':
      return `closed ${noun}${which} (in sync) ${url}`;
    default:
      return '';
  }
}

function joinMessage(first: string, second: string): string {
  return [first, second].filter((part) => part !== '').join('; ');
}
