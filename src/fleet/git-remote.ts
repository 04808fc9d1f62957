import { CachedDeployError } from '../errors.js';
import { type GitOptions, git } from './git.js';

/**
 * What pull requests need to know about a repository's remote, asked of git (through git.ts's
 * `git()`, so its environment and checks apply): the origin's URL (a local repository's code host)
 * and the branch a pull request targets.
 */

/** The `origin` remote's URL; undefined when the repository has none. */
export async function originUrl(dir: string, options: GitOptions): Promise<string | undefined> {
  try {
    const url = (await git(dir, ['remote', 'get-url', 'origin'], options)).trim();
    return url === '' ? undefined : url;
  } catch {
    return undefined;
  }
}

/**
 * The branch a url repository's pull request targets: its `ref` when that is a branch of the
 * remote, else the remote's default branch (what its HEAD points at). One `git ls-remote`.
 */
export async function remoteBaseBranch(
  dir: string,
  ref: string | undefined,
  options: GitOptions,
): Promise<string> {
  const refs = ref ? [`refs/heads/${ref}`] : [];
  const out = await git(dir, ['ls-remote', '--symref', 'origin', 'HEAD', ...refs], options);
  if (ref && out.split('\n').some((line) => line.endsWith(`\trefs/heads/${ref}`))) return ref;
  const head = /^ref: refs\/heads\/(\S+)\tHEAD$/m.exec(out);
  if (!head?.[1]) {
    throw new CachedDeployError(
      'IO',
      'cannot tell the default branch of origin (its HEAD names no branch)',
    );
  }
  return head[1];
}
