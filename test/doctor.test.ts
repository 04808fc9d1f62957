/**
 * `doctor`: the cacheconfig parser and health score on the real BuildKit artifacts of
 * test/fixtures/buildkit/ (a seed and five eroded re-exports; docs/erosion-and-seed.md), then the whole
 * command against a real OCI registry (Debian's docker-registry, distribution 2.8) and against the
 * ECR test server, and the reseed dispatch against a local stand-in for the GitHub API.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, test, vi } from 'vitest';
import {
  CacheFormatError,
  cacheStats,
  erosionVerdict,
  healthScore,
  parseCacheConfig,
  parseCacheManifest,
} from '../src/doctor/cacheconfig.js';
import { type DoctorReport, doctor } from '../src/doctor/doctor.js';
import { formatAge } from '../src/doctor/format.js';
import { cacheScope, cacheTag } from '../src/model/cache-tags.js';
import { formatBytes } from '../src/text.js';
import { startEcrServer } from './support/ecr-server.js';
import { runMain } from './support/run-main.js';
import { findSystemTool, needSystemTool } from './support/system-tools.js';
import { PROJECT_ROOT } from './support/temp-repo.js';

// --- the real artifacts -----------------------------------------------------------------------

/** Real BuildKit artifacts, committed with the tests (see test/fixtures/buildkit/README.md). */
const DATA_DIR = join(PROJECT_ROOT, 'test', 'fixtures', 'buildkit');

const STAGES = [
  'cache-seed',
  'cache-fresh-runner-reexport-1',
  'cache-fresh-runner-reexport-2',
  'cache-fresh-runner-reexport-3',
  'cache-fresh-runner-reexport-4',
  'cache-fresh-runner-reexport-5',
] as const;
type Stage = (typeof STAGES)[number];

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface RecordedManifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}
interface Artifact {
  stage: Stage;
  digest: string;
  manifest: RecordedManifest;
  /** The cacheconfig blob, byte for byte as stored. */
  cacheconfig: Buffer;
}

function loadArtifact(stage: Stage): Artifact {
  const recorded = JSON.parse(readFileSync(join(DATA_DIR, `${stage}.manifest.json`), 'utf8')) as {
    digest: string;
    manifest: RecordedManifest;
  };
  return {
    stage,
    digest: recorded.digest,
    manifest: recorded.manifest,
    cacheconfig: readFileSync(join(DATA_DIR, `${stage}.cacheconfig.json`)),
  };
}

const sha256 = (bytes: Uint8Array | string) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

let artifacts: Record<Stage, Artifact>;

beforeAll(() => {
  if (!existsSync(DATA_DIR)) {
    throw new Error(
      `the BuildKit artifacts are missing: expected ${DATA_DIR} (test/fixtures/buildkit)`,
    );
  }
  artifacts = Object.fromEntries(STAGES.map((stage) => [stage, loadArtifact(stage)])) as Record<
    Stage,
    Artifact
  >;
});

describe('cacheconfig parser and health score on the real BuildKit artifacts', () => {
  const stats = (stage: Stage) => {
    const artifact = artifacts[stage];
    return cacheStats(
      parseCacheManifest(JSON.stringify(artifact.manifest)),
      parseCacheConfig(artifact.cacheconfig),
    );
  };

  test('each manifest names its cacheconfig by the digest and size of the stored blob', () => {
    for (const stage of STAGES) {
      const { manifest, cacheconfig } = artifacts[stage];
      const parsed = parseCacheManifest(JSON.stringify(manifest));
      expect(parsed.config).toEqual({
        mediaType: 'application/vnd.buildkit.cacheconfig.v0',
        digest: sha256(cacheconfig),
        size: cacheconfig.byteLength,
      });
      expect(parsed.layers.map((layer) => layer.digest)).toEqual(
        parseCacheConfig(cacheconfig).layers.map((layer) => layer.blob),
      );
    }
  });

  test('layers, bytes, records and records with results match the README of the data', () => {
    const table = STAGES.map((stage) => {
      const { layers, bytes, records, recordsWithResults } = stats(stage);
      return { stage, layers, bytes, records, recordsWithResults };
    });
    expect(table).toEqual([
      { stage: 'cache-seed', layers: 13, bytes: 283_966_712, records: 20, recordsWithResults: 12 },
      {
        stage: 'cache-fresh-runner-reexport-1',
        layers: 13,
        bytes: 283_966_712,
        records: 20,
        recordsWithResults: 9,
      },
      {
        stage: 'cache-fresh-runner-reexport-2',
        layers: 13,
        bytes: 283_966_712,
        records: 20,
        recordsWithResults: 7,
      },
      {
        stage: 'cache-fresh-runner-reexport-3',
        layers: 13,
        bytes: 283_966_712,
        records: 20,
        recordsWithResults: 6,
      },
      {
        stage: 'cache-fresh-runner-reexport-4',
        layers: 12,
        bytes: 283_964_975,
        records: 20,
        recordsWithResults: 5,
      },
      {
        stage: 'cache-fresh-runner-reexport-5',
        layers: 10,
        bytes: 283_963_717,
        records: 20,
        recordsWithResults: 4,
      },
    ]);
    // The recorded newest result is the same build's for every stage: erosion drops results, it
    // never creates new ones.
    expect(new Set(STAGES.map((stage) => stats(stage).newestResultAt))).toEqual(
      new Set(['2026-11-27T17:48:20.482770622Z']),
    );
  });

  test('the health score orders the seed above each eroded stage, strictly', () => {
    const scores = STAGES.map((stage) => stats(stage).health);
    expect(scores).toEqual([0.6, 0.45, 0.35, 0.3, 0.25, 0.2]);
    for (let i = 1; i < scores.length; i++) {
      expect(scores[i - 1] as number).toBeGreaterThan(scores[i] as number);
    }
    expect(healthScore({ records: 0, recordsWithResults: 0 })).toBe(0);
  });

  test('erosion: one fresh-runner re-export keeps 75% of the seed; two or more fall below', () => {
    const seed = stats('cache-seed');
    const verdicts = STAGES.map((stage) => erosionVerdict(stats(stage), seed));
    expect(verdicts).toEqual([
      { status: 'healthy', retained: 1 },
      { status: 'healthy', retained: 0.75 },
      { status: 'eroded', retained: 7 / 12 },
      { status: 'eroded', retained: 0.5 },
      { status: 'eroded', retained: 5 / 12 },
      { status: 'eroded', retained: 4 / 12 },
    ]);
    expect(erosionVerdict(undefined, seed)).toEqual({ status: 'main-missing' });
    expect(erosionVerdict(seed, undefined)).toEqual({ status: 'seed-missing' });
    expect(erosionVerdict(seed, { recordsWithResults: 0 })).toEqual({ status: 'seed-empty' });
    expect(erosionVerdict(stats('cache-fresh-runner-reexport-1'), seed, 0.8).status).toBe('eroded');
  });

  test('the older index layout (cacheconfig listed among manifests[]) reads the same', () => {
    const { manifest, cacheconfig } = artifacts['cache-seed'];
    const index = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [...manifest.layers, manifest.config],
    };
    expect(
      cacheStats(parseCacheManifest(JSON.stringify(index)), parseCacheConfig(cacheconfig)),
    ).toEqual(stats('cache-seed'));
  });

  test('an application image is refused as not a BuildKit cache', () => {
    const app = JSON.parse(
      readFileSync(join(DATA_DIR, 'app-image-index-with-attestation.json'), 'utf8'),
    ) as { index: { manifest: unknown } };
    expect(() => parseCacheManifest(JSON.stringify(app.index.manifest))).toThrow(
      /not a BuildKit cache/,
    );
    const image = { ...artifacts['cache-seed'].manifest };
    image.config = { ...image.config, mediaType: 'application/vnd.oci.image.config.v1+json' };
    expect(() => parseCacheManifest(JSON.stringify(image))).toThrow(/not a BuildKit cache/);
  });

  test.each([
    ['not JSON', '{', /not valid JSON/],
    ['records not a list', '{"layers":[],"records":{}}', /^records: not a list$/],
    [
      'a result pointing past layers[]',
      '{"layers":[{"blob":"sha256:aa"}],"records":[{"digest":"sha256:bb","layers":[{"layer":1}]}]}',
      /^records\[0\]\.layers\[0\]\.layer: 1 is not an index of layers\[\] \(1 layers\)$/,
    ],
    [
      'a bad timestamp',
      '{"layers":[{"blob":"sha256:aa"}],"records":[{"layers":[{"layer":0,"createdAt":"yesterday"}]}]}',
      /^records\[0\]\.layers\[0\]\.createdAt: not a timestamp$/,
    ],
  ])('a broken cacheconfig (%s) is an error naming the field', (_, text, message) => {
    expect(() => parseCacheConfig(text)).toThrow(CacheFormatError);
    expect(() => parseCacheConfig(text)).toThrow(message);
  });

  test('chained results count as results', () => {
    const config = parseCacheConfig(
      '{"layers":[{"blob":"sha256:aa"},{"blob":"sha256:bb","parent":0}],"records":[{"chains":[{"layers":[0,1],"createdAt":"2026-01-02T00:00:00Z"}]},{"digest":"sha256:cc"}]}',
    );
    const stats = cacheStats(
      { config: artifacts['cache-seed'].manifest.config, layers: [] },
      config,
    );
    expect(stats).toMatchObject({
      records: 2,
      recordsWithResults: 1,
      health: 0.5,
      newestResultAt: '2026-01-02T00:00:00Z',
    });
  });

  test('ages and sizes print for people', () => {
    expect([45, 600, 7200 + 1800, 3 * 86400].map(formatAge)).toEqual([
      '45 s',
      '10 min',
      '3 h',
      '3 d',
    ]);
    expect([512, 1_500, 283_966_712].map(formatBytes)).toEqual(['512 B', '1.5 KB', '284 MB']);
  });
});

// --- fixtures for the command -----------------------------------------------------------------

const CONFIG = `version: 1
generator: 0.1.0
aws: { accountId: '123456789012', region: eu-west-1 }
github: { repository: acme/shop, mainBranch: main }
images:
  - { name: web, repository: shop }
  - { name: worker, repository: shop-worker, cacheRepository: shop-worker-cache }
`;
const WEB_CACHE = 'shop-buildcache';
const WORKER_CACHE = 'shop-worker-cache';
const BRANCH = 'feature/login';
/** Ten minutes after the artifacts' newest result. */
const NOW = '2026-11-27T17:58:20Z';

/** A repository with cached-deploy.yml and a Dockerfile, removed after the file's tests. */
function serviceDir(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cached-deploy-doctor-')));
  writeFileSync(join(dir, 'cached-deploy.yml'), CONFIG);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM node:22-slim\n');
  return dir;
}

/** Where each stage sits in a test registry: (cache repository, tag) -> stage. */
interface Placement {
  repository: string;
  tag: string;
  stage: Stage;
}

function branchTag(image: string): string {
  // The workflow's scope for this branch (its '/' is not a tag byte, so the slug is hashed).
  return cacheTag(
    cacheScope({ isMainBranch: false, branch: BRANCH, imageNames: ['web', 'worker'] }),
    image,
  );
}

const runCli = runMain;

const summary = (report: DoctorReport) =>
  report.images.map((image) => ({
    image: image.image,
    status: image.status,
    caches: image.caches.map((cache) =>
      cache.stats
        ? `${cache.tag}: ${cache.stats.recordsWithResults}/${cache.stats.records}`
        : `${cache.tag}: ${cache.status}`,
    ),
    erosion: image.erosion?.status,
  }));

// --- against a real OCI registry --------------------------------------------------------------

async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Debian's docker-registry on 127.0.0.1, storing in a temporary directory. */
async function startDockerRegistry(
  executable: string,
  root: string,
): Promise<{ url: string; process: ChildProcess }> {
  let lastError = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const config = join(root, `registry-${port}.yml`);
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log: { level: error, accesslog: { disabled: true } }',
        `storage: { filesystem: { rootdirectory: ${join(root, 'storage')} } }`,
        `http: { addr: "127.0.0.1:${port}" }`,
        '',
      ].join('\n'),
    );
    const child = spawn(executable, ['serve', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let output = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      try {
        const response = await fetch(`${url}/v2/`);
        if (response.status === 200) return { url, process: child };
      } catch {
        // Not listening yet.
      }
      await sleep(50);
    }
    child.kill('SIGKILL');
    lastError = `exit code ${child.exitCode}: ${output.trim().slice(-500)}`;
  }
  throw new Error(`docker-registry did not start on 127.0.0.1: ${lastError}`);
}

/** The distribution API's monolithic upload: POST an upload session, PUT the bytes with ?digest=. */
async function pushBlob(url: string, repository: string, bytes: Uint8Array): Promise<string> {
  const digest = sha256(bytes);
  const head = await fetch(`${url}/v2/${repository}/blobs/${digest}`, { method: 'HEAD' });
  if (head.status === 200) return digest;
  const session = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  expect(session.status).toBe(202);
  const location = new URL(session.headers.get('location') ?? '', url);
  location.searchParams.set('digest', digest);
  const put = await fetch(location, {
    method: 'PUT',
    headers: { 'content-type': 'application/octet-stream' },
    body: new Uint8Array(bytes),
  });
  if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status} ${await put.text()}`);
  return digest;
}

/**
 * The registry refuses a manifest whose blobs it does not hold, and the data holds only the
 * cacheconfig blobs, not the layers (283 MB). So each pushed manifest is the recorded one with
 * its real cacheconfig as config, and, in place of each layer, a generated blob 1/1024 of the
 * recorded size (the same generated blob for the same recorded layer, across stages).
 */
function standInLayer(layer: Descriptor): Buffer {
  return Buffer.alloc(Math.max(72, Math.ceil(layer.size / 1024)), `${layer.digest}\n`);
}

async function pushArtifact(url: string, repository: string, tag: string, artifact: Artifact) {
  const configDigest = await pushBlob(url, repository, artifact.cacheconfig);
  expect(configDigest).toBe(artifact.manifest.config.digest);
  const layers: Descriptor[] = [];
  for (const layer of artifact.manifest.layers) {
    const bytes = standInLayer(layer);
    layers.push({
      ...layer,
      digest: await pushBlob(url, repository, bytes),
      size: bytes.byteLength,
    });
  }
  const manifest = JSON.stringify({ ...artifact.manifest, layers });
  const put = await fetch(`${url}/v2/${repository}/manifests/${tag}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: manifest,
  });
  if (put.status !== 201)
    throw new Error(`manifest PUT ${tag}: HTTP ${put.status} ${await put.text()}`);
  return { digest: sha256(manifest), bytes: layers.reduce((sum, layer) => sum + layer.size, 0) };
}

describe('doctor against a real OCI registry (docker-registry)', () => {
  let root: string;
  let dir: string;
  let registry: { url: string; process: ChildProcess } | undefined;
  const pushed = new Map<string, { digest: string; bytes: number }>();
  const placements: Placement[] = [
    { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
    { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-fresh-runner-reexport-1' },
    { repository: WEB_CACHE, tag: branchTag('web'), stage: 'cache-fresh-runner-reexport-2' },
    { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
    { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-fresh-runner-reexport-4' },
  ];

  const executable = findSystemTool('docker-registry');
  // Without the registry every test below is skipped, saying what to install (or fails, in CI).
  beforeEach((context) => {
    needSystemTool(context, 'docker-registry');
  });

  beforeAll(async () => {
    if (!executable) return;
    root = realpathSync(mkdtempSync(join(tmpdir(), 'cached-deploy-registry-')));
    dir = serviceDir();
    registry = await startDockerRegistry(executable, root);
    for (const { repository, tag, stage } of placements) {
      pushed.set(tag, await pushArtifact(registry.url, repository, tag, artifacts[stage]));
    }
  });

  afterAll(async () => {
    const child = registry?.process;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (root) rmSync(root, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('reads main, seed and branch of every image and finds the eroded main', async () => {
    const url = registry?.url as string;
    const report = await doctor(dir, { registryUrl: url, branch: BRANCH, now: new Date(NOW) });
    expect(report.registry).toBe(url);
    expect(report.status).toBe('degraded');
    expect(summary(report)).toEqual([
      {
        image: 'web',
        status: 'healthy',
        caches: ['main.web: 9/20', 'seed.web: 12/20', `${branchTag('web')}: 7/20`],
        erosion: 'healthy',
      },
      {
        image: 'worker',
        status: 'degraded',
        caches: ['main.worker: 5/20', 'seed.worker: 12/20', `${branchTag('worker')}: missing`],
        erosion: 'eroded',
      },
    ]);
    const [web, worker] = report.images;
    const main = web?.caches[0];
    expect(main).toMatchObject({
      digest: pushed.get('main.web')?.digest,
      ageSeconds: 600,
      retained: 0.75,
      stats: { layers: 13, records: 20, recordsWithResults: 9, health: 0.45 },
    });
    expect(main?.stats?.bytes).toBe(pushed.get('main.web')?.bytes);
    expect(worker?.findings[0]).toBe(
      "main has eroded: it keeps 5 of the seed's 12 reusable steps (42% < 75%); builds that miss the seed rebuild what main lost",
    );
    expect(report.recommendation).toMatchObject({ action: 'reseed' });
    expect(report.recommendation?.text).toContain(
      'gh workflow run deploy.yml --ref main -f reseed=true',
    );
  });

  test('the CLI prints the table and exits 2 when degraded, 0 when healthy', async () => {
    const url = registry?.url as string;
    const degraded = await runCli(['doctor', dir, '--registry-url', url, '--now', NOW]);
    expect(degraded.stderr).toBe('');
    expect(degraded.code).toBe(2);
    expect(degraded.stdout).toContain(`Registry: ${url}`);
    expect(degraded.stdout).toMatch(
      /^ {2}main {3}main\.worker {2}10 min {2}12 +\S+ [KMG]?B +20 +5 \(42% of seed\) +25%$/m,
    );
    expect(degraded.stdout).toContain('Degraded: some caches have eroded or are missing.');
    expect(degraded.stdout).toContain('Recommendation: reseed worker:');

    // A lower bar: 5/12 = 42% of the seed passes 40%.
    const healthy = await runCli([
      'doctor',
      dir,
      '--registry-url',
      url,
      '--min-retained',
      '0.4',
      '--json',
    ]);
    expect(healthy.code).toBe(0);
    const report = JSON.parse(healthy.stdout) as DoctorReport;
    expect(report).toMatchObject({ formatVersion: 1, status: 'healthy', minRetained: 0.4 });
    expect(report.recommendation).toBeUndefined();
  });

  test('a missing repository reads as missing caches; a non-cache behind a cache tag is an error', async () => {
    const url = registry?.url as string;
    const other = await runCli(['doctor', dir, '--registry-url', `${url}/elsewhere`, '--json']);
    expect(other.code).toBe(2);
    const report = JSON.parse(other.stdout) as DoctorReport;
    expect(report.images.map((image) => image.erosion?.status)).toEqual([
      'main-missing',
      'main-missing',
    ]);
    // The seed is missing too: main cannot "rely on the seed", and the seed's cold build is due.
    expect(report.images[0]?.findings).toEqual([
      'no main cache (main.web): builds of the main branch start cold until one exports it',
      'no seed cache (seed.web): nothing guards main against erosion, and its health cannot be measured; reseed',
    ]);
    expect(report.recommendation?.action).toBe('reseed');
    expect(report.recommendation?.text).toMatch(/^reseed web, worker: /);

    // An application image (OCI config, not a cacheconfig) pushed to the web cache's seed tag.
    const configBlob = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const configDigest = await pushBlob(url, WEB_CACHE, configBlob);
    const appManifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: configBlob.byteLength,
      },
      layers: [],
    });
    const put = await fetch(`${url}/v2/${WEB_CACHE}/manifests/seed.web`, {
      method: 'PUT',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      body: appManifest,
    });
    expect(put.status).toBe(201);
    try {
      const broken = await runCli(['doctor', dir, '--registry-url', url]);
      expect(broken.code).toBe(1);
      expect(broken.stdout).toContain(
        'cannot read seed.web: shop-buildcache:seed.web: config.mediaType is "application/vnd.oci.image.config.v1+json", not application/vnd.buildkit.cacheconfig.v0: not a BuildKit cache',
      );
    } finally {
      pushed.set(
        'seed.web',
        await pushArtifact(url, WEB_CACHE, 'seed.web', artifacts['cache-seed']),
      );
    }
  });

  test('a registry that wants an anonymous bearer token and redirects blobs to storage', async () => {
    // In front of docker-registry: token auth as ghcr.io or Docker Hub ask for it, and blob
    // reads redirected to another origin, as registries backed by S3 or a CDN answer them.
    const upstream = registry?.url as string;
    const seen: string[] = [];
    const front = createServer((req, res) => {
      const path = req.url ?? '/';
      seen.push(`${req.method} ${path.split('?')[0]} ${req.headers.authorization ?? '-'}`);
      if (path.startsWith('/token?')) {
        const query = new URL(path, 'http://x').searchParams;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ token: `anon:${query.get('scope')}` }));
        return;
      }
      const repository = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(path)?.[1] ?? '';
      if (req.headers.authorization !== `Bearer anon:repository:${repository}:pull`) {
        res.writeHead(401, {
          'www-authenticate': `Bearer realm="${frontUrl}/token",service="front",scope="repository:${repository}:pull"`,
        });
        res.end();
        return;
      }
      if (path.includes('/blobs/')) {
        res.writeHead(307, { location: `${upstream}${path}` });
        res.end();
        return;
      }
      void fetch(`${upstream}${path}`, { headers: { accept: req.headers.accept ?? '' } }).then(
        async (response) => {
          const headers: Record<string, string> = {};
          response.headers.forEach((value, key) => {
            headers[key] = value;
          });
          res.writeHead(response.status, headers);
          res.end(Buffer.from(await response.arrayBuffer()));
        },
      );
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    try {
      const report = await doctor(dir, { registryUrl: frontUrl, now: new Date(NOW) });
      expect(summary(report).map((image) => image.caches)).toEqual([
        ['main.web: 9/20', 'seed.web: 12/20'],
        ['main.worker: 5/20', 'seed.worker: 12/20'],
      ]);
      // One token per repository, fetched anonymously after the first 401s (main and seed are
      // read at once), then reused for every read.
      expect(seen.filter((line) => line.startsWith('GET /token'))).toEqual([
        'GET /token -',
        'GET /token -',
      ]);
      expect(seen.filter((line) => line.endsWith(' -') && line.includes('/v2/'))).toHaveLength(4);
      expect(seen.filter((line) => line.includes('/blobs/'))).toHaveLength(4);
    } finally {
      front.closeAllConnections();
      await new Promise((resolve) => front.close(resolve));
    }
  });

  test('an unreachable registry is an error naming it', async () => {
    const port = await freePort();
    const result = await runCli(['doctor', dir, '--registry-url', `http://127.0.0.1:${port}`]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(
      `cannot read main.web: cannot reach http://127.0.0.1:${port}: ECONNREFUSED`,
    );
  });
});

// --- against the ECR test server --------------------------------------------------------------

describe('doctor against the ECR test server', () => {
  let server: Awaited<ReturnType<typeof startEcrServer>>;
  let dir: string;

  beforeAll(async () => {
    server = await startEcrServer({ registryId: '123456789012', region: 'eu-west-1' });
    dir = serviceDir();
  });
  afterAll(async () => {
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Stores the recorded manifests (verbatim) and their cacheconfig blobs. */
  function seedEcr(placements: Placement[]): void {
    server.reset();
    server.state.createRepository(WEB_CACHE);
    server.state.createRepository(WORKER_CACHE);
    for (const { repository, tag, stage } of placements) {
      const artifact = artifacts[stage];
      const manifest = JSON.stringify(artifact.manifest);
      const digest = sha256(manifest);
      if (server.state.image(repository, digest)) {
        server.state.tagImage(repository, tag, digest);
      } else {
        server.state.putImage(repository, { manifest, tags: [tag] });
      }
      server.state.putBlob(repository, artifact.cacheconfig);
    }
  }

  const ecr = () => ({ ecrClientConfig: server.clientConfig(), now: new Date(NOW) });

  test('healthy right after a reseed: main is the seed; one fresh-runner re-export still passes', async () => {
    seedEcr([
      { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-fresh-runner-reexport-1' },
    ]);
    const report = await doctor(dir, ecr());
    expect(report.registry).toBe('ECR 123456789012 (eu-west-1)');
    expect(report.status).toBe('healthy');
    expect(summary(report)).toEqual([
      {
        image: 'web',
        status: 'healthy',
        caches: ['main.web: 12/20', 'seed.web: 12/20'],
        erosion: 'healthy',
      },
      {
        image: 'worker',
        status: 'healthy',
        caches: ['main.worker: 9/20', 'seed.worker: 12/20'],
        erosion: 'healthy',
      },
    ]);
    // The recorded artifacts, as BuildKit pushed them: real sizes.
    expect(report.images[0]?.caches[0]?.stats?.bytes).toBe(283_966_712);
    expect(server.callCount('BatchGetImage')).toBe(4);
    expect(server.callCount('GetDownloadUrlForLayer')).toBe(4);
    expect(server.unexpectedErrors).toEqual([]);
  });

  test('every eroded stage against the seed, through the CLI and the SDK endpoint variable', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_ECR', server.endpoint);
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    try {
      const results: [Stage, number, string | undefined][] = [];
      for (const stage of STAGES.slice(1)) {
        seedEcr([
          { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
          { repository: WEB_CACHE, tag: 'main.web', stage },
          { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
          { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
        ]);
        const { code, stdout } = await runCli(['doctor', dir, '--json', '--now', NOW]);
        const report = JSON.parse(stdout) as DoctorReport;
        results.push([stage, code, report.images[0]?.erosion?.status]);
      }
      expect(results).toEqual([
        ['cache-fresh-runner-reexport-1', 0, 'healthy'],
        ['cache-fresh-runner-reexport-2', 2, 'eroded'],
        ['cache-fresh-runner-reexport-3', 2, 'eroded'],
        ['cache-fresh-runner-reexport-4', 2, 'eroded'],
        ['cache-fresh-runner-reexport-5', 2, 'eroded'],
      ]);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  test('a missing seed is degraded; a missing repository or a corrupt blob is an error', async () => {
    seedEcr([
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
    ]);
    const noSeed = await doctor(dir, ecr());
    expect(summary(noSeed).map((image) => image.erosion)).toEqual(['seed-missing', 'healthy']);
    expect(noSeed.status).toBe('degraded');
    expect(noSeed.recommendation?.text).toMatch(/^reseed web: run the seed job/);

    // Only main missing, the seed in place: build main (it imports the seed meanwhile).
    seedEcr([
      { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
    ]);
    const noMain = await doctor(dir, ecr());
    expect(summary(noMain).map((image) => image.erosion)).toEqual(['main-missing', 'healthy']);
    expect(noMain.images[0]?.findings).toEqual([
      'no main cache (main.web): builds of the main branch rely on the seed alone until one exports it',
    ]);
    expect(noMain.recommendation?.action).toBe('build-main');
    seedEcr([
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
    ]);

    // The worker's cacheconfig replaced by other bytes under the same digest.
    const digest = artifacts['cache-seed'].manifest.config.digest;
    server.state.putBlob(WORKER_CACHE, Buffer.alloc(4848, 32), digest);
    server.state.deleteRepository(WEB_CACHE);
    const broken = await doctor(dir, ecr());
    expect(broken.status).toBe('error');
    expect(broken.images[0]?.findings[0]).toMatch(
      /^cannot read main\.web: ECR BatchGetImage on shop-buildcache: RepositoryNotFoundException: /,
    );
    expect(broken.images[1]?.findings[0]).toBe(
      `cannot read main.worker: blob ${digest} of shop-worker-cache: content does not match its digest ${digest}`,
    );

    // A manifest whose bytes do not hash to the digest ECR names: an error, not a report on it.
    server.reset();
    server.state.createRepository(WEB_CACHE);
    server.state.createRepository(WORKER_CACHE);
    const seedManifest = JSON.stringify(artifacts['cache-seed'].manifest);
    const forged = sha256('another manifest');
    for (const tag of ['main.web', 'seed.web']) {
      server.state.putImage(WEB_CACHE, {
        manifest: seedManifest,
        tags: [tag],
        ...(tag === 'main.web' ? { digest: forged } : {}),
      });
    }
    server.state.putBlob(WEB_CACHE, artifacts['cache-seed'].cacheconfig);
    const corrupt = await doctor(dir, ecr());
    expect(corrupt.images[0]?.status).toBe('error');
    expect(corrupt.images[0]?.findings[0]).toBe(
      `cannot read main.web: manifest shop-buildcache:main.web: content does not match its digest ${forged}`,
    );
  });

  test('the presigned layer URL serves the blob and only as issued', async () => {
    seedEcr([{ repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' }]);
    const { ECRClient, GetDownloadUrlForLayerCommand } = await import('@aws-sdk/client-ecr');
    const client = new ECRClient(server.clientConfig());
    try {
      const layerDigest = artifacts['cache-seed'].manifest.config.digest;
      const output = await client.send(
        new GetDownloadUrlForLayerCommand({ repositoryName: WEB_CACHE, layerDigest }),
      );
      expect(output.layerDigest).toBe(layerDigest);
      const url = new URL(output.downloadUrl as string);
      expect(url.searchParams.get('X-Amz-Expires')).toBe('3600');
      const ok = await fetch(url);
      expect(ok.status).toBe(200);
      expect(Buffer.from(await ok.arrayBuffer())).toEqual(artifacts['cache-seed'].cacheconfig);

      url.searchParams.set('X-Amz-Signature', '0'.repeat(64));
      const forged = await fetch(url);
      expect(forged.status).toBe(403);
      expect(await forged.text()).toContain('<Code>AccessDenied</Code>');

      await expect(
        client.send(
          new GetDownloadUrlForLayerCommand({
            repositoryName: WEB_CACHE,
            layerDigest: sha256('nope'),
          }),
        ),
      ).rejects.toMatchObject({ name: 'LayersNotFoundException' });
    } finally {
      client.destroy();
    }
  });
});

// --- reseed through workflow_dispatch ---------------------------------------------------------

describe('--reseed', () => {
  let ecrServer: Awaited<ReturnType<typeof startEcrServer>>;
  let github: Server;
  let githubUrl: string;
  let dir: string;
  const requests: { method?: string; url?: string; headers: IncomingHttpHeaders; body: string }[] =
    [];
  let answer = { status: 204, body: '' };

  beforeAll(async () => {
    ecrServer = await startEcrServer({ registryId: '123456789012', region: 'eu-west-1' });
    dir = serviceDir();
    // A stand-in for api.github.com that records what it is sent.
    github = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        requests.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(answer.status, { 'content-type': 'application/json' });
        res.end(answer.body);
      });
    });
    await new Promise<void>((resolve) => github.listen(0, '127.0.0.1', resolve));
    githubUrl = `http://127.0.0.1:${(github.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await ecrServer?.close();
    github?.closeAllConnections();
    await new Promise((resolve) => github?.close(resolve));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function place(mainStage: Stage): void {
    ecrServer.reset();
    for (const [repository, image] of [
      [WEB_CACHE, 'web'],
      [WORKER_CACHE, 'worker'],
    ] as const) {
      ecrServer.state.createRepository(repository);
      for (const [tag, stage] of [
        [`seed.${image}`, 'cache-seed'],
        [`main.${image}`, mainStage],
      ] as const) {
        const manifest = JSON.stringify(artifacts[stage].manifest);
        if (ecrServer.state.image(repository, sha256(manifest))) {
          ecrServer.state.tagImage(repository, tag, sha256(manifest));
        } else {
          ecrServer.state.putImage(repository, { manifest, tags: [tag] });
        }
        ecrServer.state.putBlob(repository, artifacts[stage].cacheconfig);
      }
    }
  }

  const reseedOptions = (token?: string) => ({
    ecrClientConfig: ecrServer.clientConfig(),
    reseed: true,
    githubApiUrl: `${githubUrl}/api/v3/`,
    ...(token ? { githubToken: token } : {}),
  });

  test('an eroded main triggers one workflow_dispatch of the deploy workflow on main', async () => {
    place('cache-fresh-runner-reexport-3');
    requests.length = 0;
    answer = { status: 204, body: '' };
    const report = await doctor(dir, reseedOptions('ghs_test-token'));
    expect(report.status).toBe('degraded');
    expect(report.reseed).toEqual({
      status: 'triggered',
      url: `${githubUrl}/api/v3/repos/acme/shop/actions/workflows/deploy.yml/dispatches`,
    });
    expect(requests).toHaveLength(1);
    const [request] = requests;
    expect(request?.method).toBe('POST');
    expect(request?.url).toBe('/api/v3/repos/acme/shop/actions/workflows/deploy.yml/dispatches');
    expect(request?.headers.authorization).toBe('Bearer ghs_test-token');
    expect(request?.headers.accept).toBe('application/vnd.github+json');
    expect(request?.headers['x-github-api-version']).toBe('2022-11-28');
    expect(JSON.parse(request?.body ?? '')).toEqual({ ref: 'main', inputs: { reseed: 'true' } });
  });

  test('a healthy cache triggers nothing', async () => {
    place('cache-seed');
    requests.length = 0;
    const report = await doctor(dir, reseedOptions('ghs_test-token'));
    expect(report.status).toBe('healthy');
    expect(report.reseed).toEqual({ status: 'not-needed' });
    expect(requests).toEqual([]);
  });

  test('the CLI takes GITHUB_TOKEN; a refused dispatch exits 1 with GitHub’s reason', async () => {
    place('cache-fresh-runner-reexport-5');
    requests.length = 0;
    answer = {
      status: 422,
      body: JSON.stringify({ message: 'Unexpected inputs provided: ["reseed"]' }),
    };
    vi.stubEnv('AWS_ENDPOINT_URL_ECR', ecrServer.endpoint);
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
    vi.stubEnv('GITHUB_TOKEN', 'ghs_from-env');
    try {
      const result = await runCli(['doctor', dir, '--reseed', '--github-api-url', githubUrl]);
      expect(result.code).toBe(1);
      expect(requests[0]?.headers.authorization).toBe('Bearer ghs_from-env');
      expect(result.stdout).toContain(
        'Reseed failed: reseed: GitHub refused the dispatch of deploy.yml in acme/shop: HTTP 422 "Unexpected inputs provided: [\\"reseed\\"]" (the workflow does not accept the "reseed" input on that ref: regenerate and push the workflow first)',
      );

      vi.stubEnv('GITHUB_TOKEN', '');
      const noToken = await runCli(['doctor', dir, '--reseed', '--github-api-url', githubUrl]);
      expect(noToken.code).toBe(1);
      expect(noToken.stderr).toBe(
        'create-cached-deploy: --reseed needs a GitHub token with "actions: write": pass --github-token or set GITHUB_TOKEN\n',
      );
      expect(requests).toHaveLength(1);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
