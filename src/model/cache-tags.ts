import { createHash } from 'node:crypto';

/**
 * Cache tags. Every image (bake target) has one cache tag per scope in its cache repository:
 *
 *   seed.<image>          written only by the scheduled cold build, kept forever
 *   main.<image>          written only by builds of the main branch, kept forever
 *   br-<slug>.<image>     written only by builds of that branch, expired after N days
 *
 * The scope comes first so that lifecycle rules can select by tag prefix ("main." vs "br-": no
 * branch can ever reach the main namespace), and the image name comes last after a '.', which
 * image names cannot contain, so `<scope>.<image>` is unambiguous.
 *
 * The branch slug is computed in three places that must agree byte for byte: here (for tests,
 * doctor and the branch-deletion job), in the workflow's shell step (BRANCH_SCOPE_SCRIPT below),
 * which runs on the CI runner with nothing but coreutils, and in the shipped pruner
 * (templates/prune-ecr-cache.mjs, self-contained: its branch sweep computes the slugs of the
 * branches that exist). Tests run the shell version with bash, import the pruner, and compare both
 * to this one over generated branch names.
 */

export const MAIN_SCOPE = 'main';
/** Written only by the scheduled cold build; imported by every build (docs/erosion-and-seed.md). */
export const SEED_SCOPE = 'seed';
export const BRANCH_SCOPE_PREFIX = 'br-';
/** Docker's tag grammar allows 128 characters (ECR allows 300, BuildKit enforces 128). */
export const MAX_TAG_LENGTH = 128;
/**
 * 16 hex digits (64 bits): with 8, colliding pairs of valid branch names are found by brute force
 * in under a second, and anyone who can push a branch could aim at another branch's cache.
 */
const HASH_LENGTH = 16;
const HASHED_SUFFIX = /-[0-9a-f]{16}$/;

/** The longest slug that still fits `br-<slug>.<image>` for every image name given. */
export function maxSlugLength(imageNames: readonly string[]): number {
  const longest = Math.max(0, ...imageNames.map((name) => name.length));
  return MAX_TAG_LENGTH - BRANCH_SCOPE_PREFIX.length - 1 - longest;
}

/**
 * A tag-safe, injective slug of a branch name:
 * - every UTF-8 byte outside [A-Za-z0-9_.-] becomes '-', then runs of '-' collapse to one;
 * - when that changed the name, or it is too long, or it already ends like a hashed slug,
 *   the slug is cut to fit and suffixed with '-' and the first 16 hex digits of the SHA-256 of the
 *   raw name. So `feat/a` and `feat-a` differ, and a branch literally named like another branch's
 *   hashed slug still gets a hash of its own.
 */
export function branchSlug(branch: string, maxLength: number): string {
  let cleaned = '';
  for (const byte of Buffer.from(branch, 'utf8')) {
    cleaned += isTagByte(byte) ? String.fromCharCode(byte) : '-';
  }
  cleaned = cleaned.replace(/-+/g, '-');
  if (cleaned === branch && cleaned.length <= maxLength && !HASHED_SUFFIX.test(cleaned)) {
    return cleaned;
  }
  const hash = createHash('sha256').update(branch, 'utf8').digest('hex').slice(0, HASH_LENGTH);
  return `${cleaned.slice(0, maxLength - HASH_LENGTH - 1)}-${hash}`;
}

function isTagByte(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) || // 0-9
    (byte >= 0x41 && byte <= 0x5a) || // A-Z
    (byte >= 0x61 && byte <= 0x7a) || // a-z
    byte === 0x5f || // _
    byte === 0x2e || // .
    byte === 0x2d // -
  );
}

/** The scope a build writes: main's on the main branch, the branch's own everywhere else. */
export function cacheScope(options: {
  isMainBranch: boolean;
  branch: string;
  imageNames: readonly string[];
}): string {
  if (options.isMainBranch) return MAIN_SCOPE;
  return BRANCH_SCOPE_PREFIX + branchSlug(options.branch, maxSlugLength(options.imageNames));
}

/**
 * The scope of a build outside CI (a laptop): it imports main's cache and writes only this one.
 * It ends like a hashed slug whose hash is all zeros, which no branch name can produce (a name
 * that already ends like a hashed slug is hashed again), so no branch shares it.
 */
export const LOCAL_CACHE_SCOPE = `${BRANCH_SCOPE_PREFIX}local-${'0'.repeat(HASH_LENGTH)}`;

export function cacheTag(scope: string, imageName: string): string {
  return `${scope}.${imageName}`;
}

/**
 * The bake variable naming the repository a target's own cache scope lives in:
 * `CACHE_REPOSITORY_<NAME>`, the image name upper-cased with '-' as '_' (an environment variable
 * name a shell can set). The config refuses two images that map to the same variable.
 */
export function cacheRepositoryVariable(imageName: string): string {
  return `CACHE_REPOSITORY_${imageName.toUpperCase().replaceAll('-', '_')}`;
}

/** An image's cache repositories, as the scope step needs them. */
export interface CacheLocations {
  name: string;
  cacheRepository: string;
  branchCacheRepository: string;
}

/**
 * The repository a build keeps its own scope in: the cache repository for main's scope (and the
 * seed's), the branch-cache repository for every other (docs/trust-separation.md).
 */
export function ownCacheRepository(image: CacheLocations, isMainBranch: boolean): string {
  return isMainBranch ? image.cacheRepository : image.branchCacheRepository;
}

/**
 * The same computation as `cacheScope` and `ownCacheRepository`, as a bash step for the
 * workflow. It reads BRANCH (the untrusted branch name, passed through env, never interpolated)
 * and IS_MAIN, and writes `scope=<scope>` and, per image, `<bake variable>=<repository>` (see
 * `cacheRepositoryVariable`) to $GITHUB_OUTPUT. LC_ALL=C makes tr work on bytes, like branchSlug.
 * Repository names are validated ECR names ([a-z0-9._/-]), quoted all the same.
 */
export function branchScopeScript(images: readonly CacheLocations[]): string {
  const max = maxSlugLength(images.map((image) => image.name));
  const repositories = (isMain: boolean) =>
    images.map(
      (image) =>
        `  echo "${cacheRepositoryVariable(image.name)}=${ownCacheRepository(image, isMain)}" >> "$GITHUB_OUTPUT"`,
    );
  return [
    'set -euo pipefail',
    'if [ "$IS_MAIN" = "true" ]; then',
    `  scope=${MAIN_SCOPE}`,
    ...repositories(true),
    'else',
    `  slug=$(printf '%s' "$BRANCH" | LC_ALL=C tr -cs 'A-Za-z0-9_.-' '-')`,
    `  if [ "$slug" != "$BRANCH" ] || [ "\${#slug}" -gt ${max} ] || [[ "$slug" =~ -[0-9a-f]{${HASH_LENGTH}}$ ]]; then`,
    `    hash=$(printf '%s' "$BRANCH" | sha256sum | cut -c1-${HASH_LENGTH})`,
    `    slug="\${slug:0:${max - HASH_LENGTH - 1}}-$hash"`,
    '  fi',
    `  scope="${BRANCH_SCOPE_PREFIX}$slug"`,
    ...repositories(false),
    'fi',
    'echo "scope=$scope" >> "$GITHUB_OUTPUT"',
    'echo "Cache scope: $scope"',
  ].join('\n');
}

/**
 * The per-platform suffix a cache tag may carry after the image name, `<os>-<arch>[-<variant>]`
 * (`br-<slug>.<image>.linux-arm64`): one cache per platform of a multi-platform image.
 */
export const PLATFORM_TAG_SUFFIX = /^[a-z0-9]+-[a-z0-9_]+(?:-[a-z0-9]+)?$/;

/** One reading of a branch cache tag. */
export interface BranchCacheTag {
  slug: string;
  image: string;
  platform?: string;
}

const SLUG_CHARACTERS = /^[A-Za-z0-9_.-]+$/;

/**
 * Every way `tag` reads as `br-<slug>.<image>[.<platform>]` for one of `imageNames`. A slug may
 * hold '.', so one tag can read more than one way (`br-a.api.linux-amd64`: image `api` on
 * linux-amd64, or image `linux-amd64` of the slug `a.api`); whatever deletes by it must find
 * every reading stale. The shipped pruner reads tags the same way (its `splitBranchCacheTag`;
 * a test compares the two): change both together.
 */
export function splitBranchCacheTag(tag: string, imageNames: readonly string[]): BranchCacheTag[] {
  if (tag.length > MAX_TAG_LENGTH || !/^br-[A-Za-z0-9_.-]+\.[A-Za-z0-9_-]+$/.test(tag)) return [];
  const body = tag.slice(BRANCH_SCOPE_PREFIX.length);
  const readings: BranchCacheTag[] = [];
  for (const image of new Set(imageNames)) {
    if (body.endsWith(`.${image}`)) {
      const slug = body.slice(0, -(image.length + 1));
      if (SLUG_CHARACTERS.test(slug)) readings.push({ slug, image });
    }
    const marker = `.${image}.`;
    for (let at = body.indexOf(marker); at !== -1; at = body.indexOf(marker, at + 1)) {
      const slug = body.slice(0, at);
      const platform = body.slice(at + marker.length);
      if (SLUG_CHARACTERS.test(slug) && PLATFORM_TAG_SUFFIX.test(platform)) {
        readings.push({ slug, image, platform });
      }
    }
  }
  return readings;
}
