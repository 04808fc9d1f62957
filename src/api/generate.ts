import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { applyPlan } from '../apply/write-files.js';
import { checkConfigAgainstRepo, loadConfig, parseConfig } from '../config/load.js';
import { CONFIG_FILE, type ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { conflictReason, type Plan, pendingChanges, planChanges } from '../plan/plan.js';
import { parseState } from '../plan/state.js';
import { type GeneratedFile, renderFiles } from '../render/render-files.js';
import { GENERATOR_VERSION } from '../version.js';

export interface GenerateOptions {
  /** Compute the plan and report drift; write nothing. */
  check?: boolean;
  /** Overwrite hand-edited generated files. */
  force?: boolean;
  /** The generator version written into markers and the state file (tests pin it). */
  version?: string;
  /**
   * `terraform`: also generate <ecrDir>/main.tf from now on (`none`: stop). Saved as `iac` in
   * cached-deploy.yml, in the same all-or-nothing write, so a later plain `generate` keeps it.
   */
  iac?: string;
}

export interface GenerateResult {
  config: ResolvedConfig;
  plan: Plan;
  /** False with `check`, or when there was nothing to write. */
  wrote: boolean;
}

/** Regenerates every artifact of the repository at `dir` from its cached-deploy.yml. */
export async function generate(
  dir: string,
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  let config = loadConfig(dir);
  const configEdit = options.iac === undefined ? undefined : withIac(dir, options.iac);
  if (configEdit) {
    config = parseConfig(configEdit.after, CONFIG_FILE);
    checkConfigAgainstRepo(config, dir);
  }
  const plan = planForConfig(dir, config, renderFiles(config, options.version), options);
  if (configEdit && configEdit.after !== configEdit.before) {
    plan.changes.unshift({
      path: CONFIG_FILE,
      action: 'update',
      before: configEdit.before,
      after: configEdit.after,
    });
  }
  if (options.check) return { config, plan, wrote: false };
  await throwOnConflicts(plan);
  const stateChanged = plan.before.stateText !== plan.state.content;
  if (pendingChanges(plan).length === 0 && !stateChanged) return { config, plan, wrote: false };
  applyPlan(dir, plan);
  return { config, plan, wrote: true };
}

export function planForConfig(
  dir: string,
  config: ResolvedConfig,
  desired: GeneratedFile[],
  options: { force?: boolean; version?: string } = {},
): Plan {
  checkOutputPaths(config, desired);
  const stateText = readText(dir, config.paths.stateFile);
  return planChanges({
    desired,
    readFile: (path) => readText(dir, path),
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
  const { unifiedDiff } = await import('../plan/diff.js');
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

const IAC_TOOLS = ['none', 'terraform'] as const;

/** cached-deploy.yml with `iac` set, edited in place (comments and layout kept). */
function withIac(dir: string, iac: string): { before: string; after: string } {
  if (!(IAC_TOOLS as readonly string[]).includes(iac)) {
    throw new CachedDeployError(
      'USAGE',
      `--iac: ${JSON.stringify(iac)} is not allowed (allowed: ${IAC_TOOLS.join(', ')})`,
    );
  }
  const before = readText(dir, CONFIG_FILE) as string;
  const document = parseDocument(before);
  if (document.get('iac') === iac) return { before, after: before };
  document.set('iac', iac);
  return { before, after: document.toString({ lineWidth: 0 }) };
}

function readText(dir: string, path: string): string | undefined {
  const file = join(dir, path);
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}
