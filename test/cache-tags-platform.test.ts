import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import {
  BRANCH_SCOPE_PREFIX,
  branchScopeScript,
  buildsPerPlatform,
  cacheScope,
  cacheTag,
  cacheTagSuffix,
  cacheTagSuffixes,
  MAIN_SCOPE,
  MAX_TAG_LENGTH,
  platformSlug,
  SEED_SCOPE,
  splitBranchCacheTag,
} from '../src/model/cache-tags.js';

/**
 * Per-platform cache tags (docs/multi-platform.md, docs/cache-strategy.md): `<scope>.<image>.<os>-
 * <arch>[-<variant>]` for an image built natively per platform, `<scope>.<image>` for the others.
 */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

const config = parseConfig(
  stringify({
    aws: { accountId: '123456789012', region: 'eu-west-1' },
    github: { repository: 'acme/shop' },
    workflow: { runners: { 'linux/arm64/v8': 'ubuntu-24.04-arm' } },
    images: [
      {
        name: 'a-very-long-image-name-for-tests',
        repository: 'acme/api',
        platforms: ['linux/amd64', 'linux/arm64/v8'],
      },
      { name: 'web', repository: 'acme/web' },
      {
        name: 'worker',
        repository: 'acme/worker',
        platforms: ['linux/amd64', 'linux/arm64'],
        build: 'emulated',
      },
    ],
  }),
);
const suffixes = cacheTagSuffixes(config.images);

/** The workflow's own scope step, run with bash, for one branch. */
function shellScope(branch: string): string {
  const result = spawnSync('bash', ['-c', branchScopeScript(config.images)], {
    env: { PATH: process.env.PATH, BRANCH: branch, IS_MAIN: 'false', GITHUB_OUTPUT: '/dev/null' },
    encoding: 'utf8',
  });
  expect(result.status, result.stderr).toBe(0);
  return /Cache scope: (.*)\n/.exec(result.stdout)?.[1] ?? '';
}

describe('per-platform cache tags', () => {
  it('one suffix per platform of a native image, one for the others', () => {
    expect(suffixes).toEqual([
      'a-very-long-image-name-for-tests.linux-amd64',
      'a-very-long-image-name-for-tests.linux-arm64-v8',
      'web',
      'worker',
    ]);
  });

  it('fit in 128 characters for any branch, as the shell computes them, and keep main and seed apart', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }), (branch) => {
        if (branch.includes('\0')) return;
        const scope = cacheScope({ isMainBranch: false, branch, tagSuffixes: suffixes });
        expect(scope.startsWith(BRANCH_SCOPE_PREFIX)).toBe(true);
        for (const suffix of suffixes) {
          const tag = cacheTag(scope, suffix);
          expect(tag.length).toBeLessThanOrEqual(MAX_TAG_LENGTH);
          expect(tag).toMatch(TAG);
          expect(tag.startsWith(`${MAIN_SCOPE}.`) || tag.startsWith(`${SEED_SCOPE}.`)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
    for (const branch of ['x'.repeat(300), 'feat/ü-🚀', 'feat-a', 'feat/a']) {
      expect(shellScope(branch)).toBe(
        cacheScope({ isMainBranch: false, branch, tagSuffixes: suffixes }),
      );
    }
  });

  it('are read back by the branch-cache sweep: a branch tag of every image and platform', () => {
    const imageNames = config.images.map((image) => image.name);
    for (const branch of ['feat', 'feat.api', 'x'.repeat(300), 'feat/ü-🚀']) {
      const scope = cacheScope({ isMainBranch: false, branch, tagSuffixes: suffixes });
      const slug = scope.slice(BRANCH_SCOPE_PREFIX.length);
      for (const image of config.images) {
        const platforms = buildsPerPlatform(image) ? image.platforms : [undefined];
        for (const platform of platforms) {
          const tag = cacheTag(scope, cacheTagSuffix(image.name, platform));
          expect(splitBranchCacheTag(tag, imageNames)).toContainEqual({
            slug,
            image: image.name,
            ...(platform ? { platform: platformSlug(platform) } : {}),
          });
        }
      }
    }
    // The main and seed caches are never a branch's, per platform or not.
    for (const scope of [MAIN_SCOPE, SEED_SCOPE]) {
      expect(
        splitBranchCacheTag(`${scope}.a-very-long-image-name-for-tests.linux-arm64-v8`, imageNames),
      ).toEqual([]);
    }
  });

  it('never collide across branches: distinct (scope, suffix) pairs give distinct tags', () => {
    const scopes = ['feat', 'feat.web', 'feat.a-very-long-image-name-for-tests', 'x.worker'].map(
      (branch) => cacheScope({ isMainBranch: false, branch, tagSuffixes: suffixes }),
    );
    const tags = scopes.flatMap((scope) => suffixes.map((suffix) => cacheTag(scope, suffix)));
    expect(new Set(tags).size).toBe(tags.length);
    const imageNames = config.images.map((image) => image.name);
    for (const tag of tags) expect(splitBranchCacheTag(tag, imageNames)).not.toEqual([]);
  });
});

describe('doctor, per platform', () => {
  it('reads and judges each platform of a native image on its own tags', async () => {
    const { doctorWithConfig } = await import('../src/doctor/doctor.js');
    const asked: string[] = [];
    const report = await doctorWithConfig(config, {
      branch: 'feat/x',
      registry: {
        description: 'stand-in',
        // Nothing exists yet: every cache is missing, and doctor says which tag it looked for.
        getManifest: async (repository, tag) => {
          asked.push(`${repository}:${tag}`);
          return undefined;
        },
        getBlob: async () => new Uint8Array(),
      },
    });
    const scope = cacheScope({ isMainBranch: false, branch: 'feat/x', tagSuffixes: suffixes });
    expect(
      report.images.map((image) => [image.image, image.platform, image.caches.map((c) => c.tag)]),
    ).toEqual(
      config.images.flatMap((image) => {
        const platforms = image.build === 'native' ? image.platforms : [undefined];
        return platforms.map((platform) => {
          const suffix = cacheTagSuffixes([{ ...image, platforms: platform ? [platform] : [] }])[0];
          const tail = platform === undefined ? image.name : suffix;
          return [image.name, platform, [`main.${tail}`, `seed.${tail}`, `${scope}.${tail}`]];
        });
      }),
    );
    expect(asked).toContain(
      'acme/api-buildcache:main.a-very-long-image-name-for-tests.linux-arm64-v8',
    );
    expect(report.recommendations.map((r) => r.images)).toContainEqual([
      'a-very-long-image-name-for-tests linux/amd64',
      'a-very-long-image-name-for-tests linux/arm64/v8',
      'web',
      'worker',
    ]);
  });
});
