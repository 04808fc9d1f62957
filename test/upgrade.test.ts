/**
 * Upgrading a repository that an earlier version generated (one CI role, one cache repository per
 * image, mutable image tags: test/fixtures/generated-0.1.0) is one `generate` and one `apply`,
 * explained by `diff`: the single role's files become orphans that generate deletes, the role and
 * branch-cache files appear, and apply creates the branch-cache repositories, makes the image
 * repositories IMMUTABLE and puts the new policies, against the ECR test server as the earlier
 * apply left it.
 */
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply } from '../src/api/apply.js';
import { generate } from '../src/api/generate.js';
import { diffRepository } from '../src/diff/report.js';
import {
  buildCacheManifest,
  buildImageManifest,
  type EcrTestServer,
  startEcrServer,
} from './support/ecr-server.js';
import { createTempDir, snapshotChanges, snapshotDir } from './support/temp-repo.js';

const FIXTURE = new URL('./fixtures/generated-0.1.0/', import.meta.url);
const DAY = 24 * 3600 * 1000;

let server: EcrTestServer;
beforeAll(async () => {
  server = await startEcrServer();
});
afterAll(() => server.close());

/** The fixture repository in a temporary directory. */
function oldRepository(): string {
  const dir = createTempDir('cached-deploy-upgrade-');
  cpSync(FIXTURE, dir, { recursive: true });
  return dir;
}

const read = (dir: string, path: string) => readFileSync(join(dir, path), 'utf8');

describe('upgrading from the single CI role', () => {
  it('diff explains it; one generate writes it, deleting the old role files; a second changes nothing', async () => {
    const dir = oldRepository();
    const diff = await diffRepository(dir);
    const actions = Object.fromEntries(
      diff.changes.filter((c) => c.action !== 'unchanged').map((c) => [c.path, c.action]),
    );
    expect(actions).toEqual({
      '.github/workflows/deploy.yml': 'update',
      'docker-bake.hcl': 'update',
      'ecr/cache-lifecycle-policy.json': 'update',
      'ecr/branch-cache-lifecycle-policy.json': 'create',
      'ecr/main-role-policy.json': 'create',
      'ecr/main-role-trust-policy.json': 'create',
      'ecr/branch-role-policy.json': 'create',
      'ecr/branch-role-trust-policy.json': 'create',
      'ecr/deploy-role-policy.json': 'create',
      'ecr/deploy-role-trust-policy.json': 'create',
      'scripts/prune-ecr-cache.mjs': 'update',
      'scripts/prune-ecr-cache.package.json': 'create',
      'scripts/prune-ecr-cache.package-lock.json': 'create',
      // The single role's files: orphans, recorded in the state file and unedited.
      'ecr/iam-policy.json': 'delete',
      'ecr/trust-policy.json': 'delete',
    });
    expect(diff.explanations).toEqual(
      expect.arrayContaining([
        // What branch builds and pull requests lose: everything main builds, deploys or applies.
        'branch builds and pull requests can no longer push images to shop-api, shop-worker',
        'branch builds and pull requests can no longer write main.api, seed.api (in shop-api-buildcache), main.worker, seed.worker (in shop-worker-buildcache)',
        'branch builds and pull requests can no longer delete images in shop-api-buildcache, shop-worker-buildcache',
        'branch builds and pull requests can no longer change the lifecycle policy of shop-api, shop-worker, shop-api-buildcache, shop-worker-buildcache',
        'branch builds and pull requests can no longer change the tag mutability of shop-api, shop-worker, shop-api-buildcache, shop-worker-buildcache',
        // What they get instead.
        'branch builds and pull requests can now write branch caches in shop-api-buildcache-branches, shop-worker-buildcache-branches',
        // The deploy environment's token now reaches only the deploy role.
        'the deploy environment production can no longer push images to shop-api, shop-worker',
        // The old files, and what removing them does not do.
        "ecr/iam-policy.json (the former CI role's permissions) is no longer generated: the role keeps them in IAM until you change or delete it",
        expect.stringMatching(
          /^the branch role can now be assumed by .*StringLike\) = repo:acme\/shop:ref:refs\/heads\/\*, repo:acme\/shop:pull_request$/,
        ),
        expect.stringMatching(
          /^the main role can now be assumed by .*StringEquals\) = .*repo:acme\/shop:ref:refs\/heads\/main$/,
        ),
        'new branch-cache lifecycle policy: branch caches expire 14 days after their last push; untagged cache artifacts expire 1 day after their last push; other tagged images expire 14 days after their last push',
      ]),
    );
    // The main branch keeps what it had: nothing of main's is taken away.
    expect(diff.explanations.join('\n')).not.toMatch(/^the main branch can no longer/m);

    const before = snapshotDir(dir);
    const first = await generate(dir);
    expect(first.wrote).toBe(true);
    const changes = snapshotChanges(before, snapshotDir(dir));
    expect(changes.removed).toEqual(['ecr/iam-policy.json', 'ecr/trust-policy.json']);
    expect(changes.added.filter((path) => !path.endsWith('/')).sort()).toEqual(
      Object.entries(actions)
        .filter(([, action]) => action === 'create')
        .map(([path]) => path)
        .sort(),
    );
    const state = JSON.parse(read(dir, '.cached-deploy/state.json'));
    expect(Object.keys(state.files)).not.toContain('ecr/iam-policy.json');

    const again = snapshotDir(dir);
    expect((await generate(dir)).wrote).toBe(false);
    expect(snapshotDir(dir)).toEqual(again);
  });

  it('one apply then creates the branch-cache repositories and makes commit tags immutable; a second is in sync', async () => {
    const dir = oldRepository();
    // ECR as the earlier apply left it: MUTABLE image repositories, the old cache policy, images.
    for (const repository of ['shop-api', 'shop-worker']) {
      server.state.createRepository(repository, {
        imageTagMutability: 'MUTABLE',
        scanOnPush: true,
        lifecyclePolicyText: read(dir, 'ecr/image-lifecycle-policy.json'),
      });
      server.state.putImage(repository, {
        manifest: buildImageManifest({ salt: repository }),
        tags: ['0123456'],
        pushedAt: new Date(Date.now() - 3 * DAY),
      });
    }
    for (const [repository, image] of [
      ['shop-api-buildcache', 'api'],
      ['shop-worker-buildcache', 'worker'],
    ] as const) {
      server.state.createRepository(repository, {
        imageTagMutability: 'MUTABLE',
        scanOnPush: true,
        lifecyclePolicyText: read(dir, 'ecr/cache-lifecycle-policy.json'),
      });
      for (const [tag, daysAgo] of [
        [`main.${image}`, 300],
        [`seed.${image}`, 200],
        [`br-old.${image}`, 40],
      ] as const) {
        server.state.putImage(repository, {
          manifest: buildCacheManifest({ salt: `${repository}${tag}` }),
          tags: [tag],
          pushedAt: new Date(Date.now() - daysAgo * DAY),
        });
      }
    }
    await generate(dir);
    expect(existsSync(join(dir, 'ecr/iam-policy.json'))).toBe(false);

    const options = {
      endpoint: server.endpoint,
      clientOptions: { credentials: server.clientConfig().credentials },
      sleep: async () => {},
      pollIntervalMs: 0,
    };
    const { report } = await apply(dir, options);
    expect(report.status, report.error).toBe('applied');
    expect(report.warnings).toEqual([]);
    const actions = Object.fromEntries(
      report.repositories.map((r) => [r.name, r.actions.map((a) => `${a.type}:${a.status}`)]),
    );
    expect(actions).toEqual({
      'shop-api': ['set-tag-mutability:done'],
      'shop-worker': ['set-tag-mutability:done'],
      // Only a rule's description changed (branch caches left from before): previewed, put.
      'shop-api-buildcache': ['put-lifecycle-policy:done'],
      'shop-worker-buildcache': ['put-lifecycle-policy:done'],
      'shop-api-buildcache-branches': ['create-repository:done', 'put-lifecycle-policy:done'],
      'shop-worker-buildcache-branches': ['create-repository:done', 'put-lifecycle-policy:done'],
    });
    // The main and seed caches stay; the left-over branch caches expire as before.
    for (const name of ['shop-api-buildcache', 'shop-worker-buildcache']) {
      const repository = report.repositories.find((r) => r.name === name);
      expect(repository?.protectedExpiring).toEqual([]);
      expect(repository?.preview?.expiring.map((image) => image.tags)).toEqual([
        [`br-old.${name === 'shop-api-buildcache' ? 'api' : 'worker'}`],
      ]);
    }
    expect(server.state.repository('shop-api')?.imageTagMutability).toBe('IMMUTABLE');
    expect(server.state.repository('shop-api-buildcache-branches')).toMatchObject({
      imageTagMutability: 'MUTABLE',
      lifecyclePolicyText: read(dir, 'ecr/branch-cache-lifecycle-policy.json'),
    });

    const second = await apply(dir, options);
    expect(second.report.status).toBe('in-sync');
  });
});
