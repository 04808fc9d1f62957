/**
 * `apply` against the ECR test server, through the real @aws-sdk/client-ecr: from nothing, from
 * drift, in sync (no write call at all), the refusal to expire protected images (and --force),
 * --dry-run, throttling, failures midway that a second run completes, a repository created
 * concurrently, and the CLI. Also the server's lifecycle preview operations themselves.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ECRClient,
  GetLifecyclePolicyPreviewCommand,
  PutImageCommand,
  StartLifecyclePolicyPreviewCommand,
} from '@aws-sdk/client-ecr';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApplyOptions, apply } from '../src/api/apply.js';
import { generate } from '../src/api/generate.js';
import { main } from '../src/cli/main.js';
import { type ApplyReport, exitCodeOf } from '../src/ecr/apply-ecr.js';
import { formatApplyReport } from '../src/ecr/format.js';
import { isCachedDeployError } from '../src/errors.js';
import {
  buildCacheManifest,
  buildImageManifest,
  type CallRecord,
  type EcrTestServer,
  startEcrServer,
} from './support/ecr-server.js';
import { createTempDir } from './support/temp-repo.js';

const IMAGE_REPO = 'app';
const CACHE_REPO = 'app-buildcache';
const BRANCH_CACHE_REPO = 'app-buildcache-branches';
const DAY = 24 * 3600 * 1000;

let server: EcrTestServer;

beforeAll(async () => {
  server = await startEcrServer();
});
afterAll(() => server.close());
/** Calls before this index are forgotten by `recent()` (server.calls itself is read-only). */
let from = 0;
const recent = () => server.calls.slice(from);
const clearCalls = () => {
  from = server.calls.length;
};
beforeEach(() => {
  server.reset();
  from = 0;
  server.state.lifecyclePreviews.inProgressPolls = 1;
});
afterEach(() => {
  expect(server.unexpectedErrors).toEqual([]);
});

/**
 * Like the SDK's standard retry strategy (retries throttling, transient and server errors up to
 * maxAttempts) with a 1 ms backoff, so fault schedules cost milliseconds.
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
      if (info.errorType === 'CLIENT_ERROR' || count >= maxAttempts) throw new Error('no retry');
      return token(count);
    },
    recordSuccess: () => {},
  };
}

function options(extra: ApplyOptions = {}): ApplyOptions {
  return {
    endpoint: server.endpoint,
    clientOptions: {
      credentials: server.clientConfig().credentials,
      maxAttempts: 8,
      retryStrategy: fastRetry(8),
    },
    sleep: async () => {},
    pollIntervalMs: 0,
    ...extra,
  };
}

const CONFIG = `version: 1
aws:
  accountId: "123456789012"
  region: us-east-1
github:
  repository: acme/app
images:
  - name: api
    repository: ${IMAGE_REPO}
`;

/** A repository where `generate` has written every file, from `config` (default CONFIG). */
async function repo(config = CONFIG): Promise<string> {
  const dir = createTempDir();
  writeFileSync(join(dir, 'Dockerfile'), 'FROM alpine:3.20\n');
  writeFileSync(join(dir, 'cached-deploy.yml'), config);
  await generate(dir);
  return dir;
}

const read = (dir: string, path: string) => readFileSync(join(dir, path), 'utf8');

/** Every call that changes ECR (or starts a preview). */
const writes = (calls: readonly CallRecord[]) =>
  calls.filter((call) => /^(Create|Put|Start|Delete|Batch|Set|Tag)/.test(call.op));
const ops = (calls: readonly CallRecord[]) => calls.map((call) => call.op);

/** ECR as `apply` leaves it for `dir`, seeded directly into the server. */
function seedInSync(dir: string) {
  server.state.createRepository(IMAGE_REPO, {
    imageTagMutability: 'IMMUTABLE',
    scanOnPush: true,
    lifecyclePolicyText: read(dir, 'ecr/image-lifecycle-policy.json'),
  });
  server.state.createRepository(CACHE_REPO, {
    imageTagMutability: 'MUTABLE',
    scanOnPush: true,
    lifecyclePolicyText: read(dir, 'ecr/cache-lifecycle-policy.json'),
  });
  server.state.createRepository(BRANCH_CACHE_REPO, {
    imageTagMutability: 'MUTABLE',
    scanOnPush: true,
    lifecyclePolicyText: read(dir, 'ecr/branch-cache-lifecycle-policy.json'),
  });
}

function pushCache(tag: string, daysAgo: number): string {
  return server.state.putImage(CACHE_REPO, {
    manifest: buildCacheManifest({ salt: tag }),
    tags: [tag],
    pushedAt: new Date(Date.now() - daysAgo * DAY),
  });
}

function pushImage(tag: string, daysAgo: number): string {
  return server.state.putImage(IMAGE_REPO, {
    manifest: buildImageManifest({ salt: tag }),
    tags: [tag],
    pushedAt: new Date(Date.now() - daysAgo * DAY),
  });
}

function expectInSync(report: ApplyReport) {
  expect(report.status).toBe('in-sync');
  expect(exitCodeOf(report)).toBe(0);
  expect(report.repositories.every((r) => r.actions.length === 0)).toBe(true);
}

describe('apply', () => {
  it('from nothing: creates the image, cache and branch-cache repositories and puts their policies, then is in sync', async () => {
    const dir = await repo();
    const { report } = await apply(dir, options());
    expect(report.status).toBe('applied');
    expect(exitCodeOf(report)).toBe(0);
    expect(ops(writes(recent())).sort()).toEqual([
      'CreateRepository',
      'CreateRepository',
      'CreateRepository',
      'PutLifecyclePolicy',
      'PutLifecyclePolicy',
      'PutLifecyclePolicy',
    ]);
    expect(report.repositories.map((r) => [r.name, r.kind, r.policyFile])).toEqual([
      [IMAGE_REPO, 'image', 'ecr/image-lifecycle-policy.json'],
      [CACHE_REPO, 'cache', 'ecr/cache-lifecycle-policy.json'],
      [BRANCH_CACHE_REPO, 'branch-cache', 'ecr/branch-cache-lifecycle-policy.json'],
    ]);
    // A new repository has no images: nothing to preview.
    expect(server.callCount('StartLifecyclePolicyPreview')).toBe(0);
    // The account of cached-deploy.yml is named in every call.
    expect(server.calls.every((call) => call.request.registryId === '123456789012')).toBe(true);

    const image = server.state.repository(IMAGE_REPO);
    const cache = server.state.repository(CACHE_REPO);
    // Commit tags are immutable by default: what a deploy pulls cannot be replaced.
    expect(image).toMatchObject({ imageTagMutability: 'IMMUTABLE', scanOnPush: true });
    expect(image?.lifecyclePolicyText).toBe(read(dir, 'ecr/image-lifecycle-policy.json'));
    expect(cache).toMatchObject({
      imageTagMutability: 'MUTABLE',
      imageTagMutabilityExclusionFilters: [],
      scanOnPush: true,
    });
    expect(cache?.lifecyclePolicyText).toBe(read(dir, 'ecr/cache-lifecycle-policy.json'));
    expect(server.state.repository(BRANCH_CACHE_REPO)).toMatchObject({
      imageTagMutability: 'MUTABLE',
      lifecyclePolicyText: read(dir, 'ecr/branch-cache-lifecycle-policy.json'),
    });

    clearCalls();
    expectInSync((await apply(dir, options())).report);
    expect(writes(recent())).toEqual([]);
  });

  it('in sync: reads only, no write call at all', async () => {
    const dir = await repo();
    seedInSync(dir);
    pushCache('main.api', 400);
    pushCache('br-old.api', 100);
    const { report } = await apply(dir, options());
    expectInSync(report);
    expect(writes(recent())).toEqual([]);
    expect([...new Set(ops(recent()))].sort()).toEqual([
      'DescribeRepositories',
      'GetLifecyclePolicy',
    ]);
    expect(formatApplyReport(report)).toMatch(/In sync: 3 repositories match the committed files/);
  });

  it('a policy that ECR returns reformatted is still in sync', async () => {
    const dir = await repo();
    seedInSync(dir);
    const policy = JSON.parse(read(dir, 'ecr/cache-lifecycle-policy.json'));
    policy.rules.reverse();
    server.state.setLifecyclePolicy(CACHE_REPO, JSON.stringify(policy));
    expectInSync((await apply(dir, options())).report);
    expect(writes(recent())).toEqual([]);
  });

  it('from drift: previews the changed policy (through IN_PROGRESS), reports it, puts only it', async () => {
    server.state.lifecyclePreviews.inProgressPolls = 2;
    const dir = await repo(`${CONFIG}cache:\n  branchRetentionDays: 30\n`);
    seedInSync(dir);
    // The committed files now say 14 days (the default): the live cache policy has drifted (the
    // branch-cache repository's is made current, to watch one repository).
    writeFileSync(join(dir, 'cached-deploy.yml'), CONFIG);
    await generate(dir);
    server.state.setLifecyclePolicy(
      BRANCH_CACHE_REPO,
      read(dir, 'ecr/branch-cache-lifecycle-policy.json'),
    );
    pushCache('main.api', 400);
    const old = pushCache('br-old.api', 20);
    pushCache('br-new.api', 2);

    const sleeps: number[] = [];
    const { report } = await apply(
      dir,
      options({ pollIntervalMs: 7, sleep: async (ms) => void sleeps.push(ms) }),
    );
    expect(report.status).toBe('applied');
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview', 'PutLifecyclePolicy']);
    expect(server.callsTo('StartLifecyclePolicyPreview')[0]?.request.repositoryName).toBe(
      CACHE_REPO,
    );
    // Two IN_PROGRESS answers, then COMPLETE; apply slept between the polls.
    expect(server.callCount('GetLifecyclePolicyPreview')).toBe(3);
    expect(sleeps).toEqual([7, 7]);
    const cache = report.repositories.find((r) => r.name === CACHE_REPO);
    expect(cache?.preview?.expiring).toEqual([
      expect.objectContaining({ digest: old, tags: ['br-old.api'], rulePriority: 3 }),
    ]);
    expect(cache?.actions.map((a) => [a.type, a.status])).toEqual([
      ['put-lifecycle-policy', 'done'],
    ]);
    expect(report.repositories.find((r) => r.name === IMAGE_REPO)?.actions).toEqual([]);
    expect(server.state.repository(CACHE_REPO)?.lifecyclePolicyText).toBe(
      read(dir, 'ecr/cache-lifecycle-policy.json'),
    );
    expect(formatApplyReport(report)).toContain('br-old.api');

    clearCalls();
    expectInSync((await apply(dir, options())).report);
    expect(writes(recent())).toEqual([]);
  });

  it('fixes drifted repository settings: tag mutability with exclusions, scan on push', async () => {
    const dir = await repo(
      `${CONFIG}ecr:\n  cacheTagMutability: IMMUTABLE_WITH_EXCLUSION\n  scanOnPush: false\n`,
    );
    seedInSync(dir);
    const { report } = await apply(dir, options());
    expect(report.status).toBe('applied');
    expect(ops(writes(recent())).sort()).toEqual([
      'PutImageScanningConfiguration',
      'PutImageScanningConfiguration',
      'PutImageScanningConfiguration',
      'PutImageTagMutability',
      'PutImageTagMutability',
    ]);
    expect(server.state.repository(CACHE_REPO)).toMatchObject({
      imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
      imageTagMutabilityExclusionFilters: [
        { filterType: 'WILDCARD', filter: 'main.*' },
        { filterType: 'WILDCARD', filter: 'seed.*' },
        { filterType: 'WILDCARD', filter: 'br-*' },
      ],
      scanOnPush: false,
    });
    // Every cache tag stays rewritable; anything else pushed there does not.
    const client = new ECRClient(server.clientConfig());
    try {
      for (const tag of ['main.api', 'seed.api', 'br-feature-x.api', 'other']) {
        for (const salt of ['1', '2']) {
          const push = client.send(
            new PutImageCommand({
              repositoryName: CACHE_REPO,
              imageTag: tag,
              imageManifest: buildCacheManifest({ salt: `${tag}${salt}` }),
            }),
          );
          if (tag === 'other' && salt === '2') {
            await expect(push).rejects.toThrow(/immutable/);
          } else {
            await push;
          }
        }
      }
    } finally {
      client.destroy();
    }
    clearCalls();
    expectInSync((await apply(dir, options())).report);
  });

  it('creates a cache repository IMMUTABLE_WITH_EXCLUSION when configured', async () => {
    const dir = await repo(`${CONFIG}ecr:\n  cacheTagMutability: IMMUTABLE_WITH_EXCLUSION\n`);
    expect((await apply(dir, options())).report.status).toBe('applied');
    const create = server
      .callsTo('CreateRepository')
      .find((call) => call.request.repositoryName === CACHE_REPO);
    expect(create?.request).toMatchObject({
      imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
      imageTagMutabilityExclusionFilters: [
        { filterType: 'WILDCARD', filter: 'main.*' },
        { filterType: 'WILDCARD', filter: 'seed.*' },
        { filterType: 'WILDCARD', filter: 'br-*' },
      ],
      imageScanningConfiguration: { scanOnPush: true },
    });
  });

  it('refuses a policy whose preview expires the main cache; nothing is put; --force puts it', async () => {
    const dir = await repo();
    seedInSync(dir);
    // A hand edit that passes the generator's checks (2 >= the 2 kept tags main.api, seed.api)
    // but counts stale main.* tags of removed images: the oldest, main.api, would expire.
    const path = 'ecr/cache-lifecycle-policy.json';
    const edited = read(dir, path).replace('"countNumber": 9999', '"countNumber": 2');
    writeFileSync(join(dir, path), edited);
    const mainApi = pushCache('main.api', 400);
    pushCache('main.legacy', 30);
    pushCache('main.other', 10);

    const { report } = await apply(dir, options());
    expect(report.status).toBe('refused');
    expect(exitCodeOf(report)).toBe(1);
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview']);
    expect(server.state.repository(CACHE_REPO)?.lifecyclePolicyText).not.toBe(edited);
    const cache = report.repositories.find((r) => r.name === CACHE_REPO);
    expect(cache?.protectedExpiring).toEqual([
      expect.objectContaining({ digest: mainApi, tags: ['main.api'] }),
    ]);
    expect(report.warnings.join('\n')).toMatch(/cache-lifecycle-policy\.json differs from what/);
    const text = formatApplyReport(report);
    expect(text).toMatch(/PROTECTED: main\.api .*a kept cache tag \(main\.api\)/);
    expect(text).toMatch(/^Refused: .*Nothing was written/m);

    clearCalls();
    const forced = (await apply(dir, options({ force: true }))).report;
    expect(forced.status).toBe('applied');
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview', 'PutLifecyclePolicy']);
    expect(server.state.repository(CACHE_REPO)?.lifecyclePolicyText).toBe(edited);
  });

  it('refuses an image policy that would expire one of the newest deployImages.keep images', async () => {
    const dir = await repo(`${CONFIG}deployImages:\n  keep: 3\n`);
    seedInSync(dir);
    const path = 'ecr/image-lifecycle-policy.json';
    writeFileSync(join(dir, path), read(dir, path).replace('"countNumber": 3', '"countNumber": 1'));
    const digests = [5, 4, 3, 2, 1].map((days) => pushImage(`sha-${days}`, days));
    const { report } = await apply(dir, options());
    expect(report.status).toBe('refused');
    const image = report.repositories.find((r) => r.name === IMAGE_REPO);
    // The preview expires the 4 older ones; of those, the 2nd and 3rd newest are protected.
    expect(image?.preview?.expiring).toHaveLength(4);
    expect(image?.protectedExpiring.map((p) => p.digest).sort()).toEqual(
      [digests[2], digests[3]].sort(),
    );
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview']);
    expect(server.callCount('DescribeImages')).toBe(1);
  });

  it('--dry-run previews but writes nothing, and exits 2 while changes are pending', async () => {
    const dir = await repo();
    seedInSync(dir);
    server.state.setLifecyclePolicy(CACHE_REPO, undefined);
    server.state.deleteRepository(IMAGE_REPO);
    pushCache('br-old.api', 100);
    const { report } = await apply(dir, options({ dryRun: true }));
    expect(report.status).toBe('pending');
    expect(exitCodeOf(report)).toBe(2);
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview']);
    expect(server.state.repository(IMAGE_REPO)).toBeUndefined();
    expect(server.state.repository(CACHE_REPO)?.lifecyclePolicyText).toBeUndefined();
    expect(report.repositories.map((r) => r.actions.map((a) => `${a.type}:${a.status}`))).toEqual([
      ['create-repository:pending', 'put-lifecycle-policy:pending'],
      ['put-lifecycle-policy:pending'],
      [],
    ]);
    const text = formatApplyReport(report);
    expect(text).toMatch(/dry run/);
    expect(text).toMatch(/would {3}create the image repository/);
    expect(text).toContain('br-old.api');
  });

  it('succeeds through throttling and transient server errors (the SDK retries)', async () => {
    const dir = await repo();
    server.faults.throttleNext(4);
    server.faults.serverErrorNext(2, ['CreateRepository', 'PutLifecyclePolicy']);
    const { report } = await apply(dir, options());
    expect(report.status).toBe('applied');
    expect(server.calls.filter((c) => c.errorType === 'ThrottlingException')).toHaveLength(4);
    expect(server.calls.filter((c) => c.errorType === 'ServerException')).toHaveLength(2);
    expect(server.state.repositories().map((r) => r.name)).toEqual([
      IMAGE_REPO,
      CACHE_REPO,
      BRANCH_CACHE_REPO,
    ]);
    clearCalls();
    expectInSync((await apply(dir, options())).report);
  });

  it('a failure midway leaves a state that a second apply completes', async () => {
    const dir = await repo();
    // The second policy put fails for good (after every retry).
    const fault = server.faults.failAfter(1, { ops: 'PutLifecyclePolicy' });
    const first = (await apply(dir, options())).report;
    expect(first.status).toBe('failed');
    expect(exitCodeOf(first)).toBe(1);
    expect(first.error).toMatch(/^app-buildcache: ServerException: .*rerun apply to finish/);
    expect(first.repositories.map((r) => r.actions.map((a) => a.status))).toEqual([
      ['done', 'done'],
      ['done', 'failed'],
      ['not-run', 'not-run'],
    ]);
    expect(server.state.repository(CACHE_REPO)?.lifecyclePolicyText).toBeUndefined();
    expect(formatApplyReport(first)).toMatch(/FAILED +put/);

    fault.remove();
    clearCalls();
    const second = (await apply(dir, options())).report;
    expect(second.status).toBe('applied');
    expect(ops(writes(recent()))).toEqual([
      'StartLifecyclePolicyPreview',
      'PutLifecyclePolicy',
      'CreateRepository',
      'PutLifecyclePolicy',
    ]);
    expect(server.state.repository(CACHE_REPO)?.lifecyclePolicyText).toBe(
      read(dir, 'ecr/cache-lifecycle-policy.json'),
    );
    clearCalls();
    expectInSync((await apply(dir, options())).report);
    expect(writes(recent())).toEqual([]);
  });

  it('a failure creating the second repository: the next apply creates it', async () => {
    const dir = await repo();
    const fault = server.faults.failAfter(1, { ops: 'CreateRepository', error: 'throttle' });
    const first = (await apply(dir, options())).report;
    expect(first.status).toBe('failed');
    expect(first.error).toMatch(/ThrottlingException/);
    expect(server.state.repositories().map((r) => r.name)).toEqual([IMAGE_REPO]);
    fault.remove();
    expect((await apply(dir, options())).report.status).toBe('applied');
    expect(
      server.state
        .repositories()
        .map((r) => r.name)
        .sort(),
    ).toEqual([IMAGE_REPO, CACHE_REPO, BRANCH_CACHE_REPO]);
  });

  it('a repository created by someone else between reading and writing is completed', async () => {
    const dir = await repo();
    server.onCall((op, request) => {
      if (op === 'CreateRepository' && request.repositoryName === CACHE_REPO) {
        if (!server.state.repository(CACHE_REPO)) {
          server.state.createRepository(CACHE_REPO, { scanOnPush: false });
          pushCache('main.api', 3);
        }
      }
    });
    const { report } = await apply(dir, options());
    expect(report.status).toBe('applied');
    expect(server.state.repository(CACHE_REPO)).toMatchObject({
      scanOnPush: true,
      lifecyclePolicyText: read(dir, 'ecr/cache-lifecycle-policy.json'),
    });
    const cache = report.repositories.find((r) => r.name === CACHE_REPO);
    expect(cache?.actions.map((a) => `${a.type}:${a.status}`)).toEqual([
      'create-repository:done',
      'set-scan-on-push:done',
      'put-lifecycle-policy:done',
    ]);
    // It had images by then, so its policy was previewed first.
    expect(
      server.callsTo('StartLifecyclePolicyPreview').map((c) => c.request.repositoryName),
    ).toEqual([CACHE_REPO]);
  });

  it('gives up on a preview that stays IN_PROGRESS, without writing', async () => {
    const dir = await repo();
    seedInSync(dir);
    server.state.setLifecyclePolicy(CACHE_REPO, undefined);
    server.state.lifecyclePreviews.inProgressPolls = 100;
    const { report } = await apply(dir, options({ maxPolls: 3 }));
    expect(report.status).toBe('failed');
    expect(report.error).toMatch(/still IN_PROGRESS after 3 polls/);
    expect(server.callCount('GetLifecyclePolicyPreview')).toBe(3);
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview']);
  });

  it('waits for a preview someone else started', async () => {
    const dir = await repo();
    seedInSync(dir);
    server.state.setLifecyclePolicy(CACHE_REPO, undefined);
    server.state.lifecyclePreviews.inProgressPolls = 0;
    const client = new ECRClient(server.clientConfig());
    try {
      await client.send(
        new StartLifecyclePolicyPreviewCommand({
          repositoryName: CACHE_REPO,
          lifecyclePolicyText: read(dir, 'ecr/image-lifecycle-policy.json'),
        }),
      );
    } finally {
      client.destroy();
    }
    // The other preview completes on its first poll, which apply's retry loop does not make:
    // the hook completes it just before apply's second Start.
    server.onCall((op) => {
      if (op === 'StartLifecyclePolicyPreview' && server.callCount(op) === 3) {
        server.state.lifecyclePreviews.poll(server.state, server.state.require(CACHE_REPO));
      }
    });
    const { report } = await apply(dir, options());
    expect(report.status).toBe('applied');
    expect(server.callsTo('StartLifecyclePolicyPreview').map((c) => c.errorType ?? 'ok')).toEqual([
      'ok',
      'LifecyclePolicyPreviewInProgressException',
      'ok',
    ]);
  });

  it('the branch-cache repository: everything expires, and nothing there holds up apply', async () => {
    const dir = await repo();
    seedInSync(dir);
    server.state.setLifecyclePolicy(BRANCH_CACHE_REPO, undefined);
    const branchCache = (tag: string, daysAgo: number) =>
      server.state.putImage(BRANCH_CACHE_REPO, {
        manifest: buildCacheManifest({ salt: tag }),
        tags: [tag],
        pushedAt: new Date(Date.now() - daysAgo * DAY),
      });
    const stale = branchCache('br-old.api', 20);
    branchCache('br-new.api', 2);
    // Whatever a branch build wrote there (it can write any tag), main.* included, expires too:
    // only the cache repository holds the main and seed caches that apply protects.
    const planted = branchCache('main.api', 20);
    const { report } = await apply(dir, options());
    expect(report.status).toBe('applied');
    const repository = report.repositories.find((r) => r.name === BRANCH_CACHE_REPO);
    expect(repository?.kind).toBe('branch-cache');
    expect(repository?.protectedExpiring).toEqual([]);
    expect(repository?.preview?.expiring.map((image) => image.digest).sort()).toEqual(
      [stale, planted].sort(),
    );
    expect(server.state.repository(BRANCH_CACHE_REPO)?.lifecyclePolicyText).toBe(
      read(dir, 'ecr/branch-cache-lifecycle-policy.json'),
    );
  });

  it('refuses to start without the committed policy files, before any ECR call', async () => {
    const dir = await repo();
    writeFileSync(join(dir, 'ecr/image-lifecycle-policy.json'), '{"rules": [');
    await expect(apply(dir, options())).rejects.toThrow(
      /ecr\/image-lifecycle-policy\.json: not valid JSON/,
    );
    const missing = await repo();
    rmSync(join(missing, 'ecr/cache-lifecycle-policy.json'));
    const error = await apply(missing, options()).catch((e: unknown) => e);
    expect(isCachedDeployError(error) && error.code).toBe('IO');
    expect(String(error)).toMatch(
      /cache-lifecycle-policy\.json: not found; run `create-cached-deploy generate`/,
    );
    expect(server.calls).toEqual([]);
  });
});

describe('apply: a hostile ECR', () => {
  it('a preview whose nextToken comes back fails the run, writing nothing', async () => {
    const dir = await repo();
    seedInSync(dir);
    server.state.setLifecyclePolicy(CACHE_REPO, undefined);
    pushCache('br-old.api', 100);
    server.faults.nextTokenLoop('GetLifecyclePolicyPreview');
    const { report } = await apply(dir, options());
    expect(report.status).toBe('failed');
    expect(report.error).toBe(
      `GetLifecyclePolicyPreview on ${CACHE_REPO}: ECR answered a nextToken it had already given (page 2); stopped instead of looping`,
    );
    // One IN_PROGRESS poll, the COMPLETE page, the page that repeated its token.
    expect(server.callCount('GetLifecyclePolicyPreview')).toBe(3);
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview']);
  });

  it('a listing of the newest images whose nextToken comes back fails the run', async () => {
    const dir = await repo(`${CONFIG}deployImages:\n  keep: 3\n`);
    seedInSync(dir);
    const path = 'ecr/image-lifecycle-policy.json';
    writeFileSync(join(dir, path), read(dir, path).replace('"countNumber": 3', '"countNumber": 1'));
    for (const days of [5, 4, 3, 2, 1]) pushImage(`sha-${days}`, days);
    server.faults.nextTokenLoop('DescribeImages');
    const { report } = await apply(dir, options());
    expect(report.status).toBe('failed');
    expect(report.error).toMatch(
      new RegExp(`^DescribeImages on ${IMAGE_REPO}: ECR answered a nextToken it had already given`),
    );
    expect(server.callCount('DescribeImages')).toBe(2);
    expect(ops(writes(recent()))).toEqual(['StartLifecyclePolicyPreview']);
  });

  it('a preview page of 200,000 results does not overflow the stack', async () => {
    const dir = await repo();
    seedInSync(dir);
    server.state.setLifecyclePolicy(CACHE_REPO, undefined);
    pushCache('br-old.api', 100);
    const { sdkPort } = await import('../src/ecr/port.js');
    const real = await sdkPort({
      region: 'us-east-1',
      endpoint: server.endpoint,
      clientOptions: options().clientOptions,
    });
    try {
      const padding = Array.from({ length: 200_000 }, (_, i) => ({
        imageDigest: `sha256:${i.toString(16).padStart(64, '0')}`,
        imageTags: [],
        action: { type: 'EXPIRE' },
      }));
      const port: typeof real = {
        ...real,
        // The real answer, then one more page: 200,000 results.
        getLifecyclePolicyPreview: async (input) => {
          if (input.nextToken === 'padding') return { status: 'COMPLETE', previewResults: padding };
          const page = await real.getLifecyclePolicyPreview(input);
          return page.status === 'COMPLETE' ? { ...page, nextToken: 'padding' } : page;
        },
      };
      const { report } = await apply(dir, options({ port, dryRun: true }));
      expect(report.status).toBe('pending');
      const cache = report.repositories.find((r) => r.name === CACHE_REPO);
      expect(cache?.preview?.expiring).toHaveLength(200_001);
    } finally {
      real.destroy();
    }
  });

  it('ECR error text with terminal escapes is escaped and cut in the report', async () => {
    const dir = await repo();
    server.faults.add({
      ops: 'DescribeRepositories',
      error: {
        status: 400,
        type: 'AccessDeniedException',
        message: `\u001b[2J${'z'.repeat(2000)}`,
      },
    });
    const { report } = await apply(dir, options());
    expect(report.status).toBe('failed');
    expect(report.error).not.toContain('\u001b');
    expect(report.error).toMatch(/^AccessDeniedException: \\u\{1b\}\[2Jz+…$/);
    expect(report.error?.length).toBeLessThan(400);
  });
});

describe('the apply command', () => {
  async function cli(args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_ECR: server.endpoint,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
    });
    try {
      const code = await main(args, {
        stdout: (text) => out.push(text),
        stderr: (text) => err.push(text),
        interactive: false,
      });
      return { code, stdout: out.join(''), stderr: err.join('') };
    } finally {
      for (const key of ['AWS_ENDPOINT_URL_ECR', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
  }

  it('dry run (exit 2), apply (exit 0), in sync (exit 0), --json', async () => {
    const dir = await repo();
    const dry = await cli(['apply', dir, '--dry-run']);
    expect(dry.code).toBe(2);
    expect(dry.stdout).toMatch(/Changes pending in 3 repositories/);
    expect(writes(recent())).toEqual([]);

    const applied = await cli(['apply', dir]);
    expect(applied).toMatchObject({ code: 0, stderr: '' });
    expect(applied.stdout).toMatch(/Applied: 3 repositories updated/);

    const json = await cli(['apply', dir, '--json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as ApplyReport;
    expect(report).toMatchObject({ formatVersion: 1, status: 'in-sync', dryRun: false });
    expect(report.repositories.map((r) => [r.name, r.kind, r.policyFile])).toEqual([
      [IMAGE_REPO, 'image', 'ecr/image-lifecycle-policy.json'],
      [CACHE_REPO, 'cache', 'ecr/cache-lifecycle-policy.json'],
      [BRANCH_CACHE_REPO, 'branch-cache', 'ecr/branch-cache-lifecycle-policy.json'],
    ]);
  });

  it('exits 1 with the reason on stderr when refused', async () => {
    const dir = await repo();
    seedInSync(dir);
    server.state.setLifecyclePolicy(IMAGE_REPO, undefined);
    server.state.lifecyclePreviews.inProgressPolls = 0;
    const path = 'ecr/image-lifecycle-policy.json';
    writeFileSync(
      join(dir, path),
      read(dir, path).replace('"countNumber": 30', '"countNumber": 1'),
    );
    pushImage('sha-1', 2);
    pushImage('sha-2', 1);
    const result = await cli(['apply', dir, '--json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/apply refused/);
    expect(JSON.parse(result.stdout).status).toBe('refused');
    expect(server.callCount('PutLifecyclePolicy')).toBe(0);
  });
});

describe("the test server's lifecycle policy preview", () => {
  it('answers IN_PROGRESS, then COMPLETE with the expiring images, paginated', async () => {
    server.state.lifecyclePreviews.inProgressPolls = 1;
    server.state.createRepository(CACHE_REPO);
    for (let i = 0; i < 5; i++) pushCache(`br-${i}.api`, 30 + i);
    pushCache('main.api', 400);
    const policy = JSON.stringify({
      rules: [
        {
          rulePriority: 1,
          description: 'expire branch caches after 14 days',
          selection: {
            tagStatus: 'tagged',
            tagPrefixList: ['br-'],
            countType: 'sinceImagePushed',
            countUnit: 'days',
            countNumber: 14,
          },
          action: { type: 'expire' },
        },
      ],
    });
    const client = new ECRClient(server.clientConfig());
    try {
      const get = (nextToken?: string) =>
        client.send(
          new GetLifecyclePolicyPreviewCommand({
            repositoryName: CACHE_REPO,
            maxResults: 2,
            nextToken,
          }),
        );
      await expect(get()).rejects.toThrow(/no dry run/i);
      await client.send(
        new StartLifecyclePolicyPreviewCommand({
          repositoryName: CACHE_REPO,
          lifecyclePolicyText: policy,
        }),
      );
      await expect(
        client.send(
          new StartLifecyclePolicyPreviewCommand({
            repositoryName: CACHE_REPO,
            lifecyclePolicyText: policy,
          }),
        ),
      ).rejects.toMatchObject({ name: 'LifecyclePolicyPreviewInProgressException' });
      expect((await get()).status).toBe('IN_PROGRESS');
      const tags: string[] = [];
      let page = await get();
      expect(page).toMatchObject({ status: 'COMPLETE', lifecyclePolicyText: policy });
      expect(page.summary?.expiringImageTotalCount).toBe(5);
      tags.push(...(page.previewResults ?? []).flatMap((r) => r.imageTags ?? []));
      expect(page.previewResults?.[0]).toMatchObject({
        action: { type: 'EXPIRE' },
        appliedRulePriority: 1,
      });
      expect(page.previewResults?.[0]?.imagePushedAt).toBeInstanceOf(Date);
      while (page.nextToken) {
        page = await get(page.nextToken);
        tags.push(...(page.previewResults ?? []).flatMap((r) => r.imageTags ?? []));
      }
      expect(tags).toEqual(['br-0.api', 'br-1.api', 'br-2.api', 'br-3.api', 'br-4.api']);
    } finally {
      client.destroy();
    }
  });
});
