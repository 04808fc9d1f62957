import { readFileSync } from 'node:fs';

/**
 * The shipped prune script is templates/prune-ecr-cache.mjs itself, with only the version filled
 * into its header. `create-cached-deploy prune` imports that same file, so the logic exists once
 * and every repository on one generator version gets identical bytes.
 */
export const PRUNE_SCRIPT_TEMPLATE = new URL(
  '../../templates/prune-ecr-cache.mjs',
  import.meta.url,
);

export function renderPruneScript(version: string): string {
  return readFileSync(PRUNE_SCRIPT_TEMPLATE, 'utf8').replace('__GENERATOR_VERSION__', version);
}
