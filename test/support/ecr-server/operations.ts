/**
 * ECR's operations over the in-memory registry: request validation, the error each misuse earns,
 * and response shapes as in the botocore service model (ecr/2015-09-21). Transport-agnostic: input
 * is the parsed JSON body, output the JSON body to send.
 */
import { invalidParameter, ServiceError } from './errors.js';
import { GetDownloadUrlForLayer } from './layers.js';
import {
  checkPolicyText,
  GetLifecyclePolicyPreview,
  PutImageScanningConfiguration,
  StartLifecyclePolicyPreview,
} from './lifecycle-preview.js';
import { DIGEST_PATTERN, isIndexMediaType, parseManifest, sha256Digest } from './manifests.js';
import type { Registry, TagMutability, TagMutabilityExclusionFilter } from './registry.js';
import { Repository } from './registry.js';

export type Input = Record<string, unknown>;
export type Output = Record<string, unknown>;
type StoredImage = NonNullable<ReturnType<Repository['image']>>;

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
const MAX_BATCH = 100;
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const TAG_PATTERN = /^[a-zA-Z0-9._-]{1,300}$/;
const REPOSITORY_NAME_PATTERN = /^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const MUTABILITIES: readonly TagMutability[] = [
  'MUTABLE',
  'IMMUTABLE',
  'MUTABLE_WITH_EXCLUSION',
  'IMMUTABLE_WITH_EXCLUSION',
];
type TagStatus = 'TAGGED' | 'UNTAGGED' | 'ANY';

// awsJson1_1 sends timestamps as epoch seconds (fractional), which the SDK turns into Date.
const epoch = (date: Date): number => date.getTime() / 1000;

// --- input readers: a wrongly typed member is a serialization error, as in AWS's JSON services ---

function serializationError(key: string, expected: string): ServiceError {
  return new ServiceError('SerializationException', `'${key}' must be ${expected}`);
}

function optString(input: Input, key: string): string | undefined {
  const value = input[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw serializationError(key, 'a string');
  return value;
}

function reqString(input: Input, key: string): string {
  const value = optString(input, key);
  if (value === undefined) {
    throw invalidParameter(`Invalid parameter: '${key}' is required`);
  }
  return value;
}

function optObject(input: Input, key: string): Input | undefined {
  const value = input[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw serializationError(key, 'an object');
  return value as Input;
}

function optArray(input: Input, key: string): unknown[] | undefined {
  const value = input[key];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw serializationError(key, 'a list');
  return value;
}

function pageSize(input: Input): number {
  const value = input.maxResults;
  if (value === undefined || value === null) return DEFAULT_PAGE;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw serializationError('maxResults', 'an integer');
  }
  if (value < 1 || value > MAX_PAGE) {
    throw invalidParameter(
      `Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value ${
        value < 1 ? 'greater than or equal to 1' : `less than or equal to ${MAX_PAGE}`
      }'`,
    );
  }
  return value;
}

function tagStatus(input: Input): TagStatus {
  const status = optString(optObject(input, 'filter') ?? {}, 'tagStatus') ?? 'ANY';
  if (status !== 'TAGGED' && status !== 'UNTAGGED' && status !== 'ANY') {
    throw invalidParameter(
      `Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'`,
    );
  }
  return status;
}

interface ImageId {
  imageDigest?: string;
  imageTag?: string;
}

function imageIds(input: Input, { required }: { required: boolean }): ImageId[] | undefined {
  const list = optArray(input, 'imageIds');
  if (list === undefined && !required) return undefined;
  if (list === undefined || list.length < 1 || list.length > MAX_BATCH) {
    throw invalidParameter(
      `Invalid parameter at 'imageIds' failed to satisfy constraint: 'Member must have length ${
        (list?.length ?? 0) < 1
          ? 'greater than or equal to 1'
          : `less than or equal to ${MAX_BATCH}`
      }'`,
    );
  }
  return list.map((entry) => {
    if (typeof entry !== 'object' || entry === null)
      throw serializationError('imageIds', 'objects');
    const id = entry as Input;
    const imageDigest = optString(id, 'imageDigest');
    const imageTag = optString(id, 'imageTag');
    return { ...(imageDigest ? { imageDigest } : {}), ...(imageTag ? { imageTag } : {}) };
  });
}

/** Resolves the repository named in the request, honouring an explicit registryId. */
function repository(registry: Registry, input: Input): Repository {
  const name = reqString(input, 'repositoryName');
  const registryId = optString(input, 'registryId');
  if (registryId !== undefined && registryId !== registry.registryId) {
    throw new ServiceError(
      'RepositoryNotFoundException',
      `The repository with name '${name}' does not exist in the registry with id '${registryId}'`,
    );
  }
  return registry.require(name);
}

// --- pagination: opaque tokens carrying a cursor, so pages stay exact while images are deleted ---

interface Cursor {
  op: string;
  repo: string;
  filter: string;
  /** seq of the last image returned */
  seq: number;
  /** its last tag returned ('' for an untagged entry); ListImages pages by (image, tag) */
  tag: string;
}

const encodeToken = (cursor: Cursor): string =>
  Buffer.from(JSON.stringify(cursor), 'utf8').toString('base64url');

function decodeToken(token: string | undefined, expected: Omit<Cursor, 'seq' | 'tag'>) {
  if (token === undefined) return undefined;
  const invalid = () =>
    invalidParameter(
      "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'",
    );
  let cursor: Partial<Cursor>;
  try {
    cursor = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as Partial<Cursor>;
  } catch {
    throw invalid();
  }
  if (
    typeof cursor !== 'object' ||
    cursor === null ||
    cursor.op !== expected.op ||
    cursor.repo !== expected.repo ||
    cursor.filter !== expected.filter ||
    typeof cursor.seq !== 'number' ||
    typeof cursor.tag !== 'string'
  ) {
    throw invalid();
  }
  return { seq: cursor.seq, tag: cursor.tag };
}

/**
 * Takes one page from `entries` (in cursor order) after the cursor; `nextToken` only when more
 * entries follow, as ECR does.
 */
function paginate<T extends { seq: number; tag: string }>(
  entries: Iterable<T>,
  after: { seq: number; tag: string } | undefined,
  size: number,
  scope: Omit<Cursor, 'seq' | 'tag'>,
): { page: T[]; nextToken?: string } {
  const page: T[] = [];
  for (const entry of entries) {
    if (after && (entry.seq < after.seq || (entry.seq === after.seq && entry.tag <= after.tag))) {
      continue;
    }
    if (page.length === size) {
      const last = page[page.length - 1] as T;
      return { page, nextToken: encodeToken({ ...scope, seq: last.seq, tag: last.tag }) };
    }
    page.push(entry);
  }
  return { page };
}

function matchesStatus(image: StoredImage, status: TagStatus): boolean {
  if (status === 'TAGGED') return image.tags.size > 0;
  if (status === 'UNTAGGED') return image.tags.size === 0;
  return true;
}

// --- resolving image ids the way the batch operations report them ---

type Resolution =
  | { image: StoredImage }
  | { failure: { failureCode: string; failureReason: string } };

function resolve(repo: Repository, id: ImageId): Resolution {
  const fail = (failureCode: string, failureReason: string) => ({
    failure: { failureCode, failureReason },
  });
  if (!id.imageDigest && !id.imageTag) {
    return fail('MissingDigestAndTag', 'Invalid request: neither imageDigest nor imageTag given');
  }
  if (id.imageDigest && !DIGEST_PATTERN.test(id.imageDigest)) {
    return fail('InvalidImageDigest', 'Invalid image digest');
  }
  if (id.imageTag && !TAG_PATTERN.test(id.imageTag)) {
    return fail('InvalidImageTag', 'Invalid image tag');
  }
  const digest = id.imageDigest ?? repo.digestOfTag(id.imageTag as string);
  const image = digest === undefined ? undefined : repo.image(digest);
  if (!image) return fail('ImageNotFound', 'Requested image not found');
  if (id.imageTag && !image.tags.has(id.imageTag)) {
    return repo.digestOfTag(id.imageTag) === undefined
      ? fail('ImageNotFound', 'Requested image not found')
      : fail(
          'ImageTagDoesNotMatchDigest',
          'Invalid request: the image tag does not match the digest',
        );
  }
  return { image };
}

const sortedTags = (image: StoredImage): string[] => [...image.tags].sort();

function imageDetail(registry: Registry, repo: Repository, image: StoredImage): Output {
  return {
    registryId: registry.registryId,
    repositoryName: repo.name,
    imageDigest: image.digest,
    ...(image.tags.size > 0 ? { imageTags: sortedTags(image) } : {}),
    imageSizeInBytes: image.sizeInBytes,
    imagePushedAt: epoch(image.pushedAt),
    imageManifestMediaType: image.manifestMediaType,
    ...(image.artifactMediaType ? { artifactMediaType: image.artifactMediaType } : {}),
    ...(image.lastRecordedPullTime
      ? { lastRecordedPullTime: epoch(image.lastRecordedPullTime) }
      : {}),
  };
}

function repositoryJson(registry: Registry, repo: Repository): Output {
  return {
    repositoryArn: registry.arn(repo.name),
    registryId: registry.registryId,
    repositoryName: repo.name,
    repositoryUri: registry.uri(repo.name),
    createdAt: epoch(repo.createdAt),
    imageTagMutability: repo.imageTagMutability,
    ...(repo.imageTagMutabilityExclusionFilters.length > 0
      ? { imageTagMutabilityExclusionFilters: repo.imageTagMutabilityExclusionFilters }
      : {}),
    imageScanningConfiguration: { scanOnPush: repo.scanOnPush },
    encryptionConfiguration: { encryptionType: 'AES256' },
  };
}

function mutabilitySettings(input: Input, required: boolean) {
  const raw = required
    ? reqString(input, 'imageTagMutability')
    : (optString(input, 'imageTagMutability') ?? 'MUTABLE');
  if (!MUTABILITIES.includes(raw as TagMutability)) {
    throw invalidParameter(
      `Invalid parameter at 'imageTagMutability' failed to satisfy constraint: 'Member must satisfy enum value set: [${MUTABILITIES.join(', ')}]'`,
    );
  }
  const mutability = raw as TagMutability;
  const filters = (optArray(input, 'imageTagMutabilityExclusionFilters') ?? []).map((f) => {
    const filter = f as Input;
    return { filterType: 'WILDCARD', filter: reqString(filter, 'filter') } as const;
  }) satisfies TagMutabilityExclusionFilter[];
  if (mutability.endsWith('_WITH_EXCLUSION') !== filters.length > 0) {
    throw invalidParameter(
      'imageTagMutabilityExclusionFilters must be given exactly when imageTagMutability is *_WITH_EXCLUSION',
    );
  }
  return { mutability, filters };
}

// --- the operations ---

function CreateRepository(registry: Registry, input: Input): Output {
  const name = reqString(input, 'repositoryName');
  if (name.length < 2 || name.length > 256 || !REPOSITORY_NAME_PATTERN.test(name)) {
    throw invalidParameter(
      `Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '${REPOSITORY_NAME_PATTERN.source}''`,
    );
  }
  if (registry.has(name)) {
    throw new ServiceError(
      'RepositoryAlreadyExistsException',
      `The repository with name '${name}' already exists in the registry with id '${registry.registryId}'`,
    );
  }
  const { mutability, filters } = mutabilitySettings(input, false);
  const scanning = optObject(input, 'imageScanningConfiguration');
  const repo = new Repository(
    name,
    registry.now(),
    mutability,
    filters,
    scanning?.scanOnPush === true,
  );
  registry.addRepository(repo);
  return { repository: repositoryJson(registry, repo) };
}

function DescribeRepositories(registry: Registry, input: Input): Output {
  const names = optArray(input, 'repositoryNames');
  if (names !== undefined) {
    if (input.maxResults !== undefined || input.nextToken !== undefined) {
      throw invalidParameter('maxResults and nextToken cannot be used with repositoryNames');
    }
    const repos = names.map((name) => {
      if (typeof name !== 'string') throw serializationError('repositoryNames', 'strings');
      return registry.require(name);
    });
    return { repositories: repos.map((repo) => repositoryJson(registry, repo)) };
  }
  const scope = { op: 'DescribeRepositories', repo: '', filter: '' };
  const after = decodeToken(optString(input, 'nextToken'), scope);
  // Repositories page in name order; the cursor's tag slot carries the last name.
  const entries = registry.all().map((repo) => ({ seq: 0, tag: repo.name, repo }));
  const { page, nextToken } = paginate(entries, after, pageSize(input), scope);
  return {
    repositories: page.map((e) => repositoryJson(registry, e.repo)),
    ...(nextToken ? { nextToken } : {}),
  };
}

function DeleteRepository(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  if (repo.images.size > 0 && input.force !== true) {
    throw new ServiceError(
      'RepositoryNotEmptyException',
      `The repository with name '${repo.name}' in registry with id '${registry.registryId}' cannot be deleted because it still contains images`,
    );
  }
  registry.deleteRepository(repo.name);
  return { repository: repositoryJson(registry, repo) };
}

function PutImageTagMutability(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const { mutability, filters } = mutabilitySettings(input, true);
  repo.imageTagMutability = mutability;
  repo.imageTagMutabilityExclusionFilters = filters;
  return {
    registryId: registry.registryId,
    repositoryName: repo.name,
    imageTagMutability: mutability,
    ...(filters.length > 0 ? { imageTagMutabilityExclusionFilters: filters } : {}),
  };
}

function ListImages(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const status = tagStatus(input);
  const scope = { op: 'ListImages', repo: repo.name, filter: status };
  const after = decodeToken(optString(input, 'nextToken'), scope);
  // One entry per (digest, tag) of a tagged image, one digest-only entry per untagged image.
  function* entries() {
    for (const image of repo.images.values()) {
      if (!matchesStatus(image, status)) continue;
      if (image.tags.size === 0) {
        yield { seq: image.seq, tag: '', id: { imageDigest: image.digest } };
      }
      for (const tag of sortedTags(image)) {
        yield { seq: image.seq, tag, id: { imageDigest: image.digest, imageTag: tag } };
      }
    }
  }
  const { page, nextToken } = paginate(entries(), after, pageSize(input), scope);
  return { imageIds: page.map((e) => e.id), ...(nextToken ? { nextToken } : {}) };
}

function DescribeImages(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const ids = imageIds(input, { required: false });
  if (ids) {
    if (input.maxResults !== undefined || input.nextToken !== undefined) {
      throw invalidParameter('maxResults and nextToken cannot be used when imageIds are specified');
    }
    const found = new Map<string, StoredImage>();
    for (const id of ids) {
      const result = resolve(repo, id);
      if ('failure' in result) {
        if (result.failure.failureCode.startsWith('Invalid')) {
          throw invalidParameter(result.failure.failureReason);
        }
        throw new ServiceError(
          'ImageNotFoundException',
          `The image with imageId {imageDigest:'${id.imageDigest ?? 'null'}', imageTag:'${id.imageTag ?? 'null'}'} does not exist within the repository with name '${repo.name}' in the registry with id '${registry.registryId}'`,
        );
      }
      found.set(result.image.digest, result.image);
    }
    return { imageDetails: [...found.values()].map((image) => imageDetail(registry, repo, image)) };
  }
  const status = tagStatus(input);
  const scope = { op: 'DescribeImages', repo: repo.name, filter: status };
  const after = decodeToken(optString(input, 'nextToken'), scope);
  function* entries() {
    for (const image of repo.images.values()) {
      if (matchesStatus(image, status)) yield { seq: image.seq, tag: '', image };
    }
  }
  const { page, nextToken } = paginate(entries(), after, pageSize(input), scope);
  return {
    imageDetails: page.map((e) => imageDetail(registry, repo, e.image)),
    ...(nextToken ? { nextToken } : {}),
  };
}

function BatchGetImage(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const ids = imageIds(input, { required: true }) ?? [];
  // Accepted but not applied: ECR converts between Docker schemas, which this model does not.
  optArray(input, 'acceptedMediaTypes');
  const images: Output[] = [];
  const failures: Output[] = [];
  for (const id of ids) {
    const result = resolve(repo, id);
    if ('failure' in result) {
      failures.push({ imageId: id, ...result.failure });
      continue;
    }
    images.push({
      registryId: registry.registryId,
      repositoryName: repo.name,
      imageId: {
        imageDigest: result.image.digest,
        ...(id.imageTag ? { imageTag: id.imageTag } : {}),
      },
      imageManifest: result.image.manifest,
      imageManifestMediaType: result.image.manifestMediaType,
    });
  }
  return { images, failures };
}

/**
 * Ids are processed in request order, each against the state the previous ones left. Deleting by
 * tag removes that tag; when it was the image's last tag the image goes too (ECR's documented
 * behaviour). An image an index still names is refused with ImageReferencedByManifestList.
 */
function BatchDeleteImage(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const ids = imageIds(input, { required: true }) ?? [];
  const deleted: Output[] = [];
  const failures: Output[] = [];
  for (const id of ids) {
    const result = resolve(repo, id);
    if ('failure' in result) {
      failures.push({ imageId: id, ...result.failure });
      continue;
    }
    const { image } = result;
    if (id.imageTag && image.tags.size > 1) {
      repo.removeTag(id.imageTag);
      deleted.push({ imageDigest: image.digest, imageTag: id.imageTag });
      continue;
    }
    const parents = repo.parentsOf(image.digest);
    if (parents.length > 0) {
      failures.push({
        imageId: id,
        failureCode: 'ImageReferencedByManifestList',
        failureReason: `Requested image referenced by manifest list: [${parents.join(', ')}]`,
      });
      continue;
    }
    const tags = sortedTags(image);
    repo.remove(image.digest);
    if (tags.length === 0) deleted.push({ imageDigest: image.digest });
    for (const tag of tags) deleted.push({ imageDigest: image.digest, imageTag: tag });
  }
  return { imageIds: deleted, failures };
}

function PutImage(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const manifest = reqString(input, 'imageManifest');
  if (Buffer.byteLength(manifest, 'utf8') > MAX_MANIFEST_BYTES) {
    throw invalidParameter("Invalid parameter at 'imageManifest': manifest too large");
  }
  const tag = optString(input, 'imageTag');
  if (tag !== undefined && !TAG_PATTERN.test(tag)) {
    throw invalidParameter(
      `Invalid parameter at 'imageTag' failed to satisfy constraint: '${tag}'`,
    );
  }
  const info = parseManifest(manifest, optString(input, 'imageManifestMediaType'));
  const digest = sha256Digest(manifest);
  const declaredDigest = optString(input, 'imageDigest');
  if (declaredDigest !== undefined && declaredDigest !== digest) {
    throw new ServiceError(
      'ImageDigestDoesNotMatchException',
      `The specified image digest '${declaredDigest}' does not match the digest '${digest}' of the manifest`,
    );
  }
  if (isIndexMediaType(info.mediaType)) {
    const missing = info.children.filter((child) => !repo.image(child));
    if (missing.length > 0) {
      throw new ServiceError(
        'ReferencedImagesNotFoundException',
        `The manifest list references images that do not exist in the repository: [${missing.join(', ')}]`,
      );
    }
  }
  const existing = repo.image(digest);
  if (existing && (tag === undefined || existing.tags.has(tag))) {
    throw new ServiceError(
      'ImageAlreadyExistsException',
      `Image with digest '${digest}'${tag === undefined ? '' : ` and tag '${tag}'`} already exists in the repository with name '${repo.name}' in registry with id '${registry.registryId}'`,
    );
  }
  if (tag !== undefined) {
    const previous = repo.digestOfTag(tag);
    if (previous !== undefined && previous !== digest && repo.isTagImmutable(tag)) {
      throw new ServiceError(
        'ImageTagAlreadyExistsException',
        `The image tag '${tag}' already exists in the '${repo.name}' repository and cannot be overwritten because the tag is immutable.`,
      );
    }
  }
  const image =
    existing ??
    registry.store(repo, {
      digest,
      manifest,
      manifestMediaType: info.mediaType,
      configMediaType: info.configMediaType,
      artifactMediaType: info.configMediaType,
      sizeInBytes: registry.sizeOf(repo, info.mediaType, info.children, info.layerBytes),
      pushedAt: registry.now(),
      children: info.children,
    });
  if (tag !== undefined) repo.setTag(tag, image.digest);
  return {
    image: {
      registryId: registry.registryId,
      repositoryName: repo.name,
      imageId: { imageDigest: image.digest, ...(tag !== undefined ? { imageTag: tag } : {}) },
      imageManifest: image.manifest,
      imageManifestMediaType: image.manifestMediaType,
    },
  };
}

function lifecyclePolicyNotFound(registry: Registry, repo: Repository): ServiceError {
  return new ServiceError(
    'LifecyclePolicyNotFoundException',
    `Lifecycle policy does not exist for the repository with name '${repo.name}' in the registry with id '${registry.registryId}'`,
  );
}

function lifecyclePolicyOutput(registry: Registry, repo: Repository, text: string): Output {
  return {
    registryId: registry.registryId,
    repositoryName: repo.name,
    lifecyclePolicyText: text,
    ...(repo.lifecyclePolicyLastEvaluatedAt
      ? { lastEvaluatedAt: epoch(repo.lifecyclePolicyLastEvaluatedAt) }
      : {}),
  };
}

function GetLifecyclePolicy(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  if (repo.lifecyclePolicyText === undefined) throw lifecyclePolicyNotFound(registry, repo);
  return lifecyclePolicyOutput(registry, repo, repo.lifecyclePolicyText);
}

/** Checks only what is cheap to check (length, JSON with a `rules` list); ECR checks each rule. */
function PutLifecyclePolicy(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const text = checkPolicyText(reqString(input, 'lifecyclePolicyText'));
  repo.lifecyclePolicyText = text;
  return { registryId: registry.registryId, repositoryName: repo.name, lifecyclePolicyText: text };
}

function DeleteLifecyclePolicy(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const text = repo.lifecyclePolicyText;
  if (text === undefined) throw lifecyclePolicyNotFound(registry, repo);
  const output = lifecyclePolicyOutput(registry, repo, text);
  repo.lifecyclePolicyText = undefined;
  return output;
}

export const operations = {
  BatchDeleteImage,
  BatchGetImage,
  CreateRepository,
  DeleteLifecyclePolicy,
  DeleteRepository,
  DescribeImages,
  DescribeRepositories,
  GetDownloadUrlForLayer,
  GetLifecyclePolicy,
  GetLifecyclePolicyPreview,
  ListImages,
  PutImage,
  PutImageScanningConfiguration,
  PutImageTagMutability,
  PutLifecyclePolicy,
  StartLifecyclePolicyPreview,
} satisfies Record<string, (registry: Registry, input: Input) => Output>;

export type EcrOperation = keyof typeof operations;

export const isEcrOperation = (name: string): name is EcrOperation =>
  Object.hasOwn(operations, name);
