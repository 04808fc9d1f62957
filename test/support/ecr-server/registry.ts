import { createHash } from 'node:crypto';
import { ServiceError } from './errors.js';
import { LayerDownloads } from './layers.js';
import { LifecyclePreviews } from './lifecycle-preview.js';
import { buildImageManifest, isIndexMediaType, parseManifest, sha256Digest } from './manifests.js';

export type TagMutability =
  | 'MUTABLE'
  | 'IMMUTABLE'
  | 'MUTABLE_WITH_EXCLUSION'
  | 'IMMUTABLE_WITH_EXCLUSION';

export interface TagMutabilityExclusionFilter {
  filterType: 'WILDCARD';
  filter: string;
}

/** A read-only copy of one stored image; mutating it does not change the registry. */
export interface ImageRecord {
  digest: string;
  manifest: string;
  manifestMediaType: string;
  /** `config.mediaType` of an image manifest, e.g. `application/vnd.buildkit.cacheconfig.v0`. */
  configMediaType?: string;
  /** What DescribeImages reports as `artifactMediaType`: the config media type unless seeded. */
  artifactMediaType?: string;
  sizeInBytes: number;
  pushedAt: Date;
  lastRecordedPullTime?: Date;
  tags: Set<string>;
  /** Digests named by an index's `manifests[]`. */
  children: string[];
  /** Push order; pagination walks images in this order. */
  seq: number;
}

export interface RepositoryRecord {
  name: string;
  arn: string;
  uri: string;
  createdAt: Date;
  imageTagMutability: TagMutability;
  imageTagMutabilityExclusionFilters: TagMutabilityExclusionFilter[];
  scanOnPush: boolean;
  lifecyclePolicyText?: string;
  lifecyclePolicyLastEvaluatedAt?: Date;
  imageCount: number;
}

export interface CreateRepositoryOptions {
  imageTagMutability?: TagMutability;
  imageTagMutabilityExclusionFilters?: TagMutabilityExclusionFilter[];
  scanOnPush?: boolean;
  createdAt?: Date;
  lifecyclePolicyText?: string;
}

/** Seeds an image without going through PutImage's checks (children need not exist). */
export interface SeedImage {
  /** Defaults to the sha256 of `manifest`. */
  digest?: string;
  /** Defaults to a fresh, unique image manifest. */
  manifest?: string;
  /** Defaults to the manifest's own `mediaType`. */
  mediaType?: string;
  artifactMediaType?: string;
  tags?: Iterable<string>;
  /** Defaults to the server clock. */
  pushedAt?: Date;
  /** Defaults to the layer sizes (image) or the largest child (index), as ECR reports. */
  sizeInBytes?: number;
  lastRecordedPullTime?: Date;
}

interface StoredImage extends Omit<ImageRecord, 'tags' | 'children'> {
  readonly tags: Set<string>;
  readonly children: readonly string[];
}

const snapshot = (image: StoredImage): ImageRecord => ({
  ...image,
  tags: new Set(image.tags),
  children: [...image.children],
});

const wildcardToRegExp = (pattern: string): RegExp =>
  new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * One repository's images, with the tag and index-reference lookups ECR's semantics need. The
 * methods are low-level and do no ECR validation: that is the operations' job.
 */
export class Repository {
  /** Insertion order doubles as push order, which the pagination cursor relies on. */
  readonly images = new Map<string, StoredImage>();
  private readonly tagIndex = new Map<string, string>();
  /** child digest -> digests of the indexes that name it */
  private readonly parents = new Map<string, Set<string>>();
  /** Blob contents (layers, configs) by digest, as served by GetDownloadUrlForLayer. */
  readonly blobs = new Map<string, Uint8Array>();
  lifecyclePolicyText: string | undefined;
  lifecyclePolicyLastEvaluatedAt: Date | undefined;

  constructor(
    readonly name: string,
    readonly createdAt: Date,
    public imageTagMutability: TagMutability,
    public imageTagMutabilityExclusionFilters: TagMutabilityExclusionFilter[],
    public scanOnPush: boolean,
  ) {}

  image(digest: string): StoredImage | undefined {
    return this.images.get(digest);
  }

  digestOfTag(tag: string): string | undefined {
    return this.tagIndex.get(tag);
  }

  /** Indexes still in the repository that name `digest` as a child. */
  parentsOf(digest: string): string[] {
    return [...(this.parents.get(digest) ?? [])];
  }

  isTagImmutable(tag: string): boolean {
    const excluded = this.imageTagMutabilityExclusionFilters.some((f) =>
      wildcardToRegExp(f.filter).test(tag),
    );
    switch (this.imageTagMutability) {
      case 'IMMUTABLE':
        return true;
      case 'IMMUTABLE_WITH_EXCLUSION':
        return !excluded;
      case 'MUTABLE_WITH_EXCLUSION':
        return excluded;
      default:
        return false;
    }
  }

  add(image: StoredImage): void {
    this.images.set(image.digest, image);
    for (const child of image.children) {
      let set = this.parents.get(child);
      if (!set) {
        set = new Set();
        this.parents.set(child, set);
      }
      set.add(image.digest);
    }
  }

  /** Points `tag` at `digest`; the image it pointed to before stays, possibly untagged. */
  setTag(tag: string, digest: string): void {
    const target = this.images.get(digest);
    if (!target) throw new Error(`no image ${digest} in ${this.name}`);
    const previous = this.tagIndex.get(tag);
    if (previous !== undefined) this.images.get(previous)?.tags.delete(tag);
    this.tagIndex.set(tag, digest);
    target.tags.add(tag);
  }

  removeTag(tag: string): void {
    const digest = this.tagIndex.get(tag);
    if (digest === undefined) return;
    this.tagIndex.delete(tag);
    this.images.get(digest)?.tags.delete(tag);
  }

  /** Removes the image and its tags, whatever references it. */
  remove(digest: string): void {
    const image = this.images.get(digest);
    if (!image) return;
    for (const tag of image.tags) this.tagIndex.delete(tag);
    for (const child of image.children) {
      const set = this.parents.get(child);
      set?.delete(digest);
      if (set?.size === 0) this.parents.delete(child);
    }
    this.images.delete(digest);
  }
}

export interface RegistryOptions {
  registryId: string;
  region: string;
  now: () => Date;
}

/**
 * The registry's whole state. Tests reach it as `server.state` to seed and inspect images without
 * going through the API; the operations use the same object.
 */
export class Registry {
  readonly registryId: string;
  readonly region: string;
  readonly now: () => Date;
  /** Issues and serves the presigned-style URLs of GetDownloadUrlForLayer. */
  readonly layerDownloads: LayerDownloads;
  /** Lifecycle policy previews (Start/GetLifecyclePolicyPreview), one per repository. */
  readonly lifecyclePreviews = new LifecyclePreviews();
  private readonly repos = new Map<string, Repository>();
  private seq = 0;
  private generated = 0;

  constructor(options: RegistryOptions) {
    this.registryId = options.registryId;
    this.region = options.region;
    this.now = options.now;
    this.layerDownloads = new LayerDownloads(this.now);
  }

  createRepository(name: string, options: CreateRepositoryOptions = {}): RepositoryRecord {
    if (this.repos.has(name)) throw new Error(`repository ${name} already exists`);
    const repo = new Repository(
      name,
      options.createdAt ?? this.now(),
      options.imageTagMutability ?? 'MUTABLE',
      options.imageTagMutabilityExclusionFilters ?? [],
      options.scanOnPush ?? false,
    );
    repo.lifecyclePolicyText = options.lifecyclePolicyText;
    this.repos.set(name, repo);
    return this.describe(repo);
  }

  deleteRepository(name: string): void {
    this.repos.delete(name);
  }

  repository(name: string): RepositoryRecord | undefined {
    const repo = this.repos.get(name);
    return repo && this.describe(repo);
  }

  repositories(): RepositoryRecord[] {
    return [...this.repos.values()].map((repo) => this.describe(repo));
  }

  /** Stores an image as if pushed; returns its digest. Tags move from other images, as a push does. */
  putImage(repositoryName: string, input: SeedImage = {}): string {
    const repo = this.mustGet(repositoryName);
    const manifest = input.manifest ?? buildImageManifest({ salt: `seed-${++this.generated}` });
    const info = parseManifest(manifest, input.mediaType);
    const digest = input.digest ?? sha256Digest(manifest);
    if (repo.image(digest)) throw new Error(`image ${digest} already in ${repositoryName}`);
    this.store(repo, {
      digest,
      manifest,
      manifestMediaType: info.mediaType,
      configMediaType: info.configMediaType,
      artifactMediaType: input.artifactMediaType ?? info.configMediaType,
      sizeInBytes:
        input.sizeInBytes ?? this.sizeOf(repo, info.mediaType, info.children, info.layerBytes),
      pushedAt: input.pushedAt ?? this.now(),
      lastRecordedPullTime: input.lastRecordedPullTime,
      children: info.children,
    });
    for (const tag of input.tags ?? []) repo.setTag(tag, digest);
    return digest;
  }

  /**
   * Stores a blob (a layer or a config) in the repository, as a completed layer upload would;
   * returns its digest. The digest defaults to the content's sha256; pass one to store bytes that
   * do not match it (a corrupt blob).
   */
  putBlob(repositoryName: string, content: string | Uint8Array, digest?: string): string {
    const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    const key = digest ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    this.mustGet(repositoryName).blobs.set(key, new Uint8Array(bytes));
    return key;
  }

  /** A stored blob, or undefined (also when the repository does not exist). */
  blob(repositoryName: string, digest: string): Uint8Array | undefined {
    return this.repos.get(repositoryName)?.blobs.get(digest);
  }

  /** Images in push order. */
  images(repositoryName: string): ImageRecord[] {
    return [...this.mustGet(repositoryName).images.values()].map(snapshot);
  }

  /** Looks an image up by digest (`sha256:...`) or by tag. */
  image(repositoryName: string, digestOrTag: string): ImageRecord | undefined {
    const repo = this.mustGet(repositoryName);
    const digest = repo.image(digestOrTag) ? digestOrTag : repo.digestOfTag(digestOrTag);
    const image = digest === undefined ? undefined : repo.image(digest);
    return image && snapshot(image);
  }

  /** Moves `tag` to `digest`, as a concurrent push of an existing manifest would. */
  tagImage(repositoryName: string, tag: string, digest: string): void {
    this.mustGet(repositoryName).setTag(tag, digest);
  }

  untagImage(repositoryName: string, tag: string): void {
    this.mustGet(repositoryName).removeTag(tag);
  }

  /** Deletes an image regardless of index references (ECR's API would refuse some of these). */
  deleteImage(repositoryName: string, digest: string): void {
    this.mustGet(repositoryName).remove(digest);
  }

  setLifecyclePolicy(repositoryName: string, text: string | undefined): void {
    this.mustGet(repositoryName).lifecyclePolicyText = text;
  }

  clear(): void {
    this.repos.clear();
  }

  // --- used by the operations ---

  /** The repository, or the RepositoryNotFoundException ECR answers with. */
  require(name: string): Repository {
    const repo = this.repos.get(name);
    if (!repo) {
      throw new ServiceError(
        'RepositoryNotFoundException',
        `The repository with name '${name}' does not exist in the registry with id '${this.registryId}'`,
      );
    }
    return repo;
  }

  has(name: string): boolean {
    return this.repos.has(name);
  }

  /** Repositories in name order. */
  all(): Repository[] {
    return [...this.repos.values()].sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
  }

  addRepository(repo: Repository): void {
    this.repos.set(repo.name, repo);
  }

  store(repo: Repository, image: Omit<StoredImage, 'seq' | 'tags'>): StoredImage {
    const stored: StoredImage = { ...image, tags: new Set(), seq: ++this.seq };
    repo.add(stored);
    return stored;
  }

  /** ECR reports an index's size as the size of its largest child. */
  sizeOf(repo: Repository, mediaType: string, children: readonly string[], layerBytes: number) {
    if (!isIndexMediaType(mediaType)) return layerBytes;
    return Math.max(0, ...children.map((c) => repo.image(c)?.sizeInBytes ?? 0));
  }

  arn(name: string): string {
    return `arn:aws:ecr:${this.region}:${this.registryId}:repository/${name}`;
  }

  uri(name: string): string {
    return `${this.registryId}.dkr.ecr.${this.region}.amazonaws.com/${name}`;
  }

  private mustGet(name: string): Repository {
    const repo = this.repos.get(name);
    if (!repo) throw new Error(`no repository ${name}: call state.createRepository first`);
    return repo;
  }

  private describe(repo: Repository): RepositoryRecord {
    return {
      name: repo.name,
      arn: this.arn(repo.name),
      uri: this.uri(repo.name),
      createdAt: repo.createdAt,
      imageTagMutability: repo.imageTagMutability,
      imageTagMutabilityExclusionFilters: repo.imageTagMutabilityExclusionFilters.map((f) => ({
        ...f,
      })),
      scanOnPush: repo.scanOnPush,
      ...(repo.lifecyclePolicyText !== undefined
        ? { lifecyclePolicyText: repo.lifecyclePolicyText }
        : {}),
      ...(repo.lifecyclePolicyLastEvaluatedAt
        ? { lifecyclePolicyLastEvaluatedAt: repo.lifecyclePolicyLastEvaluatedAt }
        : {}),
      imageCount: repo.images.size,
    };
  }
}
