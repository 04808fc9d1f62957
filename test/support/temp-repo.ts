/**
 * Fixtures for tests that run against a real repository on disk: a temporary git repository made
 * from one of examples/, a runner for the built CLI, and a snapshot of every file so a test can
 * prove that a failed run wrote nothing.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

/** The project root (where package.json, bin/ and examples/ live). */
export const PROJECT_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
export const CLI_BIN = join(PROJECT_ROOT, 'bin', 'create-cached-deploy.js');

/** git, isolated from the machine's global and system configuration. */
const GIT_ENV: NodeJS.ProcessEnv = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
};

/**
 * The environment the CLI runs in: no AWS region to detect (so tests decide it) and isolated git.
 * stdin is a pipe, so the CLI sees no TTY and never prompts.
 */
function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...GIT_ENV, NO_COLOR: '1', ...extra };
  delete env.AWS_REGION;
  delete env.AWS_DEFAULT_REGION;
  delete env.FORCE_COLOR;
  for (const [key, value] of Object.entries(extra)) if (value === undefined) delete env[key];
  return env;
}

export function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: cliEnv(),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * A fresh temporary directory, removed when the current test finishes. Call it inside a test (it
 * registers the cleanup with `onTestFinished`).
 */
export function createTempDir(prefix = 'cached-deploy-test-'): string {
  // realpath: on some systems tmpdir() is itself a symlink, and the CLI resolves symlinks.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface TempRepoOptions {
  /** A folder of examples/ (default node-service) or an absolute path to copy. */
  fixture?: string;
  /** The repository name: the directory name and the origin remote's `acme/<name>`. */
  name?: string;
}

/**
 * Copies a fixture service (without its .git) into a new temporary directory, removed when the
 * current test finishes, and makes it a git repository on branch main with origin
 * `git@github.com:acme/<name>.git` and one commit. Returns its path.
 */
export function createTempRepo(options: TempRepoOptions = {}): string {
  return makeRepo(join(createTempDir(), options.name ?? 'node-service'), options);
}

/**
 * The same, for a `beforeAll`: nothing removes it automatically, so call `remove` in `afterAll`.
 * Handy as a template that tests copy with `createTempRepo({ fixture: repo })`.
 */
export function createSuiteTempRepo(options: TempRepoOptions = {}): {
  repo: string;
  remove: () => void;
} {
  const parent = realpathSync(mkdtempSync(join(tmpdir(), 'cached-deploy-test-')));
  const remove = () => rmSync(parent, { recursive: true, force: true });
  try {
    return { repo: makeRepo(join(parent, options.name ?? 'node-service'), options), remove };
  } catch (error) {
    remove();
    throw error;
  }
}

function makeRepo(repo: string, options: TempRepoOptions): string {
  const fixture = options.fixture ?? 'node-service';
  const name = options.name ?? 'node-service';
  const source = fixture.startsWith('/') ? fixture : join(PROJECT_ROOT, 'examples', fixture);
  cpSync(source, repo, {
    recursive: true,
    filter: (path) => !/(^|[\\/])(node_modules|\.git)$/.test(path),
  });
  git(repo, ['init', '-q', '-b', 'main']);
  git(repo, ['remote', 'add', 'origin', `git@github.com:acme/${name}.git`]);
  commitAll(repo, 'fixture');
  return repo;
}

export function commitAll(repo: string, message: string): void {
  git(repo, ['add', '-A']);
  git(repo, ['-c', 'commit.gpgsign=false', 'commit', '-q', '--allow-empty', '-m', message]);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (`node bin/create-cached-deploy.js ...args`) in `cwd`, without a TTY. */
export function runCli(
  cwd: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      process.execPath,
      [CLI_BIN, ...args],
      { cwd, env: cliEnv(options.env), encoding: 'utf8', timeout: options.timeoutMs ?? 20_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          // Not an exit code: the process could not start, or was killed (timeout).
          reject(new Error(`${CLI_BIN} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
          return;
        }
        resolvePromise({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
    child.stdin?.end();
  });
}

/**
 * Every entry under `dir` (relative POSIX path → content), so two snapshots compare equal only if
 * no file was created, changed or deleted. Directories appear as `path/` → '<dir>' (a run that
 * only created an empty folder still shows), symlinks as `path` → '-> target'. `.git` is left
 * out unless asked for: the CLI only ever reads it.
 */
export function snapshotDir(
  dir: string,
  options: { includeGit?: boolean } = {},
): Record<string, string> {
  const snapshot: Record<string, string> = {};
  const walk = (current: string) => {
    const entries = readdirSync(current, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
    for (const entry of entries) {
      const full = join(current, entry.name);
      const path = relative(dir, full).split('\\').join('/');
      if (entry.isSymbolicLink()) {
        snapshot[path] = `-> ${readlinkSync(full)}`;
      } else if (entry.isDirectory()) {
        if (entry.name === '.git' && !options.includeGit) continue;
        snapshot[`${path}/`] = '<dir>';
        walk(full);
      } else if (entry.isFile()) {
        snapshot[path] = readFileSync(full, 'utf8');
      }
    }
  };
  walk(dir);
  return snapshot;
}

/** The paths in `after` that are new or changed compared to `before`, and those removed. */
export function snapshotChanges(
  before: Record<string, string>,
  after: Record<string, string>,
): { added: string[]; changed: string[]; removed: string[] } {
  return {
    added: Object.keys(after).filter((path) => !(path in before)),
    changed: Object.keys(after).filter((path) => path in before && before[path] !== after[path]),
    removed: Object.keys(before).filter((path) => !(path in after)),
  };
}
