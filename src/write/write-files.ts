import { CachedDeployError } from '../errors.js';
import type { Plan } from '../plan/plan.js';
import { RepoFiles } from '../repo-files.js';

/**
 * The only module that writes into a user's repository, and only through `RepoFiles` (regular
 * files reached through real directories inside the repository: never through a symlink, never
 * into `.git`). All or nothing: every target and every delete is checked first; then every new
 * content is written to a temporary file beside its target; only when all of them are written are
 * they renamed into place (rename is atomic on one filesystem, and replaces a path, never what it
 * points to). A failure before that removes the temporary files and leaves the repository as it
 * was.
 */
export function writePlan(dir: string, plan: Plan): { written: string[]; deleted: string[] } {
  const writes = plan.changes
    .filter((change) => change.action === 'create' || change.action === 'update')
    .map((change) => ({ path: change.path, content: change.after ?? '' }));
  writes.push({ path: plan.state.path, content: plan.state.content });
  const deletes = plan.changes
    .filter((change) => change.action === 'delete')
    .map((change) => change.path);
  if (plan.changes.some((change) => change.action === 'conflict')) {
    throw new CachedDeployError('CONFLICT', 'refusing to apply a plan with conflicts');
  }

  const repo = new RepoFiles(dir);
  for (const path of [...writes.map((write) => write.path), ...deletes]) repo.check(path);

  const staged: { temp: string; target: string }[] = [];
  const suffix = `.cached-deploy-${process.pid}-${Date.now()}.tmp`;
  try {
    for (const write of writes) {
      repo.makeParents(write.path);
      const temp = write.path + suffix;
      staged.push({ temp, target: write.path });
      repo.writeNew(temp, write.content);
    }
  } catch (error) {
    for (const { temp } of staged) {
      try {
        repo.remove(temp);
      } catch {
        // Best effort: the error below is the one to report.
      }
    }
    if (error instanceof CachedDeployError) throw error;
    throw new CachedDeployError(
      'IO',
      `could not write ${staged.at(-1)?.target ?? dir}: ${(error as Error).message}`,
    );
  }
  for (const { temp, target } of staged) repo.replace(temp, target);
  for (const path of deletes) repo.remove(path);
  return { written: writes.map((write) => write.path), deleted: deletes };
}

/**
 * One file replaced in place, through the same checks (init --projen's edit of .projenrc.ts): the
 * new content goes to a temporary file beside it, then is renamed over it.
 */
export function writeRepoFile(dir: string, path: string, content: string): void {
  const repo = new RepoFiles(dir);
  repo.check(path);
  const temp = `${path}.cached-deploy-${process.pid}-${Date.now()}.tmp`;
  repo.writeNew(temp, content);
  repo.replace(temp, path);
}
