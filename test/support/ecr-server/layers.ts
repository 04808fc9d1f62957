/**
 * Layer downloads, as ECR serves them: `GetDownloadUrlForLayer` answers with a presigned URL (on
 * AWS an S3 URL, valid for a while, carrying its own signature and no AWS credentials), and the
 * client GETs the blob from there. Here the URL points back at this server's `/layers/` path and is
 * signed with a per-server secret: a URL the server did not issue, or one past its expiry, is
 * refused with S3's 403 AccessDenied. Blobs live in their repository (`state.putBlob`).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { invalidParameter, ServiceError } from './errors.js';
import { DIGEST_PATTERN } from './manifests.js';
import type { Registry } from './registry.js';

/** How long an issued URL stays valid; ECR's are valid for an hour. */
export const LAYER_URL_TTL_SECONDS = 3600;
const LAYER_PATH = '/layers/';

export class LayerDownloads {
  /** Where issued URLs point; index.ts sets it once the server listens. */
  baseUrl = 'http://127.0.0.1';
  private readonly secret = randomBytes(32);

  constructor(private readonly now: () => Date) {}

  /** A presigned-style URL for one blob of one repository. */
  url(repositoryName: string, digest: string): string {
    const issued = this.now();
    const expires = Math.floor(issued.getTime() / 1000) + LAYER_URL_TTL_SECONDS;
    const url = new URL(
      `${LAYER_PATH}${encodeURIComponent(repositoryName)}/${digest}`,
      this.baseUrl,
    );
    url.searchParams.set('X-Amz-Algorithm', 'AWS4-HMAC-SHA256');
    url.searchParams.set('X-Amz-Date', issued.toISOString().replace(/[-:]|\.\d{3}/g, ''));
    url.searchParams.set('X-Amz-Expires', String(LAYER_URL_TTL_SECONDS));
    url.searchParams.set('X-Amz-Signature', this.sign(repositoryName, digest, expires));
    url.searchParams.set('x-expires', String(expires));
    return url.href;
  }

  /**
   * Answers a GET of an issued URL with the blob. Returns false for any other path, so the
   * caller can go on to the AWS JSON protocol.
   */
  serve(registry: Registry, req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!url.pathname.startsWith(LAYER_PATH)) return false;
    const rest = url.pathname.slice(LAYER_PATH.length);
    const slash = rest.lastIndexOf('/');
    const repositoryName = decodeURIComponent(rest.slice(0, slash));
    const digest = rest.slice(slash + 1);
    const expires = Number(url.searchParams.get('x-expires'));
    const signature = url.searchParams.get('X-Amz-Signature') ?? '';
    const expected = this.sign(repositoryName, digest, expires);
    const valid =
      (req.method === 'GET' || req.method === 'HEAD') &&
      slash > 0 &&
      signature.length === expected.length &&
      timingSafeEqual(Buffer.from(signature), Buffer.from(expected));
    if (!valid) {
      s3Error(res, 403, 'AccessDenied', 'Request has invalid signature or method');
    } else if (Math.floor(this.now().getTime() / 1000) > expires) {
      s3Error(res, 403, 'AccessDenied', 'Request has expired');
    } else {
      const blob = registry.blob(repositoryName, digest);
      if (!blob) {
        s3Error(res, 404, 'NoSuchKey', 'The specified key does not exist.');
      } else {
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': blob.byteLength,
        });
        res.end(req.method === 'HEAD' ? undefined : blob);
      }
    }
    return true;
  }

  private sign(repositoryName: string, digest: string, expires: number): string {
    return createHmac('sha256', this.secret)
      .update(`${repositoryName}\n${digest}\n${expires}`)
      .digest('hex');
  }
}

function s3Error(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': body.length });
  res.end(body);
}

/** ECR's GetDownloadUrlForLayer: `{ downloadUrl, layerDigest }` for a blob of the repository. */
export function GetDownloadUrlForLayer(
  registry: Registry,
  input: Record<string, unknown>,
): Record<string, unknown> {
  const repositoryName = input.repositoryName;
  const layerDigest = input.layerDigest;
  if (typeof repositoryName !== 'string') {
    throw invalidParameter("Invalid parameter: 'repositoryName' is required");
  }
  if (typeof layerDigest !== 'string' || !DIGEST_PATTERN.test(layerDigest)) {
    throw invalidParameter(
      `Invalid parameter at 'layerDigest' failed to satisfy constraint: 'must be a digest'`,
    );
  }
  const registryId = input.registryId;
  if (registryId !== undefined && registryId !== registry.registryId) {
    throw new ServiceError(
      'RepositoryNotFoundException',
      `The repository with name '${repositoryName}' does not exist in the registry with id '${String(registryId)}'`,
    );
  }
  registry.require(repositoryName);
  if (!registry.blob(repositoryName, layerDigest)) {
    throw new ServiceError(
      'LayersNotFoundException',
      `The layer with digest '${layerDigest}' does not exist in the repository with name '${repositoryName}' in the registry with id '${registry.registryId}'`,
    );
  }
  return { downloadUrl: registry.layerDownloads.url(repositoryName, layerDigest), layerDigest };
}
