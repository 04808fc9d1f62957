/**
 * An OCI registry on loopback that misbehaves on purpose, for the limits of doctor's registry
 * client: a manifest or blob of any size, a body dripped one byte at a time, a server that never
 * answers, redirect loops and chains, a token realm on another host, digests of odd algorithms.
 * Honest, it serves one BuildKit cache artifact (a manifest and its cacheconfig) at every tag of
 * every repository, over the distribution API's paths.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Behaviour =
  | { kind: 'honest' }
  /** The manifest is `bytes` long (JSON-looking padding), sent in 64 KiB chunks. */
  | { kind: 'huge-manifest'; bytes: number; declareLength?: boolean }
  /** The manifest is honest; the cacheconfig blob is `bytes` long. */
  | { kind: 'huge-blob'; bytes: number }
  /** 200 and headers at once, then one byte of body every `everyMs`, forever. */
  | { kind: 'drip'; everyMs: number }
  /** Accepts the connection and never answers. */
  | { kind: 'silent' }
  /** Every manifest read redirects between two paths of its own, round and round. */
  | { kind: 'redirect-loop' }
  /** Every manifest read goes through `count` distinct redirects before the manifest. */
  | { kind: 'redirects'; count: number }
  /**
   * Reads need `Bearer <token>`, which `realm` (a URL, given the registry's URL) hands out;
   * blobs redirect to `blobsAt` (another origin) when given.
   */
  | { kind: 'token'; realm: (registryUrl: string) => string; blobsAt?: string }
  /** The manifest is honest but its Docker-Content-Digest header says `digest`. */
  | { kind: 'manifest-digest'; digest: string }
  /** The manifest names its cacheconfig by `digest` (any algorithm); blobs are served by any. */
  | { kind: 'config-digest'; digest: string };

export interface RecordedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
}

export interface HostileRegistry {
  readonly url: string;
  readonly requests: RecordedRequest[];
  behaviour: Behaviour;
  /** The manifest served honestly (with the current config digest). */
  manifest(): string;
  close(): Promise<void>;
}

export interface Artifact {
  /** The cache manifest, as stored. */
  manifest: string;
  /** Its cacheconfig blob. */
  cacheconfig: Uint8Array;
}

const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const TOKEN = 'hostile-test-token';

const sha256 = (bytes: string | Uint8Array) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** Writes `bytes` bytes of `{"pad":"aaaa…` in 64 KiB chunks, minding backpressure. */
async function stream(res: ServerResponse, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let left = bytes;
  const head = Buffer.from('{"pad":"');
  res.write(head);
  left -= head.byteLength;
  while (left > 0 && !res.destroyed) {
    const piece = left >= chunk.byteLength ? chunk : chunk.subarray(0, left);
    left -= piece.byteLength;
    if (!res.write(piece)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    }
  }
  if (!res.destroyed) res.end();
}

export async function startHostileRegistry(artifact: Artifact): Promise<HostileRegistry> {
  const requests: RecordedRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let url = '';

  const manifestFor = (configDigest: string | undefined) => {
    if (!configDigest) return artifact.manifest;
    const doc = JSON.parse(artifact.manifest) as { config: { digest: string } };
    doc.config.digest = configDigest;
    return JSON.stringify(doc);
  };

  const registry: HostileRegistry = {
    get url() {
      return url;
    },
    requests,
    behaviour: { kind: 'honest' },
    manifest: () =>
      manifestFor(
        registry.behaviour.kind === 'config-digest' ? registry.behaviour.digest : undefined,
      ),
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };

  function sendManifest(res: ServerResponse, text: string, digest = sha256(text)) {
    res.writeHead(200, {
      'content-type': MANIFEST_TYPE,
      'content-length': Buffer.byteLength(text),
      'docker-content-digest': digest,
    });
    res.end(text);
  }

  function handle(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    requests.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
    const behaviour = registry.behaviour;
    const isManifest = /^\/v2\/.+\/manifests\/[^/]+$/.test(path);
    const isBlob = /^\/v2\/.+\/blobs\/[^/]+$/.test(path);

    if (behaviour.kind === 'silent') return; // never answered; closed with the server
    if (path.startsWith('/token')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ token: TOKEN }));
      return;
    }
    if (behaviour.kind === 'token' && req.headers.authorization !== `Bearer ${TOKEN}`) {
      const repository = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(path)?.[1] ?? '';
      res.writeHead(401, {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="${behaviour.realm(url)}",service="hostile",scope="repository:${repository}:pull"`,
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    if (path.startsWith('/hop/')) {
      const [, , n = '0', ...rest] = path.split('/');
      const hop = Number(n);
      const target = `/${rest.join('/')}`;
      if (behaviour.kind === 'redirect-loop') {
        res.writeHead(302, { location: `/hop/${hop === 1 ? 2 : 1}${target}` });
      } else if (behaviour.kind === 'redirects' && hop < behaviour.count) {
        res.writeHead(302, { location: `/hop/${hop + 1}${target}` });
      } else {
        sendManifest(res, registry.manifest());
        return;
      }
      res.end();
      return;
    }
    if (isManifest) {
      switch (behaviour.kind) {
        case 'huge-manifest':
          res.writeHead(200, {
            'content-type': MANIFEST_TYPE,
            ...(behaviour.declareLength ? { 'content-length': behaviour.bytes } : {}),
          });
          void stream(res, behaviour.bytes);
          return;
        case 'drip': {
          res.writeHead(200, { 'content-type': MANIFEST_TYPE });
          res.write('{');
          const timer = setInterval(() => {
            if (res.destroyed) {
              clearInterval(timer);
              timers.delete(timer);
              return;
            }
            res.write(' ');
          }, behaviour.everyMs);
          timers.add(timer);
          return;
        }
        case 'redirect-loop':
        case 'redirects':
          res.writeHead(302, { location: `/hop/1${path}` });
          res.end();
          return;
        case 'manifest-digest':
          sendManifest(res, registry.manifest(), behaviour.digest);
          return;
        default:
          sendManifest(res, registry.manifest());
          return;
      }
    }
    if (isBlob) {
      if (behaviour.kind === 'token' && behaviour.blobsAt) {
        res.writeHead(307, { location: `${behaviour.blobsAt}${path}` });
        res.end();
        return;
      }
      if (behaviour.kind === 'huge-blob') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        void stream(res, behaviour.bytes);
        return;
      }
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': artifact.cacheconfig.byteLength,
      });
      res.end(artifact.cacheconfig);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known"}]}');
  }

  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return registry;
}

/** A server that only records who called it (a token service or storage on another host). */
export async function startRecorder(
  host = '127.0.0.1',
  answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token: TOKEN }));
  },
): Promise<{ url: string; requests: RecordedRequest[]; close(): Promise<void> }> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    requests.push({
      method: req.method ?? '',
      path: (req.url ?? '/').split('?')[0] ?? '/',
      authorization: req.headers.authorization,
    });
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  server.unref();
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
