import { createHash } from 'node:crypto';
import { invalidParameter } from './errors.js';

export const MediaTypes = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  buildkitCacheConfig: 'application/vnd.buildkit.cacheconfig.v0',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

const INDEX_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociIndex,
  MediaTypes.dockerManifestList,
]);
const MANIFEST_TYPES: ReadonlySet<string> = new Set([
  MediaTypes.ociManifest,
  MediaTypes.dockerManifest,
]);

export const isIndexMediaType = (mediaType: string): boolean => INDEX_TYPES.has(mediaType);

export const sha256Digest = (text: string): string =>
  `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;

export const DIGEST_PATTERN = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

/** What the registry needs to know about a manifest, read from its JSON. */
export interface ManifestInfo {
  mediaType: string;
  configMediaType?: string;
  /** Digests named by an index's `manifests[]`; empty for an image manifest. */
  children: string[];
  /** Sum of layer sizes for an image manifest; an index's size depends on its children. */
  layerBytes: number;
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
}

/**
 * Reads a manifest the way ECR's PutImage does: the media type comes from the request or the
 * manifest's own `mediaType`, and must be one ECR stores as an image or an index.
 */
export function parseManifest(text: string, declaredMediaType?: string): ManifestInfo {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw invalidParameter(
      "Invalid parameter at 'imageManifest' failed to satisfy constraint: 'Invalid JSON syntax'",
    );
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw invalidParameter("Invalid parameter at 'imageManifest': manifest must be a JSON object");
  }
  const manifest = doc as {
    mediaType?: unknown;
    config?: Descriptor;
    layers?: unknown;
    manifests?: unknown;
  };
  const ownMediaType = typeof manifest.mediaType === 'string' ? manifest.mediaType : undefined;
  if (declaredMediaType && ownMediaType && declaredMediaType !== ownMediaType) {
    throw invalidParameter(
      `Invalid parameter at 'imageManifestMediaType': '${declaredMediaType}' does not match the manifest's mediaType '${ownMediaType}'`,
    );
  }
  const mediaType = declaredMediaType ?? ownMediaType;
  if (mediaType === undefined || !(INDEX_TYPES.has(mediaType) || MANIFEST_TYPES.has(mediaType))) {
    throw invalidParameter(
      `Invalid parameter at 'imageManifestMediaType': unsupported manifest media type '${mediaType ?? ''}'`,
    );
  }

  if (INDEX_TYPES.has(mediaType)) {
    const entries = Array.isArray(manifest.manifests) ? (manifest.manifests as Descriptor[]) : [];
    const children = entries.map((entry) => {
      if (typeof entry?.digest !== 'string') {
        throw invalidParameter("Invalid parameter at 'imageManifest': index entry without digest");
      }
      return entry.digest;
    });
    return { mediaType, children, layerBytes: 0 };
  }

  const layers = Array.isArray(manifest.layers) ? (manifest.layers as Descriptor[]) : [];
  const layerBytes = layers.reduce((sum, layer) => sum + (Number(layer?.size) || 0), 0);
  const configMediaType =
    typeof manifest.config?.mediaType === 'string' ? manifest.config.mediaType : undefined;
  return { mediaType, children: [], layerBytes, ...(configMediaType ? { configMediaType } : {}) };
}

export interface ImageManifestOptions {
  /** Varies the config digest so that otherwise equal manifests get distinct digests. */
  salt?: string;
  configMediaType?: string;
  layerSizes?: readonly number[];
  /** Docker schema 2 instead of OCI. */
  docker?: boolean;
}

/** A syntactically valid image manifest; the blobs it names do not need to exist here. */
export function buildImageManifest(options: ImageManifestOptions = {}): string {
  const salt = options.salt ?? '';
  const layerSizes = options.layerSizes ?? [1024];
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: options.docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest,
    config: {
      mediaType:
        options.configMediaType ??
        (options.docker ? MediaTypes.dockerConfig : MediaTypes.ociConfig),
      digest: sha256Digest(`config:${salt}`),
      size: 512,
    },
    layers: layerSizes.map((size, i) => ({
      mediaType: MediaTypes.ociLayerGzip,
      digest: sha256Digest(`layer:${salt}:${i}`),
      size,
    })),
  });
}

/** A BuildKit `image-manifest=true` cache artifact, the shape the pruner looks for. */
export const buildCacheManifest = (options: Omit<ImageManifestOptions, 'configMediaType'> = {}) =>
  buildImageManifest({ ...options, configMediaType: MediaTypes.buildkitCacheConfig });

export interface IndexChild {
  digest: string;
  mediaType?: string;
  size?: number;
  platform?: { os: string; architecture: string };
}

export function buildIndexManifest(
  children: readonly (string | IndexChild)[],
  options: { docker?: boolean } = {},
): string {
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: options.docker ? MediaTypes.dockerManifestList : MediaTypes.ociIndex,
    manifests: children.map((child) => {
      const c = typeof child === 'string' ? { digest: child } : child;
      return {
        mediaType:
          c.mediaType ?? (options.docker ? MediaTypes.dockerManifest : MediaTypes.ociManifest),
        digest: c.digest,
        size: c.size ?? 1000,
        ...(c.platform ? { platform: c.platform } : {}),
      };
    }),
  });
}
