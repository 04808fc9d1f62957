import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CachedDeployError } from '../errors.js';

/**
 * The few git operations a fleet needs, each one `git` child process (asynchronous, so the pool
 * can run several repositories' network operations at once). Never a shell: arguments are passed
 * as a list and URLs and refs were validated in fleet-file.ts (none can start with `-`).
 */

export interface GitOptions {
  /** Environment for git (default: this process's, with prompts disabled). */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

export async function git(cwd: string, args: string[], options: GitOptions = {}): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      'git',
      args,
      {
        cwd,
        // Never wait for a password prompt nobody will answer.
        env: { ...(options.env ?? process.env), GIT_TERMINAL_PROMPT: '0' },
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error) {
          const lines = stderr
            .split('\n')
            .map((line) => line.trim())
            .filter((line) => line !== '' && !line.startsWith('hint:'));
          const reason =
            lines
              .find((line) => /^(?:fatal|error):/.test(line))
              ?.replace(/^(?:fatal|error):\s*/, '') ??
            lines.at(-1) ??
            error.message.split('\n')[0];
          reject(new CachedDeployError('IO', `git ${args[0]} failed: ${reason}`));
          return;
        }
        resolvePromise(stdout);
      },
    );
  });
}

async function succeeds(cwd: string, args: string[], options: GitOptions): Promise<boolean> {
  try {
    await git(cwd, args, options);
    return true;
  } catch {
    return false;
  }
}

/** Where a URL repository is cloned: readable, and unique per url and ref. */
export function cloneDirFor(workDir: string, url: string, ref: string | undefined): string {
  const base =
    url
      .replace(/\.git\/?$/, '')
      .split(/[/:]/)
      .filter(Boolean)
      .at(-1)
      ?.replace(/[^\w.-]+/g, '-')
      .slice(0, 60) || 'repo';
  const hash = createHash('sha256')
    .update(`${url}#${ref ?? ''}`)
    .digest('hex')
    .slice(0, 10);
  return join(workDir, 'repos', `${base}-${hash}`);
}

/**
 * Clones (the first time) or fetches `url` into `dir` and checks out `ref` (default: the remote's
 * HEAD) detached, discarding anything left in the work tree: the clone belongs to the fleet run.
 */
export async function syncClone(
  dir: string,
  url: string,
  ref: string | undefined,
  options: GitOptions,
): Promise<void> {
  const fresh = !existsSync(join(dir, '.git'));
  if (fresh) {
    mkdirSync(dir, { recursive: true });
    await git(dir, ['init', '-q'], options);
    await git(dir, ['remote', 'add', 'origin', url], options);
  }
  try {
    await git(dir, ['fetch', '-q', '--no-tags', 'origin', ref ?? 'HEAD'], options);
  } catch (error) {
    // Never leave an empty clone behind: a later run would take it for a fetched one.
    if (fresh) rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  await git(dir, ['checkout', '-q', '-f', '--detach', 'FETCH_HEAD'], options);
  await git(dir, ['clean', '-q', '-fdx'], options);
}

/** `NAME` if HEAD is on a branch, else the commit (detached). */
export async function currentHead(dir: string, options: GitOptions): Promise<string> {
  try {
    return (await git(dir, ['symbolic-ref', '-q', '--short', 'HEAD'], options)).trim();
  } catch {
    return (await git(dir, ['rev-parse', 'HEAD'], options)).trim();
  }
}

export async function isClean(dir: string, options: GitOptions): Promise<boolean> {
  return (await git(dir, ['status', '--porcelain'], options)).trim() === '';
}

export async function branchExists(dir: string, ref: string, options: GitOptions) {
  return succeeds(dir, ['rev-parse', '--verify', '-q', ref], options);
}

/** Fetches the remote's `branch` into refs/remotes/origin/<branch>; false when it has none. */
export async function fetchRemoteBranch(dir: string, branch: string, options: GitOptions) {
  return succeeds(
    dir,
    ['fetch', '-q', '--no-tags', 'origin', `+refs/heads/${branch}:refs/remotes/origin/${branch}`],
    options,
  );
}

export async function checkout(dir: string, args: string[], options: GitOptions): Promise<void> {
  await git(dir, ['checkout', '-q', ...args], options);
}

/** Stages exactly `paths` (including deletions) and commits them; returns the new commit. */
export async function commitPaths(
  dir: string,
  paths: string[],
  message: { subject: string; body: string },
  options: GitOptions,
): Promise<string> {
  await git(dir, ['add', '-A', '--', ...paths], options);
  await git(
    dir,
    ['commit', '-q', '-m', message.subject, '-m', message.body, '--', ...paths],
    options,
  );
  return (await git(dir, ['rev-parse', 'HEAD'], options)).trim();
}

/**
 * Throws away what a failed `--branch` run left uncommitted: `paths` (the files it wrote) go back to
 * HEAD, and the ones HEAD does not have are removed. Only for a tree that was clean before the run
 * wrote into it, so nothing of the user's is touched.
 */
export async function discardPaths(dir: string, paths: string[], options: GitOptions) {
  await git(dir, ['reset', '-q', '--', ...paths], options);
  const tracked = (await git(dir, ['ls-files', '-z', '--', ...paths], options))
    .split('\0')
    .filter(Boolean);
  if (tracked.length > 0) await git(dir, ['checkout', '-q', '--', ...tracked], options);
  await git(dir, ['clean', '-q', '-f', '--', ...paths], options);
}

/** Deletes a local branch (one this run created and left without a commit of its own). */
export async function deleteBranch(dir: string, branch: string, options: GitOptions) {
  await git(dir, ['branch', '-q', '-D', branch], options);
}

export async function push(dir: string, branch: string, options: GitOptions): Promise<void> {
  await git(dir, ['push', '-q', 'origin', `refs/heads/${branch}:refs/heads/${branch}`], options);
}

/** A name `git checkout -b` accepts and that cannot be read as an option. */
export const BRANCH_PATTERN =
  /^(?!-)(?!.*(?:\.\.|@\{|\/\/|\/\.|\.lock(?:\/|$)))[^\0-\x20\x7f~^:?*[\\]+(?<![./])$/;
