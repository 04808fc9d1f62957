import { createEcrClient } from '../ecr/client.js';
import { CachedDeployError } from '../errors.js';
import { INDEX_MEDIA_TYPES, isIndexMediaType, type PreviewImage } from '../policy/preview.js';

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
    let nextToken: string | undefined;
    do {
      const page = await client.send(
        new sdk.DescribeImagesCommand({
          repositoryName: repository,
          registryId: options.registryId,
          maxResults: options.pageSize ?? 1000,
          nextToken,
        }),
      );
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
      nextToken = page.nextToken;
    } while (nextToken);

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
        // An index deleted between the two calls: its children are unknown, as in a file listing.
        if (manifest === undefined) continue;
        index.children = childDigests(manifest);
      }
    }
    return images;
  } catch (error) {
    if (error instanceof CachedDeployError) throw error;
    const name = (error as { name?: string }).name ?? 'Error';
    throw new CachedDeployError(
      'IO',
      `reading ECR repository "${repository}" in ${options.region}: ${name}: ${(error as Error).message}`,
    );
  } finally {
    client.destroy();
  }
}

function childDigests(manifest: string): string[] {
  try {
    const value = JSON.parse(manifest) as { manifests?: { digest?: unknown }[] };
    return (value.manifests ?? [])
      .map((entry) => entry.digest)
      .filter((digest): digest is string => typeof digest === 'string');
  } catch {
    return [];
  }
}
