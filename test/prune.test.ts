/**
 * The pruner (templates/prune-ecr-cache.mjs) against the ECR test server, through the real
 * @aws-sdk/client-ecr: safety invariants over random repositories and fault schedules, dry runs,
 * idempotence, a concurrent build, failures[] handling, the shipped script and the CLI as child
 * processes, and usage errors.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ECRClient, PutImageCommand } from '@aws-sdk/client-ecr';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config/resolve.js';
import { CACHE_CONFIG_MEDIA_TYPE } from '../src/media-types.js';
import { PRUNE_SCRIPT_TEMPLATE, renderPruneScript } from '../src/render/prune-script.js';
import { printable } from '../src/text.js';
import {
  buildCacheManifest,
  buildImageManifest,
  buildIndexManifest,
  type CallRecord,
  type EcrTestServer,
  type FaultRule,
  type ImageRecord,
  MediaTypes,
  type Registry,
  startEcrServer,
} from './support/ecr-server.js';

// --- the pruner module, typed for the tests (it is plain JS) ---

interface Entry {
  repository?: string;
  digest?: string;
  tag?: string;
  why?: string;
  bytes?: number;
  reason?: string;
  error?: string;
}
interface Summary {
  dryRun: boolean;
  deleted: Entry[];
  skipped: Entry[];
  errors: Entry[];
  bytesReclaimed: number;
}
interface Recorded {
  formatVersion: number;
  recordedAt?: string;
  repositories: Record<string, Record<string, string | null>>;
}
type Call = (input: Record<string, unknown>) => Promise<Record<string, unknown>>;
interface EcrPort {
  describeImages: Call;
  batchGetImage: Call;
  batchDeleteImage: Call;
}
interface Target {
  repository: string;
  tags: string[];
}
interface Pruner {
  CACHE_CONFIG_MEDIA_TYPE: string;
  DEFAULT_GRACE_HOURS: number;
  printable(text: string): string;
  sdkPort(options?: Record<string, unknown>): Promise<EcrPort>;
  recordDigests(ecr: EcrPort, targets: Target[]): Promise<Recorded>;
  prune(
    ecr: EcrPort,
    options: {
      recorded?: Recorded;
      repositories?: string[];
      sweep?: boolean;
      graceHours?: number;
      dryRun?: boolean;
      now?: number;
      maxPages?: number;
    },
  ): Promise<Summary>;
  deleteBranchTags(
    ecr: EcrPort,
    targets: Target[],
    options?: { dryRun?: boolean },
  ): Promise<Summary>;
  listImages(
    ecr: EcrPort,
    repositoryName: string,
    options?: { maxPages?: number },
  ): Promise<Record<string, unknown>[]>;
  selectDeletions(input: {
    images: Record<string, unknown>[];
    children: Set<string>;
    superseded: { digest: string; tag?: string }[];
    sweep: boolean;
    graceMs: number;
    now: number;
  }): { remove: Entry[]; skipped: Entry[] };
  main(
    argv: string[],
    io: { ecr?: EcrPort; stdout?: (text: string) => void; stderr?: (text: string) => void },
  ): Promise<number>;
}

const pruner = (await import(PRUNE_SCRIPT_TEMPLATE.href)) as Pruner;

// --- constants and the server ---

const ROOT = new URL('..', import.meta.url).pathname;
const REPO = 'cache';
const CACHE = MediaTypes.buildkitCacheConfig;
const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
// With per-platform cache tags of an image built natively per platform (docs/multi-platform.md).
const TAGS = [
  'main.api',
  'main.web',
  'br-x.api',
  'br-y.api',
  'pr-7.web',
  'latest',
  'main.api.linux-arm64',
  'seed.api.linux-amd64',
  'br-x.api.linux-arm64',
] as const;
/** A whole second, so pushedAt survives the epoch-seconds round trip exactly. */
const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let server: EcrTestServer;

beforeAll(async () => {
  server = await startEcrServer();
});

afterAll(async () => {
  await server.close();
});

beforeEach(() => {
  server.reset();
  server.state.createRepository(REPO);
});

afterEach(() => {
  expect(server.unexpectedErrors).toEqual([]);
  checkCallLimits(server.calls);
});

/**
 * A retry strategy like the SDK's standard one (retries throttling and transient errors, up to
 * maxAttempts) but with a 1 ms backoff and no retry quota, so fault schedules cost milliseconds.
 */
function fastRetry(maxAttempts: number) {
  const token = (count: number) => ({ getRetryCount: () => count, getRetryDelay: () => 1 });
  return {
    acquireInitialRetryToken: async () => token(0),
    refreshRetryTokenForRetry: async (
      previous: { getRetryCount(): number },
      info: { errorType: string },
    ) => {
      const count = previous.getRetryCount() + 1;
      const retryable = info.errorType === 'THROTTLING' || info.errorType === 'TRANSIENT';
      if (!retryable || count >= maxAttempts) throw new Error('no retry');
      return token(count);
    },
    recordSuccess: () => {},
  };
}

const ports = new Map<number, Promise<EcrPort>>();
/** The real SDK port, pointed at the server, with `maxAttempts` fast attempts. */
function port(maxAttempts = 4): Promise<EcrPort> {
  let p = ports.get(maxAttempts);
  if (!p) {
    p = pruner.sdkPort({
      ...server.clientConfig(),
      maxAttempts,
      retryStrategy: fastRetry(maxAttempts),
    });
    ports.set(maxAttempts, p);
  }
  return p;
}

/** ECR's limits, checked on every request the pruner sent. */
function checkCallLimits(calls: readonly CallRecord[]) {
  for (const call of calls) {
    expect(['DescribeImages', 'BatchGetImage', 'BatchDeleteImage', 'PutImage']).toContain(call.op);
    const byIds = call.op === 'DescribeImages' && call.request.imageIds !== undefined;
    if (call.op === 'DescribeImages' && !byIds) {
      expect(call.request.maxResults).toBeLessThanOrEqual(1000);
      expect(call.request.maxResults).toBeGreaterThanOrEqual(1);
    }
    if (byIds || call.op === 'BatchGetImage' || call.op === 'BatchDeleteImage') {
      // DescribeImages by id (the re-check before a delete) takes no maxResults.
      if (byIds) expect(call.request.maxResults).toBeUndefined();
      const ids = call.request.imageIds as { imageDigest?: string; imageTag?: string }[];
      expect(ids.length).toBeGreaterThanOrEqual(1);
      expect(ids.length).toBeLessThanOrEqual(100);
    }
  }
}

// --- random repositories ---

type Kind =
  /** a BuildKit cache artifact */
  | 'cache'
  /** an ordinary image (OCI config), e.g. a platform image pushed by digest, untagged until the merge */
  | 'image'
  /** another OCI artifact (a Helm chart) */
  | 'artifact'
  /** an ordinary image whose listing claims it is a cache artifact: the manifest read must win */
  | 'listed-as-cache'
  /** a cache manifest the listing does not report as one: kept, the listing is not trusted */
  | 'unlisted-cache'
  /**
   * a multi-platform index (a merged manifest list, or a platform's own push by digest, which is an
   * index of the image and its attestation); its children are seeded untagged
   */
  | 'index';

interface ImageSpec {
  kind: Kind;
  ageMinutes: number;
  bytes: number;
  /** for an index: its children, ordinary images or (oddly) cache artifacts */
  children: ('image' | 'cache')[];
}

type BuildAction =
  | { type: 'keep' }
  /** the build pushed a fresh cache artifact under the tag */
  | { type: 'fresh'; ageMinutes: number }
  /** the build's result was identical to an image already there: the tag moved to it */
  | { type: 'existing'; index: number }
  /** the tag and its image went away (e.g. delete-branch) */
  | { type: 'gone' };

interface Scenario {
  graceHours: number;
  images: ImageSpec[];
  /** Extra old untagged cache artifacts, to cross list pages (1000) and batches (100). */
  filler: number;
  /** TAGS[i] points at images[tags[i] % images.length], or nowhere. */
  tags: (number | null)[];
  recordedTags: string[];
  /** per TAGS[i], what the build did to it (only recorded tags are moved) */
  build: BuildAction[];
  sweep: boolean;
}

const ageMinutes = (graceHours: number) => {
  const grace = graceHours * 60;
  return fc.oneof(
    fc.integer({ min: 0, max: 2 * grace }),
    fc.constantFrom(0, grace - 1, grace, grace + 1),
    fc.integer({ min: 2 * grace, max: 30 * 24 * 60 }),
  );
};

const imageSpec = (graceHours: number) =>
  fc.record({
    kind: fc.constantFrom<Kind>(
      'cache',
      'cache',
      'cache',
      'image',
      'artifact',
      'listed-as-cache',
      'unlisted-cache',
      'index',
    ),
    ageMinutes: ageMinutes(graceHours),
    bytes: fc.integer({ min: 1, max: 50_000_000 }),
    children: fc.array(fc.constantFrom<'image' | 'cache'>('image', 'image', 'cache'), {
      minLength: 1,
      maxLength: 3,
    }),
  });

const buildAction: fc.Arbitrary<BuildAction> = fc.oneof(
  fc.constant({ type: 'keep' as const }),
  fc.record({ type: fc.constant('fresh' as const), ageMinutes: fc.integer({ min: 0, max: 5 }) }),
  fc.record({ type: fc.constant('existing' as const), index: fc.nat() }),
  fc.constant({ type: 'gone' as const }),
);

const scenarioArb: fc.Arbitrary<Scenario> = fc.constantFrom(1, 6).chain((graceHours) =>
  fc.record({
    graceHours: fc.constant(graceHours),
    images: fc.array(imageSpec(graceHours), { minLength: 1, maxLength: 30, size: 'medium' }),
    filler: fc.oneof(
      { weight: 2, arbitrary: fc.constant(0) },
      { weight: 2, arbitrary: fc.integer({ min: 95, max: 230 }) },
      { weight: 1, arbitrary: fc.integer({ min: 990, max: 1120 }) },
    ),
    tags: fc.array(fc.option(fc.nat(), { nil: null }), {
      minLength: TAGS.length,
      maxLength: TAGS.length,
    }),
    recordedTags: fc.subarray([...TAGS], { minLength: 1 }),
    build: fc.array(buildAction, {
      minLength: TAGS.length,
      maxLength: TAGS.length,
    }),
    sweep: fc.oneof(
      { weight: 2, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
  }),
);

const faultRuleArb: fc.Arbitrary<FaultRule> = fc
  .record({
    ops: fc.constantFrom(undefined, 'DescribeImages', 'BatchGetImage', 'BatchDeleteImage'),
    error: fc.constantFrom<'throttle' | 'server'>('throttle', 'server'),
    // Mostly transient (the SDK's retries absorb them), sometimes persistent from some call on.
    schedule: fc.oneof(
      { weight: 3, arbitrary: fc.record({ times: fc.integer({ min: 1, max: 4 }) }) },
      {
        weight: 2,
        arbitrary: fc.record({ rate: fc.double({ min: 0.05, max: 0.4, noNaN: true }) }),
      },
      { weight: 1, arbitrary: fc.record({ after: fc.integer({ min: 0, max: 8 }) }) },
    ),
    latencyMs: fc.integer({ min: 0, max: 2 }),
  })
  .map(({ ops, error, schedule, latencyMs }) => ({
    ...(ops ? { ops } : {}),
    error,
    ...schedule,
    latencyMs,
  }));

const faultsArb = fc.record({
  rules: fc.oneof(
    { weight: 1, arbitrary: fc.constant([]) },
    { weight: 3, arbitrary: fc.array(faultRuleArb, { minLength: 1, maxLength: 3 }) },
  ),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
  // 1: no retries at all; otherwise enough that most transient schedules are absorbed.
  maxAttempts: fc.oneof(
    { weight: 1, arbitrary: fc.constant(1) },
    { weight: 3, arbitrary: fc.integer({ min: 3, max: 6 }) },
  ),
});

/** Seeds the state before the build; deterministic, so seeding twice gives identical digests. */
function seedBefore(state: Registry, s: Scenario): string[] {
  const top: string[] = [];
  s.images.forEach((spec, i) => {
    const pushedAt = new Date(NOW - spec.ageMinutes * MINUTE);
    const salt = `img-${i}`;
    const layerSizes = [spec.bytes];
    const put = (manifest: string, extra: { artifactMediaType?: string } = {}) =>
      state.putImage(REPO, { manifest, pushedAt, ...extra });
    switch (spec.kind) {
      case 'cache':
        top.push(put(buildCacheManifest({ salt, layerSizes })));
        break;
      case 'image':
        top.push(put(buildImageManifest({ salt, layerSizes })));
        break;
      case 'artifact':
        top.push(put(buildImageManifest({ salt, layerSizes, configMediaType: HELM_CONFIG })));
        break;
      case 'listed-as-cache':
        top.push(put(buildImageManifest({ salt, layerSizes }), { artifactMediaType: CACHE }));
        break;
      case 'unlisted-cache':
        top.push(put(buildCacheManifest({ salt, layerSizes }), { artifactMediaType: '' }));
        break;
      case 'index': {
        const children = spec.children.map((child, j) => {
          const build = child === 'cache' ? buildCacheManifest : buildImageManifest;
          return put(build({ salt: `${salt}-child-${j}`, layerSizes }));
        });
        top.push(put(buildIndexManifest(children)));
        break;
      }
    }
  });
  for (let i = 0; i < s.filler; i++) {
    state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: `filler-${i}`, layerSizes: [1000 + i] }),
      pushedAt: new Date(NOW - (s.graceHours + 1 + (i % 50)) * HOUR),
    });
  }
  TAGS.forEach((tag, t) => {
    const target = s.tags[t];
    if (target !== null && target !== undefined && top.length > 0) {
      state.tagImage(REPO, tag, top[target % top.length] as string);
    }
  });
  return top;
}

/** What the build did between `record` and `prune`. */
function simulateBuild(state: Registry, s: Scenario, top: string[]) {
  for (const tag of s.recordedTags) {
    const action = s.build[TAGS.indexOf(tag as (typeof TAGS)[number])] ?? { type: 'keep' };
    if (action.type === 'fresh') {
      state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: `fresh-${tag}` }),
        pushedAt: new Date(NOW - action.ageMinutes * MINUTE),
        tags: [tag],
      });
    } else if (action.type === 'existing' && top.length > 0) {
      const digest = top[action.index % top.length] as string;
      if (state.image(REPO, digest)) state.tagImage(REPO, tag, digest);
    } else if (action.type === 'gone') {
      const digest = state.image(REPO, tag)?.digest;
      if (digest) state.deleteImage(REPO, digest);
    }
  }
}

/** Seeds, records through the pruner, runs the build; returns the recorded state. */
async function prepare(s: Scenario): Promise<Recorded> {
  const top = seedBefore(server.state, s);
  const recorded = await pruner.recordDigests(await port(), [
    { repository: REPO, tags: s.recordedTags },
  ]);
  simulateBuild(server.state, s, top);
  return recorded;
}

// --- the model: what must survive, what may go ---

interface Model {
  before: Map<string, ImageRecord>;
  children: Set<string>;
  candidates: Set<string>;
  /** why an existing image must be kept, or undefined when the pruner may delete it */
  keepReason(digest: string): string | undefined;
}

function model(s: Pick<Scenario, 'sweep' | 'graceHours'>, recorded: Recorded, now = NOW): Model {
  const images = server.state.images(REPO);
  const before = new Map(images.map((image) => [image.digest, image]));
  const children = new Set(images.flatMap((image) => image.children));
  const candidates = new Set<string>();
  for (const [tag, digest] of Object.entries(recorded.repositories[REPO] ?? {})) {
    if (digest && server.state.image(REPO, tag)?.digest !== digest) candidates.add(digest);
  }
  if (s.sweep) for (const image of images) if (image.tags.size === 0) candidates.add(image.digest);
  const graceMs = s.graceHours * HOUR;
  return {
    before,
    children,
    candidates,
    keepReason(digest) {
      const image = before.get(digest);
      if (!image) return 'already-gone';
      if (image.tags.size > 0) return 'tagged';
      if (children.has(digest)) return 'index-child';
      // In the pruner's order: the listing's artifactMediaType and age, then the manifest read.
      if (image.artifactMediaType !== CACHE) return 'not-cache-artifact';
      if (now - image.pushedAt.getTime() < graceMs) return 'younger-than-grace';
      if (image.configMediaType !== CACHE) return 'not-cache-artifact';
      if (!candidates.has(digest)) return 'not-a-candidate';
      return undefined;
    },
  };
}

const digestsOf = (entries: Entry[]) => entries.map((entry) => entry.digest as string);

/** The safety invariants, checked against the state the pruner started from. */
function checkInvariants(m: Model, summary: Summary) {
  const after = new Set(server.state.images(REPO).map((image) => image.digest));
  const gone = [...m.before.keys()].filter((digest) => !after.has(digest));
  const deleted = digestsOf(summary.deleted);

  // Each digest is reported once, and what was reported deleted is exactly what went.
  const reported = [...deleted, ...digestsOf(summary.skipped), ...digestsOf(summary.errors)];
  expect(reported.filter((d) => d !== undefined).length).toBe(
    new Set(reported.filter((d) => d !== undefined)).size,
  );
  expect(new Set(deleted)).toEqual(new Set(gone));

  // Nothing protected went: tagged, index children, non-cache artifacts, young ones.
  for (const digest of gone) expect(m.keepReason(digest), digest).toBeUndefined();

  // Skip reasons tell the truth.
  for (const entry of summary.skipped) {
    expect(m.keepReason(entry.digest as string), JSON.stringify(entry)).toBe(entry.reason);
  }

  // Bytes are the deleted images' sizes.
  const bytes = summary.deleted.reduce(
    (n, e) => n + (m.before.get(e.digest as string)?.sizeInBytes ?? NaN),
    0,
  );
  expect(summary.bytesReclaimed).toBe(bytes);

  // Without errors the pruner is complete: every candidate is accounted for, every deletable one
  // deleted.
  if (summary.errors.length === 0) {
    expect(new Set(reported)).toEqual(m.candidates);
    const deletable = [...m.candidates].filter((digest) => m.keepReason(digest) === undefined);
    expect(new Set(deleted)).toEqual(new Set(deletable));
  }
}

describe('prune: safety over random repositories and fault schedules', () => {
  it('never deletes what it must keep, and reports exactly what it deleted', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, faultsArb, async (s, faults) => {
        server.reset();
        server.state.createRepository(REPO);
        const recorded = await prepare(s);
        const m = model(s, recorded);
        const mark = server.calls.length;
        server.faults.seed(faults.seed);
        for (const rule of faults.rules) server.faults.add(rule);

        const summary = await pruner.prune(await port(faults.maxAttempts), {
          recorded,
          repositories: [REPO],
          sweep: s.sweep,
          graceHours: s.graceHours,
          now: NOW,
        });

        server.faults.clear();
        expect(summary.dryRun).toBe(false);
        checkInvariants(m, summary);
        const calls = server.calls.slice(mark);
        checkCallLimits(calls);
        // Deletes go by digest only: deleting by tag would only untag.
        for (const call of calls.filter((c) => c.op === 'BatchDeleteImage')) {
          for (const id of call.request.imageIds as Record<string, unknown>[]) {
            expect(Object.keys(id)).toEqual(['imageDigest']);
          }
        }
        if (faults.rules.length === 0) expect(summary.errors).toEqual([]);
        expect(server.unexpectedErrors).toEqual([]);
      }),
      { numRuns: 80 },
    );
  });

  it('a dry run deletes nothing and reports what a real run deletes; a second run deletes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (s) => {
        const options = {
          repositories: [REPO],
          sweep: s.sweep,
          graceHours: s.graceHours,
          now: NOW,
        };
        server.reset();
        server.state.createRepository(REPO);
        const recorded = await prepare(s);
        const before = server.state.images(REPO).map((image) => image.digest);
        const mark = server.calls.length;
        const dry = await pruner.prune(await port(), { ...options, recorded, dryRun: true });
        expect(dry.dryRun).toBe(true);
        expect(server.calls.slice(mark).filter((c) => c.op === 'BatchDeleteImage')).toEqual([]);
        expect(server.state.images(REPO).map((image) => image.digest)).toEqual(before);

        // The same state again, for real.
        server.reset();
        server.state.createRepository(REPO);
        const again = await prepare(s);
        expect(again.repositories).toEqual(recorded.repositories);
        const real = await pruner.prune(await port(), { ...options, recorded });
        expect(real.errors).toEqual([]);
        expect({ ...normalize(real), dryRun: true }).toEqual(normalize(dry));

        const mark2 = server.calls.length;
        const second = await pruner.prune(await port(), { ...options, recorded });
        expect(second.deleted).toEqual([]);
        expect(second.errors).toEqual([]);
        expect(second.bytesReclaimed).toBe(0);
        expect(server.calls.slice(mark2).filter((c) => c.op === 'BatchDeleteImage')).toEqual([]);
      }),
      { numRuns: 25 },
    );
  });
});

/** Entries in a stable order, for comparing runs. */
const sortEntries = (entries: Entry[]): Entry[] =>
  entries
    .map((e) => JSON.stringify(e, Object.keys(e).sort()))
    .sort()
    .map((e) => JSON.parse(e) as Entry);

/** A summary with its lists in a stable order. */
function normalize(summary: Summary): Summary {
  const sort = sortEntries;
  return {
    ...summary,
    deleted: sort(summary.deleted),
    skipped: sort(summary.skipped),
    errors: sort(summary.errors),
  };
}

describe('prune: a concurrent build', () => {
  /**
   * 1000 tagged images (so the listing takes two pages), 150 old untagged cache artifacts (two
   * confirm and two delete batches), an index with children, young untagged artifacts; `main.api`
   * was recorded on `old`, and the build moved it to `built`; `br-x.api` is on `branch`.
   */
  function seedConcurrent() {
    const state = server.state;
    const at = (hours: number) => new Date(NOW - hours * HOUR);
    const branch = state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'branch' }),
      pushedAt: at(48),
      tags: ['br-x.api'],
    });
    const old = state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'old' }),
      pushedAt: at(30),
      tags: ['main.api'],
    });
    for (let i = 0; i < 1000; i++) {
      state.putImage(REPO, {
        manifest: buildImageManifest({ salt: `v${i}` }),
        pushedAt: at(100),
        tags: [`v${i}`],
      });
    }
    for (let i = 0; i < 150; i++) {
      state.putImage(REPO, { manifest: buildCacheManifest({ salt: `u${i}` }), pushedAt: at(20) });
    }
    for (let i = 0; i < 5; i++) {
      state.putImage(REPO, { manifest: buildCacheManifest({ salt: `y${i}` }), pushedAt: at(1) });
    }
    const children = [0, 1].map((i) =>
      state.putImage(REPO, { manifest: buildCacheManifest({ salt: `c${i}` }), pushedAt: at(50) }),
    );
    state.putImage(REPO, {
      manifest: buildIndexManifest(children),
      pushedAt: at(50),
      tags: ['release'],
    });
    const recorded: Recorded = {
      formatVersion: 1,
      repositories: { [REPO]: { 'main.api': old } },
    };
    state.putImage(REPO, { manifest: buildCacheManifest({ salt: 'built' }), tags: ['main.api'] });
    return { recorded, branch, old };
  }

  const options = (recorded: Recorded) => ({
    recorded,
    repositories: [REPO],
    sweep: true,
    graceHours: 6,
    now: NOW,
  });

  it('loses nothing when another build pushes and moves a tag between any two of its calls', async () => {
    const baseline = seedConcurrent();
    const mark = server.calls.length;
    await pruner.prune(await port(), options(baseline.recorded));
    const callCount = server.calls.length - mark;
    expect(callCount).toBeGreaterThanOrEqual(7); // 2 pages, 1 index read, 2 + 2 batches

    for (const tag of ['main.api', 'br-x.api'] as const) {
      for (let k = 1; k <= callCount; k++) {
        server.reset();
        server.state.createRepository(REPO);
        const { recorded, branch } = seedConcurrent();
        const tagsBefore = new Map(
          server.state
            .images(REPO)
            .flatMap((image) => [...image.tags].map((t) => [t, image.digest])),
        );
        const m = model({ sweep: true, graceHours: 6 }, recorded);
        let pushed: string | undefined;
        const start = server.calls.length;
        const stop = server.onCall((_op, _request, call) => {
          if (call.index !== start + k) return;
          // The other build pushes a fresh cache artifact under its tag (real time: young).
          pushed = server.state.putImage(REPO, {
            manifest: buildCacheManifest({ salt: `concurrent-${tag}-${k}` }),
            tags: [tag],
          });
        });
        const summary = await pruner.prune(await port(), options(recorded));
        stop();

        expect(pushed, `hook at call ${k}`).toBeDefined();
        expect(summary.errors).toEqual([]);
        // The new artifact and its tag are there; every other tag still points where it did.
        expect(server.state.image(REPO, tag)?.digest).toBe(pushed);
        for (const [t, digest] of tagsBefore) {
          if (t !== tag) expect(server.state.image(REPO, t)?.digest, t).toBe(digest);
        }
        // The image the tag left is deleted only when the pruner saw it untagged: the hook ran
        // before the first listing page (which holds it) was read.
        const after = new Set(server.state.images(REPO).map((image) => image.digest));
        expect(after.has(branch), `hook at call ${k}`).toBe(!(tag === 'br-x.api' && k === 1));
        // Everything else the model protects is still there, and the summary is truthful.
        const deleted = new Set(digestsOf(summary.deleted));
        for (const [digest] of m.before) {
          if (after.has(digest)) expect(deleted.has(digest)).toBe(false);
          else {
            expect(deleted.has(digest), digest).toBe(true);
            if (digest !== branch) expect(m.keepReason(digest)).toBeUndefined();
          }
        }
      }
    }
  });
});

describe('prune: a tag moved onto a candidate after the listing', () => {
  it('keeps an old untagged artifact that a concurrent build tags before the delete batch', async () => {
    const at = (hours: number) => new Date(NOW - hours * HOUR);
    const candidates = Array.from({ length: 150 }, (_, i) =>
      server.state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: `moved-onto-${i}` }),
        pushedAt: at(20),
      }),
    );
    const target = candidates[120] as string; // in the second delete batch
    // The other build tags the candidate while the first delete batch is in flight, i.e. after
    // the listing and the confirmation reads that both saw it untagged.
    const stop = server.onCall((op) => {
      if (op === 'BatchDeleteImage' && !server.state.image(REPO, 'br-y.api')) {
        server.state.tagImage(REPO, 'br-y.api', target);
      }
    });
    const summary = await pruner.prune(await port(), {
      repositories: [REPO],
      sweep: true,
      graceHours: 6,
      now: NOW,
    });
    stop();
    expect(summary.errors).toEqual([]);
    expect(server.state.image(REPO, 'br-y.api')?.digest).toBe(target);
    expect(digestsOf(summary.deleted)).not.toContain(target);
    expect(summary.skipped).toContainEqual(
      expect.objectContaining({ digest: target, reason: 'tagged' }),
    );
    expect(summary.deleted).toHaveLength(149);
  });
});

describe('prune: failures[] from BatchDeleteImage and BatchGetImage', () => {
  /** `count` old untagged cache artifacts of 100 bytes each. */
  function seedOld(count: number) {
    const digests = Array.from({ length: count }, (_, i) =>
      server.state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: `old-${i}`, layerSizes: [100] }),
        pushedAt: new Date(NOW - 24 * HOUR),
      }),
    );
    return digests;
  }
  const sweepOptions = { repositories: [REPO], sweep: true, graceHours: 6, now: NOW };

  it('counts an image that vanished before the delete as already gone, not deleted', async () => {
    const digests = seedOld(5);
    const vanished = digests[2] as string;
    server.onCall((op) => {
      if (op === 'BatchDeleteImage' && server.state.image(REPO, vanished)) {
        server.state.deleteImage(REPO, vanished);
      }
    });
    const summary = await pruner.prune(await port(), sweepOptions);
    expect(summary.errors).toEqual([]);
    expect(digestsOf(summary.deleted).sort()).toEqual(digests.filter((d) => d !== vanished).sort());
    expect(summary.skipped).toEqual([
      expect.objectContaining({ digest: vanished, reason: 'already-gone', repository: REPO }),
    ]);
    expect(summary.bytesReclaimed).toBe(4 * 100);
    expect(server.state.images(REPO)).toEqual([]);
  });

  it('counts an image that vanished before the confirmation read as already gone', async () => {
    const digests = seedOld(3);
    const vanished = digests[0] as string;
    server.onCall((op) => {
      if (op === 'BatchGetImage') server.state.deleteImage(REPO, vanished);
    });
    const summary = await pruner.prune(await port(), sweepOptions);
    expect(summary.skipped).toEqual([
      expect.objectContaining({ digest: vanished, reason: 'already-gone' }),
    ]);
    expect(summary.deleted).toHaveLength(2);
  });

  it('skips an image an index started referencing after the listing (ImageReferencedByManifestList)', async () => {
    const digests = seedOld(3);
    const adopted = digests[1] as string;
    server.onCall((op) => {
      if (op === 'BatchDeleteImage' && server.state.image(REPO, 'late-merge') === undefined) {
        server.state.putImage(REPO, {
          manifest: buildIndexManifest([adopted]),
          tags: ['late-merge'],
        });
      }
    });
    const summary = await pruner.prune(await port(), sweepOptions);
    expect(summary.errors).toEqual([]);
    expect(summary.skipped).toEqual([
      expect.objectContaining({ digest: adopted, reason: 'index-child' }),
    ]);
    expect(server.state.image(REPO, adopted)).toBeDefined();
    expect(summary.deleted).toHaveLength(2);
  });

  it('believes only what ECR reports deleted', async () => {
    const digests = seedOld(3);
    const real = await port();
    // A response that omits one id and fails another with a code the pruner does not know.
    const lying: EcrPort = {
      ...real,
      batchDeleteImage: async (input) => {
        const ids = input.imageIds as { imageDigest: string }[];
        const out = await real.batchDeleteImage({ ...input, imageIds: ids.slice(2) });
        return {
          imageIds: out.imageIds,
          failures: [
            { imageId: ids[1], failureCode: 'KmsError', failureReason: 'Key unavailable' },
          ],
        };
      },
    };
    const summary = await pruner.prune(lying, sweepOptions);
    expect(digestsOf(summary.deleted)).toEqual([digests[2]]);
    expect(summary.errors).toEqual([
      { repository: REPO, digest: digests[0], error: 'not reported as deleted' },
      { repository: REPO, digest: digests[1], error: 'KmsError: Key unavailable' },
    ]);
    expect(summary.bytesReclaimed).toBe(100);
  });

  it('persistent throttling on BatchDeleteImage: errors, nothing deleted, exit 1 only with --fail-on-error', async () => {
    const digests = seedOld(130);
    const throttle = server.faults.add({ ops: 'BatchDeleteImage', error: 'throttle' });
    const io = () => {
      const out: string[] = [];
      const err: string[] = [];
      return { out, err, stdout: (t: string) => out.push(t), stderr: (t: string) => err.push(t) };
    };
    const ecr = await port(3);
    const args = ['prune', '--repository', REPO, '--sweep', '--grace-hours', '6'];

    const plain = io();
    expect(await pruner.main([...args, '--json'], { ecr, ...plain })).toBe(0);
    const summary = JSON.parse(plain.out.join('')) as Summary;
    expect(summary.deleted).toEqual([]);
    expect(summary.bytesReclaimed).toBe(0);
    expect(digestsOf(summary.errors).sort()).toEqual([...digests].sort());
    for (const entry of summary.errors) expect(entry.error).toMatch(/^ThrottlingException: /);
    expect(server.state.images(REPO)).toHaveLength(130);
    // Two batches (100 + 30), 3 attempts each.
    expect(
      server.callsTo('BatchDeleteImage').map((c) => (c.request.imageIds as []).length),
    ).toEqual([100, 100, 100, 30, 30, 30]);
    expect(throttle.fired).toBe(6);

    const failing = io();
    expect(await pruner.main([...args, '--fail-on-error'], { ecr, ...failing })).toBe(1);
    expect(failing.out.join('')).toMatch(/Deleted 0, reclaimed 0\.0 MB; kept 0; errors 130\.\n$/);
    expect(failing.err).toEqual([]);
  });

  it('a repository it cannot list is an error for that repository only', async () => {
    seedOld(2);
    const summary = await pruner.prune(await port(), {
      ...sweepOptions,
      repositories: ['missing', REPO],
    });
    expect(summary.errors).toEqual([
      { repository: 'missing', error: expect.stringMatching(/^RepositoryNotFoundException: /) },
    ]);
    expect(summary.deleted).toHaveLength(2);
  });
});

describe('prune: a hostile ECR', () => {
  const sweepOptions = { repositories: [REPO], sweep: true, graceHours: 6, now: NOW };
  const old = (salt: string) =>
    server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt, layerSizes: [100] }),
      pushedAt: new Date(NOW - 24 * HOUR),
    });

  it('a nextToken that comes back is an error for that repository, after two calls', async () => {
    old('a');
    server.state.createRepository('other');
    const fine = server.state.putImage('other', {
      manifest: buildCacheManifest({ salt: 'b' }),
      pushedAt: new Date(NOW - 24 * HOUR),
    });
    server.faults.add({
      ops: 'DescribeImages',
      rewrite: {
        request: (input) =>
          input.repositoryName === REPO ? { ...input, nextToken: undefined } : input,
        response: (output, input) =>
          input.repositoryName === REPO ? { ...output, nextToken: 'SAME' } : output,
      },
    });
    const summary = await pruner.prune(await port(), {
      ...sweepOptions,
      repositories: [REPO, 'other'],
    });
    expect(summary.errors).toEqual([
      {
        repository: REPO,
        error: `Error: DescribeImages on ${REPO}: ECR answered a nextToken it had already given (page 2); stopped instead of looping`,
      },
    ]);
    expect(
      server.callsTo('DescribeImages').filter((c) => c.request.repositoryName === REPO),
    ).toHaveLength(2);
    expect(server.callsTo('BatchDeleteImage').map((c) => c.request.repositoryName)).toEqual([
      'other',
    ]);
    expect(digestsOf(summary.deleted)).toEqual([fine]);
  });

  it('pages that never end stop at the page bound', async () => {
    old('a');
    server.faults.endlessPages('DescribeImages');
    const summary = await pruner.prune(await port(), { ...sweepOptions, maxPages: 20 });
    expect(summary.errors).toEqual([
      {
        repository: REPO,
        error: `Error: DescribeImages on ${REPO}: more than 20 pages; stopped (a listing that does not end)`,
      },
    ]);
    expect(server.callCount('DescribeImages')).toBe(20);
    expect(summary.deleted).toEqual([]);
  });

  it('record with a looping listing records nothing; the later prune only sweeps', async () => {
    server.faults.nextTokenLoop('DescribeImages');
    const state = join(await mkdtemp(join(tmpdir(), 'cached-deploy-prune-loop-')), 'd.json');
    try {
      const err: string[] = [];
      const code = await pruner.main(
        ['record', '--repository', REPO, '--tag', 'main.api', '--state', state],
        {
          ecr: await port(),
          stdout: () => {},
          stderr: (t) => err.push(t),
        },
      );
      expect(code).toBe(0);
      expect(err.join('')).toMatch(
        /could not record cache digests: .*nextToken it had already given/,
      );
      expect(JSON.parse(await readFile(state, 'utf8'))).toEqual({
        formatVersion: 1,
        repositories: {},
      });
      expect(server.callCount('DescribeImages')).toBe(2);
    } finally {
      await rm(join(state, '..'), { recursive: true, force: true });
    }
  });

  it('an index BatchGetImage leaves out of its answer skips the repository: nothing deleted there', async () => {
    const child = old('child');
    const stray = old('stray');
    const index = server.state.putImage(REPO, {
      manifest: buildIndexManifest([child]),
      pushedAt: new Date(NOW - 24 * HOUR),
    });
    server.faults.omitFromBatchGet([index]);
    const summary = await pruner.prune(await port(), sweepOptions);
    expect(summary.deleted).toEqual([]);
    expect(summary.errors).toEqual([
      {
        repository: REPO,
        error: `Error: could not read 1 index manifest(s) in ${REPO} (0 failed, 1 missing from the answer or unreadable, e.g. ${index}): their children are unknown, so nothing in this repository is deleted`,
      },
    ]);
    expect(server.callCount('BatchDeleteImage')).toBe(0);
    expect(server.state.image(REPO, child)).toBeDefined();
    expect(server.state.image(REPO, stray)).toBeDefined();
  });

  it('an index that fails to read, or reads as no index, skips the repository too', async () => {
    const child = old('child');
    const index = server.state.putImage(REPO, {
      manifest: buildIndexManifest([child]),
      pushedAt: new Date(NOW - 24 * HOUR),
    });
    server.faults.add({
      ops: 'BatchGetImage',
      times: 1,
      rewrite: {
        response: (output) => ({
          ...output,
          images: [],
          failures: [
            { imageId: { imageDigest: index }, failureCode: 'KmsError', failureReason: 'x' },
          ],
        }),
      },
    });
    const failed = await pruner.prune(await port(), sweepOptions);
    expect(failed.deleted).toEqual([]);
    expect(failed.errors[0]?.error).toMatch(
      /could not read 1 index manifest\(s\) in cache \(1 failed, 0 missing/,
    );

    server.faults.add({
      ops: 'BatchGetImage',
      times: 1,
      rewrite: {
        response: (output) => ({
          ...output,
          images: ((output.images ?? []) as Record<string, unknown>[]).map((image) => ({
            ...image,
            imageManifest: '{"schemaVersion":2,"manifests":"not a list"}',
          })),
        }),
      },
    });
    const garbled = await pruner.prune(await port(), sweepOptions);
    expect(garbled.deleted).toEqual([]);
    expect(garbled.errors[0]?.error).toMatch(/0 failed, 1 missing from the answer or unreadable/);
    expect(server.callCount('BatchDeleteImage')).toBe(0);
  });

  it('a 200,000-entry listing page does not overflow the stack', async () => {
    const real = [old('a'), old('b')];
    server.faults.hugePage(200_000);
    const summary = await pruner.prune(await port(), sweepOptions);
    expect(summary.errors).toEqual([]);
    expect(digestsOf(summary.deleted).sort()).toEqual([...real].sort());
    // The padding: untagged, but no cache artifacts.
    expect(summary.skipped).toHaveLength(200_000);
    expect(new Set(summary.skipped.map((entry) => entry.reason))).toEqual(
      new Set(['not-cache-artifact']),
    );
  }, 60_000);

  it('failure reasons with terminal escapes are escaped in the summary', async () => {
    const digest = old('a');
    server.faults.add({
      ops: 'BatchDeleteImage',
      rewrite: {
        response: () => ({
          imageIds: [],
          failures: [
            {
              imageId: { imageDigest: digest },
              failureCode: 'KmsError',
              failureReason: '\u001b[2J\u001b]0;owned\u0007',
            },
          ],
        }),
      },
    });
    const out: string[] = [];
    await pruner.main(['prune', '--repository', REPO, '--sweep', '--grace-hours', '6'], {
      ecr: await port(),
      stdout: (t) => out.push(t),
    });
    const text = out.join('');
    expect(text).not.toContain('\u001b');
    expect(text).toContain(`error ${REPO} ${digest}: KmsError: \\u{1b}[2J\\u{1b}]0;owned\\u{7}`);
  });
});

// The pruner runs on its own in CI, so it keeps copies of a few of src/'s rules (the cache-tag
// twins are compared in test/sweep-branches.test.ts).
describe("the pruner's self-contained copies agree with src/", () => {
  it('knows a cache artifact by the same media type', () => {
    expect(pruner.CACHE_CONFIG_MEDIA_TYPE).toBe(CACHE_CONFIG_MEDIA_TYPE);
  });

  it('waits the same grace period when the workflow names none', () => {
    expect(pruner.DEFAULT_GRACE_HOURS).toBe(DEFAULTS.prune.graceHours);
  });

  it('escapes what ECR answered as src/text.ts does, cut to 300 characters', () => {
    const hostile = fc.string({
      unit: fc.oneof(
        fc.constantFrom('\u001b', '\r', '\n', '\u0085', '\u202e', '\u2066', '\u200f', '\u007f'),
        fc.string({ minLength: 1, maxLength: 1 }),
      ),
      maxLength: 400,
    });
    fc.assert(
      fc.property(hostile, (text) => {
        const escaped = printable(text);
        expect(pruner.printable(text)).toBe(
          escaped.length > 300 ? `${escaped.slice(0, 300)}…` : escaped,
        );
      }),
    );
  });
});

describe('selectDeletions', () => {
  it('keeps an image whose push time is unknown, as if it were young', () => {
    const image = (digest: string, imagePushedAt?: unknown) => ({
      imageDigest: digest,
      artifactMediaType: CACHE,
      imageSizeInBytes: 10,
      ...(imagePushedAt === undefined ? {} : { imagePushedAt }),
    });
    const { remove, skipped } = pruner.selectDeletions({
      images: [
        image('sha256:old', new Date(NOW - 7 * HOUR)),
        image('sha256:unknown'),
        image('sha256:garbled', 'yesterday-ish'),
      ],
      children: new Set(),
      superseded: [{ digest: 'sha256:unknown', tag: 'main.api' }],
      sweep: true,
      graceMs: 6 * HOUR,
      now: NOW,
    });
    expect(remove).toEqual([{ digest: 'sha256:old', why: 'sweep', bytes: 10 }]);
    expect(skipped).toEqual([
      {
        digest: 'sha256:unknown',
        tag: 'main.api',
        why: 'superseded',
        reason: 'younger-than-grace',
      },
      { digest: 'sha256:garbled', why: 'sweep', reason: 'younger-than-grace' },
    ]);
  });
});

describe('record', () => {
  it('keeps every tag of images that share a repository (one --repository per image)', async () => {
    const api = server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'seed-api' }),
      tags: ['seed.api'],
    });
    const web = server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'seed-web' }),
      tags: ['seed.web'],
    });
    const recorded = await pruner.recordDigests(await port(), [
      { repository: REPO, tags: ['seed.api'] },
      { repository: REPO, tags: ['seed.web'] },
    ]);
    expect(recorded.repositories).toEqual({ [REPO]: { 'seed.api': api, 'seed.web': web } });
    expect(server.callCount('DescribeImages')).toBe(1);
  });
});

describe('delete-branch', () => {
  it('removes the branch tags in batches of at most 100, keeping images other tags share', async () => {
    const tags = Array.from({ length: 150 }, (_, i) => `br-z.img${i}`);
    for (const tag of tags) {
      server.state.putImage(REPO, { manifest: buildCacheManifest({ salt: tag }), tags: [tag] });
    }
    const shared = server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'shared' }),
      tags: ['br-z.api', 'main.api'],
    });
    const summary = await pruner.deleteBranchTags(await port(), [
      { repository: REPO, tags: [...tags, 'br-z.api', 'br-z.gone'] },
    ]);
    expect(summary.errors).toEqual([]);
    expect(summary.deleted).toHaveLength(151);
    expect(summary.skipped).toEqual([
      { repository: REPO, tag: 'br-z.gone', reason: 'already-gone' },
    ]);
    expect(server.state.images(REPO).map((image) => [image.digest, [...image.tags]])).toEqual([
      [shared, ['main.api']],
    ]);
  });
});

describe('delete-branch: per-platform branch cache tags', () => {
  it('deletes br-<branch>.<image>.<platform> tags, keeping main and seed per-platform tags', async () => {
    const perPlatform = ['br-feat-x.api.linux-amd64', 'br-feat-x.api.linux-arm64'];
    for (const tag of perPlatform) {
      server.state.putImage(REPO, { manifest: buildCacheManifest({ salt: tag }), tags: [tag] });
    }
    const kept = server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'main-arm' }),
      tags: ['main.api.linux-arm64', 'seed.api.linux-arm64'],
    });
    const summary = await pruner.deleteBranchTags(await port(), [
      { repository: REPO, tags: perPlatform },
    ]);
    expect(summary.errors).toEqual([]);
    expect(summary.deleted).toHaveLength(2);
    expect(
      server.state.images(REPO).map((image) => [image.digest, [...image.tags].sort()]),
    ).toEqual([[kept, ['main.api.linux-arm64', 'seed.api.linux-arm64']]]);
  });
});

describe('delete-branch: only branch cache tags', () => {
  it.each([
    [['main.api']],
    [['seed.api']],
    [['br-x.api', 'main.api']],
    [['latest']],
    [['br-']],
    [['br-x']],
    [['pr-7.web']],
    // Per-platform tags of main and the seed (docs/multi-platform.md) are no branch's either.
    [['main.api.linux-arm64']],
    [['seed.api.linux-amd64']],
    [['br-x.api.linux-arm64', 'main.api.linux-arm64']],
  ])('refuses %j: one line, nothing deleted, no ECR call', async (tags) => {
    const tagged = server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'kept' }),
      tags: ['main.api', 'seed.api', 'br-x.api', 'latest', 'pr-7.web'],
    });
    const err: string[] = [];
    const argv = ['delete-branch', '--repository', REPO, ...tags.flatMap((tag) => ['--tag', tag])];
    const code = await pruner.main(argv, {
      ecr: await port(),
      stdout: () => {},
      stderr: (t) => err.push(t),
    });
    expect(code).toBe(1);
    expect(err.join('')).toMatch(
      /^prune-ecr-cache: delete-branch only deletes branch cache tags \(br-<branch>\.<image>\); refusing cache:.*; nothing was deleted\n$/,
    );
    await expect(
      pruner.deleteBranchTags(await port(), [{ repository: REPO, tags }]),
    ).rejects.toThrow(/delete-branch only deletes branch cache tags/);
    expect(server.calls).toEqual([]);
    expect([...(server.state.image(REPO, tagged)?.tags ?? [])].sort()).toEqual([
      'br-x.api',
      'latest',
      'main.api',
      'pr-7.web',
      'seed.api',
    ]);
  });
});

describe('usage errors', () => {
  const refuse: EcrPort = {
    describeImages: () => Promise.reject(new Error('no call expected')),
    batchGetImage: () => Promise.reject(new Error('no call expected')),
    batchDeleteImage: () => Promise.reject(new Error('no call expected')),
  };

  it.each([
    [[], /unknown command ""/],
    [['purge'], /unknown command "purge"/],
    [['prune', '--sweep', '--repository', REPO, '--frobnicate'], /unknown option --frobnicate/],
    [['prune', '--state'], /--state needs a value/],
    [['prune', '--repository', '--sweep'], /--repository needs a value/],
    [['prune', '--tag', 'main.api', '--sweep'], /--tag must follow a --repository/],
    [['prune', '--repository', REPO], /prune needs --state FILE or --sweep/],
    [['prune', '--sweep'], /prune --sweep needs --repository or --state/],
    [['prune', '--sweep', '--repository', REPO, '--grace-hours', '-1'], /--grace-hours/],
    [['prune', '--sweep', '--repository', REPO, '--grace-hours', 'soon'], /--grace-hours/],
    [['prune', '--sweep', '--repository', REPO, '--grace-hours', ''], /--grace-hours/],
    [['prune', '--sweep', '--repository', REPO, '--grace-hours', ' '], /--grace-hours/],
    [['record', '--repository', REPO, '--tag', 'main.api'], /record needs --state FILE/],
    [['record', '--repository', REPO, '--state', 'x.json'], /record needs --tag/],
    [['delete-branch'], /delete-branch needs --repository/],
    [['delete-branch', '--repository', REPO], /delete-branch needs --tag/],
  ])('%j: one line, then the usage; exit 1', async (argv, message) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await pruner.main(argv, {
      ecr: refuse,
      stdout: (t) => out.push(t),
      stderr: (t) => err.push(t),
    });
    expect(code).toBe(1);
    expect(out).toEqual([]);
    const [first, second, ...rest] = err.join('').split('\n');
    expect(first).toMatch(/^prune-ecr-cache: /);
    expect(first).toMatch(message);
    expect(second).toBe('usage:');
    expect(rest.join('\n')).toMatch(/prune-ecr-cache\.mjs delete-branch/);
  });
});

// --- the shipped script and the CLI, as child processes ---

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], options: { cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd ?? ROOT,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        AWS_ENDPOINT_URL_ECR: server.endpoint,
        AWS_REGION: server.region,
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_EC2_METADATA_DISABLED: 'true',
        // The SDK warns on Node 20 that its 2027 releases will need Node 22.
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('the shipped script and the CLI', () => {
  let dir: string;
  let script: string;
  let build: Run;
  const cli = join(ROOT, 'bin', 'create-cached-deploy.js');

  beforeAll(async () => {
    // Under node_modules, so the script resolves @aws-sdk/client-ecr as in a user's repository.
    const cache = join(ROOT, 'node_modules', '.cache');
    await mkdir(cache, { recursive: true });
    dir = await mkdtemp(join(cache, 'prune-test-'));
    script = join(dir, 'prune-ecr-cache.mjs');
    await writeFile(script, renderPruneScript('9.9.9-test'));
    build = await run([join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '--build']);
  }, 120_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** A realistic repository, aged against the real clock (the child processes use Date.now()). */
  function seedReal() {
    const state = server.state;
    const ago = (hours: number) => new Date(Date.now() - hours * HOUR);
    const digests = {
      oldA: state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: 'a', layerSizes: [7_000_000] }),
        pushedAt: ago(30),
        tags: ['main.api'],
      }),
      oldWeb: state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: 'w', layerSizes: [3_000_000] }),
        pushedAt: ago(30),
        tags: ['main.web'],
      }),
      stray: state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: 's', layerSizes: [2_000_000] }),
        pushedAt: ago(12),
      }),
      young: state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: 'y' }),
        pushedAt: ago(1),
      }),
      image: state.putImage(REPO, {
        manifest: buildImageManifest({ salt: 'i' }),
        pushedAt: ago(40),
      }),
      helm: state.putImage(REPO, {
        manifest: buildImageManifest({ salt: 'h', configMediaType: HELM_CONFIG }),
        pushedAt: ago(40),
      }),
    };
    const child = state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'child' }),
      pushedAt: ago(40),
    });
    state.putImage(REPO, {
      manifest: buildIndexManifest([child, digests.image]),
      pushedAt: ago(40),
    });
    for (let i = 0; i < 120; i++) {
      state.putImage(REPO, {
        manifest: buildCacheManifest({ salt: `bulk-${i}` }),
        pushedAt: ago(8 + (i % 10)),
      });
    }
    return { ...digests, child };
  }

  function parse(result: Run, context = ''): Summary {
    expect(result.stderr, context).toBe('');
    expect(result.code, context).toBe(0);
    return normalize(JSON.parse(result.stdout) as Summary);
  }

  it('the script and `create-cached-deploy prune` print the same --json summary', async () => {
    expect(renderPruneScript('9.9.9-test')).toMatch(
      /^\/\/ prune-ecr-cache\.mjs, shipped by create-cached-deploy 9\.9\.9-test\.$/m,
    );
    const argv = ['prune', '--repository', REPO, '--sweep', '--grace-hours', '6', '--json'];
    for (const dryRun of [true, false]) {
      const flags = dryRun ? ['--dry-run'] : [];
      server.reset();
      server.state.createRepository(REPO);
      const seeded = seedReal();
      const fromScript = parse(await run([script, ...argv, ...flags]));
      server.reset();
      server.state.createRepository(REPO);
      seedReal();
      // tsc emits even with type errors elsewhere in src/ (others' work in progress): its output
      // is only context for a CLI failure.
      const fromCli = parse(
        await run([cli, 'prune', ...argv, ...flags]),
        `tsc --build exited ${build.code}: ${build.stdout}${build.stderr}`,
      );

      expect(fromCli).toEqual(fromScript);
      expect(fromScript.dryRun).toBe(dryRun);
      expect(fromScript.errors).toEqual([]);
      // 120 bulk + stray; not the young one, the child, the image, the helm chart or the index.
      expect(fromScript.deleted).toHaveLength(121);
      const kept = Object.fromEntries(fromScript.skipped.map((e) => [e.digest, e.reason]));
      expect(kept).toMatchObject({
        [seeded.young]: 'younger-than-grace',
        [seeded.child]: 'index-child',
        [seeded.image]: 'index-child',
        [seeded.helm]: 'not-cache-artifact',
      });
      expect(server.state.images(REPO)).toHaveLength(dryRun ? 128 : 7);
    }
  }, 60_000);

  it('record, a build that moves the tags, then prune --state: deletes what the build superseded', async () => {
    const other = 'cache-two';
    server.state.createRepository(other);
    const seeded = seedReal();
    const otherOld = server.state.putImage(other, {
      manifest: buildCacheManifest({ salt: 'o' }),
      pushedAt: new Date(Date.now() - 20 * HOUR),
      tags: ['main.worker'],
    });
    const state = join(dir, 'digests.json');
    const recordRun = await run([
      script,
      'record',
      '--repository',
      REPO,
      '--tag',
      'main.api',
      '--tag',
      'main.web',
      '--tag',
      'main.new',
      '--repository',
      other,
      '--tag',
      'main.worker',
      '--state',
      state,
    ]);
    expect(recordRun).toMatchObject({ code: 0, stderr: '' });
    expect(recordRun.stdout).toBe(`Recorded 4 cache tag(s) in ${state}\n`);
    const recorded = JSON.parse(await readFile(state, 'utf8')) as Recorded;
    expect(recorded.repositories).toEqual({
      [REPO]: { 'main.api': seeded.oldA, 'main.web': seeded.oldWeb, 'main.new': null },
      [other]: { 'main.worker': otherOld },
    });

    // The build pushes new cache artifacts through the API: main.api and main.worker move,
    // main.web is unchanged, main.new appears.
    const push = async (repositoryName: string, tag: string) => {
      const client = new ECRClient(server.clientConfig());
      const out = await client.send(
        new PutImageCommand({
          repositoryName,
          imageTag: tag,
          imageManifest: buildCacheManifest({ salt: `build-${tag}` }),
        }),
      );
      client.destroy();
      return out.image?.imageId?.imageDigest as string;
    };
    const newApi = await push(REPO, 'main.api');
    const newWorker = await push(other, 'main.worker');
    await push(REPO, 'main.new');

    const pruned = parse(await run([script, 'prune', '--state', state, '--json']));
    expect(pruned.errors).toEqual([]);
    expect(pruned.deleted).toEqual(
      sortEntries([
        {
          repository: REPO,
          digest: seeded.oldA,
          tag: 'main.api',
          why: 'superseded',
          bytes: 7_000_000,
        },
        {
          repository: other,
          digest: otherOld,
          tag: 'main.worker',
          why: 'superseded',
          bytes: 1024,
        },
      ]),
    );
    expect(pruned.bytesReclaimed).toBe(7_001_024);
    expect(server.state.image(REPO, 'main.api')?.digest).toBe(newApi);
    expect(server.state.image(REPO, 'main.web')?.digest).toBe(seeded.oldWeb);
    expect(server.state.image(other, 'main.worker')?.digest).toBe(newWorker);
    // Without --sweep the other untagged artifacts stay.
    expect(server.state.image(REPO, seeded.stray)).toBeDefined();

    // Text output, then a sweep over the repositories in the state file.
    const swept = await run([script, 'prune', '--state', state, '--sweep']);
    expect(swept.code).toBe(0);
    expect(swept.stdout).toMatch(
      /^Deleted 121, reclaimed \d+\.\d MB; kept \d+ \(.*\); errors 0\.\n$/m,
    );
    expect(server.state.image(REPO, seeded.stray)).toBeUndefined();
    expect(server.state.image(REPO, seeded.young)).toBeDefined();
  }, 60_000);

  it('a looping nextToken: the script stops at once with one error line, exit 1 with --fail-on-error', async () => {
    server.faults.nextTokenLoop('DescribeImages');
    const started = performance.now();
    const result = await run([script, 'prune', '--repository', REPO, '--sweep', '--fail-on-error']);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    expect(result.stdout).toBe(
      `error ${REPO}: Error: DescribeImages on ${REPO}: ECR answered a nextToken it had already given (page 2); stopped instead of looping\n` +
        'Deleted 0, reclaimed 0.0 MB; kept 0; errors 1.\n',
    );
    expect(server.callCount('DescribeImages')).toBe(2);
  }, 30_000);

  it('runs when reached through a symlinked directory (node resolves the module, not argv[1])', async () => {
    const link = `${dir}-link`;
    await symlink(dir, link);
    try {
      const result = await run([join(link, 'prune-ecr-cache.mjs'), 'prune']);
      expect(result.code).toBe(1);
      expect(result.stderr.split('\n')[0]).toBe(
        'prune-ecr-cache: prune needs --state FILE or --sweep',
      );
    } finally {
      await rm(link, { force: true });
    }
  }, 30_000);

  it('usage errors exit 1 from the script and from the CLI', async () => {
    for (const args of [
      [script, 'prune'],
      [cli, 'prune', 'prune'],
    ]) {
      const result = await run(args);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.split('\n').slice(0, 2)).toEqual([
        'prune-ecr-cache: prune needs --state FILE or --sweep',
        'usage:',
      ]);
    }
    expect(server.calls).toEqual([]);
  }, 30_000);
});
