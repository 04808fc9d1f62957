import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_FILE, type ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import type { GeneratedFile } from '../render/render-files.js';
import { GENERATOR_VERSION } from '../version.js';
import { conflictReason, type Plan, planChanges } from './plan.js';
import { parseState } from './state.js';

/**
 * The plan stage's I/O twin of `planChanges`: reads what a repository holds at the generated paths
 * and its state file, then plans. generate, init, diff and fleet all plan through here.
 */
export function planForConfig(
  dir: string,
  config: ResolvedConfig,
  desired: GeneratedFile[],
  options: { force?: boolean; version?: string } = {},
): Plan {
  checkOutputPaths(config, desired);
  const stateText = readRepoText(dir, config.paths.stateFile);
  return planChanges({
    desired,
    readFile: (path) => readRepoText(dir, path),
    previousState:
      stateText === undefined ? undefined : parseState(stateText, config.paths.stateFile),
    previousStateText: stateText,
    statePath: config.paths.stateFile,
    generatorVersion: options.version ?? GENERATOR_VERSION,
    force: options.force,
  });
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

export function readRepoText(dir: string, path: string): string | undefined {
  const file = join(dir, path);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}
