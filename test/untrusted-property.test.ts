/**
 * Property: whatever a repository's state file says and wherever its symlinks point, generate,
 * generate --check, diff (unified, markdown, json) and fleet --check/--diff/--write change no file
 * outside the generated set, and no byte of a file the tool did not write (a marker secret in
 * files outside the repository, in .git, in the process environment) appears in any output.
 * Random state files (keys drawn from hostile paths and generated ones, hashes matching or not)
 * and random symlink layouts (at generated paths and at their parents, pointing inside and
 * outside), on real files in a temporary directory; a bounded number of runs.
 */
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { generate } from '../src/api/generate.js';
import { hashContent } from '../src/plan/state.js';
import { runMain } from './support/run-main.js';
import { createTempDir, snapshotDir } from './support/temp-repo.js';

const SECRET = 'SECRET-prop-5d1e0b7a';
const STATE = '.cached-deploy/state.json';
const CONFIG = {
  aws: { accountId: '123456789012', region: 'eu-west-1' },
  github: { repository: 'acme/app' },
  images: [{ name: 'app', repository: 'acme/app' }],
};
const GENERATED = [
  '.github/workflows/deploy.yml',
  'docker-bake.hcl',
  'ecr/cache-lifecycle-policy.json',
  'ecr/branch-cache-lifecycle-policy.json',
  'ecr/image-lifecycle-policy.json',
  'ecr/main-role-policy.json',
  'ecr/main-role-trust-policy.json',
  'ecr/branch-role-policy.json',
  'ecr/branch-role-trust-policy.json',
  'scripts/prune-ecr-cache.mjs',
  'scripts/prune-ecr-cache.package.json',
  'scripts/prune-ecr-cache.package-lock.json',
];
/** A file this tool wrote under an earlier layout (a renamed bake file): deleting it is fine. */
const OLD_BAKE = 'old/docker-bake.hcl';

/** State keys: hostile ones, generated ones, and a real orphan. `@` is the world's root. */
const KEYS = [
  '../outside/victim.txt',
  '@/outside/victim.txt',
  'ecr/../../outside/victim.txt',
  '.git/config',
  'Dockerfile',
  'cached-deploy.yml',
  STATE,
  'link/iam-policy.json',
  'linkdir/trust-policy.json',
  'src/app.mjs',
  'infra/iam-policy.json',
  '.github/workflows/ci.yml',
  OLD_BAKE,
  ...GENERATED,
];
/** Where symlinks go: generated files, the config, the state file, and parent directories. */
const LINK_AT = [
  ...GENERATED,
  STATE,
  'cached-deploy.yml',
  'ecr',
  'scripts',
  '.github',
  '.github/workflows',
  'link',
  'linkdir',
];
/** Where they point. `@` is the world's root; `~` the repository. */
const LINK_TO = [
  '@/outside/secret.txt',
  '@/outside',
  '@/outside/ecr',
  '/proc/self/environ',
  '~/.git/config',
  '~/.git',
  '~/Dockerfile',
  '~/ecr/iam-policy.json',
  '~/src',
];

let template: string;
let templateRoot: string;

beforeAll(async () => {
  process.env.PROPERTY_CANARY = SECRET;
  templateRoot = createTempDirForSuite();
  template = join(templateRoot, 'repo');
  mkdirSync(join(template, 'src'), { recursive: true });
  mkdirSync(join(template, '.git'));
  writeFileSync(join(template, '.git', 'config'), `[core]\n# ${SECRET}\n`);
  writeFileSync(join(template, 'Dockerfile'), `FROM scratch\n# ${SECRET}\n`);
  writeFileSync(join(template, 'src', 'app.mjs'), `console.log("${SECRET}");\n`);
  mkdirSync(join(template, 'infra'));
  writeFileSync(join(template, 'infra', 'iam-policy.json'), `{"own": "${SECRET}"}\n`);
  writeFileSync(join(template, 'cached-deploy.yml'), stringify(CONFIG));
  await generate(template);
  // An orphan of an earlier layout, written by the tool (marker and recorded hash).
  const bake = readFileSync(join(template, 'docker-bake.hcl'), 'utf8');
  mkdirSync(join(template, 'old'));
  writeFileSync(join(template, OLD_BAKE), bake);
});

afterAll(() => {
  delete process.env.PROPERTY_CANARY;
  rmSync(templateRoot, { recursive: true, force: true });
});

function createTempDirForSuite(): string {
  return realpathSync(mkdtempSync(join(tmpdir(), 'cached-deploy-prop-')));
}

interface Layout {
  keys: { key: string; matching: boolean }[];
  links: { at: string; to: string }[];
  renameBake: boolean;
}

const layoutArbitrary: fc.Arbitrary<Layout> = fc.record({
  keys: fc.array(fc.record({ key: fc.constantFrom(...KEYS), matching: fc.boolean() }), {
    maxLength: 5,
  }),
  links: fc.uniqueArray(
    fc.record({ at: fc.constantFrom(...LINK_AT), to: fc.constantFrom(...LINK_TO) }),
    { maxLength: 3, selector: (link) => link.at },
  ),
  renameBake: fc.boolean(),
});

/** Builds the world for one layout: root/{repo, outside}, plus a scratch dir for the fleet. */
function build(layout: Layout) {
  const root = createTempDirForRun();
  const repo = join(root, 'repo');
  const outside = join(root, 'outside');
  cpSync(template, repo, { recursive: true });
  mkdirSync(join(outside, 'ecr'), { recursive: true });
  writeFileSync(join(outside, 'secret.txt'), `${SECRET}\n`);
  writeFileSync(join(outside, 'victim.txt'), `victim ${SECRET}\n`);
  writeFileSync(join(outside, 'ecr', 'iam-policy.json'), `{"x": "${SECRET}"}\n`);
  writeFileSync(join(outside, 'ecr', 'trust-policy.json'), `{"x": "${SECRET}"}\n`);
  const resolve = (path: string) => path.replace(/^@/, root).replace(/^~/, repo);

  const state = JSON.parse(readFileSync(join(repo, STATE), 'utf8'));
  state.files[OLD_BAKE] = hashContent(readFileSync(join(repo, OLD_BAKE), 'utf8'));
  for (const { key, matching } of layout.keys) {
    const named = key.startsWith('@') ? resolve(key) : join(repo, key);
    let content = 'not the content';
    if (matching && existsSync(named) && lstatSync(named).isFile()) {
      content = readFileSync(named, 'utf8');
    }
    state.files[resolve(key)] = hashContent(content);
  }
  writeFileSync(join(repo, STATE), `${JSON.stringify(state, null, 2)}\n`);

  if (layout.renameBake) {
    writeFileSync(
      join(repo, 'cached-deploy.yml'),
      stringify({ ...CONFIG, paths: { bakeFile: 'build/docker-bake.hcl' } }),
    );
  }
  for (const { at, to } of layout.links) {
    const path = join(repo, at);
    try {
      rmSync(path, { recursive: true, force: true });
      mkdirSync(dirname(path), { recursive: true });
      symlinkSync(resolve(to), path);
    } catch {
      // A layout an earlier link made impossible (a parent that is now a link to a file).
    }
  }
  const scratch = createTempDirForRun();
  return { root, repo, scratch };
}

const runDirs: string[] = [];
function createTempDirForRun(): string {
  const dir = createTempDir('cached-deploy-prop-run-');
  runDirs.push(dir);
  return dir;
}

/** Paths the tool may change: the generated files of either layout, the state file, the orphan. */
function mayChange(path: string): boolean {
  const allowed = [...GENERATED, 'build/docker-bake.hcl', STATE, OLD_BAKE].map(
    (file) => `repo/${file}`,
  );
  return allowed.some((file) => file === path || file.startsWith(`${path}/`));
}

describe('property: hostile state files and symlink layouts', () => {
  test('no file outside the generated set changes; no secret reaches any output', async () => {
    await fc.assert(
      fc.asyncProperty(layoutArbitrary, async (layout) => {
        const { root, repo, scratch } = build(layout);
        const before = snapshotDir(root, { includeGit: true });
        const outputs: string[] = [];
        const cli = async (argv: string[]) => {
          const { stdout, stderr } = await runMain(argv);
          outputs.push(stdout, stderr);
        };
        const fleetFile = join(scratch, 'fleet.yml');
        const workDir = join(scratch, 'work');
        writeFileSync(fleetFile, stringify({ workDir, repos: [{ path: repo, name: 'app' }] }));
        const report = join(scratch, 'report.md');
        const fleet = async (mode: string) => {
          await cli(['fleet', fleetFile, mode, '--report', report]);
          outputs.push(readFileSync(report, 'utf8'));
          outputs.push(readFileSync(join(workDir, 'last-run.fleet.json'), 'utf8'));
        };

        await cli(['generate', repo, '--check']);
        for (const format of ['unified', 'markdown', 'json']) {
          await cli(['diff', repo, '--format', format]);
        }
        await fleet('--check');
        await fleet('--diff');
        // Nothing read-only wrote anything.
        expect(snapshotDir(root, { includeGit: true })).toEqual(before);

        await cli(['generate', repo]);
        await cli(['generate', repo, '--force']);
        await fleet('--write');

        const after = snapshotDir(root, { includeGit: true });
        const changed = Object.keys({ ...before, ...after }).filter(
          (path) => before[path] !== after[path],
        );
        expect(changed.filter((path) => !mayChange(path.replace(/\/$/, '')))).toEqual([]);
        for (const output of outputs) expect(output).not.toContain(SECRET);
        for (const dir of runDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});
