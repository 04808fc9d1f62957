import { parseDocument } from 'yaml';
import { checkConfigAgainstRepo, loadConfig, parseConfig } from '../config/load.js';
import { CONFIG_FILE, type ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { type Plan, pendingChanges } from '../plan/plan.js';
import { planForConfig, throwOnConflicts } from '../plan/plan-repository.js';
import { renderFiles } from '../render/render-files.js';
import { RepoFiles } from '../repo-files.js';
import { quoteForMessage } from '../text.js';
import { writePlan } from '../write/write-files.js';

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
  writePlan(dir, plan);
  return { config, plan, wrote: true };
}

const IAC_TOOLS = ['none', 'terraform'] as const;

/** cached-deploy.yml with `iac` set, edited in place (comments and layout kept). */
function withIac(dir: string, iac: string): { before: string; after: string } {
  if (!(IAC_TOOLS as readonly string[]).includes(iac)) {
    throw new CachedDeployError(
      'USAGE',
      `--iac: ${quoteForMessage(iac)} is not allowed (allowed: ${IAC_TOOLS.join(', ')})`,
    );
  }
  const before = new RepoFiles(dir).read(CONFIG_FILE) as string;
  const document = parseDocument(before);
  if (document.get('iac') === iac) return { before, after: before };
  document.set('iac', iac);
  return { before, after: document.toString({ lineWidth: 0 }) };
}
