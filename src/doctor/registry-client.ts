/**
 * The doctor's narrow port to a registry (read a manifest by tag, read a blob by digest) and its
 * two adapters: Amazon ECR through the AWS SDK (BatchGetImage, GetDownloadUrlForLayer), and any
 * OCI registry through the distribution API (`GET /v2/<name>/manifests/<tag>`, `.../blobs/<digest>`).
 * Both verify what they read against its digest, so a report never rests on corrupt bytes.
 */
import { createHash } from 'node:crypto';
import { createEcrClient } from '../ecr/client.js';
import { CachedDeployError } from '../errors.js';

export interface FetchedManifest {
  /** The manifest's digest, as the registry names it. */
  digest: string;
  /** The manifest's media type, when the registry reports it. */
  mediaType: string | undefined;
  /** The manifest exactly as stored. */
  text: string;
}

export interface CacheRegistry {
  /** For messages, e.g. `ECR 123456789012 (eu-west-1)` or `http://127.0.0.1:5000`. */
  readonly description: string;
  /** The manifest a tag points to, or undefined when the tag does not exist. */
  getManifest(repository: string, tag: string): Promise<FetchedManifest | undefined>;
  getBlob(repository: string, digest: string): Promise<Uint8Array>;
  /** Releases connections (the SDK client's keep-alive sockets). */
  close?(): void;
}

/** What a cache tag may point to: BuildKit's image-manifest layout, or its older index layout. */
export const ACCEPTED_MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
] as const;

const registryError = (message: string) => new CachedDeployError('IO', message);

/** Throws when `bytes` do not hash to `digest` (sha256 and sha512; other algorithms pass). */
export function verifyDigest(bytes: Uint8Array, digest: string, what: string): void {
  const [algorithm, expected] = digest.split(':');
  if ((algorithm !== 'sha256' && algorithm !== 'sha512') || expected === undefined) return;
  const actual = createHash(algorithm).update(bytes).digest('hex');
  if (actual !== expected) {
    throw registryError(`${what}: content does not match its digest ${digest}`);
  }
}

// --- OCI distribution API ---------------------------------------------------------------------

export interface OciRegistryOptions {
  /** Defaults to the global fetch. */
  fetch?: typeof fetch;
}

/**
 * An OCI registry at `url`: `http://127.0.0.1:5000`, or with a namespace that prefixes every
 * repository name, `https://ghcr.io/acme`. Reads anonymously; a registry that asks for a bearer
 * token (`WWW-Authenticate: Bearer realm=...`) gets an anonymous one first, as `docker pull` does.
 */
export function ociRegistry(url: string, options: OciRegistryOptions = {}): CacheRegistry {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new CachedDeployError('USAGE', `--registry-url: "${url}" is not a URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new CachedDeployError('USAGE', `--registry-url: "${url}" must be http:// or https://`);
  }
  if (base.username || base.password || base.search || base.hash) {
    throw new CachedDeployError(
      'USAGE',
      `--registry-url: "${base.origin}${base.pathname}" must have no credentials, query or fragment`,
    );
  }
  const doFetch = options.fetch ?? fetch;
  const namespace = base.pathname.replace(/^\/+|\/+$/g, '');
  const origin = base.origin;
  /** Bearer tokens by repository; a promise, so concurrent reads share one token request. */
  const tokens = new Map<string, Promise<string | undefined>>();
  const name = (repository: string) => (namespace ? `${namespace}/${repository}` : repository);

  async function get(path: string, repository: string, accept?: string): Promise<Response> {
    const headers: Record<string, string> = accept ? { accept } : {};
    const token = await tokens.get(repository);
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await request(`${origin}${path}`, headers);
    const challenge = response.headers.get('www-authenticate');
    if (response.status !== 401 || !challenge || token) return response;
    let pending = tokens.get(repository);
    if (!pending) {
      pending = anonymousToken(challenge);
      tokens.set(repository, pending);
    }
    const fresh = await pending;
    if (!fresh) return response;
    await response.body?.cancel();
    return request(`${origin}${path}`, { ...headers, authorization: `Bearer ${fresh}` });
  }

  async function request(target: string, headers: Record<string, string>): Promise<Response> {
    try {
      // Blob reads may redirect to storage (S3, a CDN); fetch drops the Authorization header
      // when the redirect leaves the registry's origin.
      return await doFetch(target, { headers, redirect: 'follow' });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw registryError(
        `cannot reach ${new URL(target).origin}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
      );
    }
  }

  async function anonymousToken(challenge: string): Promise<string | undefined> {
    const match = /^Bearer\s+(.*)$/i.exec(challenge);
    if (!match?.[1]) return undefined;
    const params = new Map<string, string>();
    for (const [, key, value] of match[1].matchAll(/(\w+)="([^"]*)"/g)) {
      if (key && value !== undefined) params.set(key.toLowerCase(), value);
    }
    const realm = URL.canParse(params.get('realm') ?? '') ? params.get('realm') : undefined;
    if (!realm) return undefined;
    const tokenUrl = new URL(realm);
    for (const key of ['service', 'scope']) {
      const value = params.get(key);
      if (value) tokenUrl.searchParams.set(key, value);
    }
    const response = await request(tokenUrl.href, {});
    if (!response.ok) {
      await response.body?.cancel();
      return undefined;
    }
    const body = (await response.json().catch(() => ({}))) as {
      token?: unknown;
      access_token?: unknown;
    };
    const token = body.token ?? body.access_token;
    return typeof token === 'string' ? token : undefined;
  }

  async function failure(response: Response, what: string): Promise<CachedDeployError> {
    let detail = response.statusText;
    try {
      const body = (await response.json()) as { errors?: { code?: string; message?: string }[] };
      const first = body.errors?.[0];
      if (first) detail = [first.code, first.message].filter(Boolean).join(': ');
    } catch {
      // Not a distribution error body; the status says enough.
    }
    const hint =
      response.status === 401 || response.status === 403
        ? ' (doctor reads registries anonymously over --registry-url)'
        : '';
    return registryError(`${what}: HTTP ${response.status} ${detail}${hint}`.trimEnd());
  }

  return {
    description: `${origin}${namespace ? `/${namespace}` : ''}`,
    async getManifest(repository, tag) {
      const what = `${origin}/v2/${name(repository)}/manifests/${tag}`;
      const response = await get(
        `/v2/${name(repository)}/manifests/${encodeURIComponent(tag)}`,
        repository,
        ACCEPTED_MANIFEST_TYPES.join(', '),
      );
      if (response.status === 404) {
        await response.body?.cancel();
        return undefined;
      }
      if (!response.ok) throw await failure(response, what);
      const bytes = new Uint8Array(await response.arrayBuffer());
      const computed = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const digest = response.headers.get('docker-content-digest') ?? computed;
      verifyDigest(bytes, digest, what);
      const mediaType = response.headers.get('content-type')?.split(';')[0]?.trim() || undefined;
      return { digest, mediaType, text: Buffer.from(bytes).toString('utf8') };
    },
    async getBlob(repository, digest) {
      const what = `${origin}/v2/${name(repository)}/blobs/${digest}`;
      const response = await get(`/v2/${name(repository)}/blobs/${digest}`, repository);
      if (!response.ok) throw await failure(response, what);
      const bytes = new Uint8Array(await response.arrayBuffer());
      verifyDigest(bytes, digest, what);
      return bytes;
    },
  };
}

// --- Amazon ECR -------------------------------------------------------------------------------

export interface EcrRegistryOptions {
  /** The registry (account) id. */
  registryId: string;
  region: string;
  /** Extra ECRClient configuration, e.g. `{ endpoint, credentials }` of a test server. */
  clientConfig?: Record<string, unknown>;
  /** Fetches the presigned layer URL. Defaults to the global fetch. */
  fetch?: typeof fetch;
}

/**
 * ECR through the client of ecr/client.ts (the SDK is imported only when used). Needs
 * `ecr:BatchGetImage` and `ecr:GetDownloadUrlForLayer` on the cache repositories.
 */
export async function ecrRegistry(options: EcrRegistryOptions): Promise<CacheRegistry> {
  const { sdk, client } = await createEcrClient({
    region: options.region,
    clientConfig: options.clientConfig,
  });
  const doFetch = options.fetch ?? fetch;
  const { registryId } = options;

  const call = async <T>(operation: string, repository: string, send: () => Promise<T>) => {
    try {
      return await send();
    } catch (error) {
      const { name, message } = error as Error;
      throw registryError(`ECR ${operation} on ${repository}: ${name}: ${message.split('\n')[0]}`);
    }
  };

  return {
    description: `ECR ${registryId} (${options.region})`,
    async getManifest(repository, tag) {
      const output = await call('BatchGetImage', repository, () =>
        client.send(
          new sdk.BatchGetImageCommand({
            registryId,
            repositoryName: repository,
            imageIds: [{ imageTag: tag }],
            acceptedMediaTypes: [...ACCEPTED_MANIFEST_TYPES],
          }),
        ),
      );
      const image = output.images?.[0];
      if (image?.imageManifest && image.imageId?.imageDigest) {
        // ECR returns the manifest as pushed, so it hashes to its digest like any other read.
        verifyDigest(
          Buffer.from(image.imageManifest, 'utf8'),
          image.imageId.imageDigest,
          `manifest ${repository}:${tag}`,
        );
        return {
          digest: image.imageId.imageDigest,
          mediaType: image.imageManifestMediaType,
          text: image.imageManifest,
        };
      }
      const failure = output.failures?.[0];
      if (!failure || failure.failureCode === 'ImageNotFound') return undefined;
      throw registryError(
        `ECR BatchGetImage on ${repository}:${tag}: ${failure.failureCode}: ${failure.failureReason}`,
      );
    },
    async getBlob(repository, digest) {
      const output = await call('GetDownloadUrlForLayer', repository, () =>
        client.send(
          new sdk.GetDownloadUrlForLayerCommand({
            registryId,
            repositoryName: repository,
            layerDigest: digest,
          }),
        ),
      );
      if (!output.downloadUrl) {
        throw registryError(`ECR GetDownloadUrlForLayer on ${repository}: no downloadUrl`);
      }
      const what = `blob ${digest} of ${repository}`;
      let response: Response;
      try {
        // A presigned URL: it carries its own authorization.
        response = await doFetch(output.downloadUrl, { redirect: 'follow' });
      } catch (error) {
        throw registryError(`${what}: download failed: ${(error as Error).message}`);
      }
      if (!response.ok) {
        await response.body?.cancel();
        throw registryError(`${what}: download failed: HTTP ${response.status}`);
      }
      const bytes = new Uint8Array(await response.arrayBuffer());
      verifyDigest(bytes, digest, what);
      return bytes;
    },
    close: () => client.destroy(),
  };
}
