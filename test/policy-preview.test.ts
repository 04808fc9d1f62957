import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import { generate } from '../src/api/generate.js';
import { resolveConfig } from '../src/config/resolve.js';
import type { RawConfig } from '../src/config/schema.js';
import { readLiveListing } from '../src/diff/live-listing.js';
import { diffRepository } from '../src/diff/report.js';
import { cacheLifecyclePolicy, imageLifecyclePolicy } from '../src/model/lifecycle.js';
import {
  type PolicyPreview,
  type PreviewImage,
  parseListing,
  previewPolicy,
} from '../src/policy/preview.js';
import {
  buildImageManifest,
  buildIndexManifest,
  type EcrTestServer,
  startEcrServer,
} from './support/ecr-server.js';
import { runMain } from './support/run-main.js';

const NOW = new Date('2025-06-01T12:00:00Z');
const DAY = 24 * 3600 * 1000;
const daysAgo = (days: number) => new Date(NOW.getTime() - days * DAY);
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const RAW = {
  aws: { accountId: '123456789012', region: 'us-east-1' },
  github: { repository: 'acme/app' },
  images: [{ name: 'app', repository: 'acme/app' }],
  deployImages: { keep: 2 },
};
const CONFIG = resolveConfig(RAW as unknown as RawConfig);

function image(
  name: string,
  tags: string[],
  pushed: Date,
  size: number,
  extra: Partial<PreviewImage> = {},
): PreviewImage {
  return { digest: `sha256:${name}`, tags, pushedAt: pushed, sizeInBytes: size, ...extra };
}

function ruleOf(preview: PolicyPreview, description: RegExp) {
  const found = preview.rules.find((rule) => description.test(rule.description));
  if (!found) throw new Error(`no rule ${description}`);
  return found;
}

describe('previewPolicy', () => {
  test('counts and bytes per rule of the generated cache policy', () => {
    const images = [
      image('main', ['main.app'], daysAgo(400), 1000),
      image('seed', ['seed.app'], daysAgo(60), 2000),
      image('old-branch', ['br-old.app'], daysAgo(20), 300),
      image('new-branch', ['br-new.app'], daysAgo(3), 400),
      image('old-untagged', [], daysAgo(2), 50),
      image('new-untagged', [], new Date(NOW.getTime() - 3600_000), 60),
      image('stray', ['latest'], daysAgo(900), 7),
    ];
    const preview = previewPolicy(cacheLifecyclePolicy(CONFIG), images, NOW, {
      repository: 'acme/app-buildcache',
      policyFile: 'ecr/cache-lifecycle-policy.json',
    });
    expect(preview.images).toBe(7);
    expect(preview.bytes).toBe(3817);
    expect(preview.expired).toEqual({ count: 2, bytes: 350 });
    expect(preview.unmatched).toBe(1);
    expect(ruleOf(preview, /main branch/)).toMatchObject({ matched: 1, expired: 0 });
    expect(ruleOf(preview, /seed/)).toMatchObject({ matched: 1, expired: 0 });
    const branch = ruleOf(preview, /branch caches/);
    expect(branch).toMatchObject({ matched: 2, expired: 1, expiredBytes: 300 });
    expect(branch.expiredImages.map((entry) => entry.digest)).toEqual(['sha256:old-branch']);
    expect(branch.selection).toBe('tagged, prefix "br-", pushed more than 14 days ago');
    expect(ruleOf(preview, /untagged/)).toMatchObject({ matched: 2, expired: 1, expiredBytes: 50 });
  });

  test('children of a kept index are counted as held, not expired', () => {
    const images = [
      image('index', ['v1'], daysAgo(10), 10, {
        mediaType: INDEX,
        children: ['sha256:amd64', 'sha256:arm64'],
      }),
      image('amd64', [], daysAgo(10), 100, { mediaType: MANIFEST }),
      image('arm64', [], daysAgo(10), 200, { mediaType: MANIFEST }),
      image('orphan', [], daysAgo(10), 400, { mediaType: MANIFEST }),
    ];
    const preview = previewPolicy(imageLifecyclePolicy(CONFIG), images, NOW, {
      repository: 'acme/app',
      policyFile: 'ecr/image-lifecycle-policy.json',
    });
    const untagged = ruleOf(preview, /untagged/i);
    expect(untagged).toMatchObject({ matched: 3, expired: 1, expiredBytes: 400, heldByIndex: 2 });
    expect(preview.unresolvedIndexes).toBe(0);
    expect(preview.uncertain.count).toBe(0);
  });

  test('with indexes whose children a listing cannot name, untagged images are uncertain, not expired', () => {
    const images = [
      image('index', ['v1'], daysAgo(10), 10, { mediaType: INDEX }),
      image('maybe-child', [], daysAgo(10), 100, { mediaType: MANIFEST }),
    ];
    const preview = previewPolicy(imageLifecyclePolicy(CONFIG), images, NOW, {
      repository: 'acme/app',
      policyFile: 'ecr/image-lifecycle-policy.json',
    });
    expect(preview.expired.count).toBe(0);
    expect(preview.unresolvedIndexes).toBe(1);
    expect(preview.uncertain).toEqual({ count: 1, bytes: 100 });
  });
});

describe('200,000 images', () => {
  test('previewing a policy does not overflow the stack', () => {
    const images = Array.from({ length: 200_000 }, (_, i) =>
      image(`${i}`, i % 10 === 0 ? [`br-${i}.app`] : [], daysAgo(i % 60), 1),
    );
    const preview = previewPolicy(cacheLifecyclePolicy(CONFIG), images, NOW, {
      repository: 'acme/app-buildcache',
      policyFile: 'ecr/cache-lifecycle-policy.json',
    });
    expect(preview.images).toBe(200_000);
    expect(preview.expired.count).toBeGreaterThan(0);
  });
});

describe('parseListing', () => {
  test('pages, epoch or ISO push times, grouping by repositoryName, one entry per digest', () => {
    const pages = [
      {
        imageDetails: [
          {
            repositoryName: 'acme/app',
            imageDigest: 'sha256:a',
            imageTags: ['v1'],
            imagePushedAt: 1_700_000_000,
            imageSizeInBytes: 5,
            imageManifestMediaType: INDEX,
          },
        ],
        nextToken: 'x',
      },
      {
        imageDetails: [
          {
            repositoryName: 'acme/app',
            imageDigest: 'sha256:b',
            imagePushedAt: '2023-11-14T22:13:20+00:00',
          },
          { repositoryName: 'acme/app', imageDigest: 'sha256:a', imagePushedAt: 1_700_000_000 },
          { repositoryName: 'acme/other', imageDigest: 'sha256:c', imagePushedAt: 1 },
        ],
      },
    ];
    const listings = parseListing(JSON.stringify(pages), 'pages.json');
    expect(listings.map((listing) => listing.repository)).toEqual(['acme/app', 'acme/other']);
    const app = listings[0]?.images ?? [];
    expect(app.map((entry) => entry.digest)).toEqual(['sha256:a', 'sha256:b']);
    expect(app[1]?.pushedAt.toISOString()).toBe('2023-11-14T22:13:20.000Z');
    expect(app[1]?.tags).toEqual([]);
  });

  test('an empty listing is one group without a repository; bad input names the file', () => {
    expect(parseListing('{"imageDetails":[]}', 'empty.json')).toEqual([
      { repository: undefined, images: [] },
    ]);
    expect(() => parseListing('nope', 'bad.json')).toThrow(/bad\.json: not valid JSON/);
    expect(() => parseListing('{"images":[]}', 'x.json')).toThrow(
      /x\.json: page 1 has no imageDetails/,
    );
    const badTags = JSON.stringify({
      imageDetails: [{ imageDigest: 'sha256:a', imagePushedAt: 1, imageTags: ['v1', 7] }],
    });
    expect(() => parseListing(badTags, 'tags.json')).toThrow(
      /tags\.json: imageDetails\[0\]: imageTags \["v1",7\] is not a list of tags/,
    );
  });
});

// --- the CLI, on a repository on disk ---

function makeRepo(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'policy-preview-')));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\n');
  writeFileSync(
    join(dir, 'cached-deploy.yml'),
    [
      'aws:',
      '  accountId: "123456789012"',
      '  region: us-east-1',
      'github:',
      '  repository: acme/app',
      'images:',
      '  - name: app',
      '    repository: acme/app',
      'deployImages:',
      '  keep: 2',
      '',
    ].join('\n'),
  );
  return dir;
}

const run = runMain;

function detail(repository: string, digest: string, tags: string[], pushed: Date, size: number) {
  return {
    registryId: '123456789012',
    repositoryName: repository,
    imageDigest: digest,
    ...(tags.length > 0 ? { imageTags: tags } : {}),
    imagePushedAt: pushed.toISOString(),
    imageSizeInBytes: size,
    imageManifestMediaType: MANIFEST,
  };
}

describe('policy preview (CLI)', () => {
  test('maps each listing to its policy by repositoryName and prints what expires, by rule', async () => {
    const dir = makeRepo();
    const cache = join(dir, 'cache.json');
    const images = join(dir, 'images.json');
    writeFileSync(
      cache,
      JSON.stringify({
        imageDetails: [
          detail('acme/app-buildcache', 'sha256:m', ['main.app'], daysAgo(300), 1000),
          detail('acme/app-buildcache', 'sha256:b', ['br-x.app'], daysAgo(30), 2_500_000),
        ],
      }),
    );
    writeFileSync(
      images,
      JSON.stringify({
        imageDetails: [1, 2, 3, 4].map((n) =>
          detail('acme/app', `sha256:v${n}`, [`v${n}`], daysAgo(10 - n), 1_000_000),
        ),
      }),
    );
    const now = NOW.toISOString();
    const text = await run(['policy', 'preview', dir, '--listing', cache, images, '--now', now]);
    expect(text.stderr).toBe('');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      'acme/app: ecr/image-lifecycle-policy.json would expire 2 of 4 images (2 MB of 4 MB)',
    );
    expect(text.stdout).toContain(
      'acme/app-buildcache: ecr/cache-lifecycle-policy.json would expire 1 of 2 images (2.5 MB of 2.5 MB)',
    );
    expect(text.stdout).toMatch(
      /rule \d "Expire branch caches[^\n]*: 1 matched, 1 expire \(2\.5 MB\)/,
    );
    expect(text.stdout).toMatch(/expire sha256:v1 v1 pushed 2025-05-23/);

    const json = await run(['policy', 'preview', dir, '--listing', images, '--json', '--now', now]);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as {
      formatVersion: number;
      repositories: PolicyPreview[];
    };
    expect(report.formatVersion).toBe(1);
    expect(report.repositories).toHaveLength(1);
    expect(report.repositories[0]).toMatchObject({
      repository: 'acme/app',
      expired: { count: 2, bytes: 2_000_000 },
    });
  });

  test('usage errors exit 1 with one line naming what is wrong', async () => {
    const dir = makeRepo();
    const other = join(dir, 'other.json');
    writeFileSync(
      other,
      JSON.stringify({ imageDetails: [detail('acme/nope', 'sha256:x', [], daysAgo(1), 1)] }),
    );
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, JSON.stringify({ imageDetails: [] }));

    const unknown = await run(['policy', 'preview', dir, '--listing', other]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(
      /"acme\/nope", which is none of this configuration's \(acme\/app, acme\/app-buildcache, acme\/app-buildcache-branches\)/,
    );

    const none = await run(['policy', 'preview', dir]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/needs --listing FILE/);

    const unnamed = await run(['policy', 'preview', dir, '--listing', empty]);
    expect(unnamed.code).toBe(1);
    expect(unnamed.stderr).toMatch(
      /empty\.json: its images name no repositoryName.*--repository NAME/,
    );

    const named = await run([
      'policy',
      'preview',
      dir,
      '--listing',
      empty,
      '--repository',
      'acme/app',
    ]);
    expect(named.code).toBe(0);
    expect(named.stdout).toContain('would expire 0 of 0 images');

    const missing = await run(['policy', 'preview', dir, '--listing', join(dir, 'missing.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/missing\.json: cannot be read \(ENOENT\)/);
  });
});

describe('policy preview --live (ECR test server)', () => {
  let server: EcrTestServer;
  const quiet = process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  beforeAll(async () => {
    // The SDK warns on Node 20 that its 2027 releases will need Node 22.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    server = await startEcrServer();
  });
  afterAll(async () => {
    if (quiet === undefined) delete process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
    await server?.close();
  });

  function seed() {
    server.reset();
    server.state.createRepository('acme/app');
    server.state.createRepository('acme/app-buildcache');
    const child = (salt: string) =>
      server.state.putImage('acme/app', {
        manifest: buildImageManifest({ salt }),
        pushedAt: daysAgo(5),
        sizeInBytes: 100,
      });
    const amd64 = child('amd64');
    const arm64 = child('arm64');
    server.state.putImage('acme/app', {
      manifest: buildIndexManifest([amd64, arm64]),
      tags: ['v1'],
      pushedAt: daysAgo(5),
      sizeInBytes: 100,
    });
    child('orphan');
    server.state.putImage('acme/app-buildcache', {
      tags: ['br-gone.app'],
      pushedAt: daysAgo(40),
      sizeInBytes: 7000,
    });
    server.state.putImage('acme/app-buildcache', {
      tags: ['main.app'],
      pushedAt: daysAgo(400),
      sizeInBytes: 9000,
    });
    server.state.createRepository('acme/app-buildcache-branches');
    server.state.putImage('acme/app-buildcache-branches', {
      tags: ['br-stale.app'],
      pushedAt: daysAgo(40),
      sizeInBytes: 3000,
    });
    // Even a main.* tag a branch build wrote here expires: nothing in this repository is kept.
    server.state.putImage('acme/app-buildcache-branches', {
      tags: ['main.app'],
      pushedAt: daysAgo(40),
      sizeInBytes: 11,
    });
  }

  test('reads every page and resolves index children', async () => {
    seed();
    const images = await readLiveListing('acme/app', {
      ...server.clientConfig(),
      registryId: server.registryId,
      pageSize: 2,
    });
    expect(images).toHaveLength(4);
    expect(server.callCount('DescribeImages')).toBe(2);
    const index = images.find((entry) => entry.tags.includes('v1'));
    expect(index?.children).toHaveLength(2);
  });

  test('the CLI reads every configured repository from ECR (AWS_ENDPOINT_URL_ECR)', async () => {
    seed();
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_ECR: server.endpoint,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    });
    onTestFinished(() => {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    });
    const dir = makeRepo();
    const result = await run([
      'policy',
      'preview',
      dir,
      '--live',
      '--json',
      '--now',
      NOW.toISOString(),
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { repositories: PolicyPreview[] };
    const [app, cache, branches] = report.repositories;
    expect(app?.repository).toBe('acme/app');
    // The orphan expires; the two platform images are held by their (kept) index.
    expect(app?.expired).toEqual({ count: 1, bytes: 100 });
    expect(app?.rules[0]).toMatchObject({ heldByIndex: 2, expired: 1 });
    expect(app?.unresolvedIndexes).toBe(0);
    expect(cache?.repository).toBe('acme/app-buildcache');
    expect(cache?.expired).toEqual({ count: 1, bytes: 7000 });
    expect(branches).toMatchObject({
      repository: 'acme/app-buildcache-branches',
      policyFile: 'ecr/branch-cache-lifecycle-policy.json',
      expired: { count: 2, bytes: 3011 },
    });
    expect(server.callCount('BatchGetImage')).toBe(1);
  });

  /** The AWS environment the CLI reads, pointed at the test server for this test. */
  function useServerEnv() {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_ECR: server.endpoint,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_EC2_METADATA_DISABLED: 'true',
    });
    onTestFinished(() => {
      for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
      Object.assign(process.env, saved);
    });
  }

  test('a nextToken that comes back: the CLI stops after two calls with one line', async () => {
    seed();
    useServerEnv();
    server.faults.nextTokenLoop('DescribeImages');
    const started = performance.now();
    const result = await run(['policy', 'preview', makeRepo(), '--live']);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'create-cached-deploy: reading ECR repository "acme/app" in us-east-1: DescribeImages on acme/app: ECR answered a nextToken it had already given (page 2); stopped instead of looping\n',
    );
    expect(server.callCount('DescribeImages')).toBe(2);
  });

  test('pages that never end stop at the page bound', async () => {
    seed();
    server.faults.endlessPages('DescribeImages');
    await expect(
      readLiveListing('acme/app', { ...server.clientConfig(), pageSize: 1, maxPages: 10 }),
    ).rejects.toThrow(/DescribeImages on acme\/app: more than 10 pages; stopped/);
    expect(server.callCount('DescribeImages')).toBe(10);
  });

  test('diff --live with a looping listing is an error, not a hang', async () => {
    seed();
    const dir = makeRepo();
    await generate(dir);
    const yml = join(dir, 'cached-deploy.yml');
    writeFileSync(yml, `${readFileSync(yml, 'utf8')}cache:\n  branchRetentionDays: 30\n`);
    server.faults.nextTokenLoop('DescribeImages');
    await expect(
      diffRepository(dir, {
        now: NOW,
        live: { endpoint: server.endpoint, credentials: server.clientConfig().credentials },
      }),
    ).rejects.toThrow(/nextToken it had already given/);
    expect(server.callCount('DescribeImages')).toBe(2);
  });

  test('an index that reads as no index leaves its children unknown, never expired', async () => {
    seed();
    server.faults.add({
      ops: 'BatchGetImage',
      rewrite: {
        response: (output) => ({
          ...output,
          images: ((output.images ?? []) as Record<string, unknown>[]).map((entry) => ({
            ...entry,
            imageManifest: '{"schemaVersion":2,"manifests":{"digest":"sha256:nope"}}',
          })),
        }),
      },
    });
    const images = await readLiveListing('acme/app', { ...server.clientConfig() });
    const index = images.find((entry) => entry.tags.includes('v1'));
    expect(index?.children).toBeUndefined();
    const preview = previewPolicy(imageLifecyclePolicy(CONFIG), images, NOW, {
      repository: 'acme/app',
      policyFile: 'ecr/image-lifecycle-policy.json',
    });
    expect(preview.unresolvedIndexes).toBe(1);
    // The untagged platform images (and the orphan) may be children: uncertain, not expired.
    expect(preview.expired.count).toBe(0);
    expect(preview.uncertain.count).toBe(3);
  });

  test('diff --live: the impact of a policy change on the images in ECR', async () => {
    seed();
    const dir = makeRepo();
    await generate(dir);
    const yml = join(dir, 'cached-deploy.yml');
    writeFileSync(yml, `${readFileSync(yml, 'utf8')}cache:\n  branchRetentionDays: 30\n`);
    server.state.putImage('acme/app-buildcache', {
      tags: ['br-recent.app'],
      pushedAt: daysAgo(20),
      sizeInBytes: 5,
    });
    const diff = await diffRepository(dir, {
      now: NOW,
      live: { endpoint: server.endpoint, credentials: server.clientConfig().credentials },
    });
    // Only the cache policies change, so only the cache repositories are read.
    expect(server.callsTo('DescribeImages').map((call) => call.request.repositoryName)).toEqual([
      'acme/app-buildcache',
      'acme/app-buildcache-branches',
    ]);
    expect(diff.impact).toEqual([
      expect.objectContaining({
        repository: 'acme/app-buildcache',
        images: 3,
        newlyExpired: [],
        // 30 days: the 20-day-old branch cache is no longer expired (the 40-day-old one still is).
        noLongerExpired: [expect.objectContaining({ tags: ['br-recent.app'] })],
      }),
      expect.objectContaining({
        repository: 'acme/app-buildcache-branches',
        policyFile: 'ecr/branch-cache-lifecycle-policy.json',
        images: 2,
        newlyExpired: [],
        noLongerExpired: [],
      }),
    ]);
    expect(diff.explanations).toContain(
      'cache lifecycle policy: branch caches now expire after 30 days instead of 14',
    );
  });
});
