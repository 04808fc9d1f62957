// biome-ignore-all lint/suspicious/noTemplateCurlyInString: this file holds shell scripts and GitHub expressions, whose ${…} is not JavaScript's
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { ACTIONS } from '../src/model/actions.js';
import { registryHost } from '../src/model/aws.js';
import { CACHE_EXPORT_OPTIONS } from '../src/model/bake.js';
import {
  BRANCH_SCOPE_PREFIX,
  branchSlug,
  cacheRepositoryVariable,
  cacheScope,
  LOCAL_CACHE_SCOPE,
  MAIN_SCOPE,
  MAX_TAG_LENGTH,
  maxSlugLength,
  SEED_SCOPE,
} from '../src/model/cache-tags.js';
import type { Step, Workflow } from '../src/model/workflow.js';
import { renderFiles } from '../src/render/render-files.js';
import {
  applyBakeSet,
  type EvaluatedTarget,
  evaluateBake,
  type ParsedBake,
  parseBake,
} from './support/bake.js';
import { anyName, noNul } from './support/branch-names.js';

/**
 * The cache strategy end to end (docs/cache-strategy.md, docs/erosion-and-seed.md): whether a run
 * builds main is decided by running the generated workflow's own `main` step with bash, the
 * branch's scope and its cache repositories by running its `cache` step with that answer, exactly
 * as the runner would, and those are fed to the generated bake file, which is evaluated as bake
 * would. Nothing here re-implements the slug: the TypeScript `cacheScope()` is only ever compared
 * with what the shell produced. main.* and seed.* live in each image's cache repository, every
 * branch's scope in its branch-cache repository.
 */

// Docker's tag grammar (distribution/reference).
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const MAIN_BRANCH = 'main';
/** The hash a slug gets when it had to change: 16 hex digits of the raw name's SHA-256. */
const HASH_SUFFIX = /-[0-9a-f]{16}$/;
const hashOf = (branch: string) =>
  createHash('sha256').update(branch, 'utf8').digest('hex').slice(0, 16);

// ---------------------------------------------------------------------------------------------
// Fixtures: the generated files for one image and for three (one with the longest allowed name,
// which leaves the least room for the branch slug).
// ---------------------------------------------------------------------------------------------

interface Fixture {
  label: string;
  config: ResolvedConfig;
  imageNames: string[];
  /** The exact `run:` text of the workflow step with id `cache`. */
  scopeScript: string;
  /** The build job's step with id `main`, which decides whether a run builds main. */
  mainStep: Step;
  /** The `set` overrides of the seed job's cold build. */
  seedSet: string[];
  /** The env of the seed job's cold build (CACHE_SCOPE and the repositories, literal). */
  seedEnv: Record<string, string>;
  bake: ParsedBake;
}

const LONGEST_IMAGE_NAME = 'a-very-long-image-name-for-tests';

const RAW_CONFIGS: { label: string; images: Record<string, unknown>[] }[] = [
  { label: 'one image', images: [{ name: 'api', repository: 'acme/api' }] },
  {
    label: 'three images',
    images: [
      { name: 'api', repository: 'acme/api', target: 'runtime' },
      { name: 'web', repository: 'acme/web', context: 'web', cacheRepository: 'acme/cache-web' },
      {
        name: LONGEST_IMAGE_NAME,
        repository: 'acme/worker',
        branchCacheRepository: 'acme/branch-caches/worker',
      },
    ],
  },
];

async function loadFixture(label: string, images: Record<string, unknown>[]): Promise<Fixture> {
  const config = parseConfig(
    stringify({
      aws: { accountId: '123456789012', region: 'eu-west-1' },
      github: { repository: 'acme/shop', mainBranch: MAIN_BRANCH },
      images,
    }),
  );
  const files = renderFiles(config, '0.0.0-test');
  const workflowText = files.find((file) => file.path === config.workflow.file)?.content;
  const bakeText = files.find((file) => file.path === config.paths.bakeFile)?.content;
  if (workflowText === undefined || bakeText === undefined) throw new Error('missing files');
  const workflow = parse(workflowText) as Workflow;
  const steps = workflow.jobs.build?.steps ?? [];
  const cacheSteps = steps.filter((step) => step.id === 'cache');
  if (cacheSteps.length !== 1 || typeof cacheSteps[0]?.run !== 'string') {
    throw new Error('the build job must have exactly one run: step with id "cache"');
  }
  const mainSteps = steps.filter((step) => step.id === 'main');
  if (mainSteps.length !== 1 || typeof mainSteps[0]?.run !== 'string') {
    throw new Error('the build job must have exactly one run: step with id "main"');
  }
  const seedBakes = (workflow.jobs.seed?.steps ?? []).filter((step) => step.uses === ACTIONS.bake);
  if (seedBakes.length !== 1) throw new Error('the seed job must have exactly one cold build');
  return {
    label,
    config,
    imageNames: config.images.map((image) => image.name),
    scopeScript: cacheSteps[0].run,
    mainStep: mainSteps[0],
    seedSet: String(seedBakes[0]?.with?.set ?? '')
      .split('\n')
      .filter(Boolean),
    seedEnv: { ...seedBakes[0]?.env },
    bake: await parseBake(bakeText, config.paths.bakeFile),
  };
}

let fixtures: Fixture[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'cache-matrix-'));
beforeAll(async () => {
  fixtures = await Promise.all(RAW_CONFIGS.map(({ label, images }) => loadFixture(label, images)));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const fixtureNamed = (label: string) => {
  const fixture = fixtures.find((candidate) => candidate.label === label);
  if (!fixture) throw new Error(`no fixture ${label}`);
  return fixture;
};

// ---------------------------------------------------------------------------------------------
// Running the step: one bash process per batch of branch names. For each record it runs the
// step's script as its own file with `bash -e` (GitHub's default shell for run:) in a clean
// environment holding only PATH, LANG, the step's env and GITHUB_OUTPUT, then prints what the
// step wrote to GITHUB_OUTPUT. Spawning from the (large) test process costs ~100 ms a time;
// spawning from this small loop costs a few ms.
// ---------------------------------------------------------------------------------------------

const STEP_LOOP = [
  'set -u',
  'script=$1',
  'shift',
  'names=("$@")',
  'while :; do',
  '  assigns=()',
  '  for name in "${names[@]}"; do',
  "    IFS= read -r -d '' value || exit 0",
  '    assigns+=("$name=$value")',
  '  done',
  '  : >"$STEP_OUTPUT"',
  '  if env -i PATH="$PATH" LANG="$STEP_LANG" "${assigns[@]}" GITHUB_OUTPUT="$STEP_OUTPUT" \\',
  '      bash -e "$script" >/dev/null 2>"$STEP_STDERR"; then',
  '    printf \'%s\\0\' "$(<"$STEP_OUTPUT")"',
  '  else',
  '    printf \'\\001%s\\0\' "$(<"$STEP_STDERR")"',
  '  fi',
  'done',
].join('\n');

let batchCounter = 0;

function runBash(args: string[], input: Buffer, env: Record<string, string>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`bash exited ${code}: ${Buffer.concat(err).toString()}`));
    });
    child.stdin.end(input);
  });
}

const nulJoined = (values: readonly string[]) =>
  Buffer.concat(values.flatMap((value) => [Buffer.from(value, 'utf8'), Buffer.from([0])]));

/**
 * Runs the step once per record (its environment: the same names in every record); returns each
 * run's GITHUB_OUTPUT as key → value.
 */
async function runStepScript(
  script: string,
  records: readonly Record<string, string>[],
  lang = 'C.UTF-8',
): Promise<Record<string, string>[]> {
  if (records.length === 0) return [];
  const dir = join(scratch, `batch-${batchCounter++}`);
  const scriptFile = `${dir}-step.sh`;
  const loopFile = `${dir}-loop.sh`;
  writeFileSync(scriptFile, script);
  writeFileSync(loopFile, STEP_LOOP);
  const names = Object.keys(records[0] ?? {});
  for (const record of records) {
    expect(Object.keys(record)).toEqual(names);
    for (const value of Object.values(record)) {
      if (value.includes('\0')) throw new Error('an environment variable cannot hold NUL');
    }
  }
  const stdout = await runBash(
    [loopFile, scriptFile, ...names],
    nulJoined(records.flatMap((record) => names.map((name) => record[name] ?? ''))),
    {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      LC_ALL: 'C',
      STEP_LANG: lang,
      STEP_OUTPUT: `${dir}-output`,
      STEP_STDERR: `${dir}-stderr`,
    },
  );
  const results = stdout.toString('utf8').split('\0').slice(0, -1);
  expect(results).toHaveLength(records.length);
  return results.map((result, index) => {
    if (result.startsWith('\x01')) {
      throw new Error(`step failed for ${JSON.stringify(records[index])}: ${result.slice(1)}`);
    }
    const outputs: Record<string, string> = {};
    for (const line of result.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) outputs[line.slice(0, eq)] = line.slice(eq + 1);
    }
    return outputs;
  });
}

/** The scope the workflow's step computes for each branch built as a non-main branch. */
async function shellScopes(fixture: Fixture, branches: readonly string[]): Promise<string[]> {
  const outputs = await runStepScript(
    fixture.scopeScript,
    branches.map((branch) => ({ BRANCH: branch, IS_MAIN: 'false' })),
  );
  return outputs.map((output) => output.scope ?? '<no scope output>');
}

const tsScope = (fixture: Fixture, branch: string, isMainBranch = false) =>
  cacheScope({ isMainBranch, branch, tagSuffixes: fixture.imageNames });

// ---------------------------------------------------------------------------------------------
// Reading the evaluated bake file
// ---------------------------------------------------------------------------------------------

interface CacheRef {
  attributes: Map<string, string>;
  registry: string;
  repository: string;
  tag: string;
}

function parseCacheRef(entry: string): CacheRef {
  const attributes = new Map<string, string>();
  for (const field of entry.split(',')) {
    const eq = field.indexOf('=');
    expect(eq, `attribute without "=" in ${entry}`).toBeGreaterThan(0);
    const key = field.slice(0, eq);
    expect(attributes.has(key), `${key} twice in ${entry}`).toBe(false);
    attributes.set(key, field.slice(eq + 1));
  }
  const ref = attributes.get('ref') ?? '';
  const colon = ref.lastIndexOf(':');
  const slash = ref.indexOf('/');
  return {
    attributes,
    registry: ref.slice(0, slash),
    repository: ref.slice(slash + 1, colon),
    tag: ref.slice(colon + 1),
  };
}

const EXPORT_OPTIONS = Object.fromEntries(
  CACHE_EXPORT_OPTIONS.split(',').map((option) => option.split('=') as [string, string]),
);

/** What the `cache` step must answer for the repositories of a build: its bake variables. */
function expectedRepositories(fixture: Fixture, isMainBuild: boolean): Record<string, string> {
  return Object.fromEntries(
    fixture.config.images.map((image) => [
      cacheRepositoryVariable(image.name),
      isMainBuild ? image.cacheRepository : image.branchCacheRepository,
    ]),
  );
}

/**
 * The strategy for one build: the bake file evaluated with CACHE_SCOPE=scope and the repositories
 * the `cache` step chose imports seed, then main (from the image's cache repository), then the
 * build's own scope, and exports only to the build's own scope: in the cache repository on main,
 * in the branch-cache repository everywhere else. `repositories` unset: the bake file's defaults
 * (a build outside CI).
 */
function assertStrategy(
  fixture: Fixture,
  scope: string,
  isMainBuild: boolean,
  repositories: Record<string, string> = {},
): void {
  const evaluated = evaluateBake(fixture.bake, { CACHE_SCOPE: scope, ...repositories });
  expect(evaluated.variables.CACHE_SCOPE).toBe(scope);
  expect(Object.keys(evaluated.targets).sort()).toEqual([...fixture.imageNames].sort());
  expect(evaluated.groups.default?.targets).toEqual(fixture.imageNames);
  const branchRepositories = new Set(fixture.config.images.map((i) => i.branchCacheRepository));
  const mainRepositories = new Set(fixture.config.images.map((i) => i.cacheRepository));
  const exportLocations = new Set<string>();
  for (const image of fixture.config.images) {
    const target = evaluated.targets[image.name] as EvaluatedTarget;
    const from = (target['cache-from'] ?? []).map(parseCacheRef);
    const to = (target['cache-to'] ?? []).map(parseCacheRef);
    const registry = registryHost(fixture.config.aws.accountId, fixture.config.aws.region);
    const own = isMainBuild ? image.cacheRepository : image.branchCacheRepository;
    for (const ref of [...from, ...to]) {
      expect(ref.attributes.get('type')).toBe('registry');
      expect(ref.registry).toBe(registry);
      expect(ref.tag, `tag ${ref.tag}`).toMatch(TAG);
      expect(ref.tag.length).toBeLessThanOrEqual(MAX_TAG_LENGTH);
      // `<scope>.<image>`: the image name (which has no '.') comes back from the last '.'.
      expect(ref.tag.slice(ref.tag.lastIndexOf('.') + 1)).toBe(image.name);
    }
    // Imports carry nothing but type and ref.
    for (const ref of from) expect([...ref.attributes.keys()]).toEqual(['type', 'ref']);
    const ownTag = `${scope}.${image.name}`;
    const mainTag = `${MAIN_SCOPE}.${image.name}`;
    const seedTag = `${SEED_SCOPE}.${image.name}`;
    // The seed first: the one cache that re-exports from fresh runners cannot erode.
    expect(from.map((ref) => `${ref.repository}:${ref.tag}`)).toEqual([
      `${image.cacheRepository}:${seedTag}`,
      `${image.cacheRepository}:${mainTag}`,
      `${own}:${ownTag}`,
    ]);
    expect(to).toHaveLength(1);
    const [exported] = to as [CacheRef];
    expect(exported.tag).toBe(isMainBuild ? mainTag : ownTag);
    expect(Object.fromEntries(exported.attributes)).toEqual({
      type: 'registry',
      ref: `${registry}/${own}:${exported.tag}`,
      ...EXPORT_OPTIONS,
    });
    expect(EXPORT_OPTIONS).toEqual({
      mode: 'max',
      'image-manifest': 'true',
      'oci-mediatypes': 'true',
      'ignore-error': 'true',
    });
    // An ordinary build never writes the seed; off main it never writes main, nor any cache
    // repository (only a branch-cache repository, the one the branch role may write).
    expect(exported.tag.startsWith(`${SEED_SCOPE}.`)).toBe(false);
    if (!isMainBuild) {
      expect(exported.tag.startsWith(`${MAIN_SCOPE}.`)).toBe(false);
      expect(exported.tag.startsWith(BRANCH_SCOPE_PREFIX)).toBe(true);
      expect(branchRepositories.has(exported.repository)).toBe(true);
      expect(mainRepositories.has(exported.repository)).toBe(false);
    } else {
      expect(mainRepositories.has(exported.repository)).toBe(true);
    }
    // One location is never written twice in one build (docs/cache-strategy.md).
    const location = `${exported.repository}:${exported.tag}`;
    expect(exportLocations.has(location)).toBe(false);
    exportLocations.add(location);
  }
}

/**
 * The seed job's cold build: the bake file evaluated with CACHE_SCOPE=seed and the job's `set`
 * overrides (then `--no-cache`, as bake-action passes it) imports nothing at all, outputs only to
 * the cache, and exports only seed.<image>, per target, without `ignore-error`: a failed seed
 * export fails the job.
 */
function assertSeedBuild(fixture: Fixture): void {
  expect(fixture.seedEnv.CACHE_SCOPE).toBe(SEED_SCOPE);
  const evaluated = evaluateBake(fixture.bake, fixture.seedEnv);
  const targets = applyBakeSet(evaluated.targets, [...fixture.seedSet, '*.no-cache=true']);
  const registry = registryHost(fixture.config.aws.accountId, fixture.config.aws.region);
  expect(Object.keys(targets).sort()).toEqual([...fixture.imageNames].sort());
  const { 'ignore-error': ignoreError, ...seedExportOptions } = EXPORT_OPTIONS;
  expect(ignoreError).toBe('true');
  for (const image of fixture.config.images) {
    const target = targets[image.name] as EvaluatedTarget;
    expect(target['cache-from']).toBeUndefined();
    expect(target.output).toEqual(['type=cacheonly']);
    expect(target['no-cache']).toBe(true);
    const to = (target['cache-to'] ?? []).map(parseCacheRef);
    expect(to.map((ref) => Object.fromEntries(ref.attributes))).toEqual([
      {
        type: 'registry',
        ref: `${registry}/${image.cacheRepository}:${SEED_SCOPE}.${image.name}`,
        ...seedExportOptions,
      },
    ]);
  }
  // The same file without the overrides, as every other build resolves it: ignore-error stays.
  const ordinary = applyBakeSet(evaluated.targets, []);
  for (const image of fixture.config.images) {
    const [exported] = (ordinary[image.name]?.['cache-to'] ?? []).map(parseCacheRef);
    expect(exported?.attributes.get('ignore-error')).toBe('true');
    expect(ordinary[image.name]?.output).toBeUndefined();
  }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

interface Row {
  name: string;
  branch: string;
  /** What the workflow's `main` step must answer for this run. */
  isMain: boolean;
  /** The event of the run (push when not given); a pull request's GITHUB_REF is refs/pull/…. */
  event?: 'push' | 'pull_request' | 'workflow_dispatch' | 'schedule';
}

const ROWS: Row[] = [
  { name: 'the main branch', branch: MAIN_BRANCH, isMain: true },
  {
    name: 'the main branch, dispatched',
    branch: MAIN_BRANCH,
    isMain: true,
    event: 'workflow_dispatch',
  },
  { name: 'feat/x', branch: 'feat/x', isMain: false },
  { name: 'feat-x', branch: 'feat-x', isMain: false },
  { name: 'unicode fëature/ü', branch: 'fëature/ü', isMain: false },
  { name: 'emoji', branch: 'feat/🚀-launch-🔥', isMain: false },
  { name: 'only emoji', branch: '🚀', isMain: false },
  { name: '300 characters', branch: 'x'.repeat(300), isMain: false },
  {
    name: '300 characters with slashes',
    branch: Array.from({ length: 60 }, (_, i) => `s${i % 10}yz`)
      .join('/')
      .slice(0, 300),
    isMain: false,
  },
  { name: 'leading -', branch: '-leading-dash', isMain: false },
  { name: 'leading .', branch: '.leading-dot', isMain: false },
  { name: "named like main's tag", branch: 'main.api', isMain: false },
  {
    name: "named like main's scope (a PR from a branch called main)",
    branch: 'main',
    isMain: false,
    event: 'pull_request',
  },
  // GitHub expressions would take these for main; the shell step does not.
  { name: 'MAIN in capitals', branch: 'MAIN', isMain: false },
  { name: 'Main capitalised', branch: 'Main', isMain: false },
  {
    name: 'Main capitalised, dispatched',
    branch: 'Main',
    isMain: false,
    event: 'workflow_dispatch',
  },
  { name: 'main/x', branch: 'main/x', isMain: false },
  { name: 'named like the seed scope', branch: 'seed', isMain: false },
  { name: "named like the seed's tag", branch: 'seed.api', isMain: false },
  { name: 'Seed capitalised', branch: 'Seed', isMain: false },
  { name: 'ending like a hashed slug', branch: 'feat-a-1234abcd5678ef90', isMain: false },
  { name: 'ending like an 8-digit (old) hashed slug', branch: 'feat-a-1234abcd', isMain: false },
  {
    name: 'ending like a hashed slug in capitals',
    branch: 'feat-A-1234ABCD5678EF90',
    isMain: false,
  },
  { name: "named like the local scope's tag", branch: LOCAL_CACHE_SCOPE, isMain: false },
  { name: 'named like the local scope', branch: 'local-0000000000000000', isMain: false },
  { name: 'named local', branch: 'local', isMain: false },
  { name: 'named like the old local scope', branch: 'br-local', isMain: false },
  { name: 'with a single quote', branch: "it's", isMain: false },
  { name: 'shell metacharacters', branch: 'a$(touch pwned)`id`;b|c&&d', isMain: false },
  { name: 'a long name that still fits unhashed', branch: 'y'.repeat(89), isMain: false },
  // Both sides of the slug length limit: 121 characters with one image, 92 with a 32-character
  // image name.
  ...[91, 92, 93, 120, 121, 122].map((length) => ({
    name: `tag-safe, ${length} characters`,
    branch: 'v1.2_'.repeat(30).slice(0, length),
    isMain: false,
  })),
];

describe.each(RAW_CONFIGS.map(({ label }) => label))('cache matrix, %s', (label) => {
  const results = new Map<
    string,
    { isMain: string; utf8: string; posix: string; repositories: Record<string, string> }
  >();

  beforeAll(async () => {
    const fixture = fixtureNamed(label);
    // First the `main` step, with the runner's GITHUB_REF and GITHUB_EVENT_NAME for the run…
    const mainRef = fixture.mainStep.env?.MAIN_REF;
    expect(mainRef).toBe(`refs/heads/${MAIN_BRANCH}`);
    const decided = await runStepScript(
      fixture.mainStep.run ?? 'false',
      ROWS.map((row) => ({
        MAIN_REF: mainRef ?? '',
        GITHUB_REF: row.event === 'pull_request' ? 'refs/pull/7/merge' : `refs/heads/${row.branch}`,
        GITHUB_EVENT_NAME: row.event ?? 'push',
      })),
    );
    const isMain = decided.map((output) => output['is-main'] ?? '<none>');
    // …then the `cache` step with its answer, under two locales.
    const records = ROWS.map((row, index) => ({
      BRANCH: row.branch,
      IS_MAIN: isMain[index] ?? '',
    }));
    const [utf8, posix] = await Promise.all([
      runStepScript(fixture.scopeScript, records, 'C.UTF-8'),
      runStepScript(fixture.scopeScript, records, 'C'),
    ]);
    ROWS.forEach((row, index) => {
      const { scope = '<none>', ...repositories } = utf8[index] ?? {};
      const { scope: posixScope = '<none>', ...posixRepositories } = posix[index] ?? {};
      expect(posixRepositories).toEqual(repositories);
      results.set(row.name, {
        isMain: isMain[index] ?? '<none>',
        utf8: scope,
        posix: posixScope,
        repositories,
      });
    });
  });

  it.each(ROWS)('$name', (row) => {
    const fixture = fixtureNamed(label);
    const result = results.get(row.name);
    // The shell decides main exactly: case variants and pull requests are not main.
    expect(result?.isMain).toBe(String(row.isMain));
    const scope = result?.utf8 ?? '';
    // The locale of the runner does not matter.
    expect(result?.posix).toBe(scope);
    // The shell step and the TypeScript agree byte for byte.
    expect(scope).toBe(tsScope(fixture, row.branch, row.isMain));
    if (row.isMain) {
      expect(scope).toBe(MAIN_SCOPE);
    } else {
      expect(scope).toBe(
        BRANCH_SCOPE_PREFIX + branchSlug(row.branch, maxSlugLength(fixture.imageNames)),
      );
      expect(scope.startsWith(BRANCH_SCOPE_PREFIX)).toBe(true);
      // No branch reaches the seed's, main's or a laptop's scope.
      expect([SEED_SCOPE, MAIN_SCOPE, LOCAL_CACHE_SCOPE]).not.toContain(scope);
      expect(scope.startsWith(`${SEED_SCOPE}.`)).toBe(false);
    }
    // …and the step chose the repositories: the cache repositories only on main.
    expect(result?.repositories).toEqual(expectedRepositories(fixture, row.isMain));
    assertStrategy(fixture, scope, row.isMain, result?.repositories);
  });

  it('maps every branch to its own scope', () => {
    const byBranch = new Map<string, Set<string>>();
    for (const row of ROWS) {
      const key = `${row.branch}\0${row.isMain}`;
      byBranch.set(key, (byBranch.get(key) ?? new Set()).add(results.get(row.name)?.utf8 ?? ''));
    }
    // The same branch and answer always give the same scope, different ones different scopes.
    for (const scopes of byBranch.values()) expect(scopes.size).toBe(1);
    const scopes = [...byBranch.values()].flatMap((each) => [...each]);
    expect(new Set(scopes).size).toBe(byBranch.size);
  });

  it('keeps names that need no change, and hashes those that do', () => {
    const scopeOf = (branch: string) =>
      results.get(ROWS.find((row) => row.branch === branch && !row.isMain)?.name ?? '')?.utf8;
    expect(scopeOf('feat-x')).toBe('br-feat-x');
    expect(scopeOf('main')).toBe('br-main');
    expect(scopeOf('Main')).toBe('br-Main');
    expect(scopeOf('main.api')).toBe('br-main.api');
    expect(scopeOf('seed')).toBe('br-seed');
    expect(scopeOf('seed.api')).toBe('br-seed.api');
    expect(scopeOf('local')).toBe('br-local');
    expect(scopeOf('br-local')).toBe('br-br-local');
    // Changed names get '-' and the first 16 hex digits of the SHA-256 of the raw name.
    expect(scopeOf('feat/x')).toBe(`br-feat-x-${hashOf('feat/x')}`);
    expect(scopeOf('feat/x')).toMatch(/^br-feat-x-[0-9a-f]{16}$/);
    // Names that already end like a hashed slug (16 lowercase hex digits) are hashed again…
    expect(scopeOf('feat-a-1234abcd5678ef90')).toBe(
      `br-feat-a-1234abcd5678ef90-${hashOf('feat-a-1234abcd5678ef90')}`,
    );
    expect(scopeOf('local-0000000000000000')).toBe(
      `br-local-0000000000000000-${hashOf('local-0000000000000000')}`,
    );
    expect(scopeOf(LOCAL_CACHE_SCOPE)).toBe(`br-${LOCAL_CACHE_SCOPE}-${hashOf(LOCAL_CACHE_SCOPE)}`);
    // …and names that do not (8 digits, capitals) are kept.
    expect(scopeOf('feat-a-1234abcd')).toBe('br-feat-a-1234abcd');
    expect(scopeOf('feat-A-1234ABCD5678EF90')).toBe('br-feat-A-1234ABCD5678EF90');
    const long = scopeOf('x'.repeat(300));
    expect(long?.length).toBe(
      BRANCH_SCOPE_PREFIX.length + maxSlugLength(fixtureNamed(label).imageNames),
    );
    expect(long?.endsWith(`-${hashOf('x'.repeat(300))}`)).toBe(true);
  });

  it('the seed build imports nothing from the registry and exports only seed.<image>', () => {
    assertSeedBuild(fixtureNamed(label));
  });

  it('only the cache refs depend on the scope, and a build off CI never writes main', () => {
    const fixture = fixtureNamed(label);
    const local = evaluateBake(fixture.bake, {});
    const branch = evaluateBake(fixture.bake, { CACHE_SCOPE: 'br-feat-x' });
    expect(local.variables.CACHE_SCOPE).toBe(LOCAL_CACHE_SCOPE);
    // Shaped like a hashed slug whose hash is all zeros, which no branch name produces.
    expect(LOCAL_CACHE_SCOPE).toBe('br-local-0000000000000000');
    expect(LOCAL_CACHE_SCOPE).toMatch(HASH_SUFFIX);
    for (const name of fixture.imageNames) {
      const strip = (target: EvaluatedTarget | undefined) => {
        const { 'cache-from': _from, 'cache-to': _to, ...rest } = target ?? {};
        return rest;
      };
      expect(strip(local.targets[name])).toEqual(strip(branch.targets[name]));
      expect(local.targets[name]?.['cache-to']?.join()).toContain(`:${LOCAL_CACHE_SCOPE}.${name},`);
    }
    // Outside CI the bake file's defaults hold: the branch-cache repositories.
    assertStrategy(fixture, LOCAL_CACHE_SCOPE, false);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const PROPERTY_TIMEOUT = 20_000;

describe('properties of the scope step', () => {
  it(
    'the bash step and cacheScope() agree on arbitrary names',
    async () => {
      for (const label of ['one image', 'three images']) {
        const fixture = fixtureNamed(label);
        await fc.assert(
          fc.asyncProperty(fc.array(anyName, { minLength: 25, maxLength: 60 }), async (names) => {
            const scopes = await shellScopes(fixture, names);
            names.forEach((name, index) => {
              expect(scopes[index], JSON.stringify(name)).toBe(tsScope(fixture, name));
            });
          }),
          { numRuns: 3 },
        );
      }
    },
    PROPERTY_TIMEOUT,
  );

  it('on the main branch the step always answers main, whatever BRANCH says', async () => {
    const fixture = fixtureNamed('three images');
    const names = fc.sample(anyName, { numRuns: 15 });
    const outputs = await runStepScript(
      fixture.scopeScript,
      names.map((name) => ({ BRANCH: name, IS_MAIN: 'true' })),
    );
    expect(outputs.map((output) => output.scope)).toEqual(names.map(() => MAIN_SCOPE));
    for (const { scope: _, ...repositories } of outputs) {
      expect(repositories).toEqual(expectedRepositories(fixture, true));
    }
  });

  /** Names that differ only where the slug is lossy: separators, case of the hash, the tail. */
  const nearCollisions = fc
    .tuple(
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }),
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }),
      fc.integer({ min: 100, max: 200 }),
    )
    .map(([left, right, long]) => {
      const prefix = `${left}/`.repeat(long).slice(0, long);
      const family = [
        `${left}/${right}`,
        `${left}-${right}`,
        `${left}--${right}`,
        `${left}_${right}`,
        `${left}.${right}`,
        `${left}//${right}`,
        `${left}ü${right}`,
        `${left} ${right}`,
        `${left}/${right}/`,
        // Names longer than the slug limit that differ only after the cut.
        `${prefix}${right}`,
        `${prefix}${right}x`,
        `${prefix}-${right}`,
        `${prefix}/${right}`,
      ];
      return [...new Set(family.map(noNul))];
    });

  it('no two distinct names share a scope (TypeScript, many pairs)', () => {
    const fixture = fixtureNamed('three images');
    fc.assert(
      fc.property(anyName, anyName, (a, b) => {
        fc.pre(a !== b);
        expect(tsScope(fixture, a)).not.toBe(tsScope(fixture, b));
      }),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(nearCollisions, (family) => {
        const scopes = family.map((name) => tsScope(fixture, name));
        expect(new Set(scopes).size).toBe(family.length);
      }),
      { numRuns: 1000 },
    );
    // A branch literally named like another branch's (hashed) slug gets a scope of its own.
    fc.assert(
      fc.property(anyName, (name) => {
        const slug = tsScope(fixture, name).slice(BRANCH_SCOPE_PREFIX.length);
        fc.pre(slug !== name);
        expect(tsScope(fixture, slug)).not.toBe(tsScope(fixture, name));
      }),
      { numRuns: 1000 },
    );
  });

  it(
    'no two distinct names share a scope (the bash step, near collisions)',
    async () => {
      const fixture = fixtureNamed('one image');
      await fc.assert(
        fc.asyncProperty(
          fc.array(nearCollisions, { minLength: 1, maxLength: 3 }),
          async (families) => {
            const names = families.flat();
            const scopes = await shellScopes(fixture, names);
            let offset = 0;
            for (const family of families) {
              const own = scopes.slice(offset, offset + family.length);
              offset += family.length;
              expect(new Set(own).size, JSON.stringify(family)).toBe(family.length);
            }
            // And a name equal to another name's slug, run through bash too.
            const slugNames = scopes
              .map((scope) => scope.slice(BRANCH_SCOPE_PREFIX.length))
              .filter((slug) => !names.includes(slug));
            const slugScopes = await shellScopes(fixture, slugNames);
            for (const scope of slugScopes) expect(scopes).not.toContain(scope);
          },
        ),
        { numRuns: 3 },
      );
    },
    PROPERTY_TIMEOUT,
  );

  it('every string gives valid tags outside the main and seed namespaces (TypeScript)', () => {
    for (const label of ['one image', 'three images']) {
      const fixture = fixtureNamed(label);
      fc.assert(
        fc.property(anyName, (name) => {
          const scope = tsScope(fixture, name);
          expect([MAIN_SCOPE, SEED_SCOPE, LOCAL_CACHE_SCOPE]).not.toContain(scope);
          for (const image of fixture.imageNames) {
            const tag = `${scope}.${image}`;
            expect(tag).toMatch(TAG);
            expect(tag.startsWith(`${MAIN_SCOPE}.`)).toBe(false);
            expect(tag.startsWith(`${SEED_SCOPE}.`)).toBe(false);
          }
          // A changed slug ends in '-' and 16 hex digits of the raw name's hash; a kept one is
          // the name itself, which then cannot end like a hashed slug.
          if (scope === BRANCH_SCOPE_PREFIX + name) expect(name).not.toMatch(HASH_SUFFIX);
          else expect(scope.endsWith(`-${hashOf(name)}`), JSON.stringify(name)).toBe(true);
        }),
        { numRuns: 2000 },
      );
    }
  });

  /** Names built around the local scope's shape: prefixes, case, hash lengths, tails. */
  const LOCAL_LIKE = ['', 'br-', 'BR-', 'x/'].flatMap((prefix) =>
    [
      'local',
      'Local',
      'local-0000000000000000',
      'local/0000000000000000',
      'local-000000000000000',
      'local-00000000000000000',
    ].flatMap((middle) =>
      ['', '0', '-0000000000000000'].map((tail) => `${prefix}${middle}${tail}`),
    ),
  );

  it('no branch reaches the local scope, not even one named like it (TypeScript and bash)', async () => {
    expect(LOCAL_LIKE).toContain('local');
    expect(LOCAL_LIKE).toContain('local-0000000000000000');
    expect(LOCAL_LIKE).toContain(LOCAL_CACHE_SCOPE);
    const localLike = fc.constantFrom(...LOCAL_LIKE);
    for (const fixture of fixtures) {
      fc.assert(
        fc.property(fc.oneof(anyName, localLike), (name) => {
          expect(tsScope(fixture, name)).not.toBe(LOCAL_CACHE_SCOPE);
        }),
        { numRuns: 1000 },
      );
      for (const name of LOCAL_LIKE) expect(tsScope(fixture, name)).not.toBe(LOCAL_CACHE_SCOPE);
    }
    // The workflow's step agrees on every one of them (the fixture with the shortest slugs).
    const fixture = fixtureNamed('three images');
    const scopes = await shellScopes(fixture, LOCAL_LIKE);
    LOCAL_LIKE.forEach((name, index) => {
      expect(scopes[index], JSON.stringify(name)).toBe(tsScope(fixture, name));
    });
  });

  // Candidate branch names from pieces that git's ref rules care about.
  const refPiece = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('a', 'feat', 'x1', 'main', 'Main', 'ü', '🚀', '-') },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        '/',
        '.',
        '..',
        '//',
        '@',
        '@{',
        '{',
        '}',
        '.lock',
        '~',
        '^',
        ':',
        '?',
        '*',
        '[',
        '\\',
        ' ',
        '\t',
        '\x7f',
        "'",
        '"',
        '$',
        '`',
        '+',
        '!',
        '#',
      ),
    },
  );
  const refCandidate = fc
    .array(refPiece, { minLength: 1, maxLength: 14 })
    .map((pieces) => pieces.join(''));
  const refCandidateLong = fc
    .tuple(fc.integer({ min: 100, max: 300 }), refCandidate)
    .map(([length, rest]) => `${'ab/'.repeat(length).slice(0, length)}${rest}`);

  const GIT_LOOP = `
while IFS= read -r -d '' name; do
  if out=$(git check-ref-format --branch "$name" 2>/dev/null) && [ "$out" = "$name" ]; then
    printf 1
  else
    printf 0
  fi
done
`;

  async function gitAccepts(names: readonly string[]): Promise<boolean[]> {
    const loop = join(scratch, `git-loop-${batchCounter++}.sh`);
    writeFileSync(loop, GIT_LOOP);
    const out = await runBash([loop], nulJoined(names), {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: scratch,
      GIT_CONFIG_NOSYSTEM: '1',
      LC_ALL: 'C',
    });
    const flags = out.toString('utf8');
    expect(flags).toHaveLength(names.length);
    return [...flags].map((flag) => flag === '1');
  }

  it('git itself is consulted (it accepts and rejects what we expect)', async () => {
    expect(
      await gitAccepts(['feat/x', 'fëature/ü', '-x', 'a..b', 'a.lock', 'HEAD', 'a b']),
    ).toEqual([true, true, false, false, false, false, false]);
  });

  it(
    'every name git check-ref-format --branch accepts gets valid, non-main tags (bash)',
    async () => {
      const seen = { accepted: 0, rejected: 0 };
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.oneof(refCandidate, refCandidateLong), { minLength: 20, maxLength: 60 }),
          async (candidates) => {
            const names = [...new Set(candidates)];
            const accepted = await gitAccepts(names);
            const valid = names.filter((_, index) => accepted[index]);
            seen.accepted += valid.length;
            seen.rejected += names.length - valid.length;
            for (const fixture of fixtures) {
              const scopes = await shellScopes(fixture, valid);
              valid.forEach((name, index) => {
                const scope = scopes[index] ?? '';
                expect(scope, JSON.stringify(name)).toBe(tsScope(fixture, name));
                for (const image of fixture.imageNames) {
                  const tag = `${scope}.${image}`;
                  expect(tag, JSON.stringify(name)).toMatch(TAG);
                  expect(tag.length).toBeLessThanOrEqual(MAX_TAG_LENGTH);
                  expect(tag.startsWith(`${MAIN_SCOPE}.`)).toBe(false);
                  expect(tag.startsWith(BRANCH_SCOPE_PREFIX)).toBe(true);
                }
              });
              expect(new Set(scopes).size).toBe(valid.length);
            }
          },
        ),
        { numRuns: 4 },
      );
      // The sample exercised both sides of git's rules.
      expect(seen.accepted).toBeGreaterThan(10);
      expect(seen.rejected).toBeGreaterThan(10);
    },
    PROPERTY_TIMEOUT,
  );
});

// ---------------------------------------------------------------------------------------------
// The bake evaluator itself (everything above relies on it)
// ---------------------------------------------------------------------------------------------

describe('the bake evaluator', () => {
  const HCL = [
    'variable "A" {',
    '  default = "a"',
    '}',
    'variable "B" {',
    '  default = "${A}-b"',
    '}',
    'variable "EMPTY" {',
    '}',
    'group "default" {',
    '  targets = ["t"]',
    '}',
    'target "t" {',
    '  context = "lit $${A} %%{x} ${ A }/${B}"',
    '  tags    = ["${B}:${EMPTY}", "q\\"uote"]',
    '  args    = { X = "${A}" }',
    '}',
  ].join('\n');

  it('applies defaults, same-named environment overrides and $${ escapes', async () => {
    const parsed = await parseBake(HCL);
    const defaults = evaluateBake(parsed, {});
    expect(defaults.variables).toEqual({ A: 'a', B: 'a-b', EMPTY: '' });
    expect(defaults.targets.t?.context).toBe('lit ${A} %{x} a/a-b');
    expect(defaults.targets.t?.tags).toEqual(['a-b:', 'q"uote']);
    expect(defaults.targets.t?.args).toEqual({ X: 'a' });
    expect(defaults.groups).toEqual({ default: { targets: ['t'] } });
    // An environment variable overrides (even when empty) and is taken literally.
    const overridden = evaluateBake(parsed, { A: '${B}', EMPTY: 'e', UNRELATED: 'x' });
    expect(overridden.variables).toEqual({ A: '${B}', B: '${B}-b', EMPTY: 'e' });
    expect(evaluateBake(parsed, { A: '' }).variables.B).toBe('-b');
  });

  it('rejects what it does not model instead of guessing', async () => {
    const unknown = await parseBake('target "t" {\n  context = "${NOPE}"\n}\n');
    expect(() => evaluateBake(unknown, {})).toThrow(/unknown variable "NOPE"/);
    const call = await parseBake(
      'variable "A" {\n  default = "a"\n}\ntarget "t" {\n  context = "${upper(A)}"\n}\n',
    );
    expect(() => evaluateBake(call, {})).toThrow(/unsupported interpolation/);
    await expect(parseBake('target "t" {\n  inherits = ["u"]\n}\n')).rejects.toThrow(/inherits/);
  });

  describe('--set, as buildx applies it', () => {
    const TARGETS = `
target "a" {
  cache-from = ["type=registry,ref=r/c:seed", "type=registry,ref=r/c:main", "type=registry,ref=r/c:main"]
  cache-to   = ["type=registry,ref=r/c:main,mode=max,ignore-error=true"]
  tags       = ["r/a:1", "r/a:1"]
  platforms  = ["linux/amd64"]
}
target "ab" {
  cache-from = ["type=registry,ref=r/c:main"]
}
target "b" {
}
`;
    const resolve = async (overrides: string[]) =>
      applyBakeSet(evaluateBake(await parseBake(TARGETS), {}).targets, overrides);

    it('normalises every target, with or without overrides: duplicates go, empty lists vanish', async () => {
      const targets = await resolve([]);
      expect(targets.a?.['cache-from']).toEqual([
        'type=registry,ref=r/c:seed',
        'type=registry,ref=r/c:main',
      ]);
      expect(targets.a?.tags).toEqual(['r/a:1']);
      expect(targets.b).toEqual({});
    });

    it('an empty value clears a list: no import at all', async () => {
      const targets = await resolve(['*.cache-from=']);
      expect(targets.a?.['cache-from']).toBeUndefined();
      expect(targets.ab?.['cache-from']).toBeUndefined();
      expect(targets.a?.['cache-to']).toHaveLength(1);
    });

    it('repeated lines for one key build one list, which replaces the attribute', async () => {
      const targets = await resolve([
        'a.cache-to=type=registry,ref=r/c:seed,mode=max',
        'a.cache-to=type=local,dest=/tmp/x',
      ]);
      expect(targets.a?.['cache-to']).toEqual([
        'type=registry,ref=r/c:seed,mode=max',
        'type=local,dest=/tmp/x',
      ]);
    });

    it('+= merges: appended, then duplicates dropped by type and attributes, not by text', async () => {
      const targets = await resolve([
        'a.cache-from+=ref=r/c:seed,type=registry',
        'a.cache-from+=type=registry,ref=r/c:br',
        'b.cache-from+=r/c:x,r/c:y',
      ]);
      expect(targets.a?.['cache-from']).toEqual([
        'type=registry,ref=r/c:seed',
        'type=registry,ref=r/c:main',
        'type=registry,ref=r/c:br',
      ]);
      // A value without "=" is a list of registry refs.
      expect(targets.b?.['cache-from']).toEqual(['r/c:x', 'r/c:y']);
    });

    it('the last line of a key decides between replace and merge (one Append flag per key)', async () => {
      const merged = await resolve([
        'a.cache-to=type=local,dest=/x',
        'a.cache-to+=type=local,dest=/y',
      ]);
      expect(merged.a?.['cache-to']).toEqual([
        'type=registry,ref=r/c:main,mode=max,ignore-error=true',
        'type=local,dest=/x',
        'type=local,dest=/y',
      ]);
      const replaced = await resolve([
        'a.cache-to+=type=local,dest=/x',
        'a.cache-to=type=local,dest=/y',
      ]);
      expect(replaced.a?.['cache-to']).toEqual(['type=local,dest=/x', 'type=local,dest=/y']);
    });

    it('patterns: an exact name first, else a glob; output, push and no-cache', async () => {
      const targets = await resolve(['a*.output=type=cacheonly', 'b.push=true', 'a.no-cache=true']);
      expect(targets.a?.output).toEqual(['type=cacheonly']);
      expect(targets.ab?.output).toEqual(['type=cacheonly']);
      expect(targets.a?.['no-cache']).toBe(true);
      expect(targets.b?.output).toEqual(['type=image,push=true']);
      const exact = await resolve(['a.output=type=cacheonly']);
      expect(exact.ab?.output).toBeUndefined();
    });

    it('rejects what buildx rejects, and what it does not model', async () => {
      await expect(resolve(['*.platforms=linux/arm64'])).rejects.toThrow(/unknown key: platforms/);
      await expect(resolve(['*.outputs=type=cacheonly'])).rejects.toThrow(/unknown key: outputs/);
      await expect(resolve(['c*.tags=x'])).rejects.toThrow(
        /could not find any target matching 'c\*'/,
      );
      await expect(resolve(['a.cache-to=mode=max'])).rejects.toThrow(/type required/);
      await expect(resolve(['a.no-cache=yes'])).rejects.toThrow(/boolean key no-cache/);
      await expect(resolve(['a.tags'])).rejects.toThrow(/expected target.key=value/);
      await expect(resolve(['*.secrets=id=x'])).rejects.toThrow(/not modelled/);
      await expect(resolve(['a.push=true', 'a.output=type=cacheonly'])).rejects.toThrow(
        /push and output/,
      );
    });
  });

  it('keeps a generated file literal where the config holds ${ (no accidental interpolation)', async () => {
    const config = parseConfig(
      stringify({
        aws: { accountId: '123456789012', region: 'eu-west-1' },
        github: { repository: 'acme/shop' },
        images: [{ name: 'api', repository: 'acme/api', context: 'apps/x' }],
      }),
    );
    // The schema refuses `$` in paths; the HCL escaping is the second line of defence, so it is
    // tested on a resolved config that bypassed the schema.
    expect(() =>
      parseConfig(
        stringify({
          aws: { accountId: '123456789012', region: 'eu-west-1' },
          github: { repository: 'acme/shop' },
          images: [{ name: 'api', repository: 'acme/api', context: 'apps/${CACHE_SCOPE}' }],
        }),
      ),
    ).toThrow(/images\[0\]\.context: .* may only contain/);
    (config.images[0] as { context: string }).context = 'apps/${CACHE_SCOPE}';
    const bakeText = renderFiles(config).find(
      (file) => file.path === config.paths.bakeFile,
    )?.content;
    const evaluated = evaluateBake(await parseBake(bakeText ?? ''), { CACHE_SCOPE: 'br-x' });
    expect(evaluated.targets.api?.context).toBe('apps/${CACHE_SCOPE}');
    expect(evaluated.targets.api?.['cache-to']?.[0]).toContain(':br-x.api,');
  });
});
