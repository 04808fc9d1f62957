import type { LifecyclePolicy, LifecycleRule } from '../model/lifecycle.js';

/**
 * ECR's lifecycle evaluation, locally (docs/ecr-lifecycle.md; AWS "Lifecycle policy evaluation
 * rules"):
 * - rules apply in ascending rulePriority;
 * - an image belongs to the first rule whose selection matches it (tag status, and every entry of
 *   tagPrefixList / tagPatternList matched by some tag of the image: the list is ANDed); a rule
 *   that matches an image protects it from every lower-priority rule, whether or not it expires it;
 * - a lower-priority rule still *identifies* the images higher rules took "as if they haven't been
 *   expired": imageCountMoreThan ranks every image its selection matches (newest push first), and
 *   the ones past the first N expire unless a higher rule took them (AWS "Examples of lifecycle
 *   policies", Filtering on all images, Example B: rule 3 keeps 1 of A..E and expires D only);
 *   sinceImagePushed expires what was pushed more than N days before `now`;
 * - an image referenced by an index (a multi-platform list) is not expired while that index stays.
 */
export interface ListedImage {
  digest: string;
  tags: string[];
  pushedAt: Date;
  sizeInBytes: number;
  /** Digests of the images this one references, when it is an index. */
  children?: string[];
}

export interface Expiry {
  image: ListedImage;
  rule: LifecycleRule;
}

export interface Evaluation {
  expired: Expiry[];
  /** Images a rule matched but did not expire, with that rule (they are protected by it). */
  kept: Expiry[];
  /** Images no rule matched. */
  unmatched: ListedImage[];
  /** Children kept only because an index that stays references them. */
  protectedChildren: ListedImage[];
}

const DAY_MS = 24 * 3600 * 1000;

export function evaluateLifecyclePolicy(
  policy: LifecyclePolicy,
  images: ListedImage[],
  now: Date,
): Evaluation {
  const rules = [...policy.rules].sort((a, b) => a.rulePriority - b.rulePriority);
  const claimed = new Set<string>();
  const expired: Expiry[] = [];
  const kept: Expiry[] = [];

  for (const rule of rules) {
    const identified = images.filter((image) => selects(rule, image));
    const matched = identified.filter((image) => !claimed.has(image.digest));
    for (const image of matched) claimed.add(image.digest);
    const { countType, countNumber } = rule.selection;
    let expiring: Set<ListedImage>;
    if (countType === 'imageCountMoreThan') {
      // Ranked among everything the rule identifies, including images higher rules took: those
      // fill the first N places but are never expired by this rule.
      const newestFirst = [...identified].sort(
        (a, b) => b.pushedAt.getTime() - a.pushedAt.getTime(),
      );
      expiring = new Set(newestFirst.slice(countNumber));
    } else {
      const cutoff = now.getTime() - countNumber * DAY_MS;
      expiring = new Set(matched.filter((image) => image.pushedAt.getTime() < cutoff));
    }
    for (const image of matched) (expiring.has(image) ? expired : kept).push({ image, rule });
  }

  // An index that stays keeps its children, whatever rule selected them.
  const expiredDigests = new Set(expired.map((entry) => entry.image.digest));
  const heldByIndex = new Set<string>();
  for (const image of images) {
    if (expiredDigests.has(image.digest)) continue;
    for (const child of image.children ?? []) heldByIndex.add(child);
  }
  const protectedChildren: ListedImage[] = [];
  const finalExpired = expired.filter((entry) => {
    if (!heldByIndex.has(entry.image.digest)) return true;
    protectedChildren.push(entry.image);
    return false;
  });

  return {
    expired: finalExpired,
    kept,
    unmatched: images.filter((image) => !claimed.has(image.digest)),
    protectedChildren,
  };
}

export function selects(rule: LifecycleRule, image: ListedImage): boolean {
  const { tagStatus, tagPrefixList, tagPatternList } = rule.selection;
  if (tagStatus === 'any') return true;
  if (tagStatus === 'untagged') return image.tags.length === 0;
  if (image.tags.length === 0) return false;
  if (tagPrefixList) {
    return tagPrefixList.every((prefix) => image.tags.some((tag) => tag.startsWith(prefix)));
  }
  if (tagPatternList) {
    return tagPatternList.every((pattern) =>
      image.tags.some((tag) => matchesPattern(pattern, tag)),
    );
  }
  return false;
}

/** ECR tag patterns: `*` matches any run of characters (possibly empty); the rest is literal. */
export function matchesPattern(pattern: string, tag: string): boolean {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`, 's').test(tag);
}

/**
 * Images from `aws ecr describe-images` output (or several pages of it). awscli v2 prints
 * imagePushedAt as ISO 8601, v1 and the raw API as epoch seconds: both are accepted.
 */
export function parseDescribeImagesListing(text: string, source: string): ListedImage[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source}: not valid JSON (${(error as Error).message})`);
  }
  const pages = Array.isArray(value) ? value : [value];
  const images: ListedImage[] = [];
  pages.forEach((page, pageIndex) => {
    const details = (page as { imageDetails?: unknown })?.imageDetails;
    if (!Array.isArray(details)) {
      throw new Error(
        `${source}: page ${pageIndex + 1} has no imageDetails list (expected the output of aws ecr describe-images)`,
      );
    }
    details.forEach((detail: Record<string, unknown>, index) => {
      const where = `${source}: imageDetails[${index}]`;
      const pushed = detail.imagePushedAt;
      const pushedAt =
        typeof pushed === 'number' ? new Date(pushed * 1000) : new Date(String(pushed));
      if (typeof detail.imageDigest !== 'string')
        throw new Error(`${where}: imageDigest is missing`);
      if (Number.isNaN(pushedAt.getTime()))
        throw new Error(`${where}: imagePushedAt ${JSON.stringify(pushed)} is not a date`);
      const tags = detail.imageTags ?? [];
      if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string'))
        throw new Error(`${where}: imageTags ${JSON.stringify(tags)} is not a list of tags`);
      images.push({
        digest: detail.imageDigest,
        tags: tags as string[],
        pushedAt,
        sizeInBytes: typeof detail.imageSizeInBytes === 'number' ? detail.imageSizeInBytes : 0,
      });
    });
  });
  return images;
}
