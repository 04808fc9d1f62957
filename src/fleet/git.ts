import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { devNull, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CachedDeployError } from '../errors.js';

/**
 * The few git operations a fleet needs, each one `git` child process (asynchronous, so the pool
 * can run several repositories' network operations at once). Never a shell: arguments are passed
 * as a list and URLs and refs were validated in fleet-file.ts (none can start with `-`).
 *
 * The repositories are not ours, so neither is their git config: every git process runs hardened
 * (`hardenedGit`). No system or global config (read once, before, for the commit identity and
 * credential helpers only); hooks, fsmonitor, commit signing and the repository's own ssh command,
 * askpass, credential helpers and upload/receive-pack commands are switched off on the command line
 * (which beats the repository's config); transports are limited to https and ssh, plus file only
 * for repositories the fleet file names by a local path or file:// URL (GIT_ALLOW_PROTOCOL beats
 * any protocol.*.allow a repository sets, so `ext::` never runs a command); no prompts. What stays
 * the repository's: filter drivers its config defines for its own .gitattributes, and
 * core.worktree.
 */

export interface GitOptions {
  /** Environment for git (default: this process's). Hardened before use. */
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Allow the file transport (a local repository, or a file:// URL in the fleet file). */
  allowFile?: boolean;
  /** What `readUserGitSettings` found; without it, commits use the default identity. */
  user?: UserGitSettings;
}

/** The only settings taken from the user's own (global) git config: who commits, how to log in. */
export interface UserGitSettings {
  name: string;
  email: string;
  credentialHelpers: string[];
}

export const DEFAULT_IDENTITY = {
  name: 'create-cached-deploy',
  email: 'create-cached-deploy@noreply.invalid',
};

/**
 * Reads user.name, user.email and credential.helper from the user's global git config, once per
 * run and outside any repository, so the hardened git processes can commit as the user and push
 * with the user's credentials without reading that config themselves.
 */
export async function readUserGitSettings(
  env: NodeJS.ProcessEnv = process.env,
): Promise<UserGitSettings> {
  const get = async (key: string, all = false) => {
    try {
      const out = await run(tmpdir(), ['config', '--global', all ? '--get-all' : '--get', key], {
        env: withoutRepository(env),
        timeoutMs: 10_000,
      });
      return out.split('\n').filter((line) => line !== '');
    } catch {
      return [];
    }
  };
  const [name, email, credentialHelpers] = await Promise.all([
    get('user.name'),
    get('user.email'),
    get('credential.helper', true),
  ]);
  return {
    name: name[0] ?? DEFAULT_IDENTITY.name,
    email: email[0] ?? DEFAULT_IDENTITY.email,
    credentialHelpers,
  };
}

/** The git command line and environment every fleet git process runs with. */
export function hardenedGit(
  args: string[],
  options: GitOptions,
): { args: string[]; env: NodeJS.ProcessEnv } {
  const user = options.user ?? { ...DEFAULT_IDENTITY, credentialHelpers: [] };
  const settings: [string, string][] = [
    ['core.hooksPath', devNull],
    ['core.fsmonitor', 'false'],
    ['core.askPass', ''],
    ['core.sshCommand', 'ssh'],
    ['commit.gpgSign', 'false'],
    ['tag.gpgSign', 'false'],
    ['submodule.recurse', 'false'],
    ['remote.origin.uploadpack', 'git-upload-pack'],
    ['remote.origin.receivepack', 'git-receive-pack'],
    ['protocol.allow', 'never'],
    ['protocol.https.allow', 'always'],
    ['protocol.ssh.allow', 'always'],
    ['protocol.file.allow', options.allowFile ? 'always' : 'never'],
    ['user.name', user.name],
    ['user.email', user.email],
    // An empty value resets the list (the repository's helpers), then the user's own.
    ['credential.helper', ''],
    ...user.credentialHelpers.map((helper): [string, string] => ['credential.helper', helper]),
  ];
  const env: NodeJS.ProcessEnv = {
    ...withoutRepository(options.env ?? process.env),
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: devNull,
    GIT_ALLOW_PROTOCOL: options.allowFile ? 'https:ssh:file' : 'https:ssh',
    // Never wait for a password prompt nobody will answer, nor run a program to ask for one.
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    SSH_ASKPASS_REQUIRE: 'never',
  };
  delete env.SSH_ASKPASS;
  return { args: [...settings.flatMap(([key, value]) => ['-c', `${key}=${value}`]), ...args], env };
}

/**
 * The caller's environment without what would point git at another repository or inject config
 * (set, say, when the fleet runs from inside a git hook).
 */
function withoutRepository(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const clean = { ...env };
  for (const key of [
    'GIT_DIR',
    'GIT_WORK_TREE',
    'GIT_INDEX_FILE',
    'GIT_OBJECT_DIRECTORY',
    'GIT_ALTERNATE_OBJECT_DIRECTORIES',
    'GIT_COMMON_DIR',
    'GIT_NAMESPACE',
    'GIT_CONFIG',
    'GIT_CONFIG_PARAMETERS',
  ]) {
    delete clean[key];
  }
  return clean;
}

export async function git(cwd: string, args: string[], options: GitOptions = {}): Promise<string> {
  const hardened = hardenedGit(args, options);
  return run(cwd, hardened.args, { ...options, env: hardened.env }, args[0]);
}

function run(
  cwd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number },
  command = args[0],
): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(
      'git',
      args,
      {
        cwd,
        env: options.env,
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
          reject(new CachedDeployError('IO', `git ${command} failed: ${reason}`));
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
