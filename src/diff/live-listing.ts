import { createEcrClient } from '../ecr/client.js';
import { PaginationError, pages } from '../ecr/paginate.js';
import { CachedDeployError } from '../errors.js';
import { INDEX_MEDIA_TYPES, isIndexMediaType } from '../media-types.js';
import type { PreviewImage } from '../policy/preview.js';
import { printable, quoteForMessage } from '../text.js';

/**
 * `policy preview --live`: one repository's images read from ECR (DescribeImages, every page),
 * with the children of every index resolved (BatchGetImage of the index manifests), which a
 * describe-images listing cannot give. The client comes from ecr/client.ts.
 */
export interface LiveListingOptions {
  region: string;
  /** The registry (account id) that owns the repository. */
  registryId?: string;
  /** An ECR endpoint URL (tests, VPC endpoints). */
  endpoint?: string;
  /** Explicit credentials (tests); otherwise the SDK's default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** DescribeImages page size (default 1000, ECR's maximum). */
  pageSize?: number;
  /** Pages read before giving up (default MAX_PAGES of ecr/paginate.ts). */
  maxPages?: number;
}

export async function readLiveListing(
  repository: string,
  options: LiveListingOptions,
): Promise<PreviewImage[]> {
  const { sdk, client } = await createEcrClient({
    region: options.region,
    endpoint: options.endpoint,
    clientConfig: options.credentials ? { credentials: options.credentials } : undefined,
  });
  try {
    const images: PreviewImage[] = [];
    const seen = new Set<string>();
    const listing = pages(
      `DescribeImages on ${repository}`,
      (nextToken) =>
        client.send(
          new sdk.DescribeImagesCommand({
            repositoryName: repository,
            registryId: options.registryId,
            maxResults: options.pageSize ?? 1000,
            nextToken,
          }),
        ),
      { maxPages: options.maxPages },
    );
    for await (const page of listing) {
      for (const detail of page.imageDetails ?? []) {
        if (!detail.imageDigest || seen.has(detail.imageDigest)) continue;
        seen.add(detail.imageDigest);
        images.push({
          digest: detail.imageDigest,
          tags: detail.imageTags ?? [],
          pushedAt: detail.imagePushedAt ?? new Date(0),
          sizeInBytes: detail.imageSizeInBytes ?? 0,
          repository,
          mediaType: detail.imageManifestMediaType,
        });
      }
    }

    const indexes = images.filter((image) => isIndexMediaType(image.mediaType));
    for (let start = 0; start < indexes.length; start += 100) {
      const chunk = indexes.slice(start, start + 100);
      const result = await client.send(
        new sdk.BatchGetImageCommand({
          repositoryName: repository,
          registryId: options.registryId,
          imageIds: chunk.map((image) => ({ imageDigest: image.digest })),
          acceptedMediaTypes: [...INDEX_MEDIA_TYPES],
        }),
      );
      const manifests = new Map(
        (result.images ?? []).map((image) => [image.imageId?.imageDigest, image.imageManifest]),
      );
      for (const index of chunk) {
        const manifest = manifests.get(index.digest);
        // An index deleted between the two calls, left out of the answer or unreadable: its
        // children are unknown, as in a file listing (the preview counts them as uncertain).
        const children = manifest === undefined ? undefined : childDigests(manifest);
        if (children) index.children = children;
      }
    }
    return images;
  } catch (error) {
    if (error instanceof CachedDeployError) throw error;
    const where = `reading ECR repository "${repository}" in ${options.region}`;
    if (error instanceof PaginationError) {
      throw new CachedDeployError('IO', `${where}: ${error.message}`);
    }
    // ECR's words (or a hostile endpoint's): escaped and cut.
    const name = printable(String((error as { name?: string }).name ?? 'Error').slice(0, 100));
    const message = printable(quoteForMessage(String((error as Error).message), 300));
    throw new CachedDeployError('IO', `${where}: ${name}: ${message}`);
  } finally {
    client.destroy();
  }
}

/** An index's children, or undefined when the manifest cannot say (then they stay unknown). */
function childDigests(manifest: string): string[] | undefined {
  try {
    const value = JSON.parse(manifest) as { manifests?: unknown };
    if (!Array.isArray(value.manifests)) return undefined;
    const digests: string[] = [];
    for (const entry of value.manifests) {
      const digest = (entry as { digest?: unknown } | null)?.digest;
      if (typeof digest !== 'string') return undefined;
      digests.push(digest);
    }
    return digests;
  } catch {
    return undefined;
  }
}
