import { join } from 'node:path';
import { isMapping, mergeFleetConfig } from '../config/merge.js';
import { parseYamlValue } from '../config/parse-yaml.js';
import { CONFIG_FILE, DEFAULTS } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { parseState } from '../plan/state.js';
import { type FleetFile, type FleetRepo, type HostKind, loadFleetFile } from './fleet-file.js';
import type { GitOptions } from './git.js';
import type { CodeHostsOptions } from './hosts/connect.js';
import type { CheckStatus, CodeHost, PullRequestState, ReviewStatus } from './hosts/host.js';
import { errorMessage } from './local.js';
import { mapPool } from './map-pool.js';
import { PullRequestRun } from './pull-requests.js';
import { resultsFileName, selectRepositories } from './run-fleet.js';

/**
 * `fleet --status`: where each repository's review stands, read from its code host only (no clone,
 * no git credentials, one small request per question), so a dashboard can run it anywhere with a
 * token: the pull request for the branch (the newest, an open one first), its state, review and
 * checks, and the generator version on the default branch (its state file, through the host's
 * contents API). Writes nothing.
 */

export interface StatusOptions {
  /** The head branch (default: the fleet file's `pullRequests.branch`). */
  branch?: string;
  shard?: string | { index: number; count: number };
  concurrency?: number;
  hosts?: CodeHostsOptions;
  gitEnv?: NodeJS.ProcessEnv;
  /** Called as each repository is done (progress). */
  onDone?: (repository: string, state: StatusState, message: string) => void;
}

export type StatusState = PullRequestState | 'none' | 'error';

export interface RepoPullRequestStatus {
  repository: string;
  kind?: HostKind;
  host?: string;
  project?: string;
  /** Undefined: no pull request for the branch. */
  pullRequest?: {
    number: number;
    url: string;
    state: PullRequestState;
    draft: boolean;
    title: string;
    review: ReviewStatus;
    checks: CheckStatus;
  };
  /** On the default branch: the version in its state file; null when it has none. */
  generatorOnDefaultBranch?: string | null;
  error?: string;
}

export interface FleetStatusResult {
  fleetFile: string;
  branch: string;
  /** Repositories in the fleet file (`repositories` holds the ones selected). */
  total: number;
  repositories: RepoPullRequestStatus[];
  counts: Record<StatusState, number>;
  /** 1 any repository errored, 2 any pull request is open, else 0. */
  exitCode: 0 | 1 | 2;
}

export async function runFleetStatus(
  fleet: string | FleetFile,
  options: StatusOptions = {},
): Promise<FleetStatusResult> {
  const file = typeof fleet === 'string' ? loadFleetFile(fleet) : fleet;
  const branch = options.branch ?? file.pullRequests.branch;
  if (branch === undefined) {
    throw new CachedDeployError(
      'USAGE',
      '--status needs --branch NAME (or pullRequests.branch in the fleet file)',
    );
  }
  const selected = selectRepositories(
    file,
    { shard: options.shard },
    join(file.workDir, resultsFileName(file.file)),
  );
  const concurrency = options.concurrency ?? file.concurrency;
  const git: GitOptions = { env: options.gitEnv };
  const run = new PullRequestRun(file, { branch, git, ...options.hosts });
  await run.prepare(selected, concurrency);
  const repositories = await mapPool(selected, concurrency, async (repo) => {
    const status = await repositoryStatus(repo, run, branch, file);
    options.onDone?.(
      repo.repository,
      stateOf(status),
      status.error ?? status.pullRequest?.url ?? '',
    );
    return status;
  });
  const counts: Record<StatusState, number> = { open: 0, merged: 0, closed: 0, none: 0, error: 0 };
  for (const status of repositories) counts[stateOf(status)]++;
  return {
    fleetFile: file.file,
    branch,
    total: file.repos.length,
    repositories,
    counts,
    exitCode: counts.error > 0 ? 1 : counts.open > 0 ? 2 : 0,
  };
}

export function stateOf(status: RepoPullRequestStatus): StatusState {
  if (status.error !== undefined) return 'error';
  return status.pullRequest?.state ?? 'none';
}

async function repositoryStatus(
  repo: FleetRepo,
  run: PullRequestRun,
  branch: string,
  file: FleetFile,
): Promise<RepoPullRequestStatus> {
  const status: RepoPullRequestStatus = { repository: repo.repository };
  try {
    const target = run.targetFor(repo);
    Object.assign(status, { kind: target.kind, host: target.label, project: target.project });
    const host = await run.hosts.get(target);
    const pull = await host.findPullRequest(target.project, branch, { state: 'all' });
    if (pull) {
      const { review, checks } = await host.pullRequestStatus(target.project, pull);
      status.pullRequest = {
        number: pull.number,
        url: pull.url,
        state: pull.state,
        draft: pull.draft,
        title: pull.title,
        review,
        checks,
      };
    }
    status.generatorOnDefaultBranch = await generatorOnDefaultBranch(
      host,
      target.project,
      repo,
      file,
    );
  } catch (error) {
    status.error = errorMessage(error);
  }
  return status;
}

/**
 * The generator version in the state file on the default branch: one request when the state file
 * is where the fleet expects it; when it is not there, the repository's cached-deploy.yml may have
 * moved it (one more request to read it, and one for the file it names).
 */
async function generatorOnDefaultBranch(
  host: CodeHost,
  project: string,
  repo: FleetRepo,
  file: FleetFile,
): Promise<string | null> {
  // Where the fleet's layers (defaults, enforce, overrides) put it, or the default.
  const layers = { defaults: file.defaults, enforce: file.enforce, overrides: repo.overrides };
  const first = statePathOf(mergeFleetConfig({}, layers)) ?? DEFAULTS.paths.stateFile;
  let text = await host.readFileOnDefaultBranch(project, first);
  if (text === undefined) {
    const config = await host.readFileOnDefaultBranch(project, CONFIG_FILE);
    if (config === undefined) return null;
    let own: unknown;
    try {
      own = parseYamlValue(config, CONFIG_FILE);
    } catch {
      return null;
    }
    const moved = statePathOf(mergeFleetConfig(isMapping(own) ? own : {}, layers));
    if (moved === undefined || moved === first) return null;
    text = await host.readFileOnDefaultBranch(project, moved);
    if (text === undefined) return null;
  }
  return parseState(text, `${first} on the default branch`).generator.slice(0, 100);
}

function statePathOf(config: unknown): string | undefined {
  if (!isMapping(config)) return undefined;
  const paths = isMapping(config.paths) ? config.paths : {};
  const path = paths.stateFile;
  // A path from a repository's file: relative, inside the repository.
  return typeof path === 'string' && /^(?!\/)(?!.*(?:^|\/)\.\.(?:\/|$))[^\0\n\r]+$/.test(path)
    ? path
    : undefined;
}
