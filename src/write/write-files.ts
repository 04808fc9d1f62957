import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CachedDeployError } from '../errors.js';
import type { Plan } from '../plan/plan.js';

/**
 * The only module that writes into a user's repository. All or nothing: every new content is first
 * written to a temporary file beside its target; only when all of them are written are they
 * renamed into place (rename is atomic on one filesystem). A failure before that removes the
 * temporary files and leaves the repository as it was.
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

  const staged: { temp: string; target: string }[] = [];
  const suffix = `.cached-deploy-${process.pid}-${Date.now()}.tmp`;
  try {
    for (const write of writes) {
      const target = join(dir, write.path);
      mkdirSync(dirname(target), { recursive: true });
      const temp = target + suffix;
      staged.push({ temp, target });
      writeFileSync(temp, write.content, { encoding: 'utf8', flag: 'wx' });
    }
  } catch (error) {
    for (const { temp } of staged) rmSync(temp, { force: true });
    throw new CachedDeployError(
      'IO',
      `could not write ${staged.at(-1)?.target ?? dir}: ${(error as Error).message}`,
    );
  }
  for (const { temp, target } of staged) renameSync(temp, target);
  for (const path of deletes) rmSync(join(dir, path), { force: true });
  return { written: writes.map((write) => write.path), deleted: deletes };
}
