/**
 * `doctor` against registries and APIs that misbehave on purpose (test/support/hostile-registry.ts
 * on loopback, the ECR test server with faults): every read is capped in size and time, redirects
 * are bounded, a token realm on another host is refused and sent nothing, digests of any
 * algorithm but sha256 and sha512 are refused, and text from the server reaches the terminal only
 * escaped and cut.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { type DoctorReport, doctor } from '../src/doctor/doctor.js';
import { dispatchReseed } from '../src/doctor/github.js';
import { ociRegistry, verifyDigest } from '../src/doctor/registry-client.js';
import { startEcrServer } from './support/ecr-server.js';
import {
  type Artifact,
  type HostileRegistry,
  startHostileRegistry,
  startRecorder,
} from './support/hostile-registry.js';
import { runMain } from './support/run-main.js';
import { PROJECT_ROOT } from './support/temp-repo.js';

const DATA_DIR = join(PROJECT_ROOT, 'test', 'fixtures', 'buildkit');
const NOW = new Date('2026-11-27T17:58:20Z');
const MiB = 1024 * 1024;
const ESC = '\u001b';

const hex = (algorithm: string, bytes: Uint8Array | string) =>
  createHash(algorithm).update(bytes).digest('hex');

function seedArtifact(): Artifact {
  const recorded = JSON.parse(readFileSync(join(DATA_DIR, 'cache-seed.manifest.json'), 'utf8')) as {
    manifest: unknown;
  };
  return {
    manifest: JSON.stringify(recorded.manifest),
    cacheconfig: readFileSync(join(DATA_DIR, 'cache-seed.cacheconfig.json')),
  };
}

let dir: string;
let artifact: Artifact;
let registry: HostileRegistry;

beforeAll(async () => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'cached-deploy-hostile-')));
  writeFileSync(
    join(dir, 'cached-deploy.yml'),
    `version: 1
generator: 0.1.0
aws: { accountId: '123456789012', region: eu-west-1 }
github: { repository: acme/shop, mainBranch: main }
images:
  - { name: web, repository: shop }
`,
  );
  writeFileSync(join(dir, 'Dockerfile'), 'FROM node:22-slim\n');
  artifact = seedArtifact();
  registry = await startHostileRegistry(artifact);
});

afterAll(async () => {
  await registry?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  registry.behaviour = { kind: 'honest' };
  registry.requests.length = 0;
});

/** The doctor's first finding: what went wrong reading main.web. */
const firstFinding = (report: DoctorReport) => report.images[0]?.findings[0] ?? '';

/** Runs `work`, sampling this process's RSS; returns its result, peak growth and wall time. */
async function measured<T>(work: () => Promise<T>) {
  globalThis.gc?.();
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const started = performance.now();
  try {
    const result = await work();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { result, grewBy: peak - before, ms: performance.now() - started };
  } finally {
    clearInterval(sampler);
  }
}

const read = (options: Parameters<typeof doctor>[1] = {}) =>
  doctor(dir, { registryUrl: registry.url, now: NOW, ...options });

describe('the honest registry', () => {
  test('reads main and seed: the measuring stick for the hostile cases', async () => {
    const report = await read();
    expect(report.status).toBe('healthy');
    expect(report.images[0]?.caches.map((cache) => cache.stats?.recordsWithResults)).toEqual([
      12, 12,
    ]);
  });
});

describe('size caps', () => {
  test('a 256 MiB manifest is refused past 4 MiB, in bounded memory and time', async () => {
    registry.behaviour = { kind: 'huge-manifest', bytes: 256 * MiB };
    const { result, grewBy, ms } = await measured(() => read());
    expect(result.status).toBe('error');
    expect(firstFinding(result)).toBe(
      `cannot read main.web: ${registry.url}/v2/shop-buildcache/manifests/main.web: the answer is larger than 4 MiB`,
    );
    expect(grewBy).toBeLessThan(64 * MiB);
    expect(ms).toBeLessThan(10_000);
  });

  test('a manifest that declares 3 GB is refused before its body is read', async () => {
    registry.behaviour = { kind: 'huge-manifest', bytes: 3 * 1024 * MiB, declareLength: true };
    const { result, ms } = await measured(() => read());
    expect(firstFinding(result)).toMatch(/manifests\/main\.web: the answer is larger than 4 MiB$/);
    expect(ms).toBeLessThan(5_000);
  });

  test('a 256 MiB cacheconfig blob is refused past 32 MiB, in bounded memory', async () => {
    registry.behaviour = { kind: 'huge-blob', bytes: 256 * MiB };
    const { result, grewBy } = await measured(() => read());
    expect(firstFinding(result)).toMatch(
      /^cannot read main\.web: http:\/\/127\.0\.0\.1:\d+\/v2\/shop-buildcache\/blobs\/sha256:[0-9a-f]{64}: the answer is larger than 32 MiB$/,
    );
    expect(grewBy).toBeLessThan(128 * MiB);
  });
});

describe('deadlines', () => {
  test('a server dripping a byte every 200 ms fails at the per-request deadline', async () => {
    registry.behaviour = { kind: 'drip', everyMs: 200 };
    const { result, ms } = await measured(() => read({ requestTimeoutMs: 500 }));
    expect(firstFinding(result)).toBe(
      `cannot read main.web: ${registry.url}/v2/shop-buildcache/manifests/main.web: no complete answer within 0.5 s`,
    );
    // main and seed are read at once: one deadline, not two in a row.
    expect(ms).toBeLessThan(3_000);
  });

  test('the CLI: --timeout bounds the whole run; a silent server is one line per cache', async () => {
    registry.behaviour = { kind: 'silent' };
    const started = performance.now();
    const result = await runMain(['doctor', dir, '--registry-url', registry.url, '--timeout', '1']);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    const findings = result.stdout.split('\n').filter((line) => line.startsWith('  - '));
    expect(findings).toEqual([
      `  - cannot read main.web: ${registry.url}/v2/shop-buildcache/manifests/main.web: out of time (1 s for the whole run)`,
      `  - cannot read seed.web: ${registry.url}/v2/shop-buildcache/manifests/seed.web: out of time (1 s for the whole run)`,
    ]);
  });

  test('--timeout must be a positive number of seconds', async () => {
    for (const value of ['0', '-1', 'soon', '']) {
      const result = await runMain([
        'doctor',
        dir,
        '--registry-url',
        registry.url,
        '--timeout',
        value,
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `create-cached-deploy: --timeout: ${JSON.stringify(value)} is not a positive number of seconds\n`,
      );
    }
    expect(registry.requests).toEqual([]);
  });

  test('an ECR call that does not answer in time is an error, not a wait', async () => {
    const server = await startEcrServer({ registryId: '123456789012', region: 'eu-west-1' });
    try {
      server.state.createRepository('shop-buildcache');
      server.faults.latency(5_000, 'BatchGetImage');
      const started = performance.now();
      const report = await doctor(dir, {
        ecrClientConfig: server.clientConfig(),
        now: NOW,
        timeoutMs: 800,
      });
      expect(performance.now() - started).toBeLessThan(4_000);
      expect(firstFinding(report)).toBe(
        'cannot read main.web: ECR BatchGetImage on shop-buildcache: out of time (0.8 s for the whole run)',
      );
    } finally {
      await server.close();
    }
  });

  test('ECR: a manifest over 4 MiB or a cacheconfig over 32 MiB is refused', async () => {
    const server = await startEcrServer({ registryId: '123456789012', region: 'eu-west-1' });
    try {
      server.state.createRepository('shop-buildcache');
      const doc = JSON.parse(artifact.manifest) as Record<string, unknown>;
      const bloated = JSON.stringify({ ...doc, annotations: { pad: 'a'.repeat(5 * MiB) } });
      server.state.putImage('shop-buildcache', { manifest: bloated, tags: ['main.web'] });
      const big = Buffer.alloc(33 * MiB, 32);
      const bigDigest = server.state.putBlob('shop-buildcache', big);
      const withBigConfig = JSON.stringify({
        ...doc,
        config: { ...(doc.config as object), digest: bigDigest, size: big.byteLength },
      });
      server.state.putImage('shop-buildcache', { manifest: withBigConfig, tags: ['seed.web'] });
      const report = await doctor(dir, { ecrClientConfig: server.clientConfig(), now: NOW });
      expect(report.images[0]?.findings).toEqual([
        'cannot read main.web: manifest shop-buildcache:main.web: larger than 4 MiB',
        `cannot read seed.web: blob ${bigDigest} of shop-buildcache: the answer is larger than 32 MiB`,
      ]);
    } finally {
      await server.close();
    }
  });
});

describe('redirects', () => {
  test('a redirect loop is an error', async () => {
    registry.behaviour = { kind: 'redirect-loop' };
    const report = await read();
    expect(firstFinding(report)).toBe(
      `cannot read main.web: ${registry.url}/v2/shop-buildcache/manifests/main.web: redirect loop ("${registry.url}/hop/1/v2/shop-buildcache/manifests/main.web")`,
    );
    // Two hops of the loop per read, then it stopped.
    expect(registry.requests.filter((r) => r.path.startsWith('/hop/')).length).toBeLessThan(10);
  });

  test('a few redirects are followed; more than 5 are an error', async () => {
    registry.behaviour = { kind: 'redirects', count: 3 };
    expect((await read()).status).toBe('healthy');
    registry.behaviour = { kind: 'redirects', count: 20 };
    const report = await read();
    expect(firstFinding(report)).toBe(
      `cannot read main.web: ${registry.url}/v2/shop-buildcache/manifests/main.web: more than 5 redirects; not followed`,
    );
  });
});

describe('token realms', () => {
  test('a realm on another host is refused, named, and sent nothing', async () => {
    const foreign = await startRecorder('127.0.0.2');
    try {
      registry.behaviour = { kind: 'token', realm: () => `${foreign.url}/token` };
      const report = await read();
      expect(report.status).toBe('error');
      expect(firstFinding(report)).toBe(
        `cannot read main.web: ${registry.url} asks for a token from ${foreign.url.slice(7)}, another host: doctor only takes tokens from the registry's own host, over https`,
      );
      expect(foreign.requests).toEqual([]);
      expect(registry.requests.every((r) => r.authorization === undefined)).toBe(true);
    } finally {
      await foreign.close();
    }
  });

  test('an https realm elsewhere is refused too', async () => {
    registry.behaviour = { kind: 'token', realm: () => 'https://auth.evil.example/token' };
    const report = await read();
    expect(firstFinding(report)).toBe(
      `cannot read main.web: ${registry.url} asks for a token from auth.evil.example, another host: doctor only takes tokens from the registry's own host, over https`,
    );
  });

  test("http realms are followed only on loopback; https on the registry's host", async () => {
    const calls: string[] = [];
    const fake: typeof fetch = async (input) => {
      calls.push(String(input));
      return new Response('{}', {
        status: 401,
        headers: { 'www-authenticate': 'Bearer realm="http://registry.example/token"' },
      });
    };
    const client = ociRegistry('https://registry.example', { fetch: fake });
    await expect(client.getManifest('app', 'main.web')).rejects.toThrow(
      "https://registry.example asks for a token from registry.example over http: doctor only takes tokens from the registry's own host, over https",
    );
    expect(calls).toEqual(['https://registry.example/v2/app/manifests/main.web']);
  });

  test('a token from its own host is used there, and never sent to storage elsewhere', async () => {
    const storage = await startRecorder('127.0.0.2', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(artifact.cacheconfig);
    });
    try {
      registry.behaviour = {
        kind: 'token',
        realm: (url) => `${url}/token`,
        blobsAt: storage.url,
      };
      const report = await read();
      expect(report.status).toBe('healthy');
      expect(registry.requests.filter((r) => r.path === '/token')).toHaveLength(1);
      expect(
        registry.requests.filter((r) => r.authorization === 'Bearer hostile-test-token').length,
      ).toBeGreaterThan(0);
      expect(storage.requests.length).toBeGreaterThan(0);
      expect(storage.requests.map((r) => r.authorization)).toEqual(
        storage.requests.map(() => undefined),
      );
    } finally {
      await storage.close();
    }
  });
});

describe('digests', () => {
  const manifestDigest = () => hex('sha256', artifact.manifest);

  test.each([
    ['sha384', () => `sha384:${hex('sha384', artifact.manifest)}`, /algorithm "sha384"/],
    ['md5', () => `md5:${hex('md5', artifact.manifest)}`, /algorithm "md5"/],
    ['uppercase hex', () => `sha256:${manifestDigest().toUpperCase()}`, /not a valid sha256/],
    ['short hex', () => `sha256:${manifestDigest().slice(0, 63)}`, /not a valid sha256/],
  ])('a manifest digest in %s is refused', async (_name, digest, message) => {
    registry.behaviour = { kind: 'manifest-digest', digest: digest() };
    const report = await read();
    expect(report.status).toBe('error');
    expect(firstFinding(report)).toMatch(message);
  });

  test('a sha512 manifest digest is verified: right passes, wrong fails', async () => {
    registry.behaviour = {
      kind: 'manifest-digest',
      digest: `sha512:${hex('sha512', artifact.manifest)}`,
    };
    expect((await read()).status).toBe('healthy');
    const wrong = `sha512:${hex('sha512', 'another manifest')}`;
    registry.behaviour = { kind: 'manifest-digest', digest: wrong };
    expect(firstFinding(await read())).toBe(
      `cannot read main.web: ${registry.url}/v2/shop-buildcache/manifests/main.web: content does not match its digest ${wrong}`,
    );
  });

  test('a cacheconfig named by sha512 is verified; by sha384 it is refused before any read', async () => {
    registry.behaviour = {
      kind: 'config-digest',
      digest: `sha512:${hex('sha512', artifact.cacheconfig)}`,
    };
    expect((await read()).status).toBe('healthy');

    registry.behaviour = {
      kind: 'config-digest',
      digest: `sha384:${hex('sha384', artifact.cacheconfig)}`,
    };
    registry.requests.length = 0;
    const report = await read();
    expect(firstFinding(report)).toMatch(
      /^cannot read main\.web: .*digest algorithm "sha384" is not supported \(sha256, sha512\)/,
    );
    expect(registry.requests.filter((r) => r.path.includes('/blobs/'))).toEqual([]);
  });

  test('verifyDigest: every algorithm it names is checked, anything else refused', () => {
    const bytes = Buffer.from('content');
    expect(() => verifyDigest(bytes, `sha256:${hex('sha256', bytes)}`, 'x')).not.toThrow();
    expect(() => verifyDigest(bytes, `sha512:${hex('sha512', bytes)}`, 'x')).not.toThrow();
    for (const digest of [
      `sha256:${hex('sha256', 'other')}`,
      `sha512:${hex('sha512', 'other')}`,
      `sha384:${hex('sha384', bytes)}`,
      `md5:${hex('md5', bytes)}`,
      `sha256:${hex('sha256', bytes).toUpperCase()}`,
      `sha256:${hex('sha256', bytes)}0`,
      'sha256',
      '',
      `SHA256:${hex('sha256', bytes)}`,
    ]) {
      expect(() => verifyDigest(bytes, digest, 'x'), digest).toThrow();
    }
  });
});

describe('text from the server', () => {
  test('a registry error with terminal escapes is escaped and cut in the report', async () => {
    const evil = await startRecorder('127.0.0.1', (_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          errors: [
            {
              code: 'BROKEN',
              message: `${ESC}]0;pwned${'\u0007'}${ESC}[2J\u202e${'x'.repeat(5000)}`,
            },
          ],
        }),
      );
    });
    try {
      const result = await runMain(['doctor', dir, '--registry-url', evil.url]);
      expect(result.code).toBe(1);
      expect(result.stdout).not.toContain(ESC);
      expect(result.stdout).not.toContain('\u0007');
      expect(result.stdout).not.toContain('\u202e');
      const finding = result.stdout.split('\n').find((line) => line.includes('main.web: HTTP'));
      expect(finding).toContain('HTTP 500 "BROKEN: \\u001b]0;pwned\\u0007\\u001b[2J\\u{202e}xxx');
      expect(finding?.length).toBeLessThan(600);
    } finally {
      await evil.close();
    }
  });

  test("GitHub's refusal reason is escaped and cut too", async () => {
    const github = createServer((_req, res) => {
      res.writeHead(422, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `${ESC}[31mred\u009b2J${'y'.repeat(5000)}` }));
    });
    await new Promise<void>((resolve) => github.listen(0, '127.0.0.1', resolve));
    try {
      const apiUrl = `http://127.0.0.1:${(github.address() as AddressInfo).port}`;
      const error = await dispatchReseed({
        apiUrl,
        repository: 'acme/shop',
        workflowFile: 'deploy.yml',
        ref: 'main',
        token: 'ghs_test',
      }).catch((caught: Error) => caught);
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message).not.toContain(ESC);
      expect(message).not.toContain('\u009b');
      expect(message).toContain('HTTP 422 "\\u001b[31mred\\u{9b}2Jyyy');
      expect(message.length).toBeLessThan(600);
    } finally {
      github.closeAllConnections();
      await new Promise((resolve) => github.close(resolve));
    }
  });
});
