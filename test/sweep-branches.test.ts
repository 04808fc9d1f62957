/**
 * The branch sweep (`prune-ecr-cache.mjs sweep-branches`): the br-* cache tags of branches that no
 * longer exist, judged against a real git remote (a bare repository whose branches are created
 * and deleted, listed with `git ls-remote --heads`), deleted from the ECR test server through the
 * real @aws-sdk/client-ecr, with faults. Also: the pruner's slug and tag reading agree with
 * src/model/cache-tags.ts, and a listing that failed deletes nothing.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { IMAGE_NAME } from '../src/config/schema.js';
import {
  BRANCH_SCOPE_PREFIX,
  branchSlug,
  cacheScope,
  cacheTag,
  LOCAL_CACHE_SCOPE,
  MAX_TAG_LENGTH,
  maxSlugLength,
  PLATFORM_TAG_SUFFIX,
  splitBranchCacheTag,
} from '../src/model/cache-tags.js';
import { PRUNE_SCRIPT_TEMPLATE, renderPruneScript } from '../src/render/prune-script.js';
import { anyName } from './support/branch-names.js';
import {
  buildCacheManifest,
  type CallRecord,
  type EcrTestServer,
  startEcrServer,
} from './support/ecr-server.js';
import { runMain } from './support/run-main.js';
import { git, PROJECT_ROOT } from './support/temp-repo.js';

// --- the pruner, typed for the tests (it is plain JS) ---

interface Entry {
  repository?: string;
  tag?: string;
  digest?: string;
  why?: string;
  reason?: string;
  error?: string;
}
interface Summary {
  dryRun: boolean;
  branches: number;
  deleted: Entry[];
  skipped: Entry[];
  errors: Entry[];
  bytesReclaimed: number;
}
type Call = (input: Record<string, unknown>) => Promise<Record<string, unknown>>;
interface EcrPort {
  describeImages: Call;
  batchGetImage: Call;
  batchDeleteImage: Call;
}
interface BranchIndex {
  size: number;
}
interface Pruner {
  BRANCH_SCOPE_PREFIX: string;
  MAX_TAG_LENGTH: number;
  LOCAL_CACHE_SCOPE: string;
  IMAGE_NAME: RegExp;
  PLATFORM_TAG_SUFFIX: RegExp;
  sdkPort(options?: Record<string, unknown>): Promise<EcrPort>;
  branchSlug(branch: string | Uint8Array, maxLength: number): string;
  splitBranchCacheTag(
    tag: string,
    imageNames: readonly string[],
  ): { slug: string; image: string; platform?: string }[];
  branchIndex(names: Uint8Array[]): BranchIndex;
  slugOfExistingBranch(slug: string, index: BranchIndex): boolean;
  readBranchesFile(path: string, options?: { maxBytes?: number }): Buffer;
  parseBranchListing(buffer: Buffer, options: { mainBranch: string; source?: string }): Buffer[];
  selectStaleBranchTags(input: {
    images: Record<string, unknown>[];
    imageNames: string[];
    branches: BranchIndex;
    graceMs: number;
    now: number;
  }): { remove: Entry[]; skipped: Entry[] };
  sweepBranchTags(
    ecr: EcrPort,
    options: {
      targets: { repository: string; images: string[] }[];
      branches: Uint8Array[];
      graceHours?: number;
      dryRun?: boolean;
      now?: number;
    },
  ): Promise<Summary>;
  main(
    argv: string[],
    io: {
      ecr?: EcrPort;
      stdout?: (text: string) => void;
      stderr?: (text: string) => void;
      env?: Record<string, string>;
    },
  ): Promise<number>;
}

const pruner = (await import(PRUNE_SCRIPT_TEMPLATE.href)) as Pruner;

// --- the configuration under test: two images, each with its own branch-cache repository ---

const API_REPO = 'acme/api-buildcache-branches';
const WORKER_REPO = 'acme/worker-buildcache-branches';
/** As the workflow sees them: the slug's length limit comes from the longest of all. */
const IMAGE_NAMES = ['api', 'worker-jobs'];
const MAIN = 'main';
const HOUR = 3_600_000;

const scopeOf = (branch: string) =>
  cacheScope({ isMainBranch: false, branch, tagSuffixes: IMAGE_NAMES });
const tagOf = (branch: string, image: string, platform?: string) =>
  `${cacheTag(scopeOf(branch), image)}${platform ? `.${platform}` : ''}`;

let server: EcrTestServer;
let scratch: string;

beforeAll(async () => {
  server = await startEcrServer();
  scratch = mkdtempSync(join(tmpdir(), 'sweep-branches-'));
});

afterAll(async () => {
  await server.close();
  rmSync(scratch, { recursive: true, force: true });
});

beforeEach(() => {
  server.reset();
  server.state.createRepository(API_REPO);
  server.state.createRepository(WORKER_REPO);
});

afterEach(() => {
  expect(server.unexpectedErrors).toEqual([]);
  checkCallLimits(server.calls);
});

/** ECR's limits, and nothing but reads and deletes by tag. */
function checkCallLimits(calls: readonly CallRecord[]) {
  for (const call of calls) {
    expect(['DescribeImages', 'BatchDeleteImage']).toContain(call.op);
    const ids = call.request.imageIds as { imageDigest?: string; imageTag?: string }[] | undefined;
    if (call.op === 'DescribeImages' && ids === undefined) {
      expect(call.request.maxResults).toBe(1000);
      expect(call.request.filter).toEqual({ tagStatus: 'TAGGED' });
    } else {
      expect(ids?.length).toBeGreaterThanOrEqual(1);
      expect(ids?.length).toBeLessThanOrEqual(100);
      // By tag only: a digest would delete every tag of the image.
      for (const id of ids ?? []) expect(Object.keys(id)).toEqual(['imageTag']);
    }
  }
}

/** A retry strategy like the SDK's standard one, with a 1 ms backoff (see prune.test.ts). */
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

/** Pushes a cache artifact under `tags`, `hoursAgo` hours ago; returns its digest. */
let salt = 0;
function push(repository: string, tags: string[], hoursAgo = 48, bytes = 1_000_000): string {
  return server.state.putImage(repository, {
    manifest: buildCacheManifest({ salt: `s${++salt}`, layerSizes: [bytes] }),
    pushedAt: new Date(Date.now() - hoursAgo * HOUR),
    tags,
  });
}

const tagsIn = (repository: string) =>
  server.state
    .images(repository)
    .flatMap((image) => [...image.tags])
    .sort();

async function sweep(argv: string[], maxAttempts = 4, env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await pruner.main(['sweep-branches', ...argv], {
    env,
    ecr: await port(maxAttempts),
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
  });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

// --- a real git remote ---

interface Remote {
  /** The bare repository (what CI_REPOSITORY_URL or origin points at). */
  url: string;
  work: string;
}

let remoteCount = 0;
function makeRemote(branches: string[]): Remote {
  const root = join(scratch, `remote-${++remoteCount}`);
  mkdirSync(root);
  const url = join(root, 'origin.git');
  const work = join(root, 'work');
  git(root, ['init', '-q', '--bare', '-b', MAIN, url]);
  git(root, ['init', '-q', '-b', MAIN, work]);
  writeFileSync(join(work, 'README'), 'x\n');
  git(work, ['add', 'README']);
  git(work, ['-c', 'commit.gpgsign=false', 'commit', '-q', '-m', 'first']);
  for (const branch of branches) if (branch !== MAIN) git(work, ['branch', branch]);
  git(work, ['push', '-q', url, '--all']);
  return { url, work };
}

function createBranches(remote: Remote, branches: string[]) {
  for (const branch of branches) git(remote.work, ['branch', branch]);
  git(remote.work, ['push', '-q', remote.url, ...branches.map((b) => `refs/heads/${b}`)]);
}

function deleteBranches(remote: Remote, branches: string[]) {
  git(remote.work, ['push', '-q', remote.url, '--delete', ...branches]);
}

/** `git ls-remote --heads <remote> > file`, run by bash as a CI job would. */
function listBranches(remote: Remote, format: 'ls-remote' | 'names'): Promise<string> {
  const file = join(scratch, `branches-${++remoteCount}.txt`);
  const script =
    format === 'ls-remote'
      ? 'git ls-remote --heads "$REMOTE" > "$FILE"'
      : 'git ls-remote --heads "$REMOTE" | sed "s|^[^\t]*\trefs/heads/||" > "$FILE"';
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-eo', 'pipefail', '-c', script], {
      env: {
        PATH: process.env.PATH,
        REMOTE: remote.url,
        FILE: file,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(file) : reject(new Error(`ls-remote failed: ${stderr}`)),
    );
  });
}

// ---------------------------------------------------------------------------------------------

describe('the pruner reads slugs and tags as src/model/cache-tags.ts does', () => {
  it('shares the constants', () => {
    expect(pruner.BRANCH_SCOPE_PREFIX).toBe(BRANCH_SCOPE_PREFIX);
    expect(pruner.MAX_TAG_LENGTH).toBe(MAX_TAG_LENGTH);
    expect(pruner.LOCAL_CACHE_SCOPE).toBe(LOCAL_CACHE_SCOPE);
    expect(pruner.IMAGE_NAME.source).toBe(IMAGE_NAME.source);
    expect(pruner.PLATFORM_TAG_SUFFIX.source).toBe(PLATFORM_TAG_SUFFIX.source);
  });

  it('computes the same slug over the branch names the slug properties use, at every length limit', () => {
    const limits = fc.oneof(
      fc.constantFrom(
        maxSlugLength(['api']),
        maxSlugLength(IMAGE_NAMES),
        maxSlugLength(['a'.repeat(32)]),
      ),
      fc.integer({ min: 60, max: 124 }),
    );
    fc.assert(
      fc.property(anyName, limits, (name, limit) => {
        const slug = branchSlug(name, limit);
        expect(pruner.branchSlug(name, limit), JSON.stringify(name)).toBe(slug);
        // From the raw bytes, as a listing holds them, too.
        expect(pruner.branchSlug(Buffer.from(name, 'utf8'), limit)).toBe(slug);
      }),
      { numRuns: 3000 },
    );
  });

  it('knows every slug an existing branch can have, and none of another branch', () => {
    fc.assert(
      fc.property(anyName, anyName, fc.integer({ min: 60, max: 124 }), (name, other, limit) => {
        fc.pre(name !== other);
        const index = pruner.branchIndex([Buffer.from(name, 'utf8')]);
        expect(pruner.slugOfExistingBranch(branchSlug(name, limit), index)).toBe(true);
        expect(pruner.slugOfExistingBranch(branchSlug(other, limit), index)).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('splits tags the same way, with and without a platform suffix', () => {
    const imageName = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,7}$/);
    const platform = fc.constantFrom(
      'linux-amd64',
      'linux-arm64',
      'linux-arm-v7',
      'windows-amd64',
      'Linux-amd64',
      'linux',
      'linux-arm64-v8-x',
      '',
    );
    const tag = fc
      .tuple(anyName, fc.array(imageName, { minLength: 1, maxLength: 3 }), fc.nat(), platform)
      .map(([branch, images, pick, suffix]) => {
        const image = images[pick % images.length] as string;
        const scope = cacheScope({ isMainBranch: false, branch, tagSuffixes: images });
        return { tag: `${cacheTag(scope, image)}${suffix ? `.${suffix}` : ''}`, images };
      });
    const junk = fc.record({
      tag: fc.oneof(
        fc.string({ maxLength: 140 }),
        fc.constantFrom('main.api', 'seed.api', 'br-', 'br-.api', 'br-x', 'latest', 'br-x..api'),
      ),
      images: fc.constant(['api', 'x', 'linux-amd64']),
    });
    fc.assert(
      fc.property(fc.oneof(tag, junk), ({ tag: text, images }) => {
        expect(pruner.splitBranchCacheTag(text, images)).toEqual(splitBranchCacheTag(text, images));
      }),
      { numRuns: 3000 },
    );
    // Readings, spelled out.
    expect(splitBranchCacheTag('br-a.api.linux-amd64', ['api', 'linux-amd64'])).toEqual([
      { slug: 'a', image: 'api', platform: 'linux-amd64' },
      { slug: 'a.api', image: 'linux-amd64' },
    ]);
    expect(splitBranchCacheTag('main.api', ['api'])).toEqual([]);
    expect(splitBranchCacheTag('br-x.web', ['api'])).toEqual([]);
  });
});

describe('sweep-branches against a real git remote', () => {
  /** Tag-safe and longer than the slug limit of all images (113), shorter than api's alone (121). */
  const longSafe = (char: string) => char.repeat(118);
  const LIVING = [MAIN, 'feat/a', 'feat-x', 'ü/🚀', 'release/2.0', longSafe('a'), 'Main'];
  const GONE = ['feat/x', 'old/feature', 'gone-b', longSafe('b'), 'seed', 'ü/🚂'];

  /** Seeds both repositories; returns what must remain and what must go. */
  function seed() {
    const keep: Record<string, string[]> = { [API_REPO]: [], [WORKER_REPO]: [] };
    const gone: Record<string, string[]> = { [API_REPO]: [], [WORKER_REPO]: [] };
    const add = (repo: string, tags: string[], stays: boolean, hoursAgo = 48) => {
      push(repo, tags, hoursAgo);
      (stays ? keep : gone)[repo]?.push(...tags);
    };
    for (const [repo, image] of [
      [API_REPO, 'api'],
      [WORKER_REPO, 'worker-jobs'],
    ] as const) {
      for (const branch of LIVING.filter((b) => b !== MAIN))
        add(repo, [tagOf(branch, image)], true);
      for (const branch of GONE) add(repo, [tagOf(branch, image)], false);
      // One cache per platform.
      add(repo, [tagOf('feat/a', image, 'linux-arm64')], true);
      add(repo, [tagOf('old/feature', image, 'linux-arm64')], false);
      // A deleted branch whose cache was pushed a moment ago: inside the grace period.
      add(repo, [tagOf('just-gone', image)], true, 1);
      // What a branch could plant here, and what is no branch's: never touched.
      add(repo, ['main.api', 'seed.api', 'latest', `${LOCAL_CACHE_SCOPE}.${image}`], true);
      add(repo, [tagOf('old/feature', 'web')], true);
    }
    // An image two tags share: the stale tag goes, the image stays with the living one.
    const shared = push(API_REPO, [tagOf('gone-c', 'api'), tagOf('release/3.0', 'api')]);
    keep[API_REPO]?.push(tagOf('release/3.0', 'api'));
    gone[API_REPO]?.push(tagOf('gone-c', 'api'));
    return { keep, gone, shared };
  }

  const argv = (file: string, extra: string[] = []) => [
    '--repository',
    API_REPO,
    '--image',
    'api',
    '--repository',
    WORKER_REPO,
    '--image',
    'worker-jobs',
    '--branches-file',
    file,
    '--main-branch',
    MAIN,
    '--grace-hours',
    '6',
    '--json',
    ...extra,
  ];

  it.each(['ls-remote', 'names'] as const)(
    'deletes exactly the tags of deleted branches (listing: %s), dry run first, then idempotent',
    async (format) => {
      const remote = makeRemote([...LIVING, ...GONE, 'gone-c', 'release/3.0', 'just-gone']);
      deleteBranches(remote, [...GONE, 'gone-c', 'just-gone']);
      const file = await listBranches(remote, format);
      const { keep, gone, shared } = seed();
      const before = { [API_REPO]: tagsIn(API_REPO), [WORKER_REPO]: tagsIn(WORKER_REPO) };
      const staleTags = new Set(Object.values(gone).flat());
      // The bytes of every image whose tags are all stale: ECR deletes it with its last tag.
      const reclaimable = [API_REPO, WORKER_REPO]
        .flatMap((repo) => server.state.images(repo))
        .filter((image) => [...image.tags].every((tag) => staleTags.has(tag)))
        .reduce((sum, image) => sum + image.sizeInBytes, 0);

      const dry = await sweep(argv(file, ['--dry-run']));
      expect(dry.stderr).toBe('');
      expect(dry.code).toBe(0);
      const planned = JSON.parse(dry.stdout) as Summary;
      expect(planned.branches).toBe(LIVING.length + 1);
      expect(tagsIn(API_REPO)).toEqual(before[API_REPO]);
      expect(tagsIn(WORKER_REPO)).toEqual(before[WORKER_REPO]);
      expect(server.callCount('BatchDeleteImage')).toBe(0);

      const real = await sweep(argv(file));
      expect(real.code).toBe(0);
      const summary = JSON.parse(real.stdout) as Summary;
      expect(summary.errors).toEqual([]);
      for (const repo of [API_REPO, WORKER_REPO]) {
        const deleted = summary.deleted.filter((e) => e.repository === repo).map((e) => e.tag);
        expect(deleted.sort()).toEqual([...(gone[repo] ?? [])].sort());
        expect(tagsIn(repo)).toEqual([...(keep[repo] ?? [])].sort());
        // The dry run said exactly this.
        expect(
          planned.deleted
            .filter((e) => e.repository === repo)
            .map((e) => e.tag)
            .sort(),
        ).toEqual(deleted);
      }
      for (const entry of summary.deleted) expect(entry.why).toBe('branch-gone');
      expect(server.state.image(API_REPO, shared)?.tags).toEqual(
        new Set([tagOf('release/3.0', 'api')]),
      );
      // Images that lost their last tag are gone; their bytes count, the shared one's do not.
      expect(summary.bytesReclaimed).toBe(reclaimable);
      expect(reclaimable).toBeGreaterThan(0);
      expect(planned.bytesReclaimed).toBe(summary.bytesReclaimed);
      const reasons = new Map(summary.skipped.map((e) => [`${e.repository} ${e.tag}`, e.reason]));
      expect(reasons.get(`${API_REPO} ${tagOf('just-gone', 'api')}`)).toBe('younger-than-grace');
      expect(reasons.get(`${API_REPO} ${LOCAL_CACHE_SCOPE}.api`)).toBe('local-scope');
      expect(reasons.get(`${API_REPO} ${tagOf('feat/a', 'api')}`)).toBe('branch-exists');
      expect(reasons.get(`${API_REPO} ${tagOf('old/feature', 'web')}`)).toBe('outside-scope');
      expect(reasons.has(`${API_REPO} main.api`)).toBe(false);

      const again = await sweep(argv(file));
      expect((JSON.parse(again.stdout) as Summary).deleted).toEqual([]);
    },
  );

  it('keeps a living branch whatever image names the sweep is given (the slug limit differs)', async () => {
    const remote = makeRemote([longSafe('a')]);
    const file = await listBranches(remote, 'names');
    // The workflow's tag: hashed, because worker-jobs leaves the slug 113 characters.
    const tag = tagOf(longSafe('a'), 'api');
    expect(tag).toMatch(/-[0-9a-f]{16}\.api$/);
    // With api alone the limit is 121: the exact slug would be the plain name.
    expect(branchSlug(longSafe('a'), maxSlugLength(['api']))).toBe(longSafe('a'));
    push(API_REPO, [tag]);
    const result = await sweep([
      '--repository',
      API_REPO,
      '--image',
      'api',
      '--branches-file',
      file,
      '--main-branch',
      MAIN,
      '--json',
    ]);
    expect((JSON.parse(result.stdout) as Summary).deleted).toEqual([]);
    expect(tagsIn(API_REPO)).toEqual([tag]);
  });

  it('keeps the cache of a branch created after the listing (the grace period), and of one a new build moved', async () => {
    const remote = makeRemote(['feat/old']);
    const file = await listBranches(remote, 'ls-remote');
    // Created, built and re-created after the listing was taken.
    createBranches(remote, ['feat/new']);
    push(API_REPO, [tagOf('feat/new', 'api')], 0.1);
    push(API_REPO, [tagOf('feat/recreated', 'api')], 30);
    // Between the listing and the delete, a build of the re-created branch moves its tag.
    let moved = false;
    server.onCall((op, request) => {
      if (op === 'DescribeImages' && request.imageIds && !moved) {
        moved = true;
        push(API_REPO, [tagOf('feat/recreated', 'api')], 0);
      }
    });
    const result = await sweep([
      '--repository',
      API_REPO,
      '--image',
      'api',
      '--branches-file',
      file,
      '--main-branch',
      MAIN,
      '--json',
    ]);
    const summary = JSON.parse(result.stdout) as Summary;
    expect(summary.deleted).toEqual([]);
    expect(summary.skipped.map((e) => [e.tag, e.reason])).toEqual(
      expect.arrayContaining([
        [tagOf('feat/new', 'api'), 'younger-than-grace'],
        [tagOf('feat/recreated', 'api'), 'moved'],
      ]),
    );
    expect(tagsIn(API_REPO)).toEqual([tagOf('feat/new', 'api'), tagOf('feat/recreated', 'api')]);
  });
});

describe('selectStaleBranchTags', () => {
  const now = Date.UTC(2026, 10, 29);
  const image = (tags: string[], hoursAgo = 48) => ({
    imageDigest: `sha256:${'a'.repeat(64)}`,
    imageTags: tags,
    imagePushedAt: new Date(now - hoursAgo * HOUR).toISOString(),
  });
  const select = (tags: string[], branches: string[], hoursAgo?: number) =>
    pruner.selectStaleBranchTags({
      images: [image(tags, hoursAgo)],
      imageNames: ['api', 'linux-amd64'],
      branches: pruner.branchIndex(branches.map((name) => Buffer.from(name))),
      graceMs: 6 * HOUR,
      now,
    });

  it('deletes a tag that reads more than one way only when every reading is stale', () => {
    const tag = 'br-a.api.linux-amd64';
    expect(select([tag], ['main', 'a']).remove).toEqual([]);
    expect(select([tag], ['main', 'a.api']).remove).toEqual([]);
    expect(select([tag], ['main']).remove.map((entry) => entry.tag)).toEqual([tag]);
  });

  it('never selects main.*, seed.*, the local scope, or a tag pushed at an unknown time', () => {
    const { remove, skipped } = select(
      ['main.api', 'seed.api', `${LOCAL_CACHE_SCOPE}.api`, 'latest', 'br-x.web'],
      ['main'],
    );
    expect(remove).toEqual([]);
    expect(skipped.map((entry) => [entry.tag, entry.reason])).toEqual([
      [`${LOCAL_CACHE_SCOPE}.api`, 'local-scope'],
      ['br-x.web', 'outside-scope'],
    ]);
    expect(
      pruner.selectStaleBranchTags({
        images: [{ ...image(['br-x.api']), imagePushedAt: undefined }],
        imageNames: ['api'],
        branches: pruner.branchIndex([Buffer.from('main')]),
        graceMs: 0,
        now,
      }).skipped,
    ).toEqual([{ tag: 'br-x.api', digest: image([]).imageDigest, reason: 'younger-than-grace' }]);
  });
});

describe('sweep-branches: a listing that failed deletes nothing', () => {
  function seedStale() {
    push(API_REPO, [tagOf('feat/a', 'api'), 'main.api']);
    push(API_REPO, [tagOf('feat/b', 'api')]);
  }

  const cases: [string, () => string | Promise<string>, RegExp][] = [
    ['a missing file', () => join(scratch, 'nope.txt'), /cannot read the branch listing .*ENOENT/],
    ['a directory', () => scratch, /cannot read the branch listing .*not a regular file/],
    ['/dev/zero', () => '/dev/zero', /not a regular file/],
    [
      'an empty file (git printed nothing)',
      () => {
        const file = join(scratch, 'empty.txt');
        writeFileSync(file, '');
        return file;
      },
      /lists no branch/,
    ],
    [
      'blank lines only',
      () => {
        const file = join(scratch, 'blank.txt');
        writeFileSync(file, '\n\r\n\n');
        return file;
      },
      /lists no branch/,
    ],
    [
      'an error message instead of a listing',
      () => {
        const file = join(scratch, 'error.txt');
        writeFileSync(file, "fatal: could not read Username for 'https://gitlab.com'\n");
        return file;
      },
      /line 1: .* is neither a branch name nor a `git ls-remote --heads` line/,
    ],
    [
      'a listing without the main branch (partial)',
      () => {
        const file = join(scratch, 'partial.txt');
        writeFileSync(file, 'feat/a\n');
        return file;
      },
      /does not list the main branch "main"/,
    ],
    [
      'main in the wrong case only',
      () => {
        const file = join(scratch, 'case.txt');
        writeFileSync(file, 'Main\nfeat/a\n');
        return file;
      },
      /does not list the main branch/,
    ],
    [
      'the listing of a remote that does not exist',
      async () => {
        const file = join(scratch, 'no-remote.txt');
        // As a CI job without pipefail would leave it: the redirect creates an empty file.
        await new Promise((resolve) => {
          const child = spawn(
            'bash',
            ['-c', `git ls-remote --heads "${join(scratch, 'missing.git')}" > "${file}"`],
            { stdio: 'ignore', env: { PATH: process.env.PATH, GIT_CONFIG_NOSYSTEM: '1' } },
          );
          child.on('close', resolve);
        });
        return file;
      },
      /lists no branch/,
    ],
  ];

  it.each(cases)('%s: one line, exit 1, no ECR call', async (_label, makeFile, message) => {
    seedStale();
    const before = tagsIn(API_REPO);
    const file = await makeFile();
    const result = await sweep([
      '--repository',
      API_REPO,
      '--image',
      'api',
      '--branches-file',
      file,
      '--main-branch',
      MAIN,
    ]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toMatch(/nothing was deleted\n$/);
    expect(result.stderr.split('\n')).toHaveLength(2);
    expect(server.calls).toEqual([]);
    expect(tagsIn(API_REPO)).toEqual(before);
  });

  it('takes the main branch from CACHED_DEPLOY_MAIN_BRANCH (the GitLab jobs set it) when no flag names it', async () => {
    seedStale();
    const file = join(scratch, 'env-main.txt');
    writeFileSync(file, 'main\nfeat/a\n');
    const argv = ['--repository', API_REPO, '--image', 'api', '--branches-file', file];
    const refused = await sweep(argv, 4, { CACHED_DEPLOY_MAIN_BRANCH: 'release/prod' });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/does not list the main branch "release\/prod"/);
    expect(server.calls).toEqual([]);
    const swept = await sweep([...argv, '--json'], 4, { CACHED_DEPLOY_MAIN_BRANCH: 'main' });
    expect(swept.code).toBe(0);
    expect((JSON.parse(swept.stdout) as Summary).deleted.map((e) => e.tag)).toEqual([
      tagOf('feat/b', 'api'),
    ]);
    // The flag wins.
    const flagged = await sweep([...argv, '--main-branch', 'develop'], 4, {
      CACHED_DEPLOY_MAIN_BRANCH: 'main',
    });
    expect(flagged.stderr).toMatch(/does not list the main branch "develop"/);
  });

  it('reads at most the bound, never a prefix of a larger listing', () => {
    const file = join(scratch, 'large.txt');
    writeFileSync(file, `main\n${'feat/x\n'.repeat(100)}`);
    expect(() => pruner.readBranchesFile(file, { maxBytes: 100 })).toThrow(/larger than 100 bytes/);
    expect(pruner.readBranchesFile(file, { maxBytes: 1000 }).length).toBe(5 + 700);
  });

  it('takes branch names as bytes: not UTF-8 is fine, a control character is not a name', () => {
    const latin1 = Buffer.from([0x66, 0xe9, 0x65]); // "fée" in Latin-1
    const names = pruner.parseBranchListing(
      Buffer.concat([Buffer.from('main\r\n'), latin1, Buffer.from('\n')]),
      { mainBranch: MAIN },
    );
    expect(names.map((name) => name.toString('hex'))).toEqual(['6d61696e', '66e965']);
    expect(pruner.branchSlug(latin1, 100)).toMatch(/^f-e-[0-9a-f]{16}$/);
    expect(() =>
      pruner.parseBranchListing(Buffer.from('main\nfeat\u001b[2Jx\n'), { mainBranch: MAIN }),
    ).toThrow(/line 2: .*\\u\{1b\}/);
    expect(() =>
      pruner.parseBranchListing(Buffer.from(`${'a'.repeat(40)}\trefs/tags/v1\nmain\n`), {
        mainBranch: MAIN,
      }),
    ).toThrow(/line 1/);
  });
});

describe('sweep-branches: faults and pagination', () => {
  it('deletes 1,150 stale tags across list pages, in batches of at most 100, through throttling', async () => {
    const names = Array.from({ length: 1150 }, (_, i) => `gone/${i}`);
    for (const name of names) push(API_REPO, [tagOf(name, 'api')], 48, 10);
    push(API_REPO, [tagOf('feat/kept', 'api')]);
    const file = join(scratch, 'paged.txt');
    writeFileSync(file, 'main\nfeat/kept\n');
    server.faults.seed(7);
    server.faults.throttleRate(0.25);
    const result = await sweep(
      [
        '--repository',
        API_REPO,
        '--image',
        'api',
        '--branches-file',
        file,
        '--main-branch',
        MAIN,
        '--json',
      ],
      10,
    );
    const summary = JSON.parse(result.stdout) as Summary;
    expect(summary.errors).toEqual([]);
    expect(summary.deleted).toHaveLength(1150);
    expect(tagsIn(API_REPO)).toEqual([tagOf('feat/kept', 'api')]);
    expect(server.calls.some((call) => call.errorType === 'ThrottlingException')).toBe(true);
    const listings = server
      .callsTo('DescribeImages')
      .filter((call) => call.request.imageIds === undefined && call.status === 200);
    expect(listings).toHaveLength(2);
    expect(server.callsTo('BatchDeleteImage').filter((c) => c.status === 200)).toHaveLength(12);
  });

  it('persistent throttling on BatchDeleteImage: errors, nothing reported deleted, exit 1 only with --fail-on-error', async () => {
    push(API_REPO, [tagOf('gone/a', 'api')]);
    const file = join(scratch, 'throttled.txt');
    writeFileSync(file, 'main\n');
    server.faults.add({ ops: 'BatchDeleteImage', error: 'throttle' });
    const base = ['--repository', API_REPO, '--image', 'api', '--branches-file', file];
    const lenient = await sweep([...base, '--main-branch', MAIN, '--json'], 2);
    const summary = JSON.parse(lenient.stdout) as Summary;
    expect(lenient.code).toBe(0);
    expect(summary.deleted).toEqual([]);
    expect(summary.errors).toEqual([
      {
        repository: API_REPO,
        tag: tagOf('gone/a', 'api'),
        error: expect.stringMatching(/^ThrottlingException/),
      },
    ]);
    const strict = await sweep([...base, '--main-branch', MAIN, '--fail-on-error'], 2);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toMatch(
      /^error acme\/api-buildcache-branches br-gone-a-[0-9a-f]{16}\.api: ThrottlingException/m,
    );
    expect(tagsIn(API_REPO)).toEqual([tagOf('gone/a', 'api')]);
  });

  it('a listing whose nextToken comes back is an error for that repository; the other is swept', async () => {
    push(API_REPO, [tagOf('gone/a', 'api')]);
    push(WORKER_REPO, [tagOf('gone/a', 'worker-jobs')]);
    const file = join(scratch, 'loop.txt');
    writeFileSync(file, 'main\n');
    let calls = 0;
    server.onCall((op, request) => {
      if (op === 'DescribeImages' && request.repositoryName === API_REPO) calls++;
    });
    server.faults.add({
      ops: 'DescribeImages',
      rewrite: {
        request: ({ nextToken: _ignored, ...rest }) => rest,
        response: (output, input) =>
          input.repositoryName === API_REPO && !input.imageIds
            ? { ...output, nextToken: 'LOOP' }
            : output,
      },
    });
    const result = await sweep([
      '--repository',
      API_REPO,
      '--image',
      'api',
      '--repository',
      WORKER_REPO,
      '--image',
      'worker-jobs',
      '--branches-file',
      file,
      '--main-branch',
      MAIN,
      '--json',
    ]);
    const summary = JSON.parse(result.stdout) as Summary;
    expect(summary.errors).toEqual([
      { repository: API_REPO, error: expect.stringMatching(/nextToken it had already given/) },
    ]);
    expect(calls).toBe(2);
    expect(summary.deleted.map((e) => e.repository)).toEqual([WORKER_REPO]);
    expect(tagsIn(API_REPO)).toEqual([tagOf('gone/a', 'api')]);
    expect(tagsIn(WORKER_REPO)).toEqual([]);
  });

  it('reads failures[]: a tag gone before the delete is already gone, an index child is kept', async () => {
    const goneTag = tagOf('gone/a', 'api');
    const childTag = tagOf('gone/b', 'api');
    push(API_REPO, [goneTag]);
    push(API_REPO, [childTag]);
    const file = join(scratch, 'failures.txt');
    writeFileSync(file, 'main\n');
    server.faults.add({
      ops: 'BatchDeleteImage',
      rewrite: {
        response: () => ({
          imageIds: [],
          failures: [
            { imageId: { imageTag: goneTag }, failureCode: 'ImageNotFound', failureReason: 'gone' },
            {
              imageId: { imageTag: childTag },
              failureCode: 'ImageReferencedByManifestList',
              failureReason: 'child',
            },
          ],
        }),
      },
    });
    const result = await sweep([
      '--repository',
      API_REPO,
      '--image',
      'api',
      '--branches-file',
      file,
      '--main-branch',
      MAIN,
      '--json',
    ]);
    const summary = JSON.parse(result.stdout) as Summary;
    expect(summary.deleted).toEqual([]);
    expect(summary.errors).toEqual([]);
    expect(summary.skipped.map((e) => [e.tag, e.reason]).sort()).toEqual(
      [
        [goneTag, 'already-gone'],
        [childTag, 'index-child'],
      ].sort(),
    );
  });
});

describe('sweep-branches: usage', () => {
  const refuse: EcrPort = {
    describeImages: () => Promise.reject(new Error('no call expected')),
    batchGetImage: () => Promise.reject(new Error('no call expected')),
    batchDeleteImage: () => Promise.reject(new Error('no call expected')),
  };
  const file = '/dev/null';
  it.each([
    [['sweep-branches'], /sweep-branches needs --repository/],
    [['sweep-branches', '--repository', API_REPO], /needs --image after each --repository/],
    [['sweep-branches', '--image', 'api'], /--image must follow a --repository/],
    [
      ['sweep-branches', '--repository', API_REPO, '--image', 'API'],
      /--image "API" is not an image name/,
    ],
    [
      ['sweep-branches', '--repository', API_REPO, '--image', 'api', '--main-branch', MAIN],
      /needs --branches-file FILE/,
    ],
    [
      ['sweep-branches', '--repository', API_REPO, '--image', 'api', '--branches-file', file],
      /needs --main-branch NAME/,
    ],
    [['sweep-branches', '--repository', API_REPO, '--tag', 'br-x.api'], /takes no --tag/],
    [
      ['sweep-branches', '--repository', API_REPO, '--image', 'api', '--sweep'],
      /unknown option --sweep/,
    ],
    [
      ['delete-branch', '--repository', API_REPO, '--image', 'api'],
      /delete-branch takes no --image/,
    ],
    [
      ['prune', '--sweep', '--repository', API_REPO, '--branches-file', file],
      /unknown option --branches-file/,
    ],
  ])('%j: one line, then the usage; exit 1', async (argv, message) => {
    const err: string[] = [];
    const code = await pruner.main(argv, {
      ecr: refuse,
      env: {},
      stdout: () => {},
      stderr: (t) => err.push(t),
    });
    expect(code).toBe(1);
    const [first, second] = err.join('').split('\n');
    expect(first).toMatch(message);
    expect(second).toBe('usage:');
  });
});

describe('sweep-branches: the shipped script and the CLI', () => {
  it('the script (as a child process) and `create-cached-deploy prune sweep-branches` agree', async () => {
    const cache = join(PROJECT_ROOT, 'node_modules', '.cache');
    mkdirSync(cache, { recursive: true });
    const dir = mkdtempSync(join(cache, 'sweep-test-'));
    try {
      const script = join(dir, 'prune-ecr-cache.mjs');
      writeFileSync(script, renderPruneScript('9.9.9-test'));
      const remote = makeRemote(['feat/a', 'feat/b']);
      deleteBranches(remote, ['feat/b']);
      const file = await listBranches(remote, 'ls-remote');
      const env = {
        AWS_ENDPOINT_URL_ECR: server.endpoint,
        AWS_REGION: server.region,
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      };
      const args = [
        'sweep-branches',
        '--repository',
        API_REPO,
        '--image',
        'api',
        '--branches-file',
        file,
        '--main-branch',
        MAIN,
        '--json',
      ];
      const normalize = (text: string) => {
        const summary = JSON.parse(text) as Summary;
        const sort = (entries: Entry[]) =>
          entries
            .map(({ digest: _d, ...rest }) => rest)
            .sort((a, b) => (a.tag ?? '').localeCompare(b.tag ?? ''));
        return { ...summary, deleted: sort(summary.deleted), skipped: sort(summary.skipped) };
      };
      const seedBoth = () => {
        server.reset();
        server.state.createRepository(API_REPO);
        push(API_REPO, [tagOf('feat/a', 'api')]);
        push(API_REPO, [tagOf('feat/b', 'api')]);
      };
      seedBoth();
      const child = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
        (resolve, reject) => {
          const proc = spawn(process.execPath, [script, ...args], {
            env: { PATH: process.env.PATH, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let stdout = '';
          let stderr = '';
          proc.stdout.on('data', (chunk) => {
            stdout += chunk;
          });
          proc.stderr.on('data', (chunk) => {
            stderr += chunk;
          });
          proc.on('error', reject);
          proc.on('close', (code) => resolve({ code, stdout, stderr }));
        },
      );
      expect(child.stderr).toBe('');
      expect(child.code).toBe(0);
      expect(tagsIn(API_REPO)).toEqual([tagOf('feat/a', 'api')]);

      seedBoth();
      const saved = { ...process.env };
      Object.assign(process.env, env);
      let cli: Awaited<ReturnType<typeof runMain>>;
      try {
        cli = await runMain(['prune', ...args]);
      } finally {
        for (const key of Object.keys(env)) {
          if (saved[key] === undefined) delete process.env[key];
          else process.env[key] = saved[key];
        }
      }
      expect(cli.stderr).toBe('');
      expect(cli.code).toBe(0);
      expect(normalize(cli.stdout)).toEqual(normalize(child.stdout));
      expect(tagsIn(API_REPO)).toEqual([tagOf('feat/a', 'api')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
