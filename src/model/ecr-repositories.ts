import type { ResolvedConfig } from '../config/resolve.js';
import { BRANCH_SCOPE_PREFIX, MAIN_SCOPE, SEED_SCOPE } from './cache-tags.js';

/**
 * The ECR repositories a configuration needs, with the settings each should have. Pure: `apply`
 * compares these with what ECR reports, and ecr/main.tf declares the same.
 */

export type TagMutability = 'MUTABLE' | 'IMMUTABLE' | 'IMMUTABLE_WITH_EXCLUSION';

/** ECR's `ImageTagMutabilityExclusionFilter`: WILDCARD is the only filter type ECR has. */
export interface ExclusionFilter {
  filterType: 'WILDCARD';
  filter: string;
}

/** image: deployable images. cache: main's and the seed's caches. branch-cache: every branch's. */
export type RepositoryKind = 'image' | 'cache' | 'branch-cache';

export interface RepositorySettings {
  name: string;
  kind: RepositoryKind;
  /** The images (bake targets) that use it. */
  images: string[];
  tagMutability: TagMutability;
  /** Tags exempt from `tagMutability` (only with IMMUTABLE_WITH_EXCLUSION). */
  exclusionFilters: ExclusionFilter[];
  scanOnPush: boolean;
  /** The repository-relative path of its lifecycle policy file. */
  policyFile: string;
}

/**
 * Every cache tag (docs/cache-strategy.md: `main.<image>`, `seed.<image>`, `br-<slug>.<image>`, and
 * the local `br-local-…` scope): builds rewrite them in place, so an IMMUTABLE_WITH_EXCLUSION cache
 * repository must exclude all of them. Anything else pushed there stays immutable.
 */
export const CACHE_TAG_EXCLUSION_FILTERS: readonly ExclusionFilter[] = [
  { filterType: 'WILDCARD', filter: `${MAIN_SCOPE}.*` },
  { filterType: 'WILDCARD', filter: `${SEED_SCOPE}.*` },
  { filterType: 'WILDCARD', filter: `${BRANCH_SCOPE_PREFIX}*` },
];

/**
 * Image repositories first, then cache repositories, then branch-cache repositories, each in the
 * order the config names them. `paths` are the policy files' repository-relative paths
 * (`generatedPaths(config)`).
 */
export function repositorySettings(
  config: ResolvedConfig,
  paths: { cachePolicy: string; branchCachePolicy: string; imagePolicy: string },
): RepositorySettings[] {
  const policyFile: Record<RepositoryKind, string> = {
    image: paths.imagePolicy,
    cache: paths.cachePolicy,
    'branch-cache': paths.branchCachePolicy,
  };
  const byName = new Map<string, RepositorySettings>();
  const add = (name: string, kind: RepositoryKind, image: string) => {
    const existing = byName.get(name);
    if (existing) {
      if (!existing.images.includes(image)) existing.images.push(image);
      return;
    }
    const cache = kind !== 'image';
    const tagMutability = cache ? config.ecr.cacheTagMutability : config.ecr.imageTagMutability;
    byName.set(name, {
      name,
      kind,
      images: [image],
      tagMutability,
      exclusionFilters:
        tagMutability === 'IMMUTABLE_WITH_EXCLUSION'
          ? CACHE_TAG_EXCLUSION_FILTERS.map((filter) => ({ ...filter }))
          : [],
      scanOnPush: config.ecr.scanOnPush,
      policyFile: policyFile[kind],
    });
  };
  for (const image of config.images) add(image.repository, 'image', image.name);
  for (const image of config.images) add(image.cacheRepository, 'cache', image.name);
  for (const image of config.images) add(image.branchCacheRepository, 'branch-cache', image.name);
  return [...byName.values()];
}
