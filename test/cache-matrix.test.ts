// biome-ignore-all lint/suspicious/noTemplateCurlyInString: this file holds shell scripts and GitHub expressions, whose ${…} is not JavaScript's
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { registryHost } from '../src/model/aws.js';
import { CACHE_EXPORT_OPTIONS, LOCAL_CACHE_SCOPE } from '../src/model/bake.js';
import {
  BRANCH_SCOPE_PREFIX,
  branchSlug,
  cacheScope,
  MAIN_SCOPE,
  MAX_TAG_LENGTH,
  maxSlugLength,
} from '../src/model/cache-tags.js';
import type { Workflow } from '../src/model/workflow.js';
import { renderFiles } from '../src/render/render-files.js';
import { type EvaluatedTarget, evaluateBake, type ParsedBake, parseBake } from './support/bake.js';

/**
 * The cache strategy end to end (DOMAIN.md §1, §4): the branch's scope is computed by running the
 * generated workflow's own shell step with bash, exactly as the runner would, and fed to the
 * generated bake file, which is evaluated as bake would. Nothing here re-implements the slug: the
 * TypeScript `cacheScope()` is only ever compared with what the shell produced.
 */

// Docker's tag grammar (distribution/reference).
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const MAIN_BRANCH = 'main';

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
      { name: LONGEST_IMAGE_NAME, repository: 'acme/worker' },
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
  return {
    label,
    config,
    imageNames: config.images.map((image) => image.name),
    scopeScript: cacheSteps[0].run,
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

/** Runs the step once per record; returns each run's GITHUB_OUTPUT as key → value. */
async function runScopeStep(
  script: string,
  records: readonly { BRANCH: string; IS_MAIN: string }[],
  lang = 'C.UTF-8',
): Promise<Record<string, string>[]> {
  if (records.length === 0) return [];
  const dir = join(scratch, `batch-${batchCounter++}`);
  const scriptFile = `${dir}-step.sh`;
  const loopFile = `${dir}-loop.sh`;
  writeFileSync(scriptFile, script);
  writeFileSync(loopFile, STEP_LOOP);
  for (const record of records) {
    if (record.BRANCH.includes('\0')) throw new Error('an environment variable cannot hold NUL');
  }
  const stdout = await runBash(
    [loopFile, scriptFile, 'BRANCH', 'IS_MAIN'],
    nulJoined(records.flatMap((record) => [record.BRANCH, record.IS_MAIN])),
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
  const outputs = await runScopeStep(
    fixture.scopeScript,
    branches.map((branch) => ({ BRANCH: branch, IS_MAIN: 'false' })),
  );
  return outputs.map((output) => output.scope ?? '<no scope output>');
}

const tsScope = (fixture: Fixture, branch: string, isMainBranch = false) =>
  cacheScope({ isMainBranch, branch, imageNames: fixture.imageNames });

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

/**
 * The strategy for one build: the bake file evaluated with CACHE_SCOPE=scope imports main (and
 * the branch's own scope off main) and exports only to the build's own scope, per target.
 */
function assertStrategy(fixture: Fixture, scope: string, isMainBuild: boolean): void {
  const evaluated = evaluateBake(fixture.bake, { CACHE_SCOPE: scope });
  expect(evaluated.variables.CACHE_SCOPE).toBe(scope);
  expect(Object.keys(evaluated.targets).sort()).toEqual([...fixture.imageNames].sort());
  expect(evaluated.groups.default?.targets).toEqual(fixture.imageNames);
  const exportLocations = new Set<string>();
  for (const image of fixture.config.images) {
    const target = evaluated.targets[image.name] as EvaluatedTarget;
    const from = (target['cache-from'] ?? []).map(parseCacheRef);
    const to = (target['cache-to'] ?? []).map(parseCacheRef);
    const registry = registryHost(fixture.config.aws.accountId, fixture.config.aws.region);
    for (const ref of [...from, ...to]) {
      expect(ref.attributes.get('type')).toBe('registry');
      expect(ref.registry).toBe(registry);
      expect(ref.repository).toBe(image.cacheRepository);
      expect(ref.tag, `tag ${ref.tag}`).toMatch(TAG);
      expect(ref.tag.length).toBeLessThanOrEqual(MAX_TAG_LENGTH);
      // `<scope>.<image>`: the image name (which has no '.') comes back from the last '.'.
      expect(ref.tag.slice(ref.tag.lastIndexOf('.') + 1)).toBe(image.name);
    }
    // Imports carry nothing but type and ref.
    for (const ref of from) expect([...ref.attributes.keys()]).toEqual(['type', 'ref']);
    const ownTag = `${scope}.${image.name}`;
    const mainTag = `${MAIN_SCOPE}.${image.name}`;
    expect(new Set(from.map((ref) => ref.tag))).toEqual(
      new Set(isMainBuild ? [mainTag] : [mainTag, ownTag]),
    );
    expect(to).toHaveLength(1);
    const [exported] = to as [CacheRef];
    expect(exported.tag).toBe(isMainBuild ? mainTag : ownTag);
    expect(Object.fromEntries(exported.attributes)).toEqual({
      type: 'registry',
      ref: `${registry}/${image.cacheRepository}:${exported.tag}`,
      ...EXPORT_OPTIONS,
    });
    expect(EXPORT_OPTIONS).toEqual({
      mode: 'max',
      'image-manifest': 'true',
      'oci-mediatypes': 'true',
      'ignore-error': 'true',
    });
    if (!isMainBuild) {
      expect(exported.tag.startsWith(`${MAIN_SCOPE}.`)).toBe(false);
      expect(exported.tag.startsWith(BRANCH_SCOPE_PREFIX)).toBe(true);
    }
    // One location is never written twice in one build (DOMAIN.md §2).
    const location = `${exported.repository}:${exported.tag}`;
    expect(exportLocations.has(location)).toBe(false);
    exportLocations.add(location);
  }
}

// ---------------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------------

interface Row {
  name: string;
  branch: string;
  isMain: boolean;
}

const ROWS: Row[] = [
  { name: 'the main branch', branch: MAIN_BRANCH, isMain: true },
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
  },
  { name: 'MAIN in capitals', branch: 'MAIN', isMain: false },
  { name: 'main/x', branch: 'main/x', isMain: false },
  { name: 'ending like a hashed slug', branch: 'feat-a-1234abcd', isMain: false },
  { name: "named like the local scope's tag", branch: LOCAL_CACHE_SCOPE, isMain: false },
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
  const results = new Map<string, { utf8: string; posix: string }>();

  beforeAll(async () => {
    const fixture = fixtureNamed(label);
    const records = ROWS.map((row) => ({ BRANCH: row.branch, IS_MAIN: String(row.isMain) }));
    const [utf8, posix] = await Promise.all([
      runScopeStep(fixture.scopeScript, records, 'C.UTF-8'),
      runScopeStep(fixture.scopeScript, records, 'C'),
    ]);
    ROWS.forEach((row, index) => {
      results.set(row.name, {
        utf8: utf8[index]?.scope ?? '<none>',
        posix: posix[index]?.scope ?? '<none>',
      });
    });
  });

  it.each(ROWS)('$name', (row) => {
    const fixture = fixtureNamed(label);
    const result = results.get(row.name);
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
    }
    assertStrategy(fixture, scope, row.isMain);
  });

  it('maps every row to its own scope', () => {
    const scopes = ROWS.map((row) => results.get(row.name)?.utf8);
    expect(new Set(scopes).size).toBe(ROWS.length);
  });

  it('keeps names that need no change, and hashes those that do', () => {
    const scopeOf = (branch: string) =>
      results.get(ROWS.find((row) => row.branch === branch && !row.isMain)?.name ?? '')?.utf8;
    expect(scopeOf('feat-x')).toBe('br-feat-x');
    expect(scopeOf('main')).toBe('br-main');
    expect(scopeOf('main.api')).toBe('br-main.api');
    expect(scopeOf('feat/x')).toMatch(/^br-feat-x-[0-9a-f]{8}$/);
    expect(scopeOf('feat-a-1234abcd')).toMatch(/^br-feat-a-1234abcd-[0-9a-f]{8}$/);
    expect(scopeOf('x'.repeat(300))?.length).toBe(
      BRANCH_SCOPE_PREFIX.length + maxSlugLength(fixtureNamed(label).imageNames),
    );
  });

  it('only the cache refs depend on the scope, and a build off CI never writes main', () => {
    const fixture = fixtureNamed(label);
    const local = evaluateBake(fixture.bake, {});
    const branch = evaluateBake(fixture.bake, { CACHE_SCOPE: 'br-feat-x' });
    expect(local.variables.CACHE_SCOPE).toBe(LOCAL_CACHE_SCOPE);
    for (const name of fixture.imageNames) {
      const strip = (target: EvaluatedTarget | undefined) => {
        const { 'cache-from': _from, 'cache-to': _to, ...rest } = target ?? {};
        return rest;
      };
      expect(strip(local.targets[name])).toEqual(strip(branch.targets[name]));
      expect(local.targets[name]?.['cache-to']?.join()).toContain(`:${LOCAL_CACHE_SCOPE}.${name},`);
    }
    assertStrategy(fixture, LOCAL_CACHE_SCOPE, false);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const noNul = (text: string) => text.replaceAll('\0', '');
/** Any Unicode text (no lone surrogates: a branch name is UTF-8). */
const unicodeName = fc.string({ unit: 'binary', minLength: 1, maxLength: 150 }).map(noNul);
const segment = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 16 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 16 }),
  fc.constantFrom('feat', 'main', 'br-local', '1234abcd', '-', '.', '..', '_', 'ü', '🚀', ''),
);
/** Names built from path segments joined with '/'. */
const pathName = fc
  .array(segment, { minLength: 1, maxLength: 10 })
  .map((parts) => noNul(parts.join('/')));
/** Long names around the truncation point. */
const longName = fc
  .tuple(fc.integer({ min: 80, max: 320 }), fc.string({ unit: 'grapheme-ascii', maxLength: 8 }))
  .map(([length, tail]) => `${'L/'.repeat(length).slice(0, length)}${tail}`);
/** Names that need no change, around the slug length limits. */
const tagSafeName = fc.string({
  unit: fc.constantFrom(...'abcxyzABC0189_.'),
  minLength: 85,
  maxLength: 130,
});
const anyName = fc.oneof(unicodeName, pathName, longName, tagSafeName);

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
    const outputs = await runScopeStep(
      fixture.scopeScript,
      names.map((name) => ({ BRANCH: name, IS_MAIN: 'true' })),
    );
    expect(outputs.map((output) => output.scope)).toEqual(names.map(() => MAIN_SCOPE));
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

  it('every string gives valid tags outside the main namespace (TypeScript)', () => {
    for (const label of ['one image', 'three images']) {
      const fixture = fixtureNamed(label);
      fc.assert(
        fc.property(anyName, (name) => {
          const scope = tsScope(fixture, name);
          for (const image of fixture.imageNames) {
            const tag = `${scope}.${image}`;
            expect(tag).toMatch(TAG);
            expect(tag.startsWith(`${MAIN_SCOPE}.`)).toBe(false);
          }
        }),
        { numRuns: 2000 },
      );
    }
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

  it('keeps a generated file literal where the config holds ${ (no accidental interpolation)', async () => {
    const config = parseConfig(
      stringify({
        aws: { accountId: '123456789012', region: 'eu-west-1' },
        github: { repository: 'acme/shop' },
        images: [{ name: 'api', repository: 'acme/api', context: 'apps/${CACHE_SCOPE}' }],
      }),
    );
    const bakeText = renderFiles(config).find(
      (file) => file.path === config.paths.bakeFile,
    )?.content;
    const evaluated = evaluateBake(await parseBake(bakeText ?? ''), { CACHE_SCOPE: 'br-x' });
    expect(evaluated.targets.api?.context).toBe('apps/${CACHE_SCOPE}');
    expect(evaluated.targets.api?.['cache-to']?.[0]).toContain(':br-x.api,');
  });
});
