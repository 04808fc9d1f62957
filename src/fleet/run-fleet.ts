import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { FleetLayers } from '../config/merge.js';
import { CONFIG_FILE } from '../config/resolve.js';
import type { RepoDiff } from '../diff/report.js';
import { CachedDeployError } from '../errors.js';
import { quoteForMessage } from '../text.js';
import { GENERATOR_VERSION } from '../version.js';
import { writePlan } from '../write/write-files.js';
import { type Evaluation, evaluateRepository } from './evaluate.js';
import { type FleetFile, type FleetRepo, loadFleetFile } from './fleet-file.js';
import {
  BRANCH_PATTERN,
  branchExists,
  checkout,
  cloneDirFor,
  commitPaths,
  currentHead,
  deleteBranch,
  discardPaths,
  fetchRemoteBranch,
  type GitOptions,
  isClean,
  push,
  readUserGitSettings,
  syncClone,
} from './git.js';
import { remoteBaseBranch } from './git-remote.js';
import type { CodeHostsOptions } from './hosts/connect.js';
import {
  classify,
  commitSubject,
  errorOutcome,
  type FleetMode,
  type LocalTask,
  localOutcome,
  type Outcome,
  type RepoResult,
  stateChanged,
  toRepoDiff,
  wroteResult,
} from './local.js';
import { mapPool } from './map-pool.js';
import { type Progress, type RepoStatus, silentProgress } from './progress.js';
import type { PullRequestRun } from './pull-requests.js';
import { WorkerPool } from './worker-pool.js';

/**
 * `create-cached-deploy fleet`: the generate pipeline over every repository of a fleet file.
 *
 *   check   read only; a repository is in-sync, changed (drift), conflict (a generated file edited
 *           by hand) or error (its config, its clone, anything): exit 2 on drift or conflict
 *   diff    the same, keeping every change's content for one review report
 *   write   regenerates each repository (or, with `branch`, commits on a branch per repository,
 *           and with `push` pushes it); a conflict is never overwritten without `force`
 *
 * With `openPr`, each repository's pull request (GitLab: merge request) follows: opened or updated
 * when its branch changes something, closed when the repository is back in sync (pull-requests.ts).
 *
 * One repository failing never stops the others: every error becomes that repository's result.
 * Local repositories need no git at all unless `branch` is given; URL repositories are cloned
 * (or fetched) into the work directory. Everything per repository runs in this process: reading
 * a config, rendering (pure, templates compiled once), and reading the generated files and state.
 */

export type { FileSummary, FleetMode, RepoResult } from './local.js';
export type { RepoStatus } from './progress.js';

export interface FleetOptions {
  mode?: FleetMode;
  /** Overwrite hand-edited generated files (conflicts become updates). */
  force?: boolean;
  /** With `write`: commit on this branch in each repository instead of leaving the files. */
  branch?: string;
  /** With `branch`: push the branch to the repository's `origin`. */
  push?: boolean;
  /**
   * Open, update or close each repository's pull request for `branch` (default: the fleet file's
   * `pullRequests.branch`). With `write` (and `push`): after pushing it; with `check`: for branches
   * already pushed, writing nothing.
   */
  openPr?: boolean;
  /** Tokens (default: this process's environment) and transport policy for `openPr`. */
  hosts?: CodeHostsOptions;
  /** Only the repositories whose last recorded status was `error` or `conflict`. */
  onlyFailed?: boolean;
  /** `i/n` (1-based) or `{ index, count }`: this job's share of the fleet. */
  shard?: string | { index: number; count: number };
  /** Repositories processed at once (default: the fleet file's `concurrency`). */
  concurrency?: number;
  /** Overrides the fleet file's `workDir`. */
  workDir?: string;
  /** Fetch URL repositories that are already cloned (default true). */
  fetch?: boolean;
  /** The generator version written into the files (tests pin it; default this package's). */
  version?: string;
  progress?: Progress;
  /** Environment for git (identity, config isolation). Default: this process's. */
  gitEnv?: NodeJS.ProcessEnv;
  /** Record the results for `onlyFailed` (default true). */
  record?: boolean;
  /**
   * Worker threads that evaluate repositories beside this thread (default 0: all in this one).
   * Measured on 2 CPUs they do not pay: one thread already keeps V8's compiler and garbage
   * collector threads busy on the second core, and each worker loads and warms up on its own
   * (see bench/fleet.ts). For machines with more cores.
   */
  workers?: number;
}

export interface FleetResult {
  mode: FleetMode;
  fleetFile: string;
  generator: string;
  /** Repositories in the fleet file (`results` holds the ones this run selected: shard, only-failed). */
  total: number;
  results: RepoResult[];
  /**
   * With `diff`: one entry per repository, in fleet order; unchanged files are listed without
   * their contents.
   */
  diffs?: RepoDiff[];
  counts: Record<RepoStatus, number>;
  /** 0 ok, 1 any repository errored (or, when writing, had a conflict), 2 drift or changes. */
  exitCode: 0 | 1 | 2;
  /** Where the results were recorded for `--only-failed`. */
  resultsFile: string;
}

/**
 * `<workDir>/last-run.<fleet file name>.json`: one per fleet file, so two fleet files that share
 * a work directory do not overwrite each other's record (and `--only-failed` of one never reads
 * the other's).
 */
export function resultsFileName(fleetFile: string): string {
  return `last-run.${basename(fleetFile).replace(/\.ya?ml$/i, '')}.json`;
}

export async function runFleet(
  fleet: string | FleetFile,
  options: FleetOptions = {},
): Promise<FleetResult> {
  const file = typeof fleet === 'string' ? loadFleetFile(fleet) : fleet;
  const mode = options.mode ?? 'check';
  const version = options.version ?? GENERATOR_VERSION;
  const workDir = options.workDir ?? file.workDir;
  const resultsFile = join(workDir, resultsFileName(file.file));
  const branch = options.branch ?? (options.openPr ? file.pullRequests.branch : undefined);
  checkOptions(file, { ...options, branch }, mode);
  const selected = selectRepositories(file, options, resultsFile);

  const layers: FleetLayers = { defaults: file.defaults, enforce: file.enforce };
  const progress = options.progress ?? silentProgress;
  const workers =
    mode === 'write' && options.branch !== undefined
      ? 0 // evaluation happens between git commands, in this thread
      : (options.workers ?? 0);
  const pool = workers > 0 ? new WorkerPool(workers) : undefined;
  const context: RepoContext = {
    mode,
    version,
    force: Boolean(options.force),
    branch,
    push: Boolean(options.push),
    fetch: options.fetch ?? true,
    workDir,
    // Commits take the user's identity from their own git config, read once: the git processes
    // that run in the repositories read no global config (see git.ts).
    git: {
      env: options.gitEnv,
      ...(mode === 'write' && options.branch !== undefined
        ? { user: await readUserGitSettings(options.gitEnv) }
        : {}),
    },
    fleetName: basename(file.file),
    pool,
    dispatched: 0,
  };
  // With workers, keep enough repositories in flight that none of them waits for the next.
  const concurrency = Math.max(options.concurrency ?? file.concurrency, workers * 2);
  if (options.openPr) {
    try {
      context.pullRequests = await startPullRequests(file, options, branch as string, context);
      await context.pullRequests.prepare(selected, concurrency);
    } catch (error) {
      await pool?.close();
      throw error;
    }
  }
  progress.start(selected.length);
  let outcomes: Outcome[];
  try {
    outcomes = await mapPool(selected, concurrency, async (repo) => {
      const outcome = await processRepository(
        repo,
        { ...layers, overrides: repo.overrides },
        context,
      );
      progress.done(repo.repository, outcome.result.status, outcome.result.message);
      return outcome;
    });
  } finally {
    await pool?.close();
  }
  progress.finish();

  const results = outcomes.map((outcome) => outcome.result);
  const counts: Record<RepoStatus, number> = { 'in-sync': 0, changed: 0, conflict: 0, error: 0 };
  for (const result of results) counts[result.status]++;
  if (options.record ?? true) recordResults(resultsFile, file, results, mode, version);
  return {
    mode,
    fleetFile: file.file,
    generator: version,
    total: file.repos.length,
    results,
    ...(mode === 'diff' ? { diffs: outcomes.map((outcome) => outcome.diff as RepoDiff) } : {}),
    counts,
    exitCode: exitCodeFor(results, mode),
    resultsFile,
  };
}

export function exitCodeFor(results: RepoResult[], mode: FleetMode): 0 | 1 | 2 {
  // As `generate`: writing, a conflict is a failure; checking, it is drift.
  if (results.some((r) => r.status === 'error' || (mode === 'write' && r.status === 'conflict'))) {
    return 1;
  }
  if (mode !== 'write' && results.some((r) => r.status !== 'in-sync')) return 2;
  return 0;
}

/** The repositories a run takes: `--only-failed` (from the results record), then `--shard`. */
export function selectRepositories(
  file: FleetFile,
  options: Pick<FleetOptions, 'onlyFailed' | 'shard'>,
  resultsFile: string,
): FleetRepo[] {
  let selected = file.repos;
  if (options.onlyFailed) {
    const failed = readFailed(resultsFile);
    selected = selected.filter((repo) => failed.has(repo.repository));
  }
  if (options.shard !== undefined) {
    const shard = parseShard(options.shard);
    selected = selected.filter((repo) => shardOf(repo.repository, shard.count) === shard.index - 1);
  }
  return selected;
}

async function startPullRequests(
  file: FleetFile,
  options: FleetOptions,
  branch: string,
  context: RepoContext,
): Promise<PullRequestRun> {
  // Only --open-pr loads the pull request code (and, through it, the hosts' clients).
  const { PullRequestRun } = await import('./pull-requests.js');
  const interval = file.pullRequests.writeIntervalMs;
  return new PullRequestRun(file, {
    branch,
    git: context.git,
    ...(options.hosts?.env ? { env: options.hosts.env } : {}),
    policy: {
      ...(interval !== undefined ? { writeIntervalMs: interval } : {}),
      ...options.hosts?.policy,
    },
  });
}

function checkOptions(file: FleetFile, options: FleetOptions, mode: FleetMode): void {
  const usage = (message: string) => new CachedDeployError('USAGE', message);
  if (options.openPr) {
    if (mode === 'diff') throw usage('--open-pr goes with --write (and --push) or --check');
    if (options.branch === undefined) {
      throw usage('--open-pr needs --branch NAME (or pullRequests.branch in the fleet file)');
    }
    if (mode === 'write' && !options.push) {
      throw usage('--open-pr with --write needs --push (the pull request is of the pushed branch)');
    }
    if (mode === 'check' && options.push) throw usage('--push only goes with --write');
  }
  if (options.branch !== undefined) {
    if (mode !== 'write' && !options.openPr) throw usage('--branch only goes with --write');
    if (!BRANCH_PATTERN.test(options.branch)) {
      throw usage(`--branch: ${quoteForMessage(options.branch)} is not a valid git branch name`);
    }
  }
  if (options.push && options.branch === undefined) throw usage('--push needs --branch NAME');
  if (
    mode === 'write' &&
    options.branch === undefined &&
    file.repos.some((r) => r.kind === 'url')
  ) {
    throw usage(
      '--write needs --branch NAME when the fleet has url repositories (a write into the work directory clone would be lost)',
    );
  }
  const concurrency = options.concurrency;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw usage(`--concurrency: ${concurrency} is not a positive integer`);
  }
}

/** `i/n` with 1 <= i <= n. */
export function parseShard(shard: string | { index: number; count: number }): {
  index: number;
  count: number;
} {
  const parsed =
    typeof shard === 'string'
      ? (() => {
          const match = /^(\d+)\/(\d+)$/.exec(shard.trim());
          return match ? { index: Number(match[1]), count: Number(match[2]) } : undefined;
        })()
      : shard;
  if (
    !parsed ||
    !Number.isInteger(parsed.index) ||
    !Number.isInteger(parsed.count) ||
    parsed.count < 1 ||
    parsed.index < 1 ||
    parsed.index > parsed.count
  ) {
    throw new CachedDeployError(
      'USAGE',
      `--shard: ${quoteForMessage(typeof shard === 'string' ? shard : `${shard.index}/${shard.count}`)} is not i/n with 1 <= i <= n (e.g. 2/4)`,
    );
  }
  return parsed;
}

/**
 * The 0-based shard of a repository: a stable hash of its name, so a repository stays in the same
 * shard when others are added or removed, and every job computes the same split on its own.
 */
export function shardOf(repository: string, count: number): number {
  const hash = createHash('sha256').update(repository).digest();
  return hash.readUInt32BE(0) % count;
}

interface RepoContext {
  mode: FleetMode;
  version: string;
  force: boolean;
  branch: string | undefined;
  push: boolean;
  fetch: boolean;
  workDir: string;
  git: GitOptions;
  fleetName: string;
  pool: WorkerPool | undefined;
  dispatched: number;
  pullRequests?: PullRequestRun;
}

async function processRepository(
  repo: FleetRepo,
  layers: FleetLayers,
  context: RepoContext,
): Promise<Outcome> {
  let dir: string | undefined;
  const reviews = context.pullRequests;
  try {
    // A repository whose pull requests have nowhere to go is not cloned, written or pushed.
    reviews?.targetFor(repo);
    dir = await prepare(repo, context);
    if (context.mode === 'write' && context.branch !== undefined) {
      if (reviews) {
        return {
          result: await writeForReview(repo, dir, layers, context, context.branch, reviews),
        };
      }
      return { result: await writeOnBranch(repo, dir, layers, context, context.branch) };
    }
    const task: LocalTask = {
      repo,
      dir,
      layers,
      // --open-pr without --write: the diff is the pull request's body.
      mode: reviews ? 'diff' : context.mode,
      version: context.version,
      force: context.force,
    };
    // With workers, this thread takes its share too: every (workers + 1)-th repository.
    const here = !context.pool || context.dispatched++ % (context.pool.size + 1) === 0;
    const outcome = here ? localOutcome(task) : await (context.pool as WorkerPool).run(task);
    if (!reviews) return outcome;
    const checked = outcome.result;
    const base = baseBranchOf(repo, dir, context);
    return {
      result: await reviews.reconcile(
        repo,
        { ...checked, branch: context.branch },
        checked.status === 'changed' ? outcome.diff : undefined,
        base,
      ),
    };
  } catch (error) {
    return errorOutcome(repo, context.mode, context.version, error, dir);
  }
}

/**
 * git for one repository: the file transport only where the fleet file itself names a local
 * repository (a path, whose origin may be a local path too, or a file:// URL).
 */
function gitOptionsFor(repo: FleetRepo, context: RepoContext): GitOptions {
  const allowFile = repo.kind === 'path' || /^file:\/\//i.test(repo.url ?? '');
  return { ...context.git, allowFile };
}

async function prepare(repo: FleetRepo, context: RepoContext): Promise<string> {
  if (repo.kind === 'url') {
    const url = repo.url as string;
    const dir = cloneDirFor(context.workDir, url, repo.ref);
    if (context.fetch || !isDirectory(join(dir, '.git'))) {
      await syncClone(dir, url, repo.ref, gitOptionsFor(repo, context));
    }
    return dir;
  }
  const dir = repo.path as string;
  if (!isDirectory(dir)) throw new CachedDeployError('IO', `${dir}: no such directory`);
  return dir;
}

/**
 * `--write --branch B --push --open-pr`: the base (the url repository's fetched ref, the branch a
 * local repository is on) decides whether a pull request is needed: in sync, no branch work at
 * all and an open pull request is closed; otherwise the branch is written and pushed as without
 * --open-pr, and the pull request says what the branch changes against the base.
 */
async function writeForReview(
  repo: FleetRepo,
  dir: string,
  layers: FleetLayers,
  context: RepoContext,
  branch: string,
  reviews: PullRequestRun,
): Promise<RepoResult> {
  const base = baseBranchOf(repo, dir, context);
  const evaluation = evaluateRepository(dir, layers, context);
  const atBase = { ...classify(repo, dir, evaluation, context.version), branch };
  if (atBase.status === 'in-sync') return reviews.reconcile(repo, atBase, undefined, base);
  const diff = atBase.status === 'changed' ? toRepoDiff(atBase, evaluation) : undefined;
  const result = await writeOnBranch(repo, dir, layers, context, branch);
  return reviews.reconcile(repo, result, diff, base);
}

/**
 * The branch a new pull request targets, asked only when one is opened (a git process each: most
 * runs open none): a local repository's current branch (the run puts it back on that branch after
 * writing), a url repository's ref or default branch (`git ls-remote`).
 */
function baseBranchOf(repo: FleetRepo, dir: string, context: RepoContext): () => Promise<string> {
  if (repo.kind === 'url') {
    return () => remoteBaseBranch(dir, repo.ref, gitOptionsFor(repo, context));
  }
  return async () => {
    let head: string;
    try {
      head = await currentHead(dir, context.git);
    } catch {
      throw new CachedDeployError('IO', 'cannot tell the branch to target: not a git repository');
    }
    if (head === context.branch) {
      throw new CachedDeployError(
        'USAGE',
        `it is on ${head}, the pull request's own branch: check out the branch it should target`,
      );
    }
    if (/^[0-9a-f]{40,64}$/.test(head)) {
      throw new CachedDeployError(
        'USAGE',
        'its HEAD is detached: check out the branch the pull request should target',
      );
    }
    return head;
  };
}

async function writeOnBranch(
  repo: FleetRepo,
  dir: string,
  layers: FleetLayers,
  context: RepoContext,
  branch: string,
): Promise<RepoResult> {
  const git = gitOptionsFor(repo, context);
  if (!(await isClean(dir, git))) {
    throw new CachedDeployError(
      'IO',
      'the working tree has uncommitted changes; commit or stash them first (--branch switches branches)',
    );
  }
  const original = await currentHead(dir, git);
  let onBranch = original === branch;
  let existed = onBranch;
  /** Created by this run: deleted again unless it gets a commit. */
  let created = false;
  /** Files written and not (yet) committed: put back if anything fails. */
  let pending: string[] = [];
  try {
    if (repo.kind === 'url') {
      // The remote's branch is the truth (a previous run pushed it; someone may have added to it).
      // A branch of that name left in the clone by an earlier run is not: the remote's may have
      // been merged and deleted since, and it would be continued (and pushed) from a stale base.
      if (await fetchRemoteBranch(dir, branch, git)) {
        await checkout(dir, ['-B', branch, `refs/remotes/origin/${branch}`], git);
        onBranch = existed = true;
      }
    } else if (!onBranch && (await branchExists(dir, `refs/heads/${branch}`, git))) {
      await checkout(dir, [branch], git);
      onBranch = existed = true;
    }
    const evaluation = evaluateRepository(dir, layers, context);
    const result = { ...classify(repo, dir, evaluation, context.version), branch };
    if (result.status === 'conflict') return result;
    if (result.status === 'in-sync' && !stateChanged(evaluation)) {
      if (existed && context.push) {
        await push(dir, branch, git);
        return { ...result, message: `branch ${branch} is up to date (pushed)`, pushed: true };
      }
      return { ...result, message: existed ? `branch ${branch} is up to date` : '' };
    }
    if (!onBranch) {
      // -B for a url repository: it replaces a stale local branch of that name (see above).
      await checkout(dir, [repo.kind === 'url' ? '-B' : '-b', branch], git);
      onBranch = created = true;
    }
    const paths = [...result.changes.map((change) => change.path), evaluation.plan.state.path];
    pending = paths;
    writePlan(dir, evaluation.plan);
    const commit = await commitPaths(
      dir,
      paths,
      commitMessage(result, evaluation, context.fleetName),
      git,
    );
    pending = [];
    created = false;
    if (context.push) await push(dir, branch, git);
    const written = wroteResult(result, evaluation);
    return {
      ...written,
      commit,
      pushed: context.push,
      message: `committed ${commit.slice(0, 7)} on ${branch}${context.push ? ' and pushed it' : ''}: ${written.message}`,
    };
  } finally {
    // The tree was clean before this run wrote into it: what is left uncommitted is ours alone, and
    // must not be carried back onto the branch the repository was on.
    if (pending.length > 0) await discardPaths(dir, pending, git);
    if (onBranch && original !== branch) await checkout(dir, [original], git);
    if (created) await deleteBranch(dir, branch, git);
  }
}

/** A conventional commit naming the generator version and every file it changed. */
export function commitMessage(
  result: Pick<RepoResult, 'generatorBefore' | 'generatorAfter' | 'changes'>,
  evaluation: Pick<Evaluation, 'plan'>,
  fleetName: string,
): { subject: string; body: string } {
  const after = result.generatorAfter;
  const before = result.generatorBefore;
  const subject = commitSubject(result);
  const lines = result.changes.map((change) => `- ${change.action} ${change.path}`);
  if (lines.length === 0) lines.push(`- record ${evaluation.plan.state.path}`);
  const body = [
    `Generator: ${before ?? 'none'} -> ${after}`,
    '',
    ...lines,
    '',
    `Written by \`create-cached-deploy fleet ${fleetName} --write\`. Change ${CONFIG_FILE} or the`,
    'fleet file and regenerate; do not edit the generated files.',
  ].join('\n');
  return { subject, body };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// --- the record for --only-failed ----------------------------------------------------------

interface RecordedRun {
  formatVersion: 1;
  fleetFile: string;
  updatedAt: string;
  repositories: Record<
    string,
    {
      status: RepoStatus;
      message: string;
      mode: FleetMode;
      generator: string;
      at: string;
      pullRequest?: RepoResult['pullRequest'];
    }
  >;
}

/**
 * Updates the fleet file's results record in the work directory: every repository this run processed gets its new status;
 * the others (another shard's, or skipped by --only-failed) keep theirs. Repositories no longer
 * in the fleet file are dropped. Written atomically (temporary file, then rename).
 */
function recordResults(
  file: string,
  fleet: FleetFile,
  results: RepoResult[],
  mode: FleetMode,
  version: string,
): void {
  const previous = readRecord(file);
  const at = new Date().toISOString();
  const repositories: RecordedRun['repositories'] = {};
  const now = new Map(results.map((result) => [result.repository, result]));
  for (const repo of fleet.repos) {
    const result = now.get(repo.repository);
    const before = previous?.repositories[repo.repository];
    if (result) {
      repositories[repo.repository] = {
        status: result.status,
        message: result.message,
        mode,
        generator: version,
        at,
        ...(result.pullRequest ? { pullRequest: result.pullRequest } : {}),
      };
    } else if (before) {
      repositories[repo.repository] = before;
    }
  }
  const record: RecordedRun = {
    formatVersion: 1,
    fleetFile: fleet.file,
    updatedAt: at,
    repositories,
  };
  mkdirSync(join(file, '..'), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(temp, file);
}

function readRecord(file: string): RecordedRun | undefined {
  try {
    const value = JSON.parse(readFileSync(file, 'utf8')) as RecordedRun;
    return value?.formatVersion === 1 && typeof value.repositories === 'object' ? value : undefined;
  } catch {
    return undefined;
  }
}

function readFailed(file: string): Set<string> {
  const record = readRecord(file);
  if (!record) {
    throw new CachedDeployError(
      'USAGE',
      `--only-failed: no previous run recorded at ${file} (run the fleet once without it)`,
    );
  }
  return new Set(
    Object.entries(record.repositories)
      .filter(([, entry]) => entry.status === 'error' || entry.status === 'conflict')
      .map(([repository]) => repository),
  );
}
