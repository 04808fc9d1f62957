import type { ResolvedConfig } from '../config/resolve.js';
import { cacheRepositoryVariable, cacheTag } from './cache-tags.js';
import { type BuildTarget, buildTargets } from './platforms.js';

/** The pruner's npm project beside the script: `<script stem>.package(-lock).json`. */
export const PRUNER_PACKAGE_SUFFIXES = ['.package.json', '.package-lock.json'] as const;

/**
 * The shipped prune script and the npm project that installs its one dependency from a lockfile
 * (`npm ci --ignore-scripts`): every package it runs with while AWS credentials are in the
 * environment is pinned by an integrity hash (docs/trust-separation.md). The package.json and
 * package-lock.json live beside the script as `<script name>.package.json` and
 * `<script name>.package-lock.json`, and the workflow copies them to where npm expects them.
 */
export function prunerPaths(config: ResolvedConfig): {
  script: string;
  packageJson: string;
  lockfile: string;
} {
  const script = config.paths.pruneScript;
  const stem = script.replace(/\.[cm]?js$/, '');
  const [packageJson, lockfile] = PRUNER_PACKAGE_SUFFIXES;
  return { script, packageJson: `${stem}${packageJson}`, lockfile: `${stem}${lockfile}` };
}

/**
 * One pruner invocation, the same on every CI: `<program> <command>`, then per image of `targets`
 * (by default every bake target) `--repository "$CACHE_REPOSITORY_<IMAGE>"` followed, except for
 * `prune`, by `--tag "$CACHE_SCOPE".<suffix>` for each of its targets there (one per platform of an
 * image built per platform), then `flags`. The repository and scope come from the job's
 * environment; image names and platforms are validated names, safe in a shell word.
 */
export function prunerCommand(
  config: ResolvedConfig,
  program: string,
  command: string,
  flags: readonly string[],
  targets: readonly BuildTarget[] = buildTargets(config),
): string {
  const images = config.images.filter((image) => targets.some((target) => target.image === image));
  const repositories = images.map((image) =>
    [
      `--repository "$${cacheRepositoryVariable(image.name)}"`,
      ...(command === 'prune'
        ? []
        : targets
            .filter((target) => target.image === image)
            .map((target) => `--tag ${cacheTag('"$CACHE_SCOPE"', target.tagSuffix)}`)),
    ].join(' '),
  );
  return [`${program} ${command}`, ...repositories, ...flags].join(' \\\n  ');
}

/** `--grace-hours` and, when the config asks for it, `--fail-on-error`. */
export function pruneFlags(config: ResolvedConfig): string[] {
  return [
    `--grace-hours ${config.prune.graceHours}`,
    ...(config.prune.failOnError ? ['--fail-on-error'] : []),
  ];
}

/**
 * `sweep-branches` over every branch-cache repository, each with the images whose branch caches
 * it holds, the same on every CI: the branches file and the main branch come as shell words from
 * the job (`--main-branch` makes the pruner refuse a listing without it). Repository and image
 * names are validated names ([a-z0-9._/-]), safe in a shell word.
 */
export function sweepBranchesCommand(
  config: ResolvedConfig,
  program: string,
  branchesFile: string,
  mainBranch: string,
): string {
  const imagesOf = new Map<string, string[]>();
  for (const image of config.images) {
    imagesOf.set(image.branchCacheRepository, [
      ...(imagesOf.get(image.branchCacheRepository) ?? []),
      image.name,
    ]);
  }
  const targets = [...imagesOf].map(([repository, names]) =>
    [`--repository ${repository}`, ...names.map((name) => `--image ${name}`)].join(' '),
  );
  return [
    `${program} sweep-branches`,
    ...targets,
    `--branches-file ${branchesFile}`,
    `--main-branch ${mainBranch}`,
    ...pruneFlags(config),
  ].join(' \\\n  ');
}
