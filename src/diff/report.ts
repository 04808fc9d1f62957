import { loadConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { repositorySettings } from '../model/ecr-repositories.js';
import type { LifecyclePolicy } from '../model/lifecycle.js';
import { repositoryName } from '../model/roles.js';
import type { FileChange } from '../plan/plan.js';
import { planForConfig } from '../plan/plan-repository.js';
import {
  comparePolicies,
  mergeListings,
  type ParsedListing,
  type PreviewedImage,
  type PreviewImage,
  parseListing,
} from '../policy/preview.js';
import { generatedPaths, renderFiles } from '../render/render-files.js';
import { GENERATOR_VERSION } from '../version.js';
import { explainChanges } from './explain.js';
import type { LiveListingOptions } from './live-listing.js';

/**
 * The report model of `diff` (and of `fleet --diff` / `--report`): per repository, what
 * `generate` would change, the policy changes in words, and, given image listings, which images the
 * new lifecycle policies would expire that the current ones keep.
 */
export interface RepoDiff {
  /** Display name (path or URL). */
  repository: string;
  /** Generator version in the current state file (undefined: never generated). */
  generatorBefore: string | undefined;
  generatorAfter: string;
  /** From the plan, including unchanged files. */
  changes: FileChange[];
  /** Policy and IAM changes in words. */
  explanations: string[];
  /** When a listing was given for a repository whose lifecycle policy changes. */
  impact?: PolicyImpact[];
  /** A repository that failed (fleet): changes is then empty. */
  error?: string;
}

/** What one ECR repository's lifecycle policy change does to the images it holds today. */
export interface PolicyImpact {
  /** The ECR repository the listing is of. */
  repository: string;
  /** Repository-relative path of the lifecycle policy file that changes. */
  policyFile: string;
  /** Images in the listing. */
  images: number;
  /** Expired by the new policy and not by the current one (none: no current policy file). */
  newlyExpired: (PreviewedImage & { rule: string })[];
  newlyExpiredBytes: number;
  /** Expired by the current policy and kept by the new one. */
  noLongerExpired: PreviewedImage[];
}

export interface DiffRepositoryOptions {
  /** ECR repository name → `aws ecr describe-images` JSON text of it. */
  listings?: Record<string, string>;
  /** The clock lifecycle ages are measured against (default: now). */
  now?: Date;
  /** The name shown for the repository (default: its `github.repository`). */
  displayName?: string;
  /** ECR repository name → its images, already read (e.g. by `readLiveListing`). */
  images?: Record<string, PreviewImage[]>;
  /**
   * Read the images of every repository whose lifecycle policy changes from ECR (DescribeImages
   * and BatchGetImage; credentials from the SDK's chain).
   */
  live?: boolean | Omit<LiveListingOptions, 'region'>;
  /** The generator version the plan renders with (tests pin it). */
  version?: string;
}

export async function diffRepository(
  dir: string,
  options: DiffRepositoryOptions = {},
): Promise<RepoDiff> {
  const config = loadConfig(dir);
  const version = options.version ?? GENERATOR_VERSION;
  const plan = planForConfig(dir, config, renderFiles(config, version), { version });
  const result: RepoDiff = {
    repository: options.displayName ?? repositoryName(config),
    generatorBefore: plan.before.generator,
    generatorAfter: version,
    changes: plan.changes,
    explanations: explainChanges(config, plan.changes),
  };
  const images = new Map<string, PreviewImage[]>();
  for (const [repository, text] of Object.entries(options.listings ?? {})) {
    const listings = mergeListings(parseListingOrThrow(text, `listing of ${repository}`));
    images.set(
      repository,
      listings.flatMap((listing) => listing.images),
    );
  }
  for (const [repository, list] of Object.entries(options.images ?? {}))
    images.set(repository, list);
  if (options.live) {
    const { readLiveListing } = await import('./live-listing.js');
    const liveOptions = options.live === true ? {} : options.live;
    for (const repository of changedPolicyRepositories(config, plan.changes)) {
      if (images.has(repository)) continue;
      images.set(
        repository,
        await readLiveListing(repository, {
          region: config.aws.region,
          registryId: config.aws.accountId,
          ...liveOptions,
        }),
      );
    }
  }
  if (images.size > 0) {
    result.impact = policyImpact(config, plan.changes, images, options.now ?? new Date());
  }
  return result;
}

/** Whether anything would change (a conflict counts: generate would refuse it). */
export function hasChanges(diff: RepoDiff): boolean {
  return diff.changes.some((change) => change.action !== 'unchanged');
}

/** Which generated lifecycle policy governs an ECR repository of this config. */
export function policyFileFor(
  config: ResolvedConfig,
  repository: string,
): { path: string; kind: 'cache' | 'image' } | undefined {
  const settings = repositorySettings(config, generatedPaths(config)).find(
    (each) => each.name === repository,
  );
  if (!settings) return undefined;
  // A branch-cache repository holds cache artifacts too.
  return { path: settings.policyFile, kind: settings.kind === 'image' ? 'image' : 'cache' };
}

/** The image, cache and branch-cache repositories of this config, sorted. */
export function knownRepositories(config: ResolvedConfig): string[] {
  return repositorySettings(config, generatedPaths(config))
    .map((settings) => settings.name)
    .sort();
}

/** ECR repositories whose lifecycle policy file would be created or changed. */
function changedPolicyRepositories(config: ResolvedConfig, changes: FileChange[]): string[] {
  return knownRepositories(config).filter((repository) => {
    const target = policyFileFor(config, repository);
    const change = changes.find((entry) => entry.path === target?.path);
    return change !== undefined && change.action !== 'unchanged' && change.after !== undefined;
  });
}

function policyImpact(
  config: ResolvedConfig,
  changes: FileChange[],
  listings: Map<string, PreviewImage[]>,
  now: Date,
): PolicyImpact[] {
  const impacts: PolicyImpact[] = [];
  for (const [repository, images] of listings) {
    const target = policyFileFor(config, repository);
    if (!target) {
      throw new CachedDeployError(
        'USAGE',
        `a listing was given for ECR repository "${repository}", which is none of this configuration's (${knownRepositories(config).join(', ')})`,
      );
    }
    const change = changes.find((entry) => entry.path === target.path);
    if (!change || change.action === 'unchanged' || change.after === undefined) continue;
    const before =
      change.before === undefined ? undefined : parsePolicy(change.before, change.path);
    const after = parsePolicy(change.after, change.path) as LifecyclePolicy;
    const comparison = comparePolicies(before, after, images, now);
    impacts.push({
      repository,
      policyFile: target.path,
      images: images.length,
      newlyExpired: comparison.newlyExpired,
      newlyExpiredBytes: comparison.newlyExpired.reduce((sum, image) => sum + image.sizeInBytes, 0),
      noLongerExpired: comparison.noLongerExpired,
    });
  }
  return impacts.sort((a, b) => (a.repository < b.repository ? -1 : 1));
}

/** parseListing with its errors as one-line CachedDeployErrors. */
export function parseListingOrThrow(text: string, source: string): ParsedListing[] {
  try {
    return parseListing(text, source);
  } catch (error) {
    throw new CachedDeployError('USAGE', (error as Error).message);
  }
}

/** A lifecycle policy file's content; undefined when it is not a policy at all (a hand edit). */
function parsePolicy(text: string, path: string): LifecyclePolicy | undefined {
  try {
    const value = JSON.parse(text) as LifecyclePolicy;
    return Array.isArray(value?.rules) ? value : undefined;
  } catch {
    throw new CachedDeployError('IO', `${path}: not valid JSON, so its impact cannot be compared`);
  }
}
