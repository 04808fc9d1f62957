import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { parseDockerfileStages } from '../src/detect/dockerfile.js';
import { CachedDeployError, type ErrorCode } from '../src/errors.js';
import { buildLegs, gitlabRunnerTags } from '../src/model/platforms.js';
import { schemaError } from './support/json-schemas.js';
import { createTempDir } from './support/temp-repo.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests build deliberately invalid configs
type Loose = any;

const DIGEST = `sha256:${'a1'.repeat(32)}`;

/** A valid cached-deploy.yml with every section present, as a plain object to break. */
function validConfig(): Loose {
  return {
    version: 1,
    generator: '0.1.0',
    aws: { accountId: '123456789012', region: 'eu-west-1', roleName: 'shop-deploy' },
    github: { repository: 'acme/shop', mainBranch: 'main' },
    images: [
      { name: 'web', repository: 'shop' },
      {
        name: 'worker',
        context: 'worker',
        dockerfile: 'worker/Dockerfile',
        target: 'runtime',
        platforms: ['linux/amd64', 'linux/arm64'],
        repository: 'shop-worker',
        cacheRepository: 'shop-worker-cache',
      },
    ],
    cache: { branchRetentionDays: 14, untaggedRetentionDays: 1 },
    deployImages: { keep: 30, untaggedRetentionDays: 1 },
    buildkit: { image: 'moby/buildkit:v0.27.0' },
    workflow: {
      file: '.github/workflows/deploy.yml',
      name: 'deploy',
      runsOn: 'ubuntu-latest',
      on: { push: ['main'], pullRequest: true, workflowDispatch: true },
      deploy: { command: './deploy.sh "$IMAGE_TAG"', environment: 'production' },
    },
    seed: { enabled: true, schedule: '0 4 * * 1' },
    paths: { bakeFile: 'docker-bake.hcl', ecrDir: 'ecr', stateFile: '.cached-deploy/state.json' },
  };
}

function textOf(mutate: (config: Loose) => void): string {
  const config = validConfig();
  mutate(config);
  return stringify(config);
}

const set =
  (path: (string | number)[], value: unknown) =>
  (config: Loose): void => {
    let target = config;
    for (const key of path.slice(0, -1)) target = target[key];
    target[path.at(-1) as string | number] = value;
  };
const remove =
  (path: (string | number)[]) =>
  (config: Loose): void => {
    let target = config;
    for (const key of path.slice(0, -1)) target = target[key];
    delete target[path.at(-1) as string | number];
  };

/**
 * The verdict of the shipped JSON Schema (schemas/cached-deploy.schema.json, what editors check)
 * on a cached-deploy.yml text: every example here gets one, so the schema and the validator are
 * compared on all of them.
 */
function expectSchemaAccepts(text: string): void {
  expect(schemaError('cached-deploy', parse(text)), text).toBeUndefined();
}
function expectSchemaRejects(text: string): void {
  expect(schemaError('cached-deploy', parse(text)), `the schema accepts:\n${text}`).toBeDefined();
}

/**
 * Invalid values that JSON Schema cannot express, so only the validator rejects them (the schema's
 * description says so): keep this list to what truly needs code.
 */
const BEYOND_JSON_SCHEMA = new Set([
  // A range's start after its end: a regular expression cannot compare two numbers.
  'a seed schedule with a reversed range',
  // Checks across fields: which platforms have runners, and names of other images.
  'a native platform without a runner',
  'an image named like the cache-tag suffix of a platform built natively',
  'an image named like the bake target of a platform built natively',
]);

function errorOf(run: () => unknown): CachedDeployError {
  try {
    run();
  } catch (error) {
    if (error instanceof CachedDeployError) return error;
    throw error;
  }
  throw new Error('expected a CachedDeployError, but nothing was thrown');
}

/** The error is a CachedDeployError with `code`, one line, naming `path` right after the file. */
function expectConfigError(
  run: () => unknown,
  code: ErrorCode,
  path: string,
  source = 'cached-deploy.yml',
): CachedDeployError {
  const error = errorOf(run);
  expect(error.code).toBe(code);
  expect(error.message).not.toMatch(/[\r\n]/);
  expect(error.message.startsWith(`${source}: ${path}: `), error.message).toBe(true);
  return error;
}

describe('a valid config', () => {
  test('the full config parses and resolves', () => {
    expectSchemaAccepts(stringify(validConfig()));
    const config = parseConfig(stringify(validConfig()));
    expect(config.images.map((image) => image.cacheRepository)).toEqual([
      'shop-buildcache',
      'shop-worker-cache',
    ]);
    expect(config.images[0]?.dockerfile).toBe('Dockerfile');
    expect(config.workflow.deploy?.command).toBe('./deploy.sh "$IMAGE_TAG"');
  });

  test.each<[string, (config: Loose) => void]>([
    ['a GovCloud region', set(['aws', 'region'], 'us-gov-west-1')],
    ['a China region', set(['aws', 'region'], 'cn-north-1')],
    ['BuildKit pinned by digest', set(['buildkit', 'image'], `moby/buildkit@${DIGEST}`)],
    ['BuildKit by tag and digest', set(['buildkit', 'image'], `moby/buildkit:v0.27.0@${DIGEST}`)],
    [
      'BuildKit from another registry',
      set(['buildkit', 'image'], 'public.ecr.aws/vend/moby/buildkit:buildx-stable-1'),
    ],
    ['a namespaced ECR repository', set(['images', 0, 'repository'], 'team/shop.web_api-x')],
    ['a 32-character image name', set(['images', 0, 'name'], 'a'.repeat(32))],
    ['branch retention 3650', set(['cache', 'branchRetentionDays'], 3650)],
    ['branch retention 1', set(['cache', 'branchRetentionDays'], 1)],
    ['keep 10000 images', set(['deployImages', 'keep'], 10_000)],
    [
      'a deploy command using shell variables',
      set(
        ['workflow', 'deploy', 'command'],
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell syntax, on purpose
        'kubectl set image deploy/web web="$REGISTRY/shop:${IMAGE_TAG}"',
      ),
    ],
    [
      'only the required sections',
      (c) => {
        for (const key of [
          'version',
          'generator',
          'cache',
          'deployImages',
          'buildkit',
          'workflow',
          'paths',
        ])
          delete c[key];
      },
    ],
  ])('accepts %s', (_what, mutate) => {
    expect(parseConfig(textOf(mutate)).aws.accountId).toBe('123456789012');
    expectSchemaAccepts(textOf(mutate));
  });
});

describe('unknown fields', () => {
  const cases: [string, (config: Loose) => void, string[]][] = [
    [
      'typo',
      set(['typo'], 1),
      [
        'version',
        'generator',
        'aws',
        'github',
        'images',
        'cache',
        'deployImages',
        'buildkit',
        'workflow',
        'paths',
      ],
    ],
    ['aws.acountId', set(['aws', 'acountId'], '1'), ['accountId', 'region', 'roleName']],
    ['github.branch', set(['github', 'branch'], 'main'), ['repository', 'mainBranch']],
    [
      'images[1].tagret',
      set(['images', 1, 'tagret'], 'runtime'),
      ['name', 'context', 'dockerfile', 'target', 'platforms', 'repository', 'cacheRepository'],
    ],
    [
      'cache.retentionDays',
      set(['cache', 'retentionDays'], 3),
      ['branchRetentionDays', 'untaggedRetentionDays'],
    ],
    ['deployImages.max', set(['deployImages', 'max'], 3), ['keep', 'untaggedRetentionDays']],
    ['buildkit.version', set(['buildkit', 'version'], 'v1'), ['image']],
    [
      'workflow.runs-on',
      set(['workflow', 'runs-on'], 'x'),
      ['file', 'name', 'runsOn', 'on', 'deploy'],
    ],
    [
      'workflow.on.pull_request',
      set(['workflow', 'on', 'pull_request'], true),
      ['push', 'pullRequest', 'workflowDispatch'],
    ],
    ['workflow.deploy.env', set(['workflow', 'deploy', 'env'], 'x'), ['command', 'environment']],
    ['paths.workflow', set(['paths', 'workflow'], 'x'), ['bakeFile', 'ecrDir', 'stateFile']],
  ];

  test.each(cases)('%s', (path, mutate, allowed) => {
    const error = expectConfigError(() => parseConfig(textOf(mutate)), 'CONFIG_INVALID', path);
    expectSchemaRejects(textOf(mutate));
    const match = /^cached-deploy\.yml: (\S+): unknown field \(allowed: ([\w, ]+)\)$/.exec(
      error.message,
    );
    expect(match?.[1], error.message).toBe(path);
    const listed = match?.[2]?.split(', ') ?? [];
    // Every documented field is listed (the schema may grow; the list must stay complete).
    expect(listed).toEqual(expect.arrayContaining(allowed));
    expect(listed).not.toContain(path.split('.').at(-1));
  });
});

describe('invalid values', () => {
  const cases: [what: string, mutate: (config: Loose) => void, path: string, mentions: RegExp][] = [
    [
      'an 11-digit account id',
      set(['aws', 'accountId'], '12345678901'),
      'aws.accountId',
      /12-digit/,
    ],
    [
      'a 13-digit account id',
      set(['aws', 'accountId'], '1234567890123'),
      'aws.accountId',
      /12-digit/,
    ],
    [
      'a non-numeric account id',
      set(['aws', 'accountId'], '12345678901a'),
      'aws.accountId',
      /12-digit/,
    ],
    // Unquoted, YAML reads it as a number (and would drop a leading zero): it must be quoted.
    ['an unquoted account id', set(['aws', 'accountId'], 123456789012), 'aws.accountId', /string/],
    ['a region without a number', set(['aws', 'region'], 'eu-west'), 'aws.region', /AWS region/],
    ['an uppercase region', set(['aws', 'region'], 'EU-WEST-1'), 'aws.region', /AWS region/],
    ['a made-up region', set(['aws', 'region'], 'mars'), 'aws.region', /AWS region/],
    ['a missing region', remove(['aws', 'region']), 'aws.region', /is required/],
    ['an invalid role name', set(['aws', 'roleName'], 'my role'), 'aws.roleName', /IAM role/],
    [
      'a repository without owner',
      set(['github', 'repository'], 'shop'),
      'github.repository',
      /owner\/name/,
    ],
    ['an invalid branch', set(['github', 'mainBranch'], 'feat..x'), 'github.mainBranch', /branch/],
    [
      'an uppercase ECR repository',
      set(['images', 0, 'repository'], 'Shop'),
      'images[0].repository',
      /ECR repository/,
    ],
    [
      'an ECR repository starting with -',
      set(['images', 0, 'repository'], '-shop'),
      'images[0].repository',
      /ECR repository/,
    ],
    [
      'an ECR repository with //',
      set(['images', 0, 'repository'], 'team//shop'),
      'images[0].repository',
      /ECR repository/,
    ],
    [
      'an ECR repository ending in /',
      set(['images', 0, 'repository'], 'team/'),
      'images[0].repository',
      /ECR repository/,
    ],
    [
      'a one-character ECR repository',
      set(['images', 0, 'repository'], 'a'),
      'images[0].repository',
      /ECR repository/,
    ],
    [
      'a 257-character ECR repository',
      set(['images', 0, 'repository'], 'a'.repeat(257)),
      'images[0].repository',
      /ECR repository/,
    ],
    [
      'an ECR repository with ..',
      set(['images', 1, 'repository'], 'shop..worker'),
      'images[1].repository',
      /ECR repository/,
    ],
    [
      'an invalid cache repository',
      set(['images', 1, 'cacheRepository'], 'Cache'),
      'images[1].cacheRepository',
      /ECR repository/,
    ],
    [
      'an image name with a dot',
      set(['images', 0, 'name'], 'web.api'),
      'images[0].name',
      /no dots/,
    ],
    ['an uppercase image name', set(['images', 0, 'name'], 'Web'), 'images[0].name', /bake target/],
    [
      'a 33-character image name',
      set(['images', 1, 'name'], 'a'.repeat(33)),
      'images[1].name',
      /32 characters/,
    ],
    [
      'a platform without architecture',
      set(['images', 1, 'platforms'], ['linux']),
      'images[1].platforms[0]',
      /platform/,
    ],
    [
      'an uppercase platform',
      set(['images', 1, 'platforms'], ['linux/amd64', 'Linux/ARM64']),
      'images[1].platforms[1]',
      /platform/,
    ],
    [
      'a platform listed twice',
      set(['images', 1, 'platforms'], ['linux/amd64', 'linux/amd64']),
      'images[1].platforms[1]',
      /listed twice/,
    ],
    ['no platforms', set(['images', 1, 'platforms'], []), 'images[1].platforms', /at least 1/],
    [
      'a platform longer than 32 characters',
      set(['images', 1, 'platforms'], ['linux/amd64', `linux/${'a'.repeat(27)}`]),
      'images[1].platforms[1]',
      /32 characters/,
    ],
    [
      'a build that is neither native nor emulated',
      set(['images', 1, 'build'], 'qemu'),
      'images[1].build',
      /native, emulated/,
    ],
    [
      'a native platform without a runner',
      set(['images', 1, 'platforms'], ['linux/amd64', 'linux/riscv64']),
      'images[1].platforms[1]',
      /linux\/riscv64 has no runner for a native build: set workflow\.runners/,
    ],
    [
      'an image named like the cache-tag suffix of a platform built natively',
      set(['images', 0, 'name'], 'linux-arm64'),
      'images[0].name',
      /"linux-arm64" is also the cache-tag suffix of images\[1\] \(worker\) on linux\/arm64/,
    ],
    [
      'an image named like the bake target of a platform built natively',
      set(['images', 0, 'name'], 'worker-linux-amd64'),
      'images[0].name',
      /"worker-linux-amd64" is also the bake target of images\[1\] \(worker\) on linux\/amd64/,
    ],
    [
      'a runner for something that is not a platform',
      set(['workflow', 'runners'], { arm64: 'ubuntu-24.04-arm' }),
      'workflow.runners.arm64',
      /not a platform/,
    ],
    [
      'a runner label with an expression',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, not JavaScript's
      set(['workflow', 'runners'], { 'linux/arm64': '${{ github.head_ref }}' }),
      'workflow.runners.linux/arm64',
      /runner label/,
    ],
    [
      'an invalid target stage name',
      set(['images', 1, 'target'], '-stage'),
      'images[1].target',
      /stage/,
    ],
    ['no images', set(['images'], []), 'images', /at least 1/],
    ['no images key', remove(['images']), 'images', /is required/],
    ['images as a mapping', set(['images'], { web: {} }), 'images', /expected a list/],
    [
      'an image missing its repository',
      remove(['images', 0, 'repository']),
      'images[0].repository',
      /is required/,
    ],
    [
      'branch retention 0',
      set(['cache', 'branchRetentionDays'], 0),
      'cache.branchRetentionDays',
      /from 1 to 3650/,
    ],
    [
      'branch retention 3651',
      set(['cache', 'branchRetentionDays'], 3651),
      'cache.branchRetentionDays',
      /from 1 to 3650/,
    ],
    [
      'fractional branch retention',
      set(['cache', 'branchRetentionDays'], 1.5),
      'cache.branchRetentionDays',
      /integer/,
    ],
    [
      'branch retention as a string',
      set(['cache', 'branchRetentionDays'], '14'),
      'cache.branchRetentionDays',
      /integer/,
    ],
    [
      'untagged retention 0',
      set(['cache', 'untaggedRetentionDays'], 0),
      'cache.untaggedRetentionDays',
      /from 1 to 3650/,
    ],
    ['keep 0 images', set(['deployImages', 'keep'], 0), 'deployImages.keep', /from 1 to 10000/],
    [
      'keep 10001 images',
      set(['deployImages', 'keep'], 10_001),
      'deployImages.keep',
      /from 1 to 10000/,
    ],
    [
      'image untagged retention 3651',
      set(['deployImages', 'untaggedRetentionDays'], 3651),
      'deployImages.untaggedRetentionDays',
      /from 1 to 3650/,
    ],
    [
      'BuildKit at latest',
      set(['buildkit', 'image'], 'moby/buildkit:latest'),
      'buildkit.image',
      /pinned/,
    ],
    [
      'an expression in a path',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, on purpose
      set(['paths', 'pruneScript'], 'x${{ github.actor }}.mjs'),
      'paths.pruneScript',
      /may only contain/,
    ],
    [
      'a shell substitution in a path',
      set(['paths', 'ecrDir'], 'ecr$(id)'),
      'paths.ecrDir',
      /may only contain/,
    ],
    [
      'a quote in a path',
      set(['paths', 'bakeFile'], 'a"b.hcl'),
      'paths.bakeFile',
      /may only contain/,
    ],
    [
      'a seed schedule with four fields',
      set(['seed', 'schedule'], '0 4 * *'),
      'seed.schedule',
      /five fields/,
    ],
    [
      'a seed schedule at hour 25',
      set(['seed', 'schedule'], '0 25 * * 1'),
      'seed.schedule',
      /hour field "25"/,
    ],
    [
      'a seed schedule on weekday 7',
      set(['seed', 'schedule'], '0 4 * * 7'),
      'seed.schedule',
      /day of week/,
    ],
    [
      'a seed schedule with step 0',
      set(['seed', 'schedule'], '*/0 4 * * 1'),
      'seed.schedule',
      /minute field/,
    ],
    [
      'a seed schedule with a reversed range',
      set(['seed', 'schedule'], '0 9-5 * * 1'),
      'seed.schedule',
      /hour field/,
    ],
    [
      'BuildKit without a tag (implicitly latest)',
      set(['buildkit', 'image'], 'moby/buildkit'),
      'buildkit.image',
      /pinned/,
    ],
    [
      'BuildKit with a short digest',
      set(['buildkit', 'image'], 'moby/buildkit@sha256:abc'),
      'buildkit.image',
      /pinned/,
    ],
    [
      'a deploy command with a GitHub expression',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: GitHub expression syntax, on purpose
      set(['workflow', 'deploy', 'command'], 'echo ${{ github.head_ref }}'),
      'workflow.deploy.command',
      /without \$\{\{ \}\} expressions/,
    ],
    [
      'a multi-line deploy command with a GitHub expression',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: GitHub expression syntax, on purpose
      set(['workflow', 'deploy', 'command'], 'set -e\n./deploy.sh ${{secrets.TOKEN}}\n'),
      'workflow.deploy.command',
      /expressions/,
    ],
    [
      'an empty deploy command',
      set(['workflow', 'deploy', 'command'], ''),
      'workflow.deploy.command',
      /non-empty string/,
    ],
    [
      'a boolean as pullRequest',
      set(['workflow', 'on', 'pullRequest'], 'yes'),
      'workflow.on.pullRequest',
      /true or false/,
    ],
    ['version 2', set(['version'], 2), 'version', /allowed: 1/],
    ['a workflow that is a list', set(['workflow'], ['x']), 'workflow', /expected a mapping/],
  ];

  test.each(cases)('%s', (what, mutate, path, mentions) => {
    const error = expectConfigError(() => parseConfig(textOf(mutate)), 'CONFIG_INVALID', path);
    expect(error.message).toMatch(mentions);
    if (BEYOND_JSON_SCHEMA.has(what)) expectSchemaAccepts(textOf(mutate));
    else expectSchemaRejects(textOf(mutate));
  });

  // Checks across fields: the validator's alone (JSON Schema compares no two values), so the schema
  // accepts these.
  test('a duplicate image name names the second image and the first', () => {
    expectSchemaAccepts(textOf(set(['images', 1, 'name'], 'web')));
    const error = expectConfigError(
      () => parseConfig(textOf(set(['images', 1, 'name'], 'web'))),
      'CONFIG_INVALID',
      'images[1].name',
    );
    expect(error.message).toContain('images[0]');
  });

  test('a cache repository equal to another image repository', () => {
    expectSchemaAccepts(textOf(set(['images', 1, 'cacheRepository'], 'shop')));
    const error = expectConfigError(
      () => parseConfig(textOf(set(['images', 1, 'cacheRepository'], 'shop'))),
      'CONFIG_INVALID',
      'images[1].cacheRepository',
    );
    expect(error.message).toContain('"shop" is also an image repository');
  });

  test('a cache repository equal to its own image repository', () => {
    expectConfigError(
      () => parseConfig(textOf(set(['images', 1, 'cacheRepository'], 'shop-worker'))),
      'CONFIG_INVALID',
      'images[1].cacheRepository',
    );
  });

  test('a default cache repository (<repo>-buildcache) that is another image repository', () => {
    expectConfigError(
      () => parseConfig(textOf(set(['images', 1, 'repository'], 'shop-buildcache'))),
      'CONFIG_INVALID',
      'images[0].cacheRepository',
    );
  });

  test.each([
    ['its own image repository', 'shop-worker', 'an image repository (images[1].repository)'],
    ['another image repository', 'shop', 'an image repository (images[0].repository)'],
    [
      'its own cache repository',
      'shop-worker-cache',
      'a cache repository (images[1].cacheRepository)',
    ],
    [
      "another image's cache repository",
      'shop-buildcache',
      'a cache repository (images[0].cacheRepository)',
    ],
  ])('a branch-cache repository equal to %s: the branch role would write it', (_, name, what) => {
    const error = expectConfigError(
      () => parseConfig(textOf(set(['images', 1, 'branchCacheRepository'], name))),
      'CONFIG_INVALID',
      'images[1].branchCacheRepository',
    );
    expect(error.message).toContain(`"${name}" is also ${what}`);
    expect(error.message).toContain('must live in separate repositories');
  });

  test("a cache repository equal to another image's branch-cache repository", () => {
    // images[0]'s branch caches default to shop-buildcache-branches.
    expectConfigError(
      () => parseConfig(textOf(set(['images', 1, 'cacheRepository'], 'shop-buildcache-branches'))),
      'CONFIG_INVALID',
      'images[0].branchCacheRepository',
    );
  });

  test('two images in one image repository: both would push <repository>:<commit sha>', () => {
    const error = expectConfigError(
      () => parseConfig(textOf(set(['images', 1, 'repository'], 'shop'))),
      'CONFIG_INVALID',
      'images[1].repository',
    );
    expect(error.message).toContain('"shop" is also the image repository of images[0]');
  });

  test('images may share a branch-cache repository, as they may share a cache repository', () => {
    const config = parseConfig(
      textOf((c) => {
        c.images[0].branchCacheRepository = 'shop-branch-caches';
        c.images[1].branchCacheRepository = 'shop-branch-caches';
      }),
    );
    expect(config.images.map((image) => image.branchCacheRepository)).toEqual([
      'shop-branch-caches',
      'shop-branch-caches',
    ]);
  });

  test('a default repository name longer than ECR allows names the field to set', () => {
    const long = `a${'b'.repeat(249)}`; // 250: <long>-buildcache is 261
    expectConfigError(
      () => parseConfig(textOf(set(['images', 0, 'repository'], long))),
      'CONFIG_INVALID',
      'images[0].cacheRepository',
    );
    const shorter = `a${'b'.repeat(239)}`; // 240: -buildcache 251 fits, -branches 260 does not
    const error = expectConfigError(
      () => parseConfig(textOf(set(['images', 0, 'repository'], shorter))),
      'CONFIG_INVALID',
      'images[0].branchCacheRepository',
    );
    expect(error.message).toMatch(/set images\[0\]\.branchCacheRepository$/);
    expect(
      parseConfig(
        textOf((c) => {
          c.images[0].repository = shorter;
          c.images[0].branchCacheRepository = 'shop-branches';
        }),
      ).images[0]?.branchCacheRepository,
    ).toBe('shop-branches');
  });

  test('two image names that become the same bake variable', () => {
    const error = expectConfigError(
      () =>
        parseConfig(
          textOf((c) => {
            c.images[0].name = 'api-v2';
            c.images[1].name = 'api_v2';
          }),
        ),
      'CONFIG_INVALID',
      'images[1].name',
    );
    expect(error.message).toContain('CACHE_REPOSITORY_API_V2');
  });

  test.each([
    ['aws.branchRoleName', set(['aws', 'branchRoleName'], 'shop-deploy')],
    ['aws.deployRoleName', set(['aws', 'deployRoleName'], 'shop-deploy')],
    [
      'aws.deployRoleName',
      (c: Loose) => {
        c.aws.branchRoleName = 'shop-x';
        c.aws.deployRoleName = 'shop-x';
      },
    ],
  ])('a role name used twice: %s', (field, mutate) => {
    const error = expectConfigError(() => parseConfig(textOf(mutate)), 'CONFIG_INVALID', field);
    expect(error.message).toContain('each role needs its own name');
  });

  test('the deploy role may share a name only when there is no deploy environment (it is unused)', () => {
    const config = parseConfig(
      textOf((c) => {
        delete c.workflow.deploy.environment;
        c.aws.deployRoleName = 'shop-deploy';
      }),
    );
    expect(config.aws.deployRoleName).toBe('shop-deploy');
  });

  test('a document that is not a mapping', () => {
    for (const [text, got] of [
      ['- a\n- b\n', 'a list'],
      ['', 'null'],
      ['just text\n', 'string "just text"'],
    ]) {
      const error = errorOf(() => parseConfig(text as string));
      expect(error.code).toBe('CONFIG_INVALID');
      expectSchemaRejects(text as string);
      expect(error.message).toBe(`cached-deploy.yml: expected a mapping, got ${got}`);
    }
  });
});

describe('malformed YAML', () => {
  test.each([
    ['an unclosed flow sequence', 'version: 1\naws:\n  region: [eu-west-1\n', 4, /Flow sequence/],
    ['a duplicate key', 'version: 1\naws: {}\ngithub: {}\naws: {}\n', 4, /Map keys must be unique/],
    ['an unclosed quote', 'version: 1\naws:\n  accountId: "1234\n', 4, /Missing closing "quote/],
    ['a tab used for indentation', 'version: 1\naws:\n\taccountId: "1"\n', 3, /Tabs/],
    ['bad indentation', 'aws:\n  accountId: "1"\n    region: x\n', 3, /same column/],
    ['a nested compact mapping', 'aws: region: x\n', 1, /compact mappings/],
    ['an alias without its anchor', 'version: 1\naws: *defaults\n', 2, /Unresolved alias/],
  ])('%s: file:line:col, one line', (_what, text, line, reason) => {
    const error = errorOf(() => parseConfig(text, 'services/shop/cached-deploy.yml'));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message).not.toMatch(/[\r\n]/);
    const match = /^services\/shop\/cached-deploy\.yml:(\d+):(\d+): not valid YAML: (.+)$/.exec(
      error.message,
    );
    expect(match, error.message).not.toBeNull();
    expect(Number(match?.[1])).toBe(line);
    expect(Number(match?.[2])).toBeGreaterThanOrEqual(1);
    expect(match?.[3]).toMatch(reason);
  });

  test('an alias bomb is refused as a parse error', () => {
    const text = [
      'a: &a [x, x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
    ].join('\n');
    const error = errorOf(() => parseConfig(text));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message).toMatch(/^cached-deploy\.yml: not valid YAML: .*alias/);
  });

  test('the position is where the problem is', () => {
    const error = errorOf(() => parseConfig('version: 1\naws: {}\naws: {}\n'));
    expect(error.message).toMatch(
      /^cached-deploy\.yml:3:1: not valid YAML: Map keys must be unique/,
    );
  });
});

describe('paths outside the repository', () => {
  test.each([
    ['images[0].context', set(['images', 0, 'context'], '../x')],
    ['images[0].dockerfile', set(['images', 0, 'dockerfile'], '../Dockerfile')],
    ['images[1].dockerfile', set(['images', 1, 'dockerfile'], '/abs/Dockerfile')],
    ['images[1].context', set(['images', 1, 'context'], 'worker/../../x')],
    ['workflow.file', set(['workflow', 'file'], '../.github/workflows/deploy.yml')],
    ['paths.bakeFile', set(['paths', 'bakeFile'], 'C:\\repo\\docker-bake.hcl')],
    ['paths.ecrDir', set(['paths', 'ecrDir'], '..')],
    ['paths.stateFile', set(['paths', 'stateFile'], '/etc/state.json')],
  ])('%s', (path, mutate) => {
    const error = expectConfigError(() => parseConfig(textOf(mutate)), 'PATH_OUTSIDE_REPO', path);
    expectSchemaRejects(textOf(mutate));
    expect(error.message).toContain('points outside the repository');
  });
});

describe('checks against the repository (loadConfig)', () => {
  /** A repository with Dockerfile (stages base, runtime) and worker/Dockerfile; returns its dir. */
  function repoWith(config: (c: Loose) => void): string {
    const dir = join(createTempDir(), 'repo');
    mkdirSync(join(dir, 'worker'), { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), 'FROM node:20 AS base\nFROM base AS runtime\n');
    writeFileSync(join(dir, 'worker', 'Dockerfile'), 'FROM python:3.12 AS Runtime\n');
    writeFileSync(join(dir, 'cached-deploy.yml'), textOf(config));
    // What fails below is the repository, not the file: the schema (which cannot see the
    // repository) accepts every one of these.
    expectSchemaAccepts(textOf(config));
    return dir;
  }

  test('a valid repository loads', () => {
    const config = loadConfig(repoWith(() => {}));
    expect(config.images.map((image) => image.target)).toEqual([undefined, 'runtime']);
  });

  test('a symlinked Dockerfile pointing outside the repository', () => {
    const dir = repoWith(set(['images', 1, 'dockerfile'], 'outside/Dockerfile'));
    const outside = createTempDir();
    writeFileSync(join(outside, 'Dockerfile'), 'FROM alpine AS runtime\n');
    symlinkSync(outside, join(dir, 'outside'), 'dir');
    const error = expectConfigError(
      () => loadConfig(dir),
      'PATH_OUTSIDE_REPO',
      'images[1].dockerfile',
    );
    expect(error.message).toContain('"outside/Dockerfile"');
  });

  test('a symlinked context pointing outside the repository', () => {
    const dir = repoWith(set(['images', 0, 'context'], 'ctx'));
    symlinkSync(createTempDir(), join(dir, 'ctx'), 'dir');
    expectConfigError(() => loadConfig(dir), 'PATH_OUTSIDE_REPO', 'images[0].context');
  });

  test('an output path under a symlinked folder (the file does not exist yet): never written through', () => {
    const dir = repoWith(() => {});
    symlinkSync(createTempDir(), join(dir, '.github'), 'dir');
    const error = expectConfigError(() => loadConfig(dir), 'UNSAFE_PATH', 'workflow.file');
    expect(error.message).toContain('goes through a symbolic link (.github)');
  });

  test('a symlink that stays inside the repository is fine', () => {
    const dir = repoWith(set(['images', 1, 'dockerfile'], 'alias/Dockerfile'));
    symlinkSync(join(dir, 'worker'), join(dir, 'alias'), 'dir');
    expect(loadConfig(dir).images[1]?.dockerfile).toBe('alias/Dockerfile');
  });

  test('a Dockerfile that does not exist', () => {
    const dir = repoWith(set(['images', 1, 'dockerfile'], 'worker/Dockerfile.prod'));
    const error = expectConfigError(
      () => loadConfig(dir),
      'DOCKERFILE_NOT_FOUND',
      'images[1].dockerfile',
    );
    expect(error.message).toContain('"worker/Dockerfile.prod" does not exist');
  });

  test('a target stage that is not in the Dockerfile lists the stages', () => {
    const dir = repoWith(set(['images', 0, 'target'], 'nope'));
    const error = expectConfigError(() => loadConfig(dir), 'STAGE_NOT_FOUND', 'images[0].target');
    expect(error.message).toContain('stage "nope" is not in Dockerfile (stages: base, runtime)');
  });

  test('target stages match case-insensitively, like Docker', () => {
    const dir = repoWith(set(['images', 0, 'target'], 'RunTime'));
    expect(loadConfig(dir).images[0]?.target).toBe('RunTime');
  });

  test('a context directory that does not exist', () => {
    const dir = repoWith(set(['images', 1, 'context'], 'missing'));
    expectConfigError(() => loadConfig(dir), 'CONFIG_INVALID', 'images[1].context');
  });

  test('no cached-deploy.yml', () => {
    const error = errorOf(() => loadConfig(createTempDir()));
    expect(error.code).toBe('CONFIG_NOT_FOUND');
    expect(error.message).toMatch(
      /cached-deploy\.yml: not found \(run `create-cached-deploy init` first\)$/,
    );
  });
});

describe('Dockerfile stages (parseDockerfileStages)', () => {
  const stages = (text: string) =>
    parseDockerfileStages(text).map(({ name, base, line }) => ({ name, base, line }));

  test('FROM x AS y, and an unnamed stage', () => {
    expect(stages('FROM node:20 AS deps\nRUN npm ci\nFROM deps AS build\nFROM alpine\n')).toEqual([
      { name: 'deps', base: 'node:20', line: 1 },
      { name: 'build', base: 'deps', line: 3 },
      { name: undefined, base: 'alpine', line: 4 },
    ]);
  });

  test('lowercase from/as, and stage names are lowercased', () => {
    expect(stages('from node:20 as Build\nfRoM build As RUNTIME\n')).toEqual([
      { name: 'build', base: 'node:20', line: 1 },
      { name: 'runtime', base: 'build', line: 2 },
    ]);
  });

  test('--platform= flags are not the base image', () => {
    expect(
      stages(
        'FROM --platform=$BUILDPLATFORM golang:1.22 AS build\nFROM --platform=linux/amd64 gcr.io/distroless/static\n',
      ),
    ).toEqual([
      { name: 'build', base: 'golang:1.22', line: 1 },
      { name: undefined, base: 'gcr.io/distroless/static', line: 2 },
    ]);
  });

  test('line continuations, with the stage at its first line', () => {
    const text = [
      'FROM node:20 AS base',
      'RUN apt-get update && \\',
      '    apt-get install -y curl',
      'FROM --platform=$BUILDPLATFORM \\',
      '    base \\',
      '    AS build',
      'FROM build AS runtime',
    ].join('\n');
    expect(stages(text)).toEqual([
      { name: 'base', base: 'node:20', line: 1 },
      { name: 'build', base: 'base', line: 4 },
      { name: 'runtime', base: 'build', line: 7 },
    ]);
  });

  test('comments are ignored, also inside a continuation', () => {
    const text = [
      '# syntax=docker/dockerfile:1',
      '# FROM fake AS commented',
      'FROM node:20 \\',
      '# a comment inside the instruction',
      '    # an indented one',
      '    AS deps',
      '  # FROM indented AS comment',
      'RUN echo "FROM x AS y"',
      'COPY --from=deps /app /app',
    ].join('\n');
    expect(stages(text)).toEqual([{ name: 'deps', base: 'node:20', line: 3 }]);
  });

  test('CRLF line endings', () => {
    expect(stages('FROM node:20 AS a\r\nFROM a \\\r\n  AS b\r\n')).toEqual([
      { name: 'a', base: 'node:20', line: 1 },
      { name: 'b', base: 'a', line: 2 },
    ]);
  });

  test('the escape directive makes ` the continuation character', () => {
    const text = [
      '# escape=`',
      'FROM mcr.microsoft.com/windows/servercore:ltsc2022 `',
      '    AS build',
      'RUN dir C:\\',
      'FROM build AS runtime',
    ].join('\n');
    expect(stages(text)).toEqual([
      { name: 'build', base: 'mcr.microsoft.com/windows/servercore:ltsc2022', line: 2 },
      { name: 'runtime', base: 'build', line: 5 },
    ]);
  });

  test('the escape directive after the syntax directive, with spaces and any case', () => {
    const text = ['# syntax=docker/dockerfile:1', '#  ESCAPE = `', 'FROM alpine `', '  AS a'].join(
      '\n',
    );
    expect(stages(text)).toEqual([{ name: 'a', base: 'alpine', line: 3 }]);
  });

  test('with the escape directive, a backslash is not a continuation', () => {
    const text = ['# escape=`', 'FROM alpine \\', 'FROM alpine AS b'].join('\n');
    expect(stages(text).map((stage) => stage.name)).toEqual([undefined, 'b']);
  });

  test('an escape "directive" after a comment or instruction is just a comment', () => {
    expect(stages('# a comment\n# escape=`\nFROM alpine `\n  AS a\n')).toEqual([
      { name: undefined, base: 'alpine', line: 3 },
    ]);
    expect(stages('FROM alpine AS a\n# escape=`\nFROM a `\n  AS b\n')).toEqual([
      { name: 'a', base: 'alpine', line: 1 },
      { name: undefined, base: 'a', line: 3 },
    ]);
  });

  test('a Dockerfile without FROM has no stages', () => {
    expect(stages('# nothing here\n\nRUN true\n')).toEqual([]);
  });
});

describe('the defaults of trust separation', () => {
  test('role names, branch-cache repositories and IMMUTABLE image tags', () => {
    const config = parseConfig(
      stringify({
        aws: { accountId: '123456789012', region: 'eu-west-1' },
        github: { repository: 'acme/shop' },
        images: [
          { name: 'api', repository: 'shop' },
          { name: 'web', repository: 'shop-web', cacheRepository: 'caches/web' },
        ],
      }),
    );
    expect(config.aws).toMatchObject({
      roleName: 'shop-cached-deploy',
      branchRoleName: 'shop-cached-deploy-branches',
      deployRoleName: 'shop-cached-deploy-deploy',
    });
    expect(config.images.map((image) => image.branchCacheRepository)).toEqual([
      'shop-buildcache-branches',
      'caches/web-branches',
    ]);
    expect(config.ecr.imageTagMutability).toBe('IMMUTABLE');
    expect(config.ecr.cacheTagMutability).toBe('MUTABLE');
  });

  test('a long main role name: derived names stay within 64 characters and apart', () => {
    const derived = (roleName: string) =>
      parseConfig(
        stringify({
          aws: { accountId: '123456789012', region: 'eu-west-1', roleName },
          github: { repository: 'acme/shop' },
          images: [{ name: 'api', repository: 'shop' }],
        }),
      ).aws;
    const a = derived(`${'r'.repeat(60)}-one`);
    const b = derived(`${'r'.repeat(60)}-two`);
    for (const names of [a, b]) {
      expect(names.branchRoleName.length).toBeLessThanOrEqual(64);
      expect(names.deployRoleName.length).toBeLessThanOrEqual(64);
      expect(names.branchRoleName).toMatch(/^r+-[0-9a-f]{8}-branches$/);
      expect(names.deployRoleName).toMatch(/^r+-[0-9a-f]{8}-deploy$/);
    }
    expect(a.branchRoleName).not.toBe(b.branchRoleName);
    expect(a.deployRoleName).not.toBe(b.deployRoleName);
  });
});

describe('GitLab and images built per platform', () => {
  const gitlab = (image: Record<string, unknown>, settings: Record<string, unknown> = {}) =>
    stringify({
      version: 1,
      ci: 'gitlab',
      aws: { accountId: '123456789012', region: 'eu-west-1' },
      gitlab: { project: 'acme/api', ...settings },
      images: [{ name: 'api', repository: 'acme/api', ...image }],
    });
  const twoPlatforms = { platforms: ['linux/amd64', 'linux/arm64'] };
  const legTags = (text: string) => {
    const config = parseConfig(text);
    return Object.fromEntries(
      buildLegs(config).map((leg) => [leg.platform ?? '', gitlabRunnerTags(config, leg)]),
    );
  };

  test("several platforms are built natively by default, on gitlab.com on GitLab's hosted runners", () => {
    const text = gitlab(twoPlatforms);
    expect(parseConfig(text).images[0]?.build).toBe('native');
    expect(legTags(text)).toEqual({
      'linux/amd64': ['saas-linux-small-amd64'],
      'linux/arm64': ['saas-linux-small-arm64'],
    });
  });

  test('runner tags of a platform are added to gitlab.tags, once each; [] runs on gitlab.tags alone', () => {
    const text = gitlab(
      { ...twoPlatforms, platforms: ['linux/amd64', 'linux/arm64', 'linux/riscv64'] },
      {
        host: 'git.acme.example',
        tags: ['docker', 'privileged'],
        runnerTags: {
          'linux/amd64': [],
          'linux/arm64': ['arm64', 'docker'],
          'linux/riscv64': ['rv'],
        },
      },
    );
    expect(legTags(text)).toEqual({
      'linux/amd64': ['docker', 'privileged'],
      'linux/arm64': ['docker', 'privileged', 'arm64'],
      'linux/riscv64': ['docker', 'privileged', 'rv'],
    });
    // The hosted runners are no default with tags of one's own, nor on another instance.
    expect(parseConfig(text).gitlab?.runnerTags).not.toHaveProperty('linux/amd64', [
      'saas-linux-small-amd64',
    ]);
  });

  test.each([
    ['a self-managed instance', { host: 'git.acme.example' }, twoPlatforms.platforms, 0],
    ['gitlab.com with runner tags of its own', { tags: ['docker'] }, twoPlatforms.platforms, 0],
    ['a platform GitLab hosts no runner for', {}, ['linux/amd64', 'linux/s390x'], 1],
  ])(
    '%s: a native platform without runner tags is an error naming gitlab.runnerTags',
    (_, settings, platforms, index) => {
      const error = expectConfigError(
        () => parseConfig(gitlab({ platforms }, settings)),
        'CONFIG_INVALID',
        `images[0].platforms[${index}]`,
      );
      expect(error.message).toContain(
        `${platforms[index]} has no runner tags for a native build: set gitlab.runnerTags.${platforms[index]} to the tags of its runners`,
      );
    },
  );

  test('emulated needs no runner tags', () => {
    const config = parseConfig(
      gitlab({ ...twoPlatforms, build: 'emulated' }, { host: 'git.acme.example' }),
    );
    expect(config.images[0]?.build).toBe('emulated');
    expect(buildLegs(config).map((leg) => leg.platform)).toEqual([undefined]);
  });

  test.each([
    [
      'a key that is not a platform',
      { arm64: ['arm64'] },
      'gitlab.runnerTags.arm64',
      /not a platform/,
    ],
    [
      'a tag with a variable',
      { 'linux/arm64': ['$RUNNER'] },
      'gitlab.runnerTags.linux/arm64[0]',
      /runner tag/,
    ],
    [
      'a tag listed twice',
      { 'linux/arm64': ['a', 'a'] },
      'gitlab.runnerTags.linux/arm64[1]',
      /listed twice/,
    ],
    [
      'a list that is a string',
      { 'linux/arm64': 'arm64' },
      'gitlab.runnerTags.linux/arm64',
      /expected a list/,
    ],
    ['a list instead of a mapping', ['arm64'], 'gitlab.runnerTags', /mapping from platform/],
  ])('gitlab.runnerTags: %s is an error naming the field', (_, runnerTags, path, message) => {
    const error = expectConfigError(
      () => parseConfig(gitlab(twoPlatforms, { runnerTags })),
      'CONFIG_INVALID',
      path,
    );
    expect(error.message).toMatch(message);
  });
});
