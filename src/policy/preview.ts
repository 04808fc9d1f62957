import { isIndexMediaType } from '../media-types.js';
import type { LifecyclePolicy, LifecycleRule } from '../model/lifecycle.js';
import { formatBytes } from '../text.js';
import {
  evaluateLifecyclePolicy,
  type ListedImage,
  parseDescribeImagesListing,
  selects,
} from './evaluate-lifecycle.js';

/**
 * `policy preview`, pure: a lifecycle policy and one repository's images in, what ECR would expire
 * out, rule by rule with counts and bytes. Reading the listing (a file or ECR) is the caller's job.
 */

/** An image as listed by DescribeImages, with what the evaluator does not need but a report does. */
export interface PreviewImage extends ListedImage {
  /** `repositoryName` of the describe-images entry. */
  repository?: string;
  /** `imageManifestMediaType`. */
  mediaType?: string;
}

export interface PreviewedImage {
  digest: string;
  tags: string[];
  pushedAt: string;
  sizeInBytes: number;
}

export interface RulePreview {
  rulePriority: number;
  description: string;
  /** The selection in words, e.g. `tagged, prefix "br-", pushed more than 14 days ago`. */
  selection: string;
  /** Images this rule took (a higher-priority rule took none of them). */
  matched: number;
  expired: number;
  expiredBytes: number;
  /** Images the rule would expire but an index that stays references (ECR keeps them). */
  heldByIndex: number;
  /** Expiring untagged images that may be children of a kept index (see PolicyPreview.unresolvedIndexes). */
  uncertain: number;
  uncertainBytes: number;
  expiredImages: PreviewedImage[];
}

export interface PolicyPreview {
  repository: string;
  /** Where the policy came from, e.g. `ecr/cache-lifecycle-policy.json`. */
  policyFile: string;
  images: number;
  bytes: number;
  rules: RulePreview[];
  expired: { count: number; bytes: number };
  /** Images no rule selects: a lifecycle policy never touches them. */
  unmatched: number;
  /**
   * Index manifests whose children the listing does not name (describe-images output never does;
   * `--live` resolves them). While there are any, an expiring untagged image may be one of their
   * platform images, which ECR keeps: such images are counted as `uncertain`, not as expired.
   */
  unresolvedIndexes: number;
  uncertain: { count: number; bytes: number };
}

export function previewPolicy(
  policy: LifecyclePolicy,
  images: PreviewImage[],
  now: Date,
  meta: { repository: string; policyFile: string },
): PolicyPreview {
  const evaluation = evaluateLifecyclePolicy(policy, images, now);
  const unresolved = images.filter(
    (image) => isIndexMediaType(image.mediaType) && image.children === undefined,
  );
  const expiredDigests = new Set(evaluation.expired.map((entry) => entry.image.digest));
  const keptUnresolved = unresolved.some((index) => !expiredDigests.has(index.digest));
  // An untagged image manifest may be a platform image of an index we cannot see into.
  const isUncertain = (image: PreviewImage) =>
    keptUnresolved && image.tags.length === 0 && !isIndexMediaType(image.mediaType);

  const rules = [...policy.rules]
    .sort((a, b) => a.rulePriority - b.rulePriority)
    .map((rule): RulePreview => {
      const mine = (entry: { rule: LifecycleRule }) => entry.rule === rule;
      const expiring = evaluation.expired.filter(mine).map((entry) => entry.image);
      const certain = expiring.filter((image) => !isUncertain(image));
      const uncertain = expiring.filter(isUncertain);
      const kept = evaluation.kept.filter(mine).map((entry) => entry.image);
      return {
        rulePriority: rule.rulePriority,
        description: rule.description,
        selection: describeSelection(rule),
        matched: expiring.length + kept.length,
        expired: certain.length,
        expiredBytes: sum(certain),
        heldByIndex: 0,
        uncertain: uncertain.length,
        uncertainBytes: sum(uncertain),
        expiredImages: certain
          .sort((a, b) => a.pushedAt.getTime() - b.pushedAt.getTime())
          .map(toPreviewed),
      };
    });
  // protectedChildren are reported by the evaluator apart from `kept`: count them in their rule,
  // the first by priority whose selection matches.
  const byPriority = [...policy.rules].sort((a, b) => a.rulePriority - b.rulePriority);
  for (const child of evaluation.protectedChildren) {
    const owner = byPriority.find((rule) => selects(rule, child));
    const preview = rules.find((entry) => entry.rulePriority === owner?.rulePriority);
    if (preview) {
      preview.matched += 1;
      preview.heldByIndex += 1;
    }
  }
  const uncertainCount = rules.reduce((total, rule) => total + rule.uncertain, 0);
  const uncertainBytes = rules.reduce((total, rule) => total + rule.uncertainBytes, 0);
  return {
    repository: meta.repository,
    policyFile: meta.policyFile,
    images: images.length,
    bytes: sum(images),
    rules,
    expired: {
      count: rules.reduce((total, rule) => total + rule.expired, 0),
      bytes: rules.reduce((total, rule) => total + rule.expiredBytes, 0),
    },
    unmatched: evaluation.unmatched.length,
    unresolvedIndexes: unresolved.length,
    uncertain: { count: uncertainCount, bytes: uncertainBytes },
  };
}

export interface PolicyComparison {
  /** Expired by the new policy and not by the old one, with the new rule that expires it. */
  newlyExpired: (PreviewedImage & { rule: string })[];
  /** Expired by the old policy and kept by the new one. */
  noLongerExpired: PreviewedImage[];
}

/** What changing `before` into `after` changes for these images (`before` undefined: no policy). */
export function comparePolicies(
  before: LifecyclePolicy | undefined,
  after: LifecyclePolicy,
  images: ListedImage[],
  now: Date,
): PolicyComparison {
  const old = before
    ? new Set(evaluateLifecyclePolicy(before, images, now).expired.map((e) => e.image.digest))
    : new Set<string>();
  const next = evaluateLifecyclePolicy(after, images, now).expired;
  const nextDigests = new Set(next.map((entry) => entry.image.digest));
  return {
    newlyExpired: next
      .filter((entry) => !old.has(entry.image.digest))
      .map((entry) => ({ ...toPreviewed(entry.image), rule: entry.rule.description }))
      .sort((a, b) => (a.pushedAt < b.pushedAt ? -1 : a.pushedAt > b.pushedAt ? 1 : 0)),
    noLongerExpired: images
      .filter((image) => old.has(image.digest) && !nextDigests.has(image.digest))
      .map(toPreviewed),
  };
}

export interface ParsedListing {
  /** `repositoryName` of the entries; undefined when the listing has none (e.g. it is empty). */
  repository: string | undefined;
  images: PreviewImage[];
}

/**
 * A describe-images listing (one response, or a JSON array of pages), grouped by the
 * `repositoryName` every entry carries. Entries without one go to the group `undefined`.
 */
export function parseListing(text: string, source: string): ParsedListing[] {
  const images = parseDescribeImagesListing(text, source);
  const raw = (JSON.parse(text) as unknown[] | object) ?? {};
  const pages = Array.isArray(raw) ? raw : [raw];
  const details = pages.flatMap(
    (page) => (page as { imageDetails: Record<string, unknown>[] }).imageDetails,
  );
  const groups = new Map<string | undefined, Map<string, PreviewImage>>();
  images.forEach((image, index) => {
    const detail = details[index] ?? {};
    const repository =
      typeof detail.repositoryName === 'string' ? detail.repositoryName : undefined;
    const mediaType =
      typeof detail.imageManifestMediaType === 'string' ? detail.imageManifestMediaType : undefined;
    let group = groups.get(repository);
    if (!group) {
      group = new Map();
      groups.set(repository, group);
    }
    // Pages may overlap (a retried page): one entry per digest.
    group.set(image.digest, { ...image, repository, mediaType });
  });
  if (groups.size === 0) return [{ repository: undefined, images: [] }];
  return [...groups].map(([repository, group]) => ({ repository, images: [...group.values()] }));
}

/** Merges listings of the same repository (several files, pages of one listing). */
export function mergeListings(listings: ParsedListing[]): ParsedListing[] {
  const merged = new Map<string | undefined, Map<string, PreviewImage>>();
  for (const listing of listings) {
    const group = merged.get(listing.repository) ?? new Map<string, PreviewImage>();
    merged.set(listing.repository, group);
    for (const image of listing.images) group.set(image.digest, image);
  }
  return [...merged].map(([repository, group]) => ({ repository, images: [...group.values()] }));
}

export function describeSelection(rule: LifecycleRule): string {
  const { tagStatus, tagPrefixList, tagPatternList, countType, countNumber } = rule.selection;
  const quote = (list: string[]) => list.map((entry) => JSON.stringify(entry)).join(' and ');
  const parts: string[] = [tagStatus];
  if (tagPrefixList) parts.push(`prefix ${quote(tagPrefixList)}`);
  if (tagPatternList) parts.push(`pattern ${quote(tagPatternList)}`);
  parts.push(
    countType === 'imageCountMoreThan'
      ? `more than the newest ${countNumber}`
      : `pushed more than ${countNumber} day${countNumber === 1 ? '' : 's'} ago`,
  );
  return parts.join(', ');
}

/** The text `policy preview` prints for one repository. */
export function formatPolicyPreview(
  preview: PolicyPreview,
  options: { limit?: number } = {},
): string {
  const limit = options.limit ?? 20;
  const lines = [
    `${preview.repository}: ${preview.policyFile} would expire ${preview.expired.count} of ${preview.images} images (${formatBytes(preview.expired.bytes)} of ${formatBytes(preview.bytes)})`,
  ];
  for (const rule of preview.rules) {
    const extra: string[] = [];
    if (rule.heldByIndex > 0) extra.push(`${rule.heldByIndex} kept as children of an index`);
    if (rule.uncertain > 0)
      extra.push(`${rule.uncertain} more (${formatBytes(rule.uncertainBytes)}) unless in an index`);
    lines.push(
      `  rule ${rule.rulePriority} "${rule.description}" [${rule.selection}]: ${rule.matched} matched, ${rule.expired} expire (${formatBytes(rule.expiredBytes)})${extra.length > 0 ? `; ${extra.join('; ')}` : ''}`,
    );
    for (const image of rule.expiredImages.slice(0, limit)) {
      const tags = image.tags.length > 0 ? image.tags.join(',') : '<untagged>';
      lines.push(
        `    expire ${image.digest.slice(0, 19)} ${tags} pushed ${image.pushedAt.slice(0, 10)} ${formatBytes(image.sizeInBytes)}`,
      );
    }
    if (rule.expiredImages.length > limit) {
      lines.push(`    … and ${rule.expiredImages.length - limit} more`);
    }
  }
  if (preview.unmatched > 0) {
    lines.push(`  ${preview.unmatched} images match no rule: the policy never expires them`);
  }
  if (preview.uncertain.count > 0) {
    lines.push(
      `  note: ${preview.unresolvedIndexes} index manifests in the listing; describe-images does not name their children, so ${preview.uncertain.count} untagged images (${formatBytes(preview.uncertain.bytes)}) expire only if no kept index references them (use --live to resolve)`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function sum(images: ListedImage[]): number {
  return images.reduce((total, image) => total + image.sizeInBytes, 0);
}

function toPreviewed(image: ListedImage): PreviewedImage {
  return {
    digest: image.digest,
    tags: [...image.tags],
    pushedAt: image.pushedAt.toISOString(),
    sizeInBytes: image.sizeInBytes,
  };
}
