import { createHash } from 'node:crypto';

/**
 * Cache tags. Every image (bake target) has one cache tag per scope in its cache repository:
 *
 *   seed.<image>          written only by the scheduled cold build, kept forever
 *   main.<image>          written only by builds of the main branch, kept forever
 *   br-<slug>.<image>     written only by builds of that branch, expired after N days
 *
 * An image built natively per platform (`build: native`) has one cache tag per scope *and
 * platform*, since builders on several runners exporting one tag overwrite each other
 * (docs/multi-platform.md):
 *
 *   <scope>.<image>.<os>-<arch>[-<variant>]     e.g. main.api.linux-arm64, br-feat-x.api.linux-amd64
 *
 * The scope comes first so that lifecycle rules can select by tag prefix ("main." vs "br-": no
 * branch can ever reach the main namespace), and what follows the scope is the tag's *suffix*:
 * `<image>`, or `<image>.<platform slug>`. Image names and platform slugs contain no '.', so the
 * last one or two dot-separated parts are the suffix. Which one is decided against the
 * configuration's own suffixes (`cacheTagSuffixes`, `parseCacheTag`): the config refuses an image
 * named like the platform slug of a per-platform image (say `linux-amd64`), the one way a branch's
 * `<scope>.<image>` could equal another branch's `<scope>.<image>.<platform>` (docs/cache-strategy.md).
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

/**
 * The longest slug that still fits `br-<slug>.<suffix>` for every tag suffix given: the image names,
 * and `<image>.<platform slug>` for an image built per platform (`cacheTagSuffixes`).
 */
export function maxSlugLength(tagSuffixes: readonly string[]): number {
  const longest = Math.max(0, ...tagSuffixes.map((suffix) => suffix.length));
  return MAX_TAG_LENGTH - BRANCH_SCOPE_PREFIX.length - 1 - longest;
}

/** What a cache tag needs to know of an image: its name, platforms and how they are built. */
export interface CacheImage {
  name: string;
  platforms: readonly string[];
  build?: 'native' | 'emulated' | undefined;
}

/**
 * Whether an image is built per platform, each platform on its own runner with its own cache tag
 * (`build: native`); otherwise all its platforms are built together and share one cache tag.
 */
export function buildsPerPlatform(image: Pick<CacheImage, 'build'>): boolean {
  return image.build === 'native';
}

/**
 * A platform as it appears in cache tags, bake target names and job ids: its parts joined by '-'
 * (`linux/arm64/v8` → `linux-arm64-v8`). One-to-one: a platform's parts contain no '-' (see
 * PLATFORM in config/schema.ts), and no '.', so it never splits a tag's suffix.
 */
export function platformSlug(platform: string): string {
  return platform.replaceAll('/', '-');
}

/** The suffix of an image's cache tags: `<image>`, or `<image>.<platform slug>` for one platform. */
export function cacheTagSuffix(imageName: string, platform?: string): string {
  return platform === undefined ? imageName : `${imageName}.${platformSlug(platform)}`;
}

/** An image's tag suffixes: one per platform when it is built per platform, else its name. */
export function imageTagSuffixes(image: CacheImage): string[] {
  return buildsPerPlatform(image)
    ? image.platforms.map((platform) => cacheTagSuffix(image.name, platform))
    : [image.name];
}

/** Every tag suffix of a configuration's images, in image and platform order. */
export function cacheTagSuffixes(images: readonly CacheImage[]): string[] {
  return images.flatMap(imageTagSuffixes);
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

/**
 * The scope a build writes: main's on the main branch, the branch's own everywhere else. Every
 * job of a run computes the same scope, from every tag suffix of the configuration
 * (`cacheTagSuffixes`), so one scope fits all of its tags.
 */
export function cacheScope(options: {
  isMainBranch: boolean;
  branch: string;
  tagSuffixes: readonly string[];
}): string {
  if (options.isMainBranch) return MAIN_SCOPE;
  return BRANCH_SCOPE_PREFIX + branchSlug(options.branch, maxSlugLength(options.tagSuffixes));
}

/**
 * The scope of a build outside CI (a laptop): it imports main's cache and writes only this one.
 * It ends like a hashed slug whose hash is all zeros, which no branch name can produce (a name
 * that already ends like a hashed slug is hashed again), so no branch shares it.
 */
export const LOCAL_CACHE_SCOPE = `${BRANCH_SCOPE_PREFIX}local-${'0'.repeat(HASH_LENGTH)}`;

/** `<scope>.<suffix>`: an image's tag (`main.api`) or a platform's (`main.api.linux-arm64`). */
export function cacheTag(scope: string, tagSuffix: string): string {
  return `${scope}.${tagSuffix}`;
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
export interface CacheLocations extends CacheImage {
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
 * `cacheRepositoryVariable`) to $GITHUB_OUTPUT (or the file `outputVariable` names: the GitLab
 * pipeline runs the same script). LC_ALL=C makes tr work on bytes, like branchSlug.
 * Repository names are validated ECR names ([a-z0-9._/-]), quoted all the same.
 */
export function branchScopeScript(
  images: readonly CacheLocations[],
  outputVariable = 'GITHUB_OUTPUT',
): string {
  const max = maxSlugLength(cacheTagSuffixes(images));
  const output = `"$${outputVariable}"`;
  const repositories = (isMain: boolean) =>
    images.map(
      (image) =>
        `  echo "${cacheRepositoryVariable(image.name)}=${ownCacheRepository(image, isMain)}" >> ${output}`,
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
    `echo "scope=$scope" >> ${output}`,
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
