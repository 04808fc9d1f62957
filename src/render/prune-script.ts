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

/**
 * The npm project of the pruner's one dependency, `@aws-sdk/client-ecr` pinned with its whole
 * tree: templates/pruner/package.json and the package-lock.json that
 * `npm install --package-lock-only --ignore-scripts` made of it (scripts/update-pruner-lockfile.ts
 * regenerates it). Written beside the prune script; the workflow runs `npm ci --ignore-scripts`.
 */
export const PRUNER_PACKAGE_TEMPLATE = new URL(
  '../../templates/pruner/package.json',
  import.meta.url,
);
export const PRUNER_LOCKFILE_TEMPLATE = new URL(
  '../../templates/pruner/package-lock.json',
  import.meta.url,
);

export function renderPrunerPackage(): { packageJson: string; lockfile: string } {
  return {
    packageJson: readFileSync(PRUNER_PACKAGE_TEMPLATE, 'utf8'),
    lockfile: readFileSync(PRUNER_LOCKFILE_TEMPLATE, 'utf8'),
  };
}
