#!/usr/bin/env node
// prune-ecr-cache.mjs, shipped by create-cached-deploy __GENERATOR_VERSION__.
// Generated: do not edit. It is byte-identical in every repository that uses this version;
// regenerate it with `npx create-cached-deploy generate`. `create-cached-deploy prune` runs this
// same file.
//
// Deletes the BuildKit cache artifacts that a build superseded, and nothing else:
//   record  before the build: remember which digest each cache tag points to
//   prune   after the build: delete each superseded digest, only if it is now untagged, is a
//           BuildKit cache artifact, is no index's child, and is older than the grace period;
//           with --sweep, also other untagged cache artifacts older than the grace period
//   delete-branch   remove a deleted branch's cache tags (ECR deletes an image with its last tag)
//   sweep-branches  remove the br-* cache tags of every branch that no longer exists, given a
//           listing of the branches that do (docs/ecr-api-and-pruning.md, "The branch sweep")
// Needs Node >= 20 and @aws-sdk/client-ecr; uses the SDK's standard credential chain, and
// AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL when set.

import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  writeFileSync,
} from 'node:fs';
import { pathToFileURL } from 'node:url';

export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.buildkit.cacheconfig.v0';
const INDEX_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);
const IMAGE_MANIFEST_MEDIA_TYPES = new Set([
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
]);
/** ECR's limits: 1000 per list page, 100 ids per BatchGetImage / BatchDeleteImage. */
const PAGE_SIZE = 1000;
const BATCH_SIZE = 100;
/** Pages of a listing before it is taken for one that never ends. */
const MAX_PAGES = 1000;
/** Longer than any GitHub-hosted job may run (6 h), so no build can still be importing it. */
export const DEFAULT_GRACE_HOURS = 6;

const USAGE = `usage:
  prune-ecr-cache.mjs record --repository NAME --tag TAG [--tag TAG ...] --state FILE
  prune-ecr-cache.mjs prune --state FILE [--sweep] [--grace-hours H] [--dry-run] [--json] [--fail-on-error]
  prune-ecr-cache.mjs prune --repository NAME --sweep [--grace-hours H] [--dry-run] [--json] [--fail-on-error]
  prune-ecr-cache.mjs delete-branch --repository NAME --tag TAG [--tag TAG ...] [--dry-run] [--json]
  prune-ecr-cache.mjs sweep-branches --repository NAME --image IMAGE [--image IMAGE ...]
      --branches-file FILE --main-branch NAME [--grace-hours H] [--dry-run] [--json] [--fail-on-error]
      (--main-branch defaults to $CACHED_DEPLOY_MAIN_BRANCH)
--repository, --tag and --image may repeat; each --tag or --image belongs to the --repository
before it. FILE lists the branches that exist, one name a line, or \`git ls-remote --heads\` output.`;

/**
 * The ECR calls the pruner makes, as a narrow port: tests and the CLI can pass any object with
 * these methods; `sdkPort` adapts @aws-sdk/client-ecr.
 * @typedef {{
 *   describeImages(input: object): Promise<{ imageDetails?: object[], nextToken?: string }>,
 *   batchGetImage(input: object): Promise<{ images?: object[], failures?: object[] }>,
 *   batchDeleteImage(input: object): Promise<{ imageIds?: object[], failures?: object[] }>,
 * }} EcrPort
 */

/** @returns {Promise<EcrPort>} */
export async function sdkPort(options = {}) {
  const sdk = await import('@aws-sdk/client-ecr');
  // The SDK retries throttling and 5xx with exponential backoff and jitter; a pruner can afford
  // to be patient, so it gets more attempts than the default 3.
  // A connection that hangs fails (and is retried) instead of holding the deploy job: 10 s to
  // connect, 60 s of silence on a socket.
  const client = new sdk.ECRClient({
    maxAttempts: 8,
    retryMode: 'standard',
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    ...options,
  });
  return {
    describeImages: (input) => client.send(new sdk.DescribeImagesCommand(input)),
    batchGetImage: (input) => client.send(new sdk.BatchGetImageCommand(input)),
    batchDeleteImage: (input) => client.send(new sdk.BatchDeleteImageCommand(input)),
  };
}

/**
 * Every image of a repository, one DescribeImages page of up to 1000 at a time. The token is the
 * server's: one that comes back, or pages that never end (MAX_PAGES, 10x ECR's default image
 * quota at 1000 a page), stop with an error instead of looping. Entries are appended one by one:
 * spreading a huge page into push() overflows the stack.
 */
export async function listImages(ecr, repositoryName, { maxPages = MAX_PAGES, filter } = {}) {
  const images = [];
  const seen = new Set();
  let nextToken;
  for (let count = 1; ; count++) {
    const page = await ecr.describeImages({
      repositoryName,
      maxResults: PAGE_SIZE,
      nextToken,
      ...(filter ? { filter } : {}),
    });
    for (const image of page.imageDetails ?? []) images.push(image);
    nextToken = page.nextToken;
    if (!nextToken) return images;
    if (seen.has(nextToken))
      throw new Error(
        `DescribeImages on ${repositoryName}: ECR answered a nextToken it had already given (page ${count}); stopped instead of looping`,
      );
    if (count >= maxPages)
      throw new Error(
        `DescribeImages on ${repositoryName}: more than ${maxPages} pages; stopped (a listing that does not end)`,
      );
    seen.add(nextToken);
  }
}

function chunks(items, size = BATCH_SIZE) {
  const out = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Current digest of each tag (null when the tag does not exist), from one listing. */
function tagDigests(images, tags) {
  const byTag = new Map();
  for (const image of images)
    for (const tag of image.imageTags ?? []) byTag.set(tag, image.imageDigest);
  return Object.fromEntries(tags.map((tag) => [tag, byTag.get(tag) ?? null]));
}

/** Before the build: which digest each cache tag points to now. */
export async function recordDigests(ecr, targets) {
  // Several images may share a repository (one --repository each): list it once, keep every tag.
  const tagsOf = new Map();
  for (const { repository, tags } of targets)
    tagsOf.set(repository, [...(tagsOf.get(repository) ?? []), ...tags]);
  const repositories = {};
  for (const [repository, tags] of tagsOf) {
    repositories[repository] = tagDigests(await listImages(ecr, repository), tags);
  }
  return { formatVersion: 1, recordedAt: new Date().toISOString(), repositories };
}

/**
 * Pure selection: which images to delete and why the others are kept. `images` is one listing of
 * the repository; `children` the digests some index in it references.
 */
export function selectDeletions({ images, children, superseded, sweep, graceMs, now }) {
  const byDigest = new Map(images.map((image) => [image.imageDigest, image]));
  const candidates = new Map();
  for (const { digest, tag } of superseded)
    candidates.set(digest, { digest, tag, why: 'superseded' });
  if (sweep) {
    for (const image of images) {
      if (!candidates.has(image.imageDigest) && (image.imageTags ?? []).length === 0) {
        candidates.set(image.imageDigest, { digest: image.imageDigest, why: 'sweep' });
      }
    }
  }
  const remove = [];
  const skipped = [];
  for (const candidate of candidates.values()) {
    const image = byDigest.get(candidate.digest);
    const skip = (reason) => skipped.push({ ...candidate, reason });
    if (!image) skip('already-gone');
    else if ((image.imageTags ?? []).length > 0) skip('tagged');
    else if (children.has(candidate.digest)) skip('index-child');
    else if (image.artifactMediaType !== CACHE_CONFIG_MEDIA_TYPE) skip('not-cache-artifact');
    // Written so that an unknown push time (NaN) keeps the image too.
    else if (!(now - new Date(image.imagePushedAt).getTime() >= graceMs))
      skip('younger-than-grace');
    else remove.push({ ...candidate, bytes: image.imageSizeInBytes ?? 0 });
  }
  return { remove, skipped };
}

/**
 * Digests referenced by any index (multi-platform list) in the repository. Every index must be
 * read: one that fails, that BatchGetImage leaves out of its answer altogether, or whose manifest
 * names no list of children may hide children, so the repository is skipped (an error), and
 * nothing in it is deleted.
 */
async function indexChildren(ecr, repositoryName, images) {
  const children = new Set();
  const indexes = images.filter((image) => INDEX_MEDIA_TYPES.has(image.imageManifestMediaType));
  for (const batch of chunks(indexes)) {
    const imageIds = batch.map((image) => ({ imageDigest: image.imageDigest }));
    const result = await ecr.batchGetImage({
      repositoryName,
      imageIds,
      acceptedMediaTypes: [...INDEX_MEDIA_TYPES],
    });
    const manifests = new Map();
    for (const image of result.images ?? [])
      manifests.set(image.imageId?.imageDigest, image.imageManifest);
    const unread = [];
    for (const { imageDigest } of imageIds) {
      const list = indexManifests(manifests.get(imageDigest));
      if (!list) unread.push(imageDigest);
      else for (const child of list) children.add(child);
    }
    if (unread.length > 0) {
      const failed = (result.failures ?? []).length;
      throw new Error(
        `could not read ${unread.length} index manifest(s) in ${repositoryName} (${failed} failed, ${unread.length - failed} missing from the answer or unreadable, e.g. ${unread[0]}): their children are unknown, so nothing in this repository is deleted`,
      );
    }
  }
  return children;
}

/** The child digests an index manifest lists, or undefined when it is not a readable index. */
function indexManifests(text) {
  let manifest;
  try {
    manifest = typeof text === 'string' ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
  if (!Array.isArray(manifest?.manifests)) return undefined;
  const digests = [];
  for (const entry of manifest.manifests) {
    if (typeof entry?.digest !== 'string') return undefined;
    digests.push(entry.digest);
  }
  return digests;
}

/**
 * Reads each candidate's manifest, so the decision rests on the config media type in the manifest
 * itself, not only on what the listing reported.
 */
async function confirmCacheArtifacts(ecr, repositoryName, remove) {
  const confirmed = [];
  const skipped = [];
  for (const batch of chunks(remove)) {
    const imageIds = batch.map((entry) => ({ imageDigest: entry.digest }));
    const result = await ecr.batchGetImage({
      repositoryName,
      imageIds,
      acceptedMediaTypes: [...IMAGE_MANIFEST_MEDIA_TYPES],
    });
    const manifests = new Map(
      (result.images ?? []).map((image) => [image.imageId?.imageDigest, image.imageManifest]),
    );
    for (const entry of batch) {
      const text = manifests.get(entry.digest);
      let manifest;
      try {
        manifest = text ? JSON.parse(text) : undefined;
      } catch {
        manifest = undefined;
      }
      if (!text) skipped.push({ ...entry, reason: 'already-gone' });
      else if (manifest?.config?.mediaType !== CACHE_CONFIG_MEDIA_TYPE || manifest?.manifests)
        skipped.push({ ...entry, reason: 'not-cache-artifact' });
      else confirmed.push(entry);
    }
  }
  return { confirmed, skipped };
}

/** Deletes by digest, 100 at a time, believing only what ECR says it deleted. */
async function deleteDigests(ecr, repositoryName, entries, summary) {
  for (const candidates of chunks(entries)) {
    let result;
    let batch;
    try {
      // Deleting by digest also deletes every tag on it, and ECR has no "only if untagged": look
      // again right before deleting, so a tag a concurrent build just moved here is not lost.
      const tagged = await taggedNow(ecr, repositoryName, candidates);
      batch = candidates.filter((entry) => !tagged.has(entry.digest));
      for (const entry of candidates) {
        if (tagged.has(entry.digest)) {
          summary.skipped.push({ repository: repositoryName, ...entry, reason: 'tagged' });
        }
      }
      if (batch.length === 0) continue;
      result = await ecr.batchDeleteImage({
        repositoryName,
        imageIds: batch.map((entry) => ({ imageDigest: entry.digest })),
      });
    } catch (error) {
      for (const entry of batch ?? candidates)
        summary.errors.push({
          repository: repositoryName,
          digest: entry.digest,
          error: errorText(error),
        });
      continue;
    }
    const deleted = new Set((result.imageIds ?? []).map((id) => id.imageDigest));
    const failures = new Map(
      (result.failures ?? []).map((failure) => [failure.imageId?.imageDigest, failure]),
    );
    for (const entry of batch) {
      const failure = failures.get(entry.digest);
      if (deleted.has(entry.digest)) {
        summary.deleted.push({ repository: repositoryName, ...entry });
        summary.bytesReclaimed += entry.bytes;
      } else if (failure?.failureCode === 'ImageNotFound') {
        summary.skipped.push({ repository: repositoryName, ...entry, reason: 'already-gone' });
      } else if (failure?.failureCode === 'ImageReferencedByManifestList') {
        summary.skipped.push({ repository: repositoryName, ...entry, reason: 'index-child' });
      } else {
        const error = failure
          ? printable(`${failure.failureCode}: ${failure.failureReason ?? ''}`.trim())
          : 'not reported as deleted';
        summary.errors.push({ repository: repositoryName, digest: entry.digest, error });
      }
    }
  }
}

/** Digests among `entries` that carry a tag now. An image already gone is simply not tagged. */
async function taggedNow(ecr, repositoryName, entries) {
  const describe = async (ids) => {
    const result = await ecr.describeImages({
      repositoryName,
      imageIds: ids.map((entry) => ({ imageDigest: entry.digest })),
    });
    return (result.imageDetails ?? []).filter((image) => (image.imageTags ?? []).length > 0);
  };
  try {
    return new Set((await describe(entries)).map((image) => image.imageDigest));
  } catch (error) {
    // DescribeImages by id fails whole when one id is gone: ask one by one (rare).
    if (error?.name !== 'ImageNotFoundException') throw error;
    const tagged = new Set();
    for (const entry of entries) {
      try {
        for (const image of await describe([entry])) tagged.add(image.imageDigest);
      } catch (inner) {
        if (inner?.name !== 'ImageNotFoundException') throw inner;
      }
    }
    return tagged;
  }
}

function errorText(error) {
  return printable(`${error?.name ?? 'Error'}: ${error?.message ?? String(error)}`);
}

/**
 * Text from ECR (an error message, a failure reason) made safe for a terminal and a log: control
 * characters and bidi overrides escaped, one line, cut to 300 characters.
 */
export function printable(text) {
  const line = String(text).replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what we escape
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (char) => `\\u{${char.codePointAt(0).toString(16)}}`,
  );
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}

// ---------------------------------------------------------------------------------------------
// Cache tags: the one place the pruner reads them. The same rules as create-cached-deploy's
// src/model/cache-tags.ts (a test compares the two over generated branch names and tags):
//   br-<slug>.<image>[.<platform>]   a branch's cache (the platform suffix: one per platform)
// ---------------------------------------------------------------------------------------------

export const BRANCH_SCOPE_PREFIX = 'br-';
/** Docker's tag grammar allows 128 characters (BuildKit enforces it). */
export const MAX_TAG_LENGTH = 128;
/** 16 hex digits of the raw branch name's SHA-256, when the slug had to change. */
export const SLUG_HASH_LENGTH = 16;
const HASHED_SLUG = /-([0-9a-f]{16})$/;
/** A build outside CI: shaped like a hashed slug no branch name can produce. */
export const LOCAL_CACHE_SCOPE = `${BRANCH_SCOPE_PREFIX}local-${'0'.repeat(SLUG_HASH_LENGTH)}`;
/** An image (bake target) name, as cached-deploy.yml allows it: no '.', so `<scope>.<image>` parses. */
export const IMAGE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
/** The per-platform suffix after the image name: `<os>-<arch>[-<variant>]`. */
export const PLATFORM_TAG_SUFFIX = /^[a-z0-9]+-[a-z0-9_]+(?:-[a-z0-9]+)?$/;
/** A branch's cache tag: `br-<slug>.<image>` (and anything after a further '.'); nothing else. */
const BRANCH_TAG = /^br-[A-Za-z0-9_.-]+\.[A-Za-z0-9_-]+$/;
const SLUG = /^[A-Za-z0-9_.-]+$/;

export function isBranchCacheTag(tag) {
  return typeof tag === 'string' && tag.length <= MAX_TAG_LENGTH && BRANCH_TAG.test(tag);
}

/**
 * Every way `tag` reads as `br-<slug>.<image>[.<platform>]` for one of `imageNames`. A slug may
 * hold '.', so a tag can read more than one way (`br-a.api.linux-amd64` is image `api` on
 * linux-amd64, or image `linux-amd64` of the branch slug `a.api`): callers that delete must find
 * every reading stale.
 */
export function splitBranchCacheTag(tag, imageNames) {
  if (!isBranchCacheTag(tag)) return [];
  const readings = [];
  const body = tag.slice(BRANCH_SCOPE_PREFIX.length);
  for (const image of new Set(imageNames)) {
    const plain = `.${image}`;
    if (body.endsWith(plain)) {
      const slug = body.slice(0, -plain.length);
      if (SLUG.test(slug)) readings.push({ slug, image });
    }
    const marker = `.${image}.`;
    for (let at = body.indexOf(marker); at !== -1; at = body.indexOf(marker, at + 1)) {
      const slug = body.slice(0, at);
      const platform = body.slice(at + marker.length);
      if (SLUG.test(slug) && PLATFORM_TAG_SUFFIX.test(platform))
        readings.push({ slug, image, platform });
    }
  }
  return readings;
}

function isTagByte(byte) {
  return (
    (byte >= 0x30 && byte <= 0x39) ||
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    byte === 0x5f ||
    byte === 0x2e ||
    byte === 0x2d
  );
}

/**
 * The parts a branch's slug is made of, from the raw name's bytes (a branch name is bytes; the
 * CI shell hashes exactly those): every byte outside [A-Za-z0-9_.-] as '-', runs of '-' as one;
 * whether that left the name as it was; the hash.
 */
function slugParts(branch) {
  const bytes = typeof branch === 'string' ? Buffer.from(branch, 'utf8') : Buffer.from(branch);
  let cleaned = '';
  for (const byte of bytes) cleaned += isTagByte(byte) ? String.fromCharCode(byte) : '-';
  cleaned = cleaned.replace(/-+/g, '-');
  const unchanged = cleaned === bytes.toString('latin1');
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, SLUG_HASH_LENGTH);
  return { cleaned, unchanged, hash };
}

/**
 * A branch's slug as the workflow computes it for a slug of at most `maxLength` characters:
 * the name itself when it is tag-safe, short enough and does not end like a hashed slug; else
 * the cleaned name cut to fit, '-', and the hash.
 */
export function branchSlug(branch, maxLength) {
  const { cleaned, unchanged, hash } = slugParts(branch);
  if (unchanged && cleaned.length <= maxLength && !HASHED_SLUG.test(cleaned)) return cleaned;
  return `${cleaned.slice(0, maxLength - SLUG_HASH_LENGTH - 1)}-${hash}`;
}

/**
 * The existing branches, indexed by what their slugs can be. The slug's length limit depends on
 * the longest image name of the whole configuration (and on a platform suffix), which one sweep
 * of one repository need not know: a slug belongs to a branch when it is that branch's slug for
 * *some* limit. That keeps every tag a living branch can have; a deleted branch's tag matches no
 * living branch unless their 64-bit hashes collide.
 */
export function branchIndex(names) {
  const plain = new Set();
  const byHash = new Map();
  for (const name of names) {
    const { cleaned, unchanged, hash } = slugParts(name);
    if (unchanged && !HASHED_SLUG.test(cleaned)) plain.add(cleaned);
    byHash.set(hash, [...(byHash.get(hash) ?? []), cleaned]);
  }
  return { plain, byHash, size: names.length };
}

export function slugOfExistingBranch(slug, index) {
  if (index.plain.has(slug)) return true;
  const hashed = HASHED_SLUG.exec(slug);
  if (!hashed) return false;
  const prefix = slug.slice(0, -(SLUG_HASH_LENGTH + 1));
  return (index.byHash.get(hashed[1]) ?? []).some((cleaned) => cleaned.startsWith(prefix));
}

/** Throws unless every tag is a branch's cache tag: delete-branch never touches main.*, seed.*. */
export function checkBranchTags(targets) {
  const outside = targets.flatMap(({ repository, tags }) =>
    tags.filter((tag) => !isBranchCacheTag(tag)).map((tag) => `${repository}:${printable(tag)}`),
  );
  if (outside.length > 0)
    throw new Error(
      `delete-branch only deletes branch cache tags (br-<branch>.<image>); refusing ${outside.slice(0, 5).join(', ')}${outside.length > 5 ? ` and ${outside.length - 5} more` : ''}; nothing was deleted`,
    );
}

/**
 * After the build. `recorded` is what `recordDigests` wrote (may be empty with `sweep`). Returns
 * a summary; never throws for per-repository problems (they are in `errors`).
 */
export async function prune(ecr, options) {
  const {
    recorded = { repositories: {} },
    repositories = [],
    sweep = false,
    dryRun = false,
  } = options;
  const graceMs = (options.graceHours ?? DEFAULT_GRACE_HOURS) * 3600 * 1000;
  const now = options.now ?? Date.now();
  const summary = { dryRun, deleted: [], skipped: [], errors: [], bytesReclaimed: 0 };
  const names = [...new Set([...Object.keys(recorded.repositories ?? {}), ...repositories])];
  for (const repositoryName of names) {
    try {
      const images = await listImages(ecr, repositoryName, { maxPages: options.maxPages });
      const before = recorded.repositories?.[repositoryName] ?? {};
      const current = tagDigests(images, Object.keys(before));
      const superseded = Object.entries(before)
        .filter(([tag, digest]) => digest && current[tag] !== digest)
        .map(([tag, digest]) => ({ digest, tag }));
      const children = await indexChildren(ecr, repositoryName, images);
      const selection = selectDeletions({ images, children, superseded, sweep, graceMs, now });
      for (const entry of selection.skipped)
        summary.skipped.push({ repository: repositoryName, ...entry });
      const { confirmed, skipped } = await confirmCacheArtifacts(
        ecr,
        repositoryName,
        selection.remove,
      );
      for (const entry of skipped) summary.skipped.push({ repository: repositoryName, ...entry });
      if (dryRun) {
        for (const entry of confirmed)
          summary.deleted.push({ repository: repositoryName, ...entry });
        summary.bytesReclaimed += confirmed.reduce((sum, entry) => sum + entry.bytes, 0);
      } else {
        await deleteDigests(ecr, repositoryName, confirmed, summary);
      }
    } catch (error) {
      summary.errors.push({ repository: repositoryName, error: errorText(error) });
    }
  }
  return summary;
}

/**
 * A deleted branch: remove its cache tags. On ECR, removing an image's last tag deletes the image
 * too, which is what we want here: only that branch's builds imported it, and there are no more.
 */
export async function deleteBranchTags(ecr, targets, { dryRun = false } = {}) {
  checkBranchTags(targets);
  const summary = { dryRun, deleted: [], skipped: [], errors: [], bytesReclaimed: 0 };
  for (const { repository, tags } of targets) {
    if (dryRun) {
      for (const tag of tags) summary.deleted.push({ repository, tag, why: 'branch-deleted' });
      continue;
    }
    for (const batch of chunks(tags)) {
      try {
        const result = await ecr.batchDeleteImage({
          repositoryName: repository,
          imageIds: batch.map((imageTag) => ({ imageTag })),
        });
        for (const id of result.imageIds ?? [])
          summary.deleted.push({
            repository,
            tag: id.imageTag,
            digest: id.imageDigest,
            why: 'branch-deleted',
          });
        for (const failure of result.failures ?? []) {
          if (failure.failureCode === 'ImageNotFound')
            summary.skipped.push({
              repository,
              tag: failure.imageId?.imageTag,
              reason: 'already-gone',
            });
          else
            summary.errors.push({
              repository,
              tag: failure.imageId?.imageTag,
              error: printable(`${failure.failureCode}: ${failure.failureReason ?? ''}`.trim()),
            });
        }
      } catch (error) {
        summary.errors.push({ repository, error: errorText(error) });
      }
    }
  }
  return summary;
}

// ---------------------------------------------------------------------------------------------
// The branch sweep: the br-* tags of branches that no longer exist
// ---------------------------------------------------------------------------------------------

/** A listing of every branch of a big repository fits many times over; more is not a listing. */
export const MAX_BRANCHES_FILE_BYTES = 16 * 1024 * 1024;
/** `<sha>\trefs/heads/<name>`, as `git ls-remote --heads` prints it (SHA-1 or SHA-256). */
const LS_REMOTE_LINE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})\trefs\/heads\//;

/**
 * Reads the branch listing, at most `maxBytes` of it: a file that is larger, not a regular file,
 * or unreadable is an error, never a shorter listing.
 */
export function readBranchesFile(path, { maxBytes = MAX_BRANCHES_FILE_BYTES } = {}) {
  let fd;
  try {
    fd = openSync(path, 'r');
    if (!fstatSync(fd).isFile()) throw new Error('not a regular file');
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
      if (length > maxBytes) throw new Error(`larger than ${maxBytes} bytes`);
    }
    return buffer.subarray(0, length);
  } catch (error) {
    throw new Error(
      `cannot read the branch listing ${printable(path)}: ${printable(error?.message ?? error)}; nothing was deleted`,
    );
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * A byte that git never allows in a branch name (git check-ref-format): control characters,
 * space, ~ ^ : ? * [ \ and DEL. A line holding one is not a branch name.
 */
function isForbiddenRefByte(byte) {
  return byte < 0x21 || byte === 0x7f || '~^:?*[\\'.includes(String.fromCharCode(byte));
}

/**
 * The branch names of a listing: one raw name a line, or `git ls-remote --heads` lines. Blank
 * lines are skipped, a CR before the LF too. Names stay bytes (a branch name need not be UTF-8,
 * and its slug hashes the bytes). Anything else, an empty listing, or one without `mainBranch`,
 * is an error: a listing that failed must never read as "every branch was deleted".
 */
export function parseBranchListing(buffer, { mainBranch, source = 'the branch listing' }) {
  const names = [];
  let start = 0;
  let lineNumber = 0;
  while (start <= buffer.length) {
    let end = buffer.indexOf(0x0a, start);
    if (end === -1) end = buffer.length;
    lineNumber++;
    let line = buffer.subarray(start, end);
    start = end + 1;
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
    if (line.length === 0) continue;
    const text = line.toString('latin1');
    const remote = LS_REMOTE_LINE.exec(text);
    const name = remote ? line.subarray(remote[0].length) : line;
    if (name.length === 0 || name.some(isForbiddenRefByte))
      throw new Error(
        `${source}, line ${lineNumber}: ${JSON.stringify(printable(line.toString('utf8')).slice(0, 80))} is neither a branch name nor a \`git ls-remote --heads\` line; nothing was deleted`,
      );
    names.push(name);
  }
  if (names.length === 0)
    throw new Error(`${source} lists no branch (a failed listing?); nothing was deleted`);
  const main = Buffer.from(mainBranch, 'utf8');
  if (!names.some((name) => name.equals(main)))
    throw new Error(
      `${source} does not list the main branch ${JSON.stringify(printable(mainBranch))} (a failed or partial listing?); nothing was deleted`,
    );
  return names;
}

/**
 * Pure selection over one repository's listing: the br-* tags of `imageNames` whose branch is in
 * none of the `branches` (a `branchIndex`), pushed longer ago than the grace period. A tag that
 * reads more than one way goes only when every reading is stale. Tags of other images, and
 * anything outside the branch scope (main.*, seed.*, the local scope), are never candidates.
 */
export function selectStaleBranchTags({ images, imageNames, branches, graceMs, now }) {
  const remove = [];
  const skipped = [];
  for (const image of images) {
    for (const tag of image.imageTags ?? []) {
      if (!tag.startsWith(BRANCH_SCOPE_PREFIX)) continue;
      const entry = { tag, digest: image.imageDigest };
      const readings = splitBranchCacheTag(tag, imageNames);
      const skip = (reason) => skipped.push({ ...entry, reason });
      if (readings.length === 0) skip('outside-scope');
      else if (
        readings.some((reading) => `${BRANCH_SCOPE_PREFIX}${reading.slug}` === LOCAL_CACHE_SCOPE)
      )
        skip('local-scope');
      else if (readings.some((reading) => slugOfExistingBranch(reading.slug, branches)))
        skip('branch-exists');
      // Written so that an unknown push time (NaN) keeps the tag too.
      else if (!(now - new Date(image.imagePushedAt).getTime() >= graceMs))
        skip('younger-than-grace');
      else remove.push({ ...entry, why: 'branch-gone' });
    }
  }
  return { remove, skipped };
}

/**
 * Where each tag points now (a tag that is gone is absent), one DescribeImages by tag for up to
 * 100 of them. DescribeImages by id fails whole when one is gone: then one by one (rare).
 */
async function tagTargetsNow(ecr, repositoryName, tags) {
  const targets = new Map();
  const describe = async (batch) => {
    const result = await ecr.describeImages({
      repositoryName,
      imageIds: batch.map((imageTag) => ({ imageTag })),
    });
    for (const image of result.imageDetails ?? [])
      for (const tag of image.imageTags ?? [])
        if (batch.includes(tag)) targets.set(tag, image.imageDigest);
  };
  try {
    await describe(tags);
  } catch (error) {
    if (error?.name !== 'ImageNotFoundException') throw error;
    for (const tag of tags) {
      try {
        await describe([tag]);
      } catch (inner) {
        if (inner?.name !== 'ImageNotFoundException') throw inner;
      }
    }
  }
  return targets;
}

/**
 * Deletes by tag, 100 at a time, believing only what ECR says it deleted. Right before each
 * batch the tags are read again: one that a new build (of a branch re-created since the listing)
 * moved is kept.
 */
async function deleteStaleTags(ecr, repositoryName, entries, summary) {
  for (const candidates of chunks(entries)) {
    let result;
    let batch;
    try {
      const now = await tagTargetsNow(
        ecr,
        repositoryName,
        candidates.map((entry) => entry.tag),
      );
      batch = [];
      for (const entry of candidates) {
        const digest = now.get(entry.tag);
        if (digest === undefined)
          summary.skipped.push({ repository: repositoryName, ...entry, reason: 'already-gone' });
        else if (digest !== entry.digest)
          summary.skipped.push({ repository: repositoryName, ...entry, reason: 'moved' });
        else batch.push(entry);
      }
      if (batch.length === 0) continue;
      result = await ecr.batchDeleteImage({
        repositoryName,
        imageIds: batch.map((entry) => ({ imageTag: entry.tag })),
      });
    } catch (error) {
      for (const entry of batch ?? candidates)
        summary.errors.push({
          repository: repositoryName,
          tag: entry.tag,
          error: errorText(error),
        });
      continue;
    }
    const deleted = new Set((result.imageIds ?? []).map((id) => id.imageTag));
    const failures = new Map(
      (result.failures ?? []).map((failure) => [failure.imageId?.imageTag, failure]),
    );
    for (const entry of batch) {
      const failure = failures.get(entry.tag);
      if (deleted.has(entry.tag)) summary.deleted.push({ repository: repositoryName, ...entry });
      else if (failure?.failureCode === 'ImageNotFound')
        summary.skipped.push({ repository: repositoryName, ...entry, reason: 'already-gone' });
      else if (failure?.failureCode === 'ImageReferencedByManifestList')
        summary.skipped.push({ repository: repositoryName, ...entry, reason: 'index-child' });
      else {
        const error = failure
          ? printable(`${failure.failureCode}: ${failure.failureReason ?? ''}`.trim())
          : 'not reported as deleted';
        summary.errors.push({ repository: repositoryName, tag: entry.tag, error });
      }
    }
  }
}

/**
 * The branch sweep. `targets`: `{ repository, images }` (the image names whose branch tags live
 * there); `branches`: the names of every existing branch (as `parseBranchListing` returns them).
 * Removes by tag each stale branch tag; ECR deletes an image with its last tag, which only that
 * branch's builds imported. Never throws for per-repository problems (they are in `errors`).
 */
export async function sweepBranchTags(ecr, options) {
  const { targets, branches, dryRun = false } = options;
  const graceMs = (options.graceHours ?? DEFAULT_GRACE_HOURS) * 3600 * 1000;
  const now = options.now ?? Date.now();
  const index = branchIndex(branches);
  const summary = {
    dryRun,
    branches: index.size,
    deleted: [],
    skipped: [],
    errors: [],
    bytesReclaimed: 0,
  };
  for (const { repository, images: imageNames } of targets) {
    try {
      const images = await listImages(ecr, repository, {
        maxPages: options.maxPages,
        filter: { tagStatus: 'TAGGED' },
      });
      const selection = selectStaleBranchTags({
        images,
        imageNames,
        branches: index,
        graceMs,
        now,
      });
      for (const entry of selection.skipped) summary.skipped.push({ repository, ...entry });
      const before = summary.deleted.length;
      if (dryRun) {
        for (const entry of selection.remove) summary.deleted.push({ repository, ...entry });
      } else {
        await deleteStaleTags(ecr, repository, selection.remove, summary);
      }
      // An image goes with its last tag: its bytes count when every tag it had was removed.
      const removed = new Set(summary.deleted.slice(before).map((entry) => entry.tag));
      for (const image of images) {
        const tags = image.imageTags ?? [];
        if (tags.length > 0 && tags.every((tag) => removed.has(tag)))
          summary.bytesReclaimed += image.imageSizeInBytes ?? 0;
      }
    } catch (error) {
      summary.errors.push({ repository, error: errorText(error) });
    }
  }
  return summary;
}

const COMMANDS = ['record', 'prune', 'delete-branch', 'sweep-branches'];

/** Parses the command line; throws a one-line Error on bad usage. */
export function parseArgs(argv, env = process.env) {
  const [command, ...rest] = argv;
  if (!COMMANDS.includes(command))
    throw new Error(`unknown command ${JSON.stringify(command ?? '')}\n${USAGE}`);
  const options = {
    command,
    targets: [],
    sweep: false,
    dryRun: false,
    json: false,
    failOnError: false,
    graceHours: DEFAULT_GRACE_HOURS,
    state: undefined,
    branchesFile: undefined,
    mainBranch: undefined,
  };
  const value = (index, flag) => {
    const next = rest[index + 1];
    if (next === undefined || next.startsWith('--'))
      throw new Error(`${flag} needs a value\n${USAGE}`);
    return next;
  };
  const sweeping = command === 'sweep-branches';
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    if (flag === '--repository')
      options.targets.push({ repository: value(i++, flag), tags: [], images: [] });
    else if (flag === '--tag' || flag === '--image') {
      const target = options.targets.at(-1);
      if (!target) throw new Error(`${flag} must follow a --repository\n${USAGE}`);
      if ((flag === '--image') !== sweeping)
        throw new Error(`${command} takes no ${flag}\n${USAGE}`);
      const text = value(i++, flag);
      if (flag === '--image' && !IMAGE_NAME.test(text))
        throw new Error(
          `--image ${JSON.stringify(printable(text))} is not an image name ([a-z0-9][a-z0-9_-]*, at most 32 characters)\n${USAGE}`,
        );
      (flag === '--tag' ? target.tags : target.images).push(text);
    } else if (flag === '--state' && !sweeping) options.state = value(i++, flag);
    else if (flag === '--branches-file' && sweeping) options.branchesFile = value(i++, flag);
    else if (flag === '--main-branch' && sweeping) options.mainBranch = value(i++, flag);
    else if (flag === '--grace-hours') {
      const text = value(i++, flag);
      // Number('') is 0: an empty value must not silently turn the grace period off.
      options.graceHours = text.trim() === '' ? Number.NaN : Number(text);
      if (!Number.isFinite(options.graceHours) || options.graceHours < 0)
        throw new Error(`--grace-hours must be a number >= 0\n${USAGE}`);
    } else if (flag === '--sweep' && !sweeping) options.sweep = true;
    else if (flag === '--dry-run') options.dryRun = true;
    else if (flag === '--json') options.json = true;
    else if (flag === '--fail-on-error') options.failOnError = true;
    else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (sweeping) {
    if (options.targets.length === 0)
      throw new Error(`sweep-branches needs --repository\n${USAGE}`);
    if (options.targets.some((target) => target.images.length === 0))
      throw new Error(`sweep-branches needs --image after each --repository\n${USAGE}`);
    if (!options.branchesFile)
      throw new Error(`sweep-branches needs --branches-file FILE\n${USAGE}`);
    // The generated GitLab jobs carry the main branch in CACHED_DEPLOY_MAIN_BRANCH.
    options.mainBranch ??= env.CACHED_DEPLOY_MAIN_BRANCH || undefined;
    if (!options.mainBranch)
      throw new Error(
        `sweep-branches needs --main-branch NAME (a listing without it is taken for a failed one)\n${USAGE}`,
      );
    return options;
  }
  if (command !== 'prune' && options.targets.some((target) => target.tags.length === 0))
    throw new Error(`${command} needs --tag after each --repository\n${USAGE}`);
  if (command === 'record' && !options.state)
    throw new Error(`record needs --state FILE\n${USAGE}`);
  if (command === 'prune' && !options.state && !options.sweep)
    throw new Error(`prune needs --state FILE or --sweep\n${USAGE}`);
  if (command === 'prune' && !options.state && options.targets.length === 0)
    throw new Error(`prune --sweep needs --repository or --state\n${USAGE}`);
  if (command !== 'prune' && options.targets.length === 0)
    throw new Error(`${command} needs --repository\n${USAGE}`);
  if (command === 'delete-branch') checkBranchTags(options.targets);
  return options;
}

export function formatSummary(summary) {
  const lines = [];
  const verb = summary.dryRun ? 'would delete' : 'deleted';
  // Digests and tags are ECR's answers: printed escaped, like its error messages.
  for (const entry of summary.deleted)
    lines.push(
      printable(
        `${verb} ${entry.repository} ${entry.digest ?? ''}${entry.tag ? ` (${entry.tag})` : ''} [${entry.why}]`.replace(
          '  ',
          ' ',
        ),
      ),
    );
  const reasons = {};
  for (const entry of summary.skipped) reasons[entry.reason] = (reasons[entry.reason] ?? 0) + 1;
  for (const entry of summary.errors) {
    const id = entry.digest ?? entry.tag;
    lines.push(printable(`error ${entry.repository}${id ? ` ${id}` : ''}: ${entry.error}`));
  }
  const kept = Object.entries(reasons)
    .map(([reason, count]) => `${count} ${reason}`)
    .join(', ');
  if (summary.branches !== undefined)
    lines.push(`${summary.branches} branch(es) exist; their cache tags are kept.`);
  lines.push(
    `${summary.dryRun ? 'Dry run: would delete' : 'Deleted'} ${summary.deleted.length}, reclaimed ${(summary.bytesReclaimed / 1e6).toFixed(1)} MB; kept ${summary.skipped.length}${kept ? ` (${kept})` : ''}; errors ${summary.errors.length}.`,
  );
  return lines.join('\n');
}

/** The command line. Returns the exit code: 0, or 1 on bad usage or (with --fail-on-error) any error. */
export async function main(
  argv,
  {
    ecr,
    stdout = (text) => process.stdout.write(text),
    stderr = (text) => process.stderr.write(text),
    env = process.env,
  } = {},
) {
  let options;
  try {
    options = parseArgs(argv, env);
  } catch (error) {
    stderr(`prune-ecr-cache: ${error.message}\n`);
    return 1;
  }
  let branches;
  if (options.command === 'sweep-branches') {
    // Read and judged before any ECR call: a listing that failed deletes nothing.
    try {
      branches = parseBranchListing(readBranchesFile(options.branchesFile), {
        mainBranch: options.mainBranch,
        source: printable(options.branchesFile),
      });
    } catch (error) {
      stderr(`prune-ecr-cache: ${error.message}\n`);
      return 1;
    }
  }
  const port = ecr ?? (await sdkPort());
  let summary;
  if (options.command === 'record') {
    const recorded = await recordDigests(port, options.targets).catch((error) => ({ error }));
    if (recorded.error) {
      // Without a record the later prune only sweeps; the build itself must go on.
      stderr(`prune-ecr-cache: could not record cache digests: ${errorText(recorded.error)}\n`);
      writeFileSync(options.state, `${JSON.stringify({ formatVersion: 1, repositories: {} })}\n`);
      return options.failOnError ? 1 : 0;
    }
    writeFileSync(options.state, `${JSON.stringify(recorded, null, 2)}\n`);
    stdout(
      `Recorded ${options.targets.reduce((n, target) => n + target.tags.length, 0)} cache tag(s) in ${options.state}\n`,
    );
    return 0;
  }
  if (options.command === 'delete-branch') {
    summary = await deleteBranchTags(port, options.targets, options);
  } else if (options.command === 'sweep-branches') {
    summary = await sweepBranchTags(port, { ...options, branches });
  } else {
    const recorded = options.state ? JSON.parse(readFileSync(options.state, 'utf8')) : undefined;
    summary = await prune(port, {
      ...options,
      recorded,
      repositories: options.targets.map((target) => target.repository),
    });
  }
  stdout(options.json ? `${JSON.stringify(summary, null, 2)}\n` : `${formatSummary(summary)}\n`);
  return summary.errors.length > 0 && options.failOnError ? 1 : 0;
}

/**
 * Whether this file is the program node was asked to run (not imported). Node resolves symlinks
 * in the main module's URL but not in argv[1]: compare real paths, or a script reached through a
 * symlinked directory (macOS's /tmp, say) would do nothing and exit 0.
 */
function isMainModule() {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMainModule()) {
  process.exitCode = await main(process.argv.slice(2));
}
