/**
 * The doctor's narrow port to a registry (read a manifest by tag, read a blob by digest) and its
 * two adapters: Amazon ECR through the AWS SDK (BatchGetImage, GetDownloadUrlForLayer), and any
 * OCI registry through the distribution API (`GET /v2/<name>/manifests/<tag>`, `.../blobs/<digest>`).
 *
 * A registry is someone else's server, so both read only through net/bounded-fetch.ts (size caps,
 * deadlines, bounded redirects), verify what they read against its digest (sha256 or sha512;
 * any other algorithm is refused, as unverifiable), follow a token realm only on the registry's
 * own host, and quote the registry's own words in messages only escaped and cut.
 */
import { createHash } from 'node:crypto';
import { createEcrClient } from '../ecr/client.js';
import { CachedDeployError } from '../errors.js';
import { IMAGE_MANIFEST_MEDIA_TYPES, INDEX_MEDIA_TYPES } from '../media-types.js';
import {
  bodyJson,
  bodyText,
  createHttpClient,
  formatLimit,
  type HttpClient,
  type HttpResponse,
  KiB,
  MiB,
} from '../net/bounded-fetch.js';
import { printable, quoteForMessage } from '../text.js';

export interface FetchedManifest {
  /** The manifest's digest, as the registry names it (verified). */
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
export const ACCEPTED_MANIFEST_TYPES: readonly string[] = [
  ...IMAGE_MANIFEST_MEDIA_TYPES,
  ...INDEX_MEDIA_TYPES,
];

/** ECR's and the distribution registry's own limit for a manifest. */
export const MAX_MANIFEST_BYTES = 4 * MiB;
/**
 * A cacheconfig lists a build's steps and layers: kilobytes for a service (the measured ones are
 * 5 KB), a few MB for the largest builds. Far above that it is not a cache worth reading.
 */
export const MAX_CACHECONFIG_BYTES = 32 * MiB;
/** A token service's answer: a token of a few KB, in JSON. */
export const MAX_TOKEN_RESPONSE_BYTES = 64 * KiB;

const registryError = (message: string) => new CachedDeployError('IO', message);

/** Text a server wrote, made fit for a one-line message: quoted, cut, no control characters. */
const quoted = (text: string, max = 200) => printable(quoteForMessage(text, max));

/** Hex digits of each algorithm this tool can verify (the OCI image spec's registered ones). */
const DIGEST_HEX_LENGTH = { sha256: 64, sha512: 128 } as const;
type DigestAlgorithm = keyof typeof DIGEST_HEX_LENGTH;
/** The OCI grammar of a digest: `algorithm:encoded`. */
const DIGEST_GRAMMAR = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/**
 * Checks a digest's form: sha256 or sha512 with lowercase hex of the right length. Anything else
 * (another algorithm, uppercase or short hex) is refused: content named by it cannot be verified.
 */
export function parseDigest(
  digest: string,
  what: string,
): { algorithm: DigestAlgorithm; hex: string } {
  const match = DIGEST_GRAMMAR.exec(digest);
  if (!match) throw registryError(`${what}: ${quoted(digest, 140)} is not a digest`);
  const algorithm = match[1] as string;
  const hex = match[2] as string;
  if (!Object.hasOwn(DIGEST_HEX_LENGTH, algorithm)) {
    throw registryError(
      `${what}: digest algorithm ${quoted(algorithm, 40)} is not supported (sha256, sha512), so the content cannot be verified`,
    );
  }
  const length = DIGEST_HEX_LENGTH[algorithm as DigestAlgorithm];
  if (hex.length !== length || !/^[0-9a-f]+$/.test(hex)) {
    throw registryError(
      `${what}: ${quoted(digest, 140)} is not a valid ${algorithm} digest (${length} lowercase hex digits)`,
    );
  }
  return { algorithm: algorithm as DigestAlgorithm, hex };
}

/** Throws unless `bytes` hash to `digest`, whatever algorithm it names (see parseDigest). */
export function verifyDigest(bytes: Uint8Array, digest: string, what: string): void {
  const { algorithm, hex } = parseDigest(digest, what);
  if (createHash(algorithm).update(bytes).digest('hex') !== hex) {
    throw registryError(`${what}: content does not match its digest ${digest}`);
  }
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(?:\.\d{1,3}){3}$/.test(hostname);
}

// --- OCI distribution API ---------------------------------------------------------------------

export interface OciRegistryOptions {
  /** The transport under the bounded client. Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** The bounded HTTP client (its deadlines); a default one otherwise. */
  http?: HttpClient;
}

/**
 * An OCI registry at `url`: `http://127.0.0.1:5000`, or with a namespace that prefixes every
 * repository name, `https://ghcr.io/acme`. Reads anonymously; a registry that asks for a bearer
 * token (`WWW-Authenticate: Bearer realm=...`) gets an anonymous one first, as `docker pull` does,
 * but only from a realm on its own host, over https (or http on loopback, for tests).
 */
export function ociRegistry(url: string, options: OciRegistryOptions = {}): CacheRegistry {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new CachedDeployError('USAGE', `--registry-url: ${quoted(url)} is not a URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new CachedDeployError(
      'USAGE',
      `--registry-url: ${quoted(url)} must be http:// or https://`,
    );
  }
  if (base.username || base.password || base.search || base.hash) {
    throw new CachedDeployError(
      'USAGE',
      `--registry-url: "${base.origin}${base.pathname}" must have no credentials, query or fragment`,
    );
  }
  const http = options.http ?? createHttpClient({ fetch: options.fetch });
  const namespace = base.pathname.replace(/^\/+|\/+$/g, '');
  const origin = base.origin;
  /** Bearer tokens by repository; a promise, so concurrent reads share one token request. */
  const tokens = new Map<string, Promise<string | undefined>>();
  const name = (repository: string) => (namespace ? `${namespace}/${repository}` : repository);

  async function get(
    path: string,
    repository: string,
    what: string,
    maxBytes: number,
    accept?: string,
  ): Promise<HttpResponse> {
    const headers: Record<string, string> = accept ? { accept } : {};
    const token = await tokens.get(repository);
    if (token) headers.authorization = `Bearer ${token}`;
    // Blob reads may redirect to storage (S3, a CDN); the bounded client drops the
    // authorization header when a redirect leaves the registry's origin.
    const response = await http.request(`${origin}${path}`, { headers, maxBytes, what });
    const challenge = response.headers.get('www-authenticate');
    if (response.status !== 401 || !challenge || token) return response;
    let pending = tokens.get(repository);
    if (!pending) {
      pending = anonymousToken(challenge);
      tokens.set(repository, pending);
    }
    const fresh = await pending;
    if (!fresh) return response;
    return http.request(`${origin}${path}`, {
      headers: { ...headers, authorization: `Bearer ${fresh}` },
      maxBytes,
      what,
    });
  }

  /** The realm's URL, when the registry may send us there for a token; an error otherwise. */
  function tokenService(realm: string): URL {
    if (!URL.canParse(realm)) {
      throw registryError(`${origin} names a token realm ${quoted(realm)} that is not a URL`);
    }
    const url = new URL(realm);
    const refuse = (how: string) =>
      registryError(
        // A parsed URL's host is plain ASCII (punycode), safe to print as it is.
        `${origin} asks for a token from ${url.host}${how}: doctor only takes tokens from the registry's own host, over https`,
      );
    if (url.hostname !== base.hostname) throw refuse(', another host');
    if (url.username || url.password) throw refuse(' with credentials in the URL');
    if (url.protocol === 'https:') return url;
    if (url.protocol === 'http:' && isLoopback(url.hostname)) return url;
    throw refuse(` over ${url.protocol.replace(/:$/, '')}`);
  }

  async function anonymousToken(challenge: string): Promise<string | undefined> {
    const match = /^Bearer\s+(.*)$/i.exec(challenge);
    if (!match?.[1]) return undefined;
    const params = new Map<string, string>();
    for (const [, key, value] of match[1].matchAll(/(\w+)="([^"]*)"/g)) {
      if (key && value !== undefined) params.set(key.toLowerCase(), value);
    }
    const realm = params.get('realm');
    if (!realm) return undefined;
    const tokenUrl = tokenService(realm);
    for (const key of ['service', 'scope']) {
      const value = params.get(key);
      if (value) tokenUrl.searchParams.set(key, value);
    }
    // No redirects: the token must come from the host just checked.
    const response = await http.request(tokenUrl.href, {
      maxBytes: MAX_TOKEN_RESPONSE_BYTES,
      maxRedirects: 0,
      what: `token from ${tokenUrl.origin}`,
    });
    if (!response.ok) return undefined;
    const body = bodyJson(response) as { token?: unknown; access_token?: unknown } | undefined;
    const token = body?.token ?? body?.access_token;
    // Sent back as a header value: visible ASCII only.
    return typeof token === 'string' && /^[\x21-\x7e]+$/.test(token) ? token : undefined;
  }

  function failure(response: HttpResponse, what: string): CachedDeployError {
    let detail = '';
    const body = bodyJson(response) as
      | { errors?: { code?: unknown; message?: unknown }[] }
      | undefined;
    const first = Array.isArray(body?.errors) ? body.errors[0] : undefined;
    if (first) {
      detail = [first.code, first.message]
        .filter((part): part is string => typeof part === 'string' && part !== '')
        .join(': ');
    } else if (!body && response.body.byteLength > 0) {
      detail = bodyText(response).split('\n')[0] ?? '';
    }
    const hint =
      response.status === 401 || response.status === 403
        ? ' (doctor reads registries anonymously over --registry-url)'
        : '';
    return registryError(
      `${what}: HTTP ${response.status}${detail ? ` ${quoted(detail)}` : ''}${hint}`,
    );
  }

  return {
    description: `${origin}${namespace ? `/${namespace}` : ''}`,
    async getManifest(repository, tag) {
      const what = `${origin}/v2/${name(repository)}/manifests/${tag}`;
      const response = await get(
        `/v2/${name(repository)}/manifests/${encodeURIComponent(tag)}`,
        repository,
        what,
        MAX_MANIFEST_BYTES,
        ACCEPTED_MANIFEST_TYPES.join(', '),
      );
      if (response.status === 404) return undefined;
      if (!response.ok) throw failure(response, what);
      const bytes = response.body;
      const named = response.headers.get('docker-content-digest');
      const digest = named ?? `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      verifyDigest(bytes, digest, what);
      const mediaType = response.headers.get('content-type')?.split(';')[0]?.trim() || undefined;
      return { digest, mediaType, text: Buffer.from(bytes).toString('utf8') };
    },
    async getBlob(repository, digest) {
      const what = `${origin}/v2/${name(repository)}/blobs/${digest}`;
      // The digest comes from a manifest: checked before it becomes part of a URL.
      parseDigest(digest, what);
      const response = await get(
        `/v2/${name(repository)}/blobs/${digest}`,
        repository,
        what,
        MAX_CACHECONFIG_BYTES,
      );
      if (!response.ok) throw failure(response, what);
      verifyDigest(response.body, digest, what);
      return response.body;
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
  /** The transport under the bounded client, for the presigned layer URL. Default: fetch. */
  fetch?: typeof fetch;
  /** The bounded HTTP client whose deadlines also bound the SDK calls; a default one otherwise. */
  http?: HttpClient;
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
  const http = options.http ?? createHttpClient({ fetch: options.fetch });
  const { registryId } = options;

  const call = async <T>(
    operation: string,
    repository: string,
    send: (abortSignal: AbortSignal) => Promise<T>,
  ) => {
    const what = `ECR ${operation} on ${repository}`;
    try {
      return await http.within(what, send);
    } catch (error) {
      if (error instanceof CachedDeployError) throw error;
      const { name, message } = error as Error;
      throw registryError(
        `${what}: ${printable(String(name).slice(0, 100))}: ${quoted(String(message))}`,
      );
    }
  };

  return {
    description: `ECR ${registryId} (${options.region})`,
    async getManifest(repository, tag) {
      const output = await call('BatchGetImage', repository, (abortSignal) =>
        client.send(
          new sdk.BatchGetImageCommand({
            registryId,
            repositoryName: repository,
            imageIds: [{ imageTag: tag }],
            acceptedMediaTypes: [...ACCEPTED_MANIFEST_TYPES],
          }),
          { abortSignal },
        ),
      );
      const image = output.images?.[0];
      if (image?.imageManifest && image.imageId?.imageDigest) {
        const what = `manifest ${repository}:${tag}`;
        const bytes = Buffer.from(image.imageManifest, 'utf8');
        if (bytes.byteLength > MAX_MANIFEST_BYTES) {
          throw registryError(`${what}: larger than ${formatLimit(MAX_MANIFEST_BYTES)}`);
        }
        // ECR returns the manifest as pushed, so it hashes to its digest like any other read.
        verifyDigest(bytes, image.imageId.imageDigest, what);
        return {
          digest: image.imageId.imageDigest,
          mediaType: image.imageManifestMediaType,
          text: image.imageManifest,
        };
      }
      const failure = output.failures?.[0];
      if (!failure || failure.failureCode === 'ImageNotFound') return undefined;
      throw registryError(
        `ECR BatchGetImage on ${repository}:${tag}: ${quoted(`${failure.failureCode}: ${failure.failureReason}`)}`,
      );
    },
    async getBlob(repository, digest) {
      const what = `blob ${digest} of ${repository}`;
      parseDigest(digest, `blob of ${repository}`);
      const output = await call('GetDownloadUrlForLayer', repository, (abortSignal) =>
        client.send(
          new sdk.GetDownloadUrlForLayerCommand({
            registryId,
            repositoryName: repository,
            layerDigest: digest,
          }),
          { abortSignal },
        ),
      );
      if (!output.downloadUrl || !URL.canParse(output.downloadUrl)) {
        throw registryError(`ECR GetDownloadUrlForLayer on ${repository}: no downloadUrl`);
      }
      // A presigned URL: it carries its own authorization, and is sent no other.
      const response = await http.request(output.downloadUrl, {
        maxBytes: MAX_CACHECONFIG_BYTES,
        what,
      });
      if (!response.ok) throw registryError(`${what}: download failed: HTTP ${response.status}`);
      verifyDigest(response.body, digest, what);
      return response.body;
    },
    close: () => client.destroy(),
  };
}
