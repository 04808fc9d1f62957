import { CONFIG_FILE, type ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { hasGeneratedShape } from '../render/layout.js';
import type { GeneratedFile } from '../render/render-files.js';
import { RepoFiles, repoPathProblem, UnsafePathError } from '../repo-files.js';
import { quoteForMessage } from '../text.js';
import { GENERATOR_VERSION } from '../version.js';
import { conflictReason, type Plan, planChanges } from './plan.js';
import { type GeneratorState, parseState } from './state.js';

/**
 * The plan stage's I/O twin of `planChanges`: reads what a repository holds at the generated paths
 * and its state file, then plans. generate, init, diff and fleet all plan through here, and read
 * the repository only through `RepoFiles` (regular files inside it, never through a symlink).
 */
export function planForConfig(
  dir: string,
  config: ResolvedConfig,
  desired: GeneratedFile[],
  options: { force?: boolean; version?: string; repo?: RepoFiles } = {},
): Plan {
  checkOutputPaths(config, desired);
  const repo = options.repo ?? new RepoFiles(dir);
  const stateText = repo.read(config.paths.stateFile);
  const previousState =
    stateText === undefined ? undefined : parseState(stateText, config.paths.stateFile);
  if (previousState) checkStateKeys(repo, config, desired, previousState);
  return planChanges({
    desired,
    readFile: (path) => repo.read(path),
    previousState,
    previousStateText: stateText,
    statePath: config.paths.stateFile,
    generatorVersion: options.version ?? GENERATOR_VERSION,
    force: options.force,
  });
}

/**
 * The state file's keys are data from the repository, never a source of paths on their own: before
 * anything else is read, every key that is not a file generated now must be one this tool could
 * have generated under some layout (render/layout.ts `hasGeneratedShape`: a policy file by its
 * fixed name, a `*.hcl` bake file, a `*.mjs` prune script, a GitHub workflow or a GitLab pipeline
 * file), a clean path inside the repository that is not `.git`, cached-deploy.yml, the state
 * file or a Dockerfile, reached through real directories only, and a regular file if it exists. Anything else is an error naming the state
 * file and the key, and nothing is read, written or deleted. The plan then deletes such an orphan
 * only if it also carries our marker and its recorded hash (see plan.ts).
 */
function checkStateKeys(
  repo: RepoFiles,
  config: ResolvedConfig,
  desired: GeneratedFile[],
  state: GeneratorState,
): void {
  const source = config.paths.stateFile;
  const desiredPaths = new Set(desired.map((file) => file.path));
  const inputs = new Set(config.images.map((image) => image.dockerfile));
  const refuse = (key: string, why: string) =>
    new CachedDeployError(
      'STATE_INVALID',
      `${source}: ${quoteForMessage(key)} ${why} (remove that entry, or delete the state file to treat every existing file as hand-written)`,
    );
  for (const key of Object.keys(state.files)) {
    if (desiredPaths.has(key)) continue;
    const problem = repoPathProblem(key);
    if (problem === 'points outside the repository') throw refuse(key, problem);
    if (
      problem !== undefined ||
      !/^[A-Za-z0-9._@+/ -]+$/.test(key) ||
      key === CONFIG_FILE ||
      key === source ||
      inputs.has(key) ||
      !hasGeneratedShape(key)
    ) {
      throw refuse(key, 'is not a file create-cached-deploy generates');
    }
    try {
      repo.check(key);
    } catch (error) {
      if (error instanceof UnsafePathError) throw refuse(key, error.why);
      throw error;
    }
  }
}

/** A conflict stops the whole run, with every conflicting file's diff, before anything is written. */
export async function throwOnConflicts(plan: Plan): Promise<void> {
  const conflicting = plan.changes.filter((change) => change.action === 'conflict');
  if (conflicting.length === 0) return;
  const { unifiedDiff } = await import('./diff.js');
  const first = conflicting[0];
  const why = first ? conflictReason(first).sentence : '';
  const others = conflicting.length > 1 ? ` (and ${conflicting.length - 1} more)` : '';
  throw new CachedDeployError(
    'CONFLICT',
    `${first?.path} ${why}${others}: nothing was written. Move your change into ${CONFIG_FILE}, or rerun with --force to overwrite`,
    conflicting.map((change) => unifiedDiff(change)).join('\n'),
  );
}

function checkOutputPaths(config: ResolvedConfig, desired: GeneratedFile[]): void {
  const reserved = new Map([
    [CONFIG_FILE, CONFIG_FILE],
    [config.paths.stateFile, 'paths.stateFile'],
  ]);
  const seen = new Map<string, string>();
  for (const file of desired) {
    const clash = reserved.get(file.path) ?? seen.get(file.path);
    if (clash) {
      throw new CachedDeployError(
        'CONFIG_INVALID',
        `${CONFIG_FILE}: two generated files would both be written to "${file.path}" (check workflow.file and paths.*)`,
      );
    }
    seen.set(file.path, file.path);
  }
}
