import type { ResolvedConfig } from '../config/resolve.js';
import {
  BRANCH_SCOPE_PREFIX,
  cacheTag,
  cacheTagSuffixes,
  MAIN_SCOPE,
  SEED_SCOPE,
} from './cache-tags.js';

/** An ECR lifecycle policy as ECR's API takes it (docs/ecr-lifecycle.md). */
export interface LifecyclePolicy {
  rules: LifecycleRule[];
}

export interface LifecycleRule {
  rulePriority: number;
  description: string;
  selection: {
    tagStatus: 'tagged' | 'untagged' | 'any';
    tagPrefixList?: string[];
    tagPatternList?: string[];
    countType: 'imageCountMoreThan' | 'sinceImagePushed';
    countUnit?: 'days';
    countNumber: number;
  };
  action: { type: 'expire' };
}

/**
 * Lifecycle age is the original push time, and an unchanged cache keeps its digest and push date,
 * so main's cache would look old and be expired by any age rule. A count rule that can never fire
 * (more than 9999 images under one tag per image) is how ECR spells "keep": being selected by a
 * higher-priority rule protects an image from every lower one.
 */
export const KEEP_FOREVER_COUNT = 9999;

/**
 * The cache tags the cache policy must never expire: main's and (when on) the seed's, per image,
 * and per platform of an image built per platform (`main.api.linux-arm64`: the prefix rules cover
 * them as they cover `main.api`). The generator checks its policy against them, and `apply`
 * refuses a policy that would expire one.
 */
export function keptCacheTags(config: ResolvedConfig): string[] {
  const scopes = [MAIN_SCOPE, ...(config.seed.enabled ? [SEED_SCOPE] : [])];
  const suffixes = cacheTagSuffixes(config.images);
  return scopes.flatMap((scope) => suffixes.map((suffix) => cacheTag(scope, suffix)));
}

/**
 * The cache repositories (`<ecrDir>/cache-lifecycle-policy.json`): main's and the seed's caches
 * are kept forever. Branch caches no longer live here; the br-* rule only drains the ones left
 * from before branch caches had their own repository.
 */
export function cacheLifecyclePolicy(config: ResolvedConfig): LifecyclePolicy {
  // One keep rule per prefix: entries of one tagPrefixList are ANDed, so a single rule listing
  // both "main." and "seed." would select nothing.
  const keep = (scope: string, what: string): Omit<LifecycleRule, 'rulePriority'> => ({
    description: `Keep ${what} (tags ${scope}.*) forever`,
    selection: {
      tagStatus: 'tagged',
      tagPrefixList: [`${scope}.`],
      countType: 'imageCountMoreThan',
      countNumber: KEEP_FOREVER_COUNT,
    },
    action: { type: 'expire' },
  });
  const rules: Omit<LifecycleRule, 'rulePriority'>[] = [
    keep(MAIN_SCOPE, 'the main branch cache'),
    ...(config.seed.enabled ? [keep(SEED_SCOPE, 'the seed cache')] : []),
    expireBranchCaches(config, ' (left from before branch caches had their own repository)'),
    expireUntagged(config),
  ];
  return numbered(rules);
}

/**
 * The branch-cache repositories (`<ecrDir>/branch-cache-lifecycle-policy.json`): everything
 * expires. Branch caches N days after their last push; untagged artifacts after M; and any other
 * tag a branch build wrote there (it may write any: IAM cannot restrict tags) after N days too,
 * so nothing in the repository a pull request can write outlives the retention.
 */
export function branchCacheLifecyclePolicy(config: ResolvedConfig): LifecyclePolicy {
  return numbered([
    expireBranchCaches(config, ''),
    expireUntagged(config),
    {
      description: `Expire any other tag ${config.cache.branchRetentionDays} days after its last push: branch builds write nothing else here`,
      selection: {
        tagStatus: 'tagged',
        tagPatternList: ['*'],
        countType: 'sinceImagePushed',
        countUnit: 'days',
        countNumber: config.cache.branchRetentionDays,
      },
      action: { type: 'expire' },
    },
  ]);
}

function expireBranchCaches(
  config: ResolvedConfig,
  note: string,
): Omit<LifecycleRule, 'rulePriority'> {
  return {
    description: `Expire branch caches (tags ${BRANCH_SCOPE_PREFIX}*) ${config.cache.branchRetentionDays} days after their last push${note}`,
    selection: {
      tagStatus: 'tagged',
      tagPrefixList: [BRANCH_SCOPE_PREFIX],
      countType: 'sinceImagePushed',
      countUnit: 'days',
      countNumber: config.cache.branchRetentionDays,
    },
    action: { type: 'expire' },
  };
}

function expireUntagged(config: ResolvedConfig): Omit<LifecycleRule, 'rulePriority'> {
  return {
    description: `Expire superseded (untagged) cache artifacts the pruner missed after ${config.cache.untaggedRetentionDays} day(s)`,
    selection: {
      tagStatus: 'untagged',
      countType: 'sinceImagePushed',
      countUnit: 'days',
      countNumber: config.cache.untaggedRetentionDays,
    },
    action: { type: 'expire' },
  };
}

function numbered(rules: Omit<LifecycleRule, 'rulePriority'>[]): LifecyclePolicy {
  return { rules: rules.map((rule, index) => ({ rulePriority: index + 1, ...rule })) };
}

export function imageLifecyclePolicy(config: ResolvedConfig): LifecyclePolicy {
  return {
    rules: [
      {
        rulePriority: 1,
        description: `Expire untagged images after ${config.deployImages.untaggedRetentionDays} day(s); ECR keeps an index's children while the index exists`,
        selection: {
          tagStatus: 'untagged',
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: config.deployImages.untaggedRetentionDays,
        },
        action: { type: 'expire' },
      },
      {
        rulePriority: 2,
        description: `Keep the ${config.deployImages.keep} most recently pushed deployable images`,
        selection: {
          tagStatus: 'tagged',
          tagPatternList: ['*'],
          countType: 'imageCountMoreThan',
          countNumber: config.deployImages.keep,
        },
        action: { type: 'expire' },
      },
    ],
  };
}
