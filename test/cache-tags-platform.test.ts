import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import {
  BRANCH_SCOPE_PREFIX,
  branchScopeScript,
  cacheScope,
  cacheTag,
  cacheTagSuffixes,
  LOCAL_CACHE_SCOPE,
  MAIN_SCOPE,
  MAX_TAG_LENGTH,
  parseCacheTag,
  SEED_SCOPE,
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

  it('are taken apart again into scope, image and platform (the branch-cache sweep reads them so)', () => {
    for (const scope of [MAIN_SCOPE, SEED_SCOPE, 'br-feat.api', LOCAL_CACHE_SCOPE]) {
      expect(
        parseCacheTag(`${scope}.a-very-long-image-name-for-tests.linux-arm64-v8`, config.images),
      ).toEqual({
        scope,
        image: 'a-very-long-image-name-for-tests',
        platform: 'linux/arm64/v8',
      });
      expect(parseCacheTag(`${scope}.worker`, config.images)).toEqual({
        scope,
        image: 'worker',
        platform: undefined,
      });
      // An emulated image has no per-platform tags: this is no tag of the config.
      expect(parseCacheTag(`${scope}.worker.linux-arm64`, config.images)).toBeUndefined();
    }
    expect(parseCacheTag('.web', config.images)).toBeUndefined();
  });

  it('never collide across branches: distinct (scope, suffix) pairs give distinct tags', () => {
    const scopes = ['feat', 'feat.web', 'feat.a-very-long-image-name-for-tests', 'x.worker'].map(
      (branch) => cacheScope({ isMainBranch: false, branch, tagSuffixes: suffixes }),
    );
    const tags = scopes.flatMap((scope) => suffixes.map((suffix) => cacheTag(scope, suffix)));
    expect(new Set(tags).size).toBe(tags.length);
    for (const tag of tags) expect(parseCacheTag(tag, config.images)).toBeDefined();
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
