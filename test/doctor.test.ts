/**
 * `doctor`: the cacheconfig parser, health score and step matching on the real BuildKit artifacts
 * of test/fixtures/buildkit/ (a seed and five eroded re-exports) and on the artifacts derived from
 * them with known step sets (test/support/buildkit-fixtures.ts; docs/doctor.md), then the whole
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
import { parseConfig } from '../src/config/load.js';
import {
  type CacheConfig,
  CacheFormatError,
  cacheStats,
  compareWithSeed,
  healthScore,
  matchSteps,
  parseCacheConfig,
  parseCacheManifest,
  reusableWith,
} from '../src/doctor/cacheconfig.js';
import { type DoctorReport, doctor } from '../src/doctor/doctor.js';
import { formatAge } from '../src/doctor/format.js';
import { schedulePeriodMs } from '../src/doctor/schedule.js';
import { seedImportOf } from '../src/doctor/seed-import.js';
import { cacheScope, cacheTag } from '../src/model/cache-tags.js';
import { renderFiles } from '../src/render/render-files.js';
import { formatBytes } from '../src/text.js';
import {
  deriveFixtures,
  erosionCheck,
  NODE_MODULES_CHECKSUM,
  PACKAGE_FILES_CHECKSUM,
} from './support/buildkit-fixtures.js';
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
/** Derived from the real ones (test/support/buildkit-fixtures.ts). */
const DERIVED = [
  // A branch that changed its dependencies: the checksum of package*.json (and so of the
  // node_modules the runtime stage copies) differs, and so does every step after it.
  'derived-branch-new-dependencies',
  // Main after the same change, re-exported from fresh runners (eroded like re-export 4).
  'derived-main-new-dependencies-eroded',
] as const;
type Stage = (typeof STAGES)[number] | (typeof DERIVED)[number];

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
  artifacts = Object.fromEntries(
    [...STAGES, ...DERIVED].map((stage) => [stage, loadArtifact(stage)]),
  ) as Record<Stage, Artifact>;
});

/** The digests of the real seed's 12 steps, by what their chains show them to be. */
const STEP = {
  base: 'sha256:f7e36', // RUN on the base image
  workdir: 'sha256:807b3', // WORKDIR
  apt: 'sha256:56ba2', // RUN apt-get …
  copyPackage: 'sha256:1704e', // COPY package*.json
  npmCi: 'sha256:8028d', // RUN npm ci
  prune: 'sha256:4cc94', // RUN npm prune
  copyContext1: 'sha256:bc9aa', // COPY from the build context
  copyContext2: 'sha256:d340c', // COPY from the build context
  tsc: 'sha256:9f432', // RUN tsc
  copyNodeModules: 'sha256:6f8ff', // runtime: COPY --from the prune stage
  copyContextRuntime: 'sha256:004f1', // runtime: COPY from the build context
  copyDist: 'sha256:abeb4', // runtime: COPY --from the tsc stage
} as const;
const short = (digests: string[]) =>
  digests.map((digest) => {
    const name = Object.entries(STEP).find(([, prefix]) => digest.startsWith(prefix))?.[0];
    return name ?? digest;
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

  test('layers, bytes, records, steps and reusable steps match the README of the data', () => {
    const table = STAGES.map((stage) => {
      const { layers, bytes, records, recordsWithResults, steps, reusableSteps } = stats(stage);
      return [stage, layers, bytes, records, recordsWithResults, steps, reusableSteps];
    });
    // 20 records: 12 steps and 8 sources, which never carry results. A re-export keeps every step
    // and loses results.
    expect(table).toEqual([
      ['cache-seed', 13, 283_966_712, 20, 12, 12, 12],
      ['cache-fresh-runner-reexport-1', 13, 283_966_712, 20, 9, 12, 9],
      ['cache-fresh-runner-reexport-2', 13, 283_966_712, 20, 7, 12, 7],
      ['cache-fresh-runner-reexport-3', 13, 283_966_712, 20, 6, 12, 6],
      ['cache-fresh-runner-reexport-4', 12, 283_964_975, 20, 5, 12, 5],
      ['cache-fresh-runner-reexport-5', 10, 283_963_717, 20, 4, 12, 4],
    ]);
    // The recorded newest result is the same build's for every stage: erosion drops results, it
    // never creates new ones.
    expect(new Set(STAGES.map((stage) => stats(stage).newestResultAt))).toEqual(
      new Set(['2026-11-27T17:48:20.482770622Z']),
    );
  });

  test('health: a fresh cold build is 100%, and each fresh-runner re-export is lower', () => {
    const scores = STAGES.map((stage) => stats(stage).health);
    expect(scores).toEqual([1, 9 / 12, 7 / 12, 6 / 12, 5 / 12, 4 / 12]);
    for (let i = 1; i < scores.length; i++) {
      expect(scores[i - 1] as number).toBeGreaterThan(scores[i] as number);
    }
    expect(healthScore({ steps: 0, reusableSteps: 0 })).toBe(0);
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
      '{"layers":[{"blob":"sha256:aa"}],"records":[{"digest":"sha256:bb","layers":[{"layer":0,"createdAt":"yesterday"}]}]}',
      /^records\[0\]\.layers\[0\]\.createdAt: not a timestamp$/,
    ],
    ['a record without a digest', '{"records":[{"inputs":[]}]}', /^records\[0\]\.digest: missing$/],
    [
      'an input linking past records[]',
      '{"records":[{"digest":"sha256:aa","inputs":[[{"link":1}]]}]}',
      /^records\[0\]\.inputs\[0\]\[0\]\.link: 1 is not an index of records\[\] \(1 records\)$/,
    ],
    [
      'an input with no record to stand for it',
      '{"records":[{"digest":"sha256:aa","inputs":[[]]}]}',
      /^records\[0\]\.inputs\[0\]: not a non-empty list$/,
    ],
    [
      'inputs that loop',
      '{"records":[{"digest":"sha256:aa","inputs":[[{"link":1}]]},{"digest":"sha256:bb","inputs":[[{"link":0}]]}]}',
      /^records\[\d\]: its inputs loop back to itself$/,
    ],
  ])('a broken cacheconfig (%s) is an error naming the field', (_, text, message) => {
    expect(() => parseCacheConfig(text)).toThrow(CacheFormatError);
    expect(() => parseCacheConfig(text)).toThrow(message);
  });

  test('chained results count as results; a source is not a step', () => {
    const config = parseCacheConfig(
      '{"layers":[{"blob":"sha256:aa"},{"blob":"sha256:bb","parent":0}],"records":[{"digest":"sha256:dd","chains":[{"layers":[0,1],"createdAt":"2026-01-02T00:00:00Z"}]},{"digest":"sha256:cc"},{"digest":"sha256:ee","inputs":[[{"link":1}]]}]}',
    );
    const stats = cacheStats(
      { config: artifacts['cache-seed'].manifest.config, layers: [] },
      config,
    );
    expect(stats).toMatchObject({
      records: 3,
      recordsWithResults: 1,
      steps: 2,
      reusableSteps: 1,
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

// --- steps, matched across caches -------------------------------------------------------------

describe('steps matched by digest and inputs chain, on artifacts with known step sets', () => {
  const config = (stage: Stage): CacheConfig => parseCacheConfig(artifacts[stage].cacheconfig);
  const against = (stage: Stage) => compareWithSeed(config('cache-seed'), config(stage));

  test('the derived files are exactly what the derivation script writes from the real ones', () => {
    const derived = deriveFixtures();
    expect([...derived.keys()].sort()).toEqual(
      DERIVED.flatMap((name) => [`${name}.cacheconfig.json`, `${name}.manifest.json`]).sort(),
    );
    for (const [name, content] of derived) {
      expect(readFileSync(join(DATA_DIR, name), 'utf8'), name).toBe(content);
    }
  });

  test('the derivation erodes as BuildKit does: dropping the seed results re-export N lost gives re-export N, byte for byte', () => {
    for (const stage of STAGES.slice(1)) {
      const { derived, real } = erosionCheck(stage);
      expect(derived, stage).toBe(real);
    }
  });

  test('main after fresh-runner re-exports: the same 12 steps, some without results; the seed still has them all', () => {
    const table = STAGES.map((stage) => {
      const { kept, lost, different, own } = against(stage);
      return [
        stage,
        kept,
        lost,
        different,
        own,
        reusableWith(config(stage), [config('cache-seed')]),
      ];
    });
    expect(table).toEqual([
      ['cache-seed', 12, 0, 0, 0, 12],
      ['cache-fresh-runner-reexport-1', 9, 3, 0, 0, 12],
      ['cache-fresh-runner-reexport-2', 7, 5, 0, 0, 12],
      ['cache-fresh-runner-reexport-3', 6, 6, 0, 0, 12],
      ['cache-fresh-runner-reexport-4', 5, 7, 0, 0, 12],
      ['cache-fresh-runner-reexport-5', 4, 8, 0, 0, 12],
    ]);
    // The first steps go first: the ones a build never has to materialise when all later hit.
    expect(short(against('cache-fresh-runner-reexport-1').digests.lost)).toEqual([
      'apt',
      'workdir',
      'base',
    ]);
    // Without the seed to fall back on, what a build can reuse is main's own results.
    expect(reusableWith(config('cache-fresh-runner-reexport-5'), [])).toBe(4);
  });

  test('a branch that changed its dependencies: 3 of the seed steps kept, 9 other steps (not lost), all with results', () => {
    const result = against('derived-branch-new-dependencies');
    expect(result).toMatchObject({
      seedReusable: 12,
      kept: 3,
      lost: 0,
      different: 9,
      own: 9,
      ownReusable: 9,
    });
    expect(short(result.digests.kept).sort()).toEqual(['apt', 'base', 'workdir']);
    expect(short(result.digests.different).sort()).toEqual(
      [
        'copyDist',
        'copyNodeModules',
        'copyPackage',
        'copyContextRuntime',
        'copyContext2',
        'copyContext1',
        'npmCi',
        'prune',
        'tsc',
      ].sort(),
    );
    // Those 9 steps keep their digests in the branch: only their inputs chains differ. Counting
    // digests would have called all 12 kept.
    const branchDigests = new Set(
      config('derived-branch-new-dependencies').records.map((r) => r.digest),
    );
    for (const digest of result.digests.different) expect(branchDigests.has(digest)).toBe(true);
    // What changed: the checksums of package*.json and of the node_modules the runtime copies.
    expect(branchDigests.has(PACKAGE_FILES_CHECKSUM)).toBe(false);
    expect(branchDigests.has(NODE_MODULES_CHECKSUM)).toBe(false);
    const branch = artifacts['derived-branch-new-dependencies'];
    expect(
      cacheStats(
        parseCacheManifest(JSON.stringify(branch.manifest)),
        parseCacheConfig(branch.cacheconfig),
      ),
    ).toMatchObject({
      steps: 12,
      reusableSteps: 12,
      health: 1,
    });
  });

  test('the same, had BuildKit also given the changed steps new digests: the same verdict', () => {
    // The other way a changed step can show: its own digest differs too. Every step from
    // `npm ci` on gets a new digest; the copied package files stay as they were.
    const seed = config('cache-seed');
    const changed = structuredClone(seed);
    const renamed = new Set<number>();
    changed.records.forEach((record, index) => {
      if (record.digest.startsWith(STEP.npmCi)) renamed.add(index);
    });
    let grew = true;
    while (grew) {
      grew = false;
      changed.records.forEach((record, index) => {
        if (renamed.has(index)) return;
        if ((record.inputs ?? []).flat().some((input) => renamed.has(input.link))) {
          renamed.add(index);
          grew = true;
        }
      });
    }
    for (const index of renamed) {
      const record = changed.records[index] as CacheConfig['records'][number];
      record.digest = `${record.digest}-changed`;
    }
    const result = compareWithSeed(seed, changed);
    // COPY package*.json is still the seed's; npm ci and the 7 steps after it are not.
    expect(result).toMatchObject({ kept: 4, lost: 0, different: 8, own: 8, ownReusable: 8 });
    expect(short(result.digests.kept).sort()).toEqual(['apt', 'base', 'copyPackage', 'workdir']);
  });

  test('main after the same dependency change, eroded on fresh runners: the seed cannot cover its own steps', () => {
    const result = against('derived-main-new-dependencies-eroded');
    expect(result).toMatchObject({ kept: 0, lost: 3, different: 9, own: 9, ownReusable: 5 });
    // base, WORKDIR and apt are the seed's (it has their results); the other 9 are main's own,
    // and 4 of those lost their results: the package files' COPY, npm ci, a COPY and tsc.
    expect(
      reusableWith(config('derived-main-new-dependencies-eroded'), [config('cache-seed')]),
    ).toBe(8);
  });

  test('a match needs every input matched, through the same selector', () => {
    const parse = (records: unknown[]) => parseCacheConfig(JSON.stringify({ layers: [], records }));
    const reference = parse([
      { digest: 'sha256:src' },
      { digest: 'sha256:op', inputs: [[{ link: 0, selector: 'sha256:sel' }]] },
    ]);
    const sameSelector = parse([
      { digest: 'sha256:src' },
      { digest: 'sha256:op', inputs: [[{ link: 0, selector: 'sha256:sel' }]] },
    ]);
    const otherSelector = parse([
      { digest: 'sha256:src' },
      { digest: 'sha256:op', inputs: [[{ link: 0, selector: 'sha256:other' }]] },
    ]);
    // Any one of an input's alternatives is enough, as in BuildKit.
    const alternative = parse([
      { digest: 'sha256:x' },
      { digest: 'sha256:src' },
      {
        digest: 'sha256:op',
        inputs: [
          [
            { link: 0, selector: 'sha256:sel' },
            { link: 1, selector: 'sha256:sel' },
          ],
        ],
      },
    ]);
    expect(matchSteps(reference, sameSelector)).toEqual([[0], [1]]);
    expect(matchSteps(reference, otherSelector)).toEqual([[0], []]);
    expect(matchSteps(reference, alternative)).toEqual([[1], [2]]);
  });

  test('a chain of 20,000 records is matched without running out of stack', () => {
    const records = [
      { digest: 'sha256:0' },
      ...Array.from({ length: 19_999 }, (_, i) => ({
        digest: `sha256:${i + 1}`,
        inputs: [[{ link: i }]],
      })),
    ];
    const long = parseCacheConfig(JSON.stringify({ layers: [], records }));
    expect(matchSteps(long, long).at(-1)).toEqual([19_999]);
  });
});

describe('the schedule period: the longest gap between runs', () => {
  const days = (cron: string) => {
    const ms = schedulePeriodMs(cron);
    return ms === undefined ? undefined : ms / 86_400_000;
  };

  test.each([
    ['0 4 * * 1', 7],
    ['15 1 * * 0', 7],
    ['0 4 * * *', 1],
    ['0 */6 * * *', 0.25],
    ['* * * * *', 1 / 1440],
    // The 15th to the 1st after a 31-day month.
    ['0 4 1,15 * *', 17],
    // Day of month and day of week both restricted: either matches (the 1st, and every Monday).
    ['0 4 1 * 1', 7],
    // Weekdays and the 1st/15th, three times an hour in 03:00-05:59: Friday 05:40 to Monday 03:00.
    ['*/20 3-5 1,15 * 1-5', 2 + 21 / 24 + 20 / 1440],
    ['0 0 1 1 *', 366],
    ['0 0 29 2 *', 1461],
    ['0 0 30 2 *', undefined],
  ])('%s: %s days', (cron, expected) => {
    if (expected === undefined) expect(days(cron)).toBeUndefined();
    else expect(days(cron)).toBeCloseTo(expected, 9);
  });
});

describe('whether builds import the seed, read from the bake file', () => {
  const config = () =>
    parseConfig(`version: 1
aws: { accountId: '123456789012', region: eu-west-1 }
github: { repository: acme/shop }
images:
  - { name: web, repository: shop }
  - { name: api, repository: api }
`);
  const generated = () =>
    renderFiles(config()).find((file) => file.path === 'docker-bake.hcl')?.content ?? '';

  test('the generated file imports it for every target; without a file, the model says the same', () => {
    for (const image of ['web', 'api']) {
      expect(seedImportOf(config(), image, generated())).toEqual({
        imported: true,
        evidence: 'bake file',
      });
      expect(seedImportOf(config(), image, undefined)).toEqual({
        imported: true,
        evidence: 'generated',
      });
    }
    const disabled = config();
    disabled.seed.enabled = false;
    expect(seedImportOf(disabled, 'web', generated())).toEqual({
      imported: false,
      reason: 'disabled',
    });
  });

  test('reads the target its own cache-from, past comments, strings and other targets', () => {
    const text = [
      '# target "web" { cache-from = ["x:seed.web"] }',
      'target "api" {',
      '  cache-from = ["type=registry,ref=r/api-cache:seed.web"] // not web\'s',
      '}',
      'target "web" {',
      '  /* cache-from = ["r/c:seed.web"] */',
      '  args = { NOTE = "cache-from = [\\"r/c:seed.web\\"]" }',
      '  cache-from = [',
      `    "type=registry,ref=\${REGISTRY}/c:main.web", # main`,
      '  ]',
      '}',
    ].join('\n');
    expect(seedImportOf(config(), 'web', text)).toEqual({ imported: false, reason: 'not listed' });
    expect(seedImportOf(config(), 'api', text)).toEqual({ imported: false, reason: 'not listed' });
    const bare = 'target "web" {\n  cache-from = ["r/c:seed.web"]\n}\n';
    expect(seedImportOf(config(), 'web', bare)).toEqual({ imported: true, evidence: 'bake file' });
  });

  test('says when it cannot tell, instead of guessing', () => {
    expect(seedImportOf(config(), 'web', 'target "api" {\n}\n')).toEqual({
      imported: 'unknown',
      reason: 'the bake file has no target "web"',
    });
    expect(seedImportOf(config(), 'web', 'target "web" {\n  context = "."\n}\n')).toEqual({
      imported: 'unknown',
      reason: 'target "web" has no cache-from list',
    });
    expect(
      seedImportOf(config(), 'web', 'target "web" {\n  cache-from = concat(a, b)\n}\n'),
    ).toMatchObject({ imported: 'unknown' });
    expect(
      seedImportOf(config(), 'web', 'target "web" {\n  cache-from = [local.refs]\n}\n'),
    ).toEqual({
      imported: 'unknown',
      reason: 'the cache-from of target "web" is not a list of strings',
    });
    expect(seedImportOf(config(), 'web', 'target "web" {\n  x = "open\n')).toEqual({
      imported: 'unknown',
      reason: 'the bake file has a string that runs past the end of its line',
    });
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
const WEB_BRANCH_CACHE = 'shop-buildcache-branches';
const WORKER_BRANCH_CACHE = 'shop-worker-cache-branches';
const WORKER_CACHE = 'shop-worker-cache';
const BRANCH = 'feature/login';
/** The newest result of the real artifacts (the seed's cold build), to the millisecond. */
const SEED_BUILT = '2026-11-27T17:48:20.482Z';
/** Ten minutes after the real artifacts' newest result. */
const NOW = '2026-11-27T17:58:20Z';
/** Ten minutes after the derived artifacts' newest result (a day after the seed's). */
const NEXT_DAY = '2026-11-28T17:58:20Z';
const at = (base: string, ms: number) => new Date(Date.parse(base) + ms).toISOString();
const DAY_MS = 86_400_000;

/** A repository with cached-deploy.yml and a Dockerfile, removed after the file's tests. */
function serviceDir(config = CONFIG): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cached-deploy-doctor-')));
  writeFileSync(join(dir, 'cached-deploy.yml'), config);
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
    cacheScope({ isMainBranch: false, branch: BRANCH, tagSuffixes: ['web', 'worker'] }),
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
        ? `${cache.tag}: ${cache.stats.reusableSteps}/${cache.stats.steps}`
        : `${cache.tag}: ${cache.status}`,
    ),
    seed: image.seed?.status,
    main: image.main.status,
    problems: image.problems.map((problem) => `${problem.code} -> ${problem.action}`),
  }));

const RESEED_HOW =
  'run the seed job (a cold build that rewrites seed.<image>) with `create-cached-deploy doctor --reseed` (token in GITHUB_TOKEN), or `gh workflow run deploy.yml --ref main -f reseed=true`';
const FRESH_SEED = (image: string, age: string) =>
  `seed.${image} is a complete cold build, ${age} old; its schedule (0 4 * * 1) runs at least every 7 d, so it is stale after 14 d`;

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
    { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-fresh-runner-reexport-2' },
    // A branch's cache lives in the branch-cache repository…
    {
      repository: WEB_BRANCH_CACHE,
      tag: branchTag('web'),
      stage: 'derived-branch-new-dependencies',
    },
    // …and a tag of the same name in the cache repository (left from before, or planted) is not it.
    { repository: WEB_CACHE, tag: branchTag('web'), stage: 'cache-seed' },
    { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
    { repository: WORKER_CACHE, tag: 'main.worker', stage: 'derived-main-new-dependencies-eroded' },
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
      pushed.set(
        `${repository}:${tag}`,
        await pushArtifact(registry.url, repository, tag, artifacts[stage]),
      );
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

  test('reads main, seed and branch of every image and judges each by its steps', async () => {
    const url = registry?.url as string;
    const report = await doctor(dir, { registryUrl: url, branch: BRANCH, now: new Date(NEXT_DAY) });
    expect(report.registry).toBe(url);
    expect(report.formatVersion).toBe(2);
    expect(report.status).toBe('degraded');
    expect(summary(report)).toEqual([
      {
        image: 'web',
        status: 'healthy',
        caches: ['main.web: 7/12', 'seed.web: 12/12', `${branchTag('web')}: 12/12`],
        seed: 'fresh',
        main: 'healthy',
        problems: [],
      },
      {
        image: 'worker',
        status: 'degraded',
        caches: ['main.worker: 5/12', 'seed.worker: 12/12', `${branchTag('worker')}: missing`],
        seed: 'fresh',
        main: 'eroded',
        problems: ['main-eroded -> reseed'],
      },
    ]);
    const [web, worker] = report.images;
    expect(web?.branchCacheRepository).toBe(WEB_BRANCH_CACHE);
    expect(web?.caches.map((cache) => `${cache.kind} ${cache.repository}`)).toEqual([
      `main ${WEB_CACHE}`,
      `seed ${WEB_CACHE}`,
      `branch ${WEB_BRANCH_CACHE}`,
    ]);
    expect(web?.caches[2]?.digest).toBe(
      pushed.get(`${WEB_BRANCH_CACHE}:${branchTag('web')}`)?.digest,
    );
    expect(worker?.findings).toContain(
      `no cache for branch ${BRANCH} (shop-worker-cache-branches:${branchTag('worker')}) yet: its first build imports main and the seed`,
    );
    const main = web?.caches[0];
    expect(main).toMatchObject({
      digest: pushed.get(`${WEB_CACHE}:main.web`)?.digest,
      ageSeconds: DAY_MS / 1000 + 600,
      reusableByBuilds: 12,
      againstSeed: { seedReusable: 12, kept: 7, lost: 5, different: 0, own: 0 },
      stats: { layers: 13, records: 20, steps: 12, reusableSteps: 7, health: 7 / 12 },
    });
    expect(main?.stats?.bytes).toBe(pushed.get(`${WEB_CACHE}:main.web`)?.bytes);
    // Main lost 5 of the seed's steps: builds reuse them from the seed. The branch changed its
    // dependencies: its later steps are other steps, not lost ones.
    expect(web?.findings).toEqual([
      FRESH_SEED('web', '24 h'),
      "main lacks results for 5 of the seed's 12 reusable steps; every build imports the seed and reuses them from there, and the next build of main writes them back: nothing to do",
      'builds of main can reuse 12 of its 12 steps (100%, at least 75%)',
      "branch feature/login: of the seed's 12 reusable steps it keeps 3, and 9 are other steps here (an input changed upstream of them, so they were rebuilt, not lost); it has 9 steps of its own, 9 with results; its builds can reuse 12 of its 12 steps (100%)",
    ]);
    // Main changed its dependencies after the seed was built, then eroded: the seed cannot help.
    expect(worker?.findings).toEqual([
      FRESH_SEED('worker', '24 h'),
      'main differs from the seed in 9 steps: an input changed since the seed was built (a source file, the dependencies), so main has 9 steps of its own, 5 with results',
      "main has eroded: builds can reuse only 8 of its 12 steps (67% < 75%): 4 of main's steps lost their results and the seed does not hold them (main changed since the seed was built); reseed",
      `no cache for branch feature/login (${WORKER_BRANCH_CACHE}:${branchTag('worker')}) yet: its first build imports main and the seed`,
    ]);
    expect(report.recommendations).toEqual([
      {
        action: 'reseed',
        images: ['worker'],
        text: `reseed worker (builds of main.worker can reuse 8 of its 12 steps): ${RESEED_HOW}`,
      },
    ]);
  });

  test('the CLI prints the table and exits 2 when degraded, 0 when healthy', async () => {
    const url = registry?.url as string;
    const degraded = await runCli(['doctor', dir, '--registry-url', url, '--now', NEXT_DAY]);
    expect(degraded.stderr).toBe('');
    expect(degraded.code).toBe(2);
    expect(degraded.stdout).toContain(`Registry: ${url}`);
    expect(degraded.stdout).toMatch(
      /^ {2}cache +tag +age +layers +size +steps +reusable +health +the seed's steps$/m,
    );
    expect(degraded.stdout).toMatch(
      /^ {2}main +main\.web +24 h +13 +\S+ [KMG]?B +12 +7 +58% +7 kept, 5 lost$/m,
    );
    expect(degraded.stdout).toMatch(
      /^ {2}main +main\.worker +10 min +12 +\S+ [KMG]?B +12 +5 +42% +0 kept, 3 lost, 9 differ$/m,
    );
    expect(degraded.stdout).toMatch(/^ {2}seed +seed\.web +24 h +13 +\S+ [KMG]?B +12 +12 +100%$/m);
    expect(degraded.stdout).toContain(
      'Degraded: a seed or main cache needs attention (see above).',
    );
    expect(degraded.stdout).toContain(
      `Recommendation: reseed worker (builds of main.worker can reuse 8 of its 12 steps): ${RESEED_HOW}.`,
    );

    // A lower bar: 8/12 = 67% of main's steps passes 60%.
    const healthy = await runCli([
      'doctor',
      dir,
      '--registry-url',
      url,
      '--min-retained',
      '0.6',
      '--now',
      NEXT_DAY,
      '--json',
    ]);
    expect(healthy.code).toBe(0);
    const report = JSON.parse(healthy.stdout) as DoctorReport;
    expect(report).toMatchObject({ formatVersion: 2, status: 'healthy', minRetained: 0.6 });
    expect(report.recommendations).toEqual([]);
  });

  test('a missing repository reads as missing caches; a non-cache behind a cache tag is an error', async () => {
    const url = registry?.url as string;
    const other = await runCli(['doctor', dir, '--registry-url', `${url}/elsewhere`, '--json']);
    expect(other.code).toBe(2);
    const report = JSON.parse(other.stdout) as DoctorReport;
    expect(summary(report).map(({ seed, main, problems }) => ({ seed, main, problems }))).toEqual([
      {
        seed: 'missing',
        main: 'missing',
        problems: ['seed-missing -> reseed', 'main-missing -> build-main'],
      },
      {
        seed: 'missing',
        main: 'missing',
        problems: ['seed-missing -> reseed', 'main-missing -> build-main'],
      },
    ]);
    // The seed is missing too: main cannot "rely on the seed", and the seed's cold build is due.
    expect(report.images[0]?.findings).toEqual([
      'no seed cache (seed.web): the seed job has not run, or could not export it, so nothing guards main against erosion; reseed',
      'no main cache (main.web): builds of the main branch start cold until one exports it',
    ]);
    expect(report.recommendations.map((each) => each.text)).toEqual([
      `reseed web, worker (no seed.web; no seed.worker): ${RESEED_HOW}`,
      'build main (push to it, or re-run its last workflow run) to write the main cache of web, worker',
    ]);

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
      // Main is not judged against a seed that could not be read.
      const webSection = broken.stdout.slice(0, broken.stdout.indexOf('\nworker ('));
      expect(webSection).toContain('web (shop-buildcache): error');
      expect(webSection).not.toContain('main has eroded');
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
        ['main.web: 7/12', 'seed.web: 12/12'],
        ['main.worker: 5/12', 'seed.worker: 12/12'],
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
      `cannot read main.web: http://127.0.0.1:${port}/v2/shop-buildcache/manifests/main.web: cannot reach http://127.0.0.1:${port}: ECONNREFUSED`,
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

  const ecr = (now = NOW) => ({ ecrClientConfig: server.clientConfig(), now: new Date(now) });

  test('healthy right after a reseed: main is the seed; one fresh-runner re-export too', async () => {
    seedEcr([
      { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-fresh-runner-reexport-1' },
    ]);
    const report = await doctor(dir, ecr());
    expect(report.registry).toBe('ECR 123456789012 (eu-west-1)');
    expect(report.status).toBe('healthy');
    expect(summary(report).map(({ caches, status }) => ({ caches, status }))).toEqual([
      { status: 'healthy', caches: ['main.web: 12/12', 'seed.web: 12/12'] },
      { status: 'healthy', caches: ['main.worker: 9/12', 'seed.worker: 12/12'] },
    ]);
    expect(report.images[0]?.findings).toEqual([
      FRESH_SEED('web', '10 min'),
      "main.web keeps all 12 of the seed's reusable steps",
      'builds of main can reuse 12 of its 12 steps (100%, at least 75%)',
    ]);
    // The recorded artifacts, as BuildKit pushed them: real sizes.
    expect(report.images[0]?.caches[0]?.stats?.bytes).toBe(283_966_712);
    expect(server.callCount('BatchGetImage')).toBe(4);
    expect(server.callCount('GetDownloadUrlForLayer')).toBe(4);
    expect(server.unexpectedErrors).toEqual([]);
  });

  test('main missing steps the seed has, at every measured stage: healthy, nothing to do (CLI, SDK endpoint variable)', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_ECR', server.endpoint);
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    try {
      const results: [Stage, number, string | undefined, string | undefined][] = [];
      for (const stage of STAGES.slice(1)) {
        seedEcr([
          { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
          { repository: WEB_CACHE, tag: 'main.web', stage },
          { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
          { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
        ]);
        const { code, stdout } = await runCli(['doctor', dir, '--json', '--now', NOW]);
        const report = JSON.parse(stdout) as DoctorReport;
        const web = report.images[0];
        results.push([stage, code, web?.main.status, web?.findings[1]]);
        expect(report.recommendations).toEqual([]);
      }
      const lacks = (n: number) =>
        `main lacks results for ${n} of the seed's 12 reusable steps; every build imports the seed and reuses them from there, and the next build of main writes them back: nothing to do`;
      expect(results).toEqual([
        ['cache-fresh-runner-reexport-1', 0, 'healthy', lacks(3)],
        ['cache-fresh-runner-reexport-2', 0, 'healthy', lacks(5)],
        ['cache-fresh-runner-reexport-3', 0, 'healthy', lacks(6)],
        ['cache-fresh-runner-reexport-4', 0, 'healthy', lacks(7)],
        ['cache-fresh-runner-reexport-5', 0, 'healthy', lacks(8)],
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
    expect(summary(noSeed).map(({ seed, problems }) => ({ seed, problems }))).toEqual([
      { seed: 'missing', problems: ['seed-missing -> reseed'] },
      { seed: 'fresh', problems: [] },
    ]);
    expect(noSeed.status).toBe('degraded');
    expect(noSeed.images[0]?.findings).toEqual([
      'no seed cache (seed.web): the seed job has not run, or could not export it, so nothing guards main against erosion; reseed',
      'builds of main can reuse 12 of its 12 steps (100%, at least 75%)',
    ]);
    expect(noSeed.recommendations.map((each) => each.text)).toEqual([
      `reseed web (no seed.web): ${RESEED_HOW}`,
    ]);

    // Only main missing, the seed in place: build main (it imports the seed meanwhile).
    seedEcr([
      { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
    ]);
    const noMain = await doctor(dir, ecr());
    expect(summary(noMain).map(({ main }) => main)).toEqual(['missing', 'healthy']);
    expect(noMain.images[0]?.findings).toEqual([
      FRESH_SEED('web', '10 min'),
      'no main cache (main.web): builds of the main branch rely on the seed alone until one exports it',
    ]);
    expect(noMain.recommendations.map((each) => each.action)).toEqual(['build-main']);
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

  test('a seed that lost steps (built from a cache, not cold): degraded, reseed', async () => {
    seedEcr([
      { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-fresh-runner-reexport-1' },
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
    ]);
    const report = await doctor(dir, ecr());
    expect(report.status).toBe('degraded');
    expect(summary(report)[0]).toMatchObject({
      status: 'degraded',
      seed: 'incomplete',
      main: 'healthy',
      problems: ['seed-incomplete -> reseed'],
    });
    expect(report.images[0]?.findings[0]).toBe(
      'seed.web keeps results for only 9 of its 12 steps (75%): it was not written by a cold build (a cold build keeps them all); reseed',
    );
    expect(report.recommendations.map((each) => each.text)).toEqual([
      `reseed web (seed.web lacks results for 3 of its 12 steps): ${RESEED_HOW}`,
    ]);
  });

  test('the seed against its schedule: past two periods is stale, exactly two is not (--now)', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_ECR', server.endpoint);
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'test');
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'test');
    try {
      seedEcr([
        { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
        { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-seed' },
        { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
        { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
      ]);
      // The default schedule runs weekly: stale after 14 days.
      const run = async (now: string) => {
        const { code, stdout } = await runCli(['doctor', dir, '--json', '--now', now]);
        return { code, report: JSON.parse(stdout) as DoctorReport };
      };
      const below = await run(at(SEED_BUILT, 14 * DAY_MS - 1));
      const exactly = await run(at(SEED_BUILT, 14 * DAY_MS));
      const past = await run(at(SEED_BUILT, 14 * DAY_MS + 1));
      const yearLater = await run(at(SEED_BUILT, 365 * DAY_MS));
      expect([below, exactly, past, yearLater].map(({ code }) => code)).toEqual([0, 0, 2, 2]);
      expect(exactly.report.images[0]?.seed).toEqual({
        status: 'fresh',
        schedule: '0 4 * * 1',
        periodSeconds: 7 * 86_400,
        staleAfterSeconds: 14 * 86_400,
        ageSeconds: 14 * 86_400,
        imported: { imported: true, evidence: 'generated' },
      });
      expect(past.report.images[0]?.seed?.status).toBe('stale');
      // A year on, main is as old as the seed: it is the seed that stopped being refreshed.
      const web = yearLater.report.images[0];
      expect(web?.problems).toEqual([
        { code: 'seed-stale', action: 'reseed', cause: 'seed.web is 365 d old, stale after 14 d' },
      ]);
      expect(web?.findings[0]).toBe(
        "seed.web is stale: 365 d old, more than twice the 7 d between runs of its schedule (0 4 * * 1), so the seed job has stopped refreshing it; reseed, and check the job's runs",
      );
      expect(yearLater.report.recommendations.map((each) => each.text)).toEqual([
        `reseed web, worker (seed.web is 365 d old, stale after 14 d; seed.worker is 365 d old, stale after 14 d): ${RESEED_HOW}`,
      ]);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  test('a daily schedule makes the seed stale after two days; a schedule that never runs is a problem', async () => {
    seedEcr([
      { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-seed' },
    ]);
    const daily = serviceDir(`${CONFIG}seed: { schedule: "0 4 * * *" }\n`);
    const never = serviceDir(`${CONFIG}seed: { schedule: "0 0 30 2 *" }\n`);
    try {
      const fresh = await doctor(daily, ecr(at(SEED_BUILT, 2 * DAY_MS)));
      const stale = await doctor(daily, ecr(at(SEED_BUILT, 3 * DAY_MS)));
      expect(fresh.images.map((image) => image.seed?.status)).toEqual(['fresh', 'fresh']);
      expect(stale.images[0]?.findings[0]).toBe(
        "seed.web is stale: 3 d old, more than twice the 24 h between runs of its schedule (0 4 * * *), so the seed job has stopped refreshing it; reseed, and check the job's runs",
      );
      const unscheduled = await doctor(never, ecr());
      expect(unscheduled.images[0]?.seed?.status).toBe('unscheduled');
      expect(unscheduled.images[0]?.seed?.periodSeconds).toBeUndefined();
      expect(unscheduled.images[0]?.findings[0]).toBe(
        'seed.schedule (0 0 30 2 *) never runs, so nothing refreshes seed.web: fix the schedule in cached-deploy.yml, and reseed by hand meanwhile',
      );
      expect(unscheduled.status).toBe('degraded');
    } finally {
      rmSync(daily, { recursive: true, force: true });
      rmSync(never, { recursive: true, force: true });
    }
  });

  test('builds that do not import the seed: main lost steps nothing restores; regenerate', async () => {
    seedEcr([
      { repository: WEB_CACHE, tag: 'seed.web', stage: 'cache-seed' },
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-fresh-runner-reexport-3' },
      { repository: WORKER_CACHE, tag: 'seed.worker', stage: 'cache-seed' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-fresh-runner-reexport-3' },
    ]);
    const edited = serviceDir();
    try {
      // The generated bake file, with web's seed import removed by hand.
      const config = parseConfig(CONFIG);
      const bake =
        renderFiles(config).find((file) => file.path === 'docker-bake.hcl')?.content ?? '';
      const seedImport = `    "type=registry,ref=\${REGISTRY}/shop-buildcache:seed.web",\n`;
      expect(bake).toContain(seedImport);
      writeFileSync(join(edited, 'docker-bake.hcl'), bake.replace(seedImport, ''));
      const report = await doctor(edited, ecr());
      expect(summary(report).map(({ status, problems }) => ({ status, problems }))).toEqual([
        {
          status: 'degraded',
          problems: ['seed-not-imported -> regenerate', 'main-eroded -> regenerate'],
        },
        { status: 'healthy', problems: [] },
      ]);
      expect(report.images[0]?.seed?.imported).toEqual({ imported: false, reason: 'not listed' });
      expect(report.images[1]?.seed?.imported).toEqual({ imported: true, evidence: 'bake file' });
      expect(report.images[0]?.findings).toEqual([
        'builds do not import seed.web: the cache-from of target "web" in docker-bake.hcl does not list it (edited by hand, or written by an older version), so nothing restores what main loses; regenerate',
        FRESH_SEED('web', '10 min'),
        'main has eroded: builds can reuse only 6 of its 12 steps (50% < 75%), and nothing restores the other 6: builds do not import a seed',
      ]);
      expect(report.recommendations.map((each) => each.text)).toEqual([
        'regenerate docker-bake.hcl (docker-bake.hcl does not import seed.web, builds of main.web can reuse 6 of its 12 steps): run `create-cached-deploy generate` and commit it, so every build imports the seed',
      ]);
    } finally {
      rmSync(edited, { recursive: true, force: true });
    }
  });

  test('the seed disabled: nothing restores main, so its lost steps count; enable the seed', async () => {
    seedEcr([
      { repository: WEB_CACHE, tag: 'main.web', stage: 'cache-fresh-runner-reexport-3' },
      { repository: WORKER_CACHE, tag: 'main.worker', stage: 'cache-fresh-runner-reexport-1' },
    ]);
    const disabled = serviceDir(`${CONFIG}seed: { enabled: false }\n`);
    try {
      const report = await doctor(disabled, ecr());
      expect(report.seedEnabled).toBe(false);
      expect(summary(report)).toEqual([
        {
          image: 'web',
          status: 'degraded',
          caches: ['main.web: 6/12'],
          seed: undefined,
          main: 'eroded',
          problems: ['main-eroded -> enable-seed'],
        },
        {
          image: 'worker',
          status: 'healthy',
          caches: ['main.worker: 9/12'],
          seed: undefined,
          main: 'healthy',
          problems: [],
        },
      ]);
      expect(report.images[1]?.findings).toEqual([
        'the seed is disabled (seed.enabled: false): main can erode on fresh runners and nothing restores it; enable the seed',
        'builds of main can reuse 9 of its 12 steps (75%, at least 75%)',
      ]);
      expect(report.recommendations.map((each) => each.text)).toEqual([
        'enable the seed for web (builds of main.web can reuse 6 of its 12 steps): set seed.enabled: true in cached-deploy.yml, run `create-cached-deploy generate` and commit',
      ]);
    } finally {
      rmSync(disabled, { recursive: true, force: true });
    }
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

  function place(mainStage: Stage, seedStage: Stage = 'cache-seed'): void {
    ecrServer.reset();
    for (const [repository, image] of [
      [WEB_CACHE, 'web'],
      [WORKER_CACHE, 'worker'],
    ] as const) {
      ecrServer.state.createRepository(repository);
      for (const [tag, stage] of [
        [`seed.${image}`, seedStage],
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

  const reseedOptions = (token?: string, now = NOW) => ({
    ecrClientConfig: ecrServer.clientConfig(),
    reseed: true,
    now: new Date(now),
    githubApiUrl: `${githubUrl}/api/v3/`,
    ...(token ? { githubToken: token } : {}),
  });

  test('a stale seed triggers one workflow_dispatch of the deploy workflow on main', async () => {
    place('cache-seed');
    requests.length = 0;
    answer = { status: 204, body: '' };
    const report = await doctor(dir, reseedOptions('ghs_test-token', at(SEED_BUILT, 15 * DAY_MS)));
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

  test('main missing steps the seed has triggers nothing: the next build of main heals it', async () => {
    place('cache-fresh-runner-reexport-3');
    requests.length = 0;
    const report = await doctor(dir, reseedOptions('ghs_test-token'));
    expect(report.status).toBe('healthy');
    expect(report.reseed).toEqual({ status: 'not-needed' });
    expect(requests).toEqual([]);
  });

  test('main missing a build triggers nothing either: building main is not a reseed', async () => {
    place('cache-seed');
    ecrServer.state.untagImage(WEB_CACHE, 'main.web');
    requests.length = 0;
    const report = await doctor(dir, reseedOptions('ghs_test-token'));
    expect(report.reseed).toEqual({ status: 'not-needed' });
    expect(requests).toEqual([]);
  });

  test('the CLI takes GITHUB_TOKEN; a refused dispatch exits 1 with GitHub’s reason', async () => {
    // A seed built from a cache: it lacks steps, so a reseed is due.
    place('cache-seed', 'cache-fresh-runner-reexport-1');
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
