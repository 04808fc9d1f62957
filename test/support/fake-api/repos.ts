/**
 * What a fake host knows about a repository's git content: its branches, the commit each points
 * at, files on a ref, and merging one branch into another. `BareRepository` reads and writes a
 * real bare repository (the fleet pushes to it as `origin`, so a pull request's head is whatever
 * was pushed); `MemoryRepository` holds branches and files in memory (the bench's thousand
 * repositories, with no git at all).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface RepositorySource {
  readonly defaultBranch: string;
  branchSha(branch: string): Promise<string | undefined>;
  /** The file's text on `ref` (a branch, a commit, or HEAD for the default branch). */
  readFile(ref: string, path: string): Promise<string | undefined>;
  /** Merges `head` into `base` with a merge commit; returns its sha, or undefined on a conflict. */
  merge(base: string, head: string, message: string): Promise<string | undefined>;
}

const GIT_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Fake Host',
  GIT_AUTHOR_EMAIL: 'host@example.com',
  GIT_COMMITTER_NAME: 'Fake Host',
  GIT_COMMITTER_EMAIL: 'host@example.com',
};

export class BareRepository implements RepositorySource {
  constructor(
    readonly path: string,
    readonly defaultBranch = 'main',
  ) {}

  private async git(args: string[]): Promise<string> {
    const { stdout } = await run('git', args, { cwd: this.path, env: GIT_ENV, encoding: 'utf8' });
    return stdout;
  }

  async branchSha(branch: string): Promise<string | undefined> {
    try {
      return (
        await this.git(['rev-parse', '--verify', '-q', `refs/heads/${branch}^{commit}`])
      ).trim();
    } catch {
      return undefined;
    }
  }

  async readFile(ref: string, path: string): Promise<string | undefined> {
    const commit = ref === 'HEAD' ? this.defaultBranch : ref;
    try {
      return await this.git(['show', `${commit}:${path}`]);
    } catch {
      return undefined;
    }
  }

  async merge(base: string, head: string, message: string): Promise<string | undefined> {
    const [baseSha, headSha] = await Promise.all([this.branchSha(base), this.branchSha(head)]);
    if (!baseSha || !headSha) return undefined;
    let tree: string;
    try {
      tree = (await this.git(['merge-tree', '--write-tree', baseSha, headSha])).split(
        '\n',
      )[0] as string;
    } catch {
      return undefined;
    }
    const commit = (
      await this.git(['commit-tree', tree, '-p', baseSha, '-p', headSha, '-m', message])
    ).trim();
    await this.git(['update-ref', `refs/heads/${base}`, commit, baseSha]);
    return commit;
  }
}

export class MemoryRepository implements RepositorySource {
  readonly branches = new Map<string, string>();
  /** branch → path → text */
  readonly files = new Map<string, Map<string, string>>();

  constructor(readonly defaultBranch = 'main') {
    this.setBranch(defaultBranch, {});
  }

  /** Points `branch` at a new (made-up) commit holding `files`. */
  setBranch(branch: string, files: Record<string, string>): string {
    const sha = createHash('sha1')
      .update(`${branch}\0${JSON.stringify(files)}\0${this.branches.size}\0${Math.random()}`)
      .digest('hex');
    this.branches.set(branch, sha);
    this.files.set(branch, new Map(Object.entries(files)));
    return sha;
  }

  async branchSha(branch: string) {
    return this.branches.get(branch);
  }

  async readFile(ref: string, path: string) {
    const branch = ref === 'HEAD' ? this.defaultBranch : ref;
    return this.files.get(branch)?.get(path);
  }

  async merge(base: string, head: string) {
    const files = this.files.get(head);
    if (!files || !this.branches.has(base)) return undefined;
    return this.setBranch(base, Object.fromEntries(files));
  }
}
