/**
 * The JSON Schemas shipped for editors (schemas/*.schema.json) against the validator they are
 * generated from: the committed files are what the definitions produce, the README's examples
 * pass both, and on thousands of mutated documents the schema and the validator agree on every
 * verdict, except for the rules JSON Schema cannot express (checks across fields and against the
 * repository, which the schemas' descriptions name).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import {
  jsonSchemaFiles,
  outdatedSchemaFiles,
  REGENERATE_COMMAND,
} from '../scripts/json-schemas.js';
import { init } from '../src/api/init.js';
import { jsonPattern, nullable } from '../src/config/json-schema.js';
import { parseRawConfig } from '../src/config/load.js';
import { configSchema } from '../src/config/schema.js';
import { CachedDeployError } from '../src/errors.js';
import { fleetSchema, parseFleetFile } from '../src/fleet/fleet-file.js';
import { GENERATOR_VERSION } from '../src/version.js';
import { type SchemaName, schemaError } from './support/json-schemas.js';
import { createTempRepo, PROJECT_ROOT } from './support/temp-repo.js';

/** Whether the validator's schema stage (what JSON Schema can express) accepts `value`. */
function validatorAccepts(name: SchemaName, value: unknown): boolean {
  try {
    (name === 'fleet' ? fleetSchema : configSchema)(value, '', `${name}.yml`);
    return true;
  } catch (error) {
    if (error instanceof CachedDeployError) return false;
    throw error;
  }
}

function expectAgreement(name: SchemaName, value: unknown): void {
  const validator = validatorAccepts(name, value);
  const schema = schemaError(name, value);
  expect(
    schema === undefined,
    `validator ${validator ? 'accepts' : 'rejects'}, schema ${schema ? `rejects (${schema})` : 'accepts'}: ${JSON.stringify(value)}`,
  ).toBe(validator);
}

describe('the committed schemas', () => {
  test('are what the validator definitions produce', () => {
    expect(
      outdatedSchemaFiles(PROJECT_ROOT),
      `out of date with src/config/schema.ts or src/fleet/fleet-file.ts: run \`${REGENERATE_COMMAND}\` and commit schemas/`,
    ).toEqual([]);
  });

  test('are shipped in the package', () => {
    const files = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')).files;
    for (const { path } of jsonSchemaFiles()) {
      expect(files.some((entry: string) => path.startsWith(entry))).toBe(true);
    }
  });

  test('name what only create-cached-deploy checks', () => {
    const [config, fleet] = jsonSchemaFiles();
    expect(config?.schema.description).toMatch(/Dockerfile.*stage.*unique.*cache repository/s);
    expect(fleet?.schema.description).toMatch(/listed twice/);
  });
});

describe('the README examples', () => {
  const blocks = [
    ...readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8').matchAll(/```yaml\n([\s\S]*?)```/g),
  ]
    .map((match) => match[1] ?? '')
    .map((text) => ({ text, value: parse(text) as Record<string, unknown> }));
  const configs = blocks.filter(({ value }) => value && 'images' in value);
  const fleets = blocks.filter(({ value }) => value && 'repos' in value);

  test('include a cached-deploy.yml and a fleet.yml', () => {
    expect(configs.length).toBeGreaterThanOrEqual(1);
    expect(fleets.length).toBeGreaterThanOrEqual(1);
  });

  test('every cached-deploy.yml passes the schema and the validator', () => {
    for (const { text, value } of configs) {
      expect(schemaError('cached-deploy', value)).toBeUndefined();
      expect(parseRawConfig(text).images.length).toBeGreaterThan(0);
    }
  });

  test('every fleet.yml passes the schema and the validator', () => {
    for (const { text, value } of fleets) {
      expect(schemaError('fleet', value)).toBeUndefined();
      expect(parseFleetFile(text, '/fleets/fleet.yml').repos.length).toBeGreaterThan(0);
    }
  });
});

test('the cached-deploy.yml init writes names the schema of its version, and passes it', async () => {
  const repo = createTempRepo();
  await init(repo, { yes: true, accountId: '123456789012', region: 'eu-west-1' });
  const text = readFileSync(join(repo, 'cached-deploy.yml'), 'utf8');
  const url = `https://unpkg.com/create-cached-deploy@${GENERATOR_VERSION}/schemas/cached-deploy.schema.json`;
  // Red Hat's YAML language server reads the first, JetBrains IDEs the second.
  expect(text.split('\n').slice(0, 2)).toEqual([
    `# yaml-language-server: $schema=${url}`,
    `# $schema: ${url}`,
  ]);
  // The URL names the file the package ships.
  expect(jsonSchemaFiles().map((file) => file.path)).toContain(url.replace(/^.*?@[^/]+\//, ''));
  expect(schemaError('cached-deploy', parse(text))).toBeUndefined();
});

describe('the schema comments on re-running init', () => {
  const run = (repo: string, version: string) =>
    init(repo, { yes: true, accountId: '123456789012', region: 'eu-west-1', version });
  const commentsOf = (version: string) => {
    const url = `https://unpkg.com/create-cached-deploy@${version}/schemas/cached-deploy.schema.json`;
    return [`# yaml-language-server: $schema=${url}`, `# $schema: ${url}`];
  };
  const config = (repo: string) => readFileSync(join(repo, 'cached-deploy.yml'), 'utf8');
  const withoutSchemaComments = (text: string) =>
    text
      .split('\n')
      .filter((line) => !/^# (yaml-language-server|\$schema)/.test(line))
      .join('\n');

  test('name the new version, once', async () => {
    const repo = createTempRepo();
    await run(repo, '0.1.0');
    await run(repo, '0.2.0');
    const lines = config(repo).split('\n');
    expect(lines.slice(0, 2)).toEqual(commentsOf('0.2.0'));
    expect(lines.filter((line) => line.includes('schema'))).toHaveLength(2);
    expect(parse(config(repo)).generator).toBe('0.2.0');
  });

  test('are added above the comments of a file written without them', async () => {
    const repo = createTempRepo();
    await run(repo, '0.1.0');
    writeFileSync(
      join(repo, 'cached-deploy.yml'),
      `# ours\n${withoutSchemaComments(config(repo))}`,
    );
    await run(repo, '0.1.0');
    expect(config(repo).split('\n').slice(0, 3)).toEqual([...commentsOf('0.1.0'), '# ours']);
  });

  test("a schema comment naming another schema is the user's: nothing is added or changed", async () => {
    const repo = createTempRepo();
    await run(repo, '0.1.0');
    const theirs = '# yaml-language-server: $schema=./schemas/ours.json';
    writeFileSync(
      join(repo, 'cached-deploy.yml'),
      `${theirs}\n${withoutSchemaComments(config(repo))}`,
    );
    await run(repo, '0.2.0');
    expect(config(repo).split('\n')[0]).toBe(theirs);
    expect(config(repo)).not.toContain('unpkg.com');
  });
});

// --- agreement on mutated documents ---------------------------------------------------------

const DIGEST = `sha256:${'a1'.repeat(32)}`;

const FULL_CONFIG = {
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
    on: { push: ['main', 'release/*'], pullRequest: true, workflowDispatch: false },
    deploy: { command: './deploy.sh "$IMAGE_TAG"', environment: 'production' },
  },
  seed: { enabled: true, schedule: '0 4 * * 1' },
  prune: { sweep: true, graceHours: 6, failOnError: false },
  paths: {
    bakeFile: 'docker-bake.hcl',
    ecrDir: 'ecr',
    stateFile: '.cached-deploy/state.json',
    pruneScript: 'scripts/prune-ecr-cache.mjs',
  },
  ecr: { imageTagMutability: 'MUTABLE', cacheTagMutability: 'MUTABLE', scanOnPush: true },
  iac: 'none',
};

/** The same settings for GitLab CI: the gitlab section instead of github, the pipeline included. */
const GITLAB_CONFIG = {
  ...FULL_CONFIG,
  ci: 'gitlab',
  github: undefined,
  gitlab: {
    project: 'acme/platform/shop',
    host: 'gitlab.acme.example',
    mainBranch: 'main',
    audience: 'https://gitlab.acme.example',
    tags: ['docker'],
    runnerTags: { 'linux/amd64': [], 'linux/arm64': ['arm64'] },
  },
  workflow: { file: '.gitlab/cached-deploy.yml', deploy: FULL_CONFIG.workflow.deploy },
};
delete (GITLAB_CONFIG as Record<string, unknown>).github;

const FLEET = {
  version: 1,
  workDir: '.cached-deploy-fleet',
  concurrency: 8,
  defaults: { aws: { region: 'eu-west-1' }, cache: { branchRetentionDays: 14 } },
  enforce: { buildkit: { image: 'moby/buildkit:v0.27.0' }, prune: { graceHours: 6 } },
  repos: [
    '../orders',
    'git@github.com:acme/payments.git',
    {
      url: 'https://github.com/acme/billing.git',
      ref: 'main',
      name: 'billing',
      overrides: { cache: { branchRetentionDays: 30 }, workflow: { deploy: { command: './d' } } },
    },
    { path: 'services/web', name: 'web', overrides: { images: [{ name: 'x', repository: 'xy' }] } },
  ],
};

/** Values near every rule's edges, valid for some field and invalid for most others. */
const VALUES: unknown[] = [
  null,
  true,
  false,
  0,
  1,
  -1,
  1.5,
  6,
  14,
  64,
  65,
  720,
  721,
  3650,
  3651,
  10_000,
  10_001,
  '',
  ' ',
  'x',
  'main',
  'Main',
  'feat..x',
  'feat/a',
  'release/*',
  '-x',
  'a.lock',
  'refs/heads/main',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, on purpose
  'x${{ github.actor }}',
  'eu-west-1',
  'us-gov-west-1',
  'EU-WEST-1',
  '123456789012',
  '12345678901',
  'acme/shop',
  'gitlab',
  'github',
  'gitlab.com',
  'https://gitlab.com',
  '.gitlab-ci.yml',
  '.gitlab/x.yml',
  'acme/platform/shop',
  { project: 'acme/shop' },
  { 'linux/arm64': ['arm64', 'docker'] },
  { arm64: ['arm64'] },
  'shop',
  'Shop',
  'team/shop.web_api-x',
  'team//shop',
  'a'.repeat(33),
  'a'.repeat(257),
  '🚀'.repeat(100),
  '🚀'.repeat(101),
  'linux/amd64',
  'linux',
  'moby/buildkit:v0.27.0',
  'moby/buildkit:latest',
  'moby/buildkit',
  `moby/buildkit@${DIGEST}`,
  'public.ecr.aws/vend/moby/buildkit:buildx-stable-1',
  '0 4 * * 1',
  '*/15 0-23 1,15 jan-DEC mon-fri',
  '0 25 * * 1',
  '0 4 * *',
  '*/0 4 * * 1',
  '0 4 * * 7',
  'docker-bake.hcl',
  '../x',
  '..',
  'a/../b',
  '/etc/x',
  'C:\\x',
  'a..b/c',
  'ecr$(id)',
  'a"b',
  'x\ny',
  'MUTABLE',
  'IMMUTABLE',
  'IMMUTABLE_WITH_EXCLUSION',
  'none',
  'terraform',
  'https://github.com/acme/x.git',
  'HTTPS://github.com/acme/x.git',
  'git@github.com:acme/x.git',
  '--upload-pack=evil',
  'file:///a b',
  'name\u0007bell',
  [],
  ['main'],
  ['main', 'main'],
  ['linux/amd64', 'linux/amd64'],
  ['x', 1],
  {},
  { name: 'x', repository: 'y' },
  { name: 'x' },
  { command: './deploy.sh' },
  { environment: 'prod' },
  { cache: { branchRetentionDays: 0 } },
  { aws: null },
  { github: { repository: null } },
  { version: null },
  { typo: 1 },
  { path: 'a', url: 'file:///a' },
  { url: 'file:///a', ref: '-x' },
  { path: 'a', overrides: { prune: { graceHours: 0 } } },
];

type Path = (string | number)[];

/** Every path into `value` that leads to a mapping entry or list item, depth first. */
function pathsOf(value: unknown, prefix: Path = []): Path[] {
  if (Array.isArray(value)) {
    return value.flatMap((item, index) => [
      [...prefix, index],
      ...pathsOf(item, [...prefix, index]),
    ]);
  }
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => [
      [...prefix, key],
      ...pathsOf(item, [...prefix, key]),
    ]);
  }
  return [];
}

type Mutation =
  | { kind: 'set'; at: number; value: unknown }
  | { kind: 'delete'; at: number }
  | { kind: 'add'; at: number; key: string; value: unknown };

/** Applies each mutation to a copy: `at` picks a path of the document as it is at that moment. */
function mutate(base: unknown, mutations: Mutation[]): unknown {
  const document = structuredClone(base);
  for (const mutation of mutations) {
    const paths = pathsOf(document);
    const path = paths[mutation.at % Math.max(1, paths.length)] ?? [];
    if (path.length === 0) continue;
    let parent = document as Record<string | number, unknown>;
    for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
    const last = path.at(-1) as string | number;
    if (mutation.kind === 'set') parent[last] = structuredClone(mutation.value);
    else if (mutation.kind === 'delete') {
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else delete parent[last];
    } else if (!Array.isArray(parent)) parent[mutation.key] = structuredClone(mutation.value);
  }
  return document;
}

const keysOf = (value: unknown): string[] =>
  pathsOf(value).flatMap((path) => path.filter((key): key is string => typeof key === 'string'));

function mutationArb(base: unknown): fc.Arbitrary<Mutation> {
  const value = fc.constantFrom(...VALUES);
  const at = fc.nat();
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), at, value }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('add' as const),
        at,
        // Known fields of another level, and a typo.
        key: fc.constantFrom(...new Set([...keysOf(base), 'typo'])),
        value,
      }),
    },
  );
}

describe('schema and validator agree', () => {
  test.each([
    ['cached-deploy', FULL_CONFIG],
    ['cached-deploy', GITLAB_CONFIG],
    ['fleet', FLEET],
  ] as const)('on %s.yml as given', (name, document) => {
    expect(validatorAccepts(name, document)).toBe(true);
    expectAgreement(name, document);
  });

  test.each([
    ['cached-deploy', FULL_CONFIG],
    ['cached-deploy', GITLAB_CONFIG],
    ['fleet', FLEET],
  ] as const)('on mutated %s.yml documents', (name, base) => {
    let rejected = 0;
    fc.assert(
      fc.property(fc.array(mutationArb(base), { minLength: 1, maxLength: 3 }), (mutations) => {
        const document = mutate(base, mutations);
        if (!validatorAccepts(name, document)) rejected++;
        expectAgreement(name, document);
      }),
      { numRuns: 1500 },
    );
    // Both verdicts occur often: the comparison is not one-sided.
    expect(rejected).toBeGreaterThan(100);
    expect(rejected).toBeLessThan(1400);
  });

  const CRON = [
    { min: 0, max: 59 },
    { min: 0, max: 23 },
    { min: 1, max: 31 },
    { min: 1, max: 12, names: 'jan feb mar apr may jun jul aug sep oct nov dec'.split(' ') },
    { min: 0, max: 6, names: 'sun mon tue wed thu fri sat'.split(' ') },
  ];

  test('on seed schedules (every cron rule but range order, which is the validator only)', () => {
    const field = (spec: (typeof CRON)[number]) => {
      // A number (sometimes out of range, sometimes zero-padded) or a name in any case; its value.
      const value = fc.oneof(
        fc
          .tuple(
            fc.oneof(
              { weight: 20, arbitrary: fc.integer({ min: spec.min, max: spec.max }) },
              { weight: 1, arbitrary: fc.integer({ min: 0, max: spec.max + 40 }) },
            ),
            fc.boolean(),
          )
          .map(([n, pad]) => ({ text: pad ? `0${n}` : String(n), n })),
        ...(spec.names
          ? [
              fc.tuple(fc.nat(spec.names.length - 1), fc.boolean()).map(([index, upper]) => ({
                text: upper
                  ? (spec.names?.[index] ?? '').toUpperCase()
                  : (spec.names?.[index] ?? ''),
                n: index + spec.min,
              })),
            ]
          : []),
      );
      // Ranges are always in order: a reversed range is the one rule the schema leaves out.
      const range = fc.oneof(
        fc.constant('*'),
        value.map((v) => v.text),
        fc
          .tuple(value, value)
          .map(([a, b]) => (a.n <= b.n ? `${a.text}-${b.text}` : `${b.text}-${a.text}`)),
      );
      const step = fc.oneof(
        { weight: 20, arbitrary: fc.constantFrom('', '', '/1', '/5', '/15') },
        { weight: 1, arbitrary: fc.constantFrom('/0', '/05', '/x', '/', '-', ',') },
      );
      const item = fc.tuple(range, step).map(([r, s]) => r + s);
      return fc.array(item, { minLength: 1, maxLength: 2 }).map((items) => items.join(','));
    };
    const schedule = fc
      .tuple(
        fc.tuple(...CRON.map(field)),
        fc.constantFrom(' ', '  ', '\t'),
        fc.constantFrom('', ' ', '\n'),
        fc.oneof(
          { weight: 10, arbitrary: fc.constant(0) },
          { weight: 1, arbitrary: fc.constantFrom(-1, 1) },
        ),
      )
      .map(([fields, gap, edge, extra]) => {
        const parts = extra < 0 ? fields.slice(0, 4) : extra > 0 ? [...fields, '1'] : fields;
        return `${edge}${parts.join(gap)}${edge}`;
      });
    let accepted = 0;
    fc.assert(
      fc.property(schedule, (text) => {
        const document = { ...FULL_CONFIG, seed: { enabled: true, schedule: text } };
        if (validatorAccepts('cached-deploy', document)) accepted++;
        expectAgreement('cached-deploy', document);
      }),
      { numRuns: 2000 },
    );
    expect(accepted).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(1900);
  });
});

describe('building blocks', () => {
  test('a pattern with flags cannot become a JSON Schema pattern', () => {
    expect(() => jsonPattern(/a/i)).toThrow(/no flags/);
  });

  test('\\0 is written \\x00; an escaped backslash before 0 and \\01 are left alone', () => {
    expect(jsonPattern(/^[^\0\n]+$/)).toBe('^[^\\x00\\n]+$');
    expect(jsonPattern(/^\\0$/)).toBe('^\\\\0$');
    expect(new RegExp(jsonPattern(/^[^\0]$/), 'u').test('\0')).toBe(false);
  });

  test('nullable keeps the schema and adds null', () => {
    expect(nullable({ type: 'string', minLength: 1 })).toEqual({
      type: ['string', 'null'],
      minLength: 1,
    });
    expect(nullable({ const: 1 })).toEqual({ enum: [1, null] });
    expect(nullable({ type: 'string', enum: ['a'] })).toEqual({
      type: ['string', 'null'],
      enum: ['a', null],
    });
    expect(nullable({ anyOf: [{ type: 'string' }] })).toEqual({
      anyOf: [{ type: 'string' }, { type: 'null' }],
    });
  });
});
