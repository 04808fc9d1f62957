/**
 * The manifest media types the tool tells apart, OCI's and Docker's, in one place for doctor, the
 * policy preview and the live listing. The shipped pruner (templates/prune-ecr-cache.mjs) runs on
 * its own and keeps a copy; test/prune.test.ts compares the two.
 */

/** BuildKit's cache manifest config: what makes an artifact a registry cache. */
export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.buildkit.cacheconfig.v0';

/** A single image's manifest (or BuildKit's image-manifest cache layout). */
export const IMAGE_MANIFEST_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
];

/** An index: a multi-platform image, or BuildKit's older index cache layout. */
export const INDEX_MEDIA_TYPES: readonly string[] = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];

export function isIndexMediaType(mediaType: string | undefined): boolean {
  return mediaType !== undefined && INDEX_MEDIA_TYPES.includes(mediaType);
}
