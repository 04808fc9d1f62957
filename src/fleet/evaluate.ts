import { checkConfigAgainstRepo, validateRawConfig } from '../config/load.js';
import { type FleetLayers, isMapping, mergeFleetConfig } from '../config/merge.js';
import { parseYamlValue } from '../config/parse-yaml.js';
import { CONFIG_FILE, type ResolvedConfig, resolveConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import type { Plan } from '../plan/plan.js';
import { planForConfig } from '../plan/plan-repository.js';
import { renderFiles } from '../render/render-files.js';
import { RepoFiles } from '../repo-files.js';

export interface Evaluation {
  config: ResolvedConfig;
  plan: Plan;
  /** The generator version recorded in the state file; undefined when never generated. */
  generatorBefore: string | undefined;
  /** The state file's current text (undefined when missing). */
  stateBefore: string | undefined;
}

/**
 * One repository through the same pipeline as `generate`, in this process and synchronously:
 * read cached-deploy.yml → merge the fleet's layers → validate (errors name the field path) →
 * check it against the repository → render (pure) → plan against the files and the state file.
 * Reads only; writes nothing.
 */
export function evaluateRepository(
  dir: string,
  layers: FleetLayers,
  options: { version: string; force?: boolean },
): Evaluation {
  // One RepoFiles for the whole evaluation: each directory is checked once.
  const repo = new RepoFiles(dir);
  const text = repo.read(CONFIG_FILE);
  if (text === undefined) {
    throw new CachedDeployError(
      'CONFIG_NOT_FOUND',
      `${CONFIG_FILE}: not found (run \`create-cached-deploy init\` in the repository first)`,
    );
  }
  const own = parseYamlValue(text, CONFIG_FILE);
  // A file that is not a mapping at all gets the schema's own message, not a merged surprise.
  if (own !== null && own !== undefined && !isMapping(own)) validateRawConfig(own, CONFIG_FILE);
  const raw = validateRawConfig(mergeFleetConfig(own, layers), CONFIG_FILE);
  const config = resolveConfig(raw);
  checkConfigAgainstRepo(config, dir, CONFIG_FILE, repo);
  const plan = planForConfig(dir, config, renderFiles(config, options.version), {
    ...options,
    repo,
  });
  return {
    config,
    plan,
    generatorBefore: plan.before.generator,
    stateBefore: plan.before.stateText,
  };
}
