/**
 * End to end: the BUILT binary (`node bin/create-cached-deploy.js`), run without a TTY in
 * temporary git repositories made from examples/node-service (two Dockerfiles).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseDocument } from 'yaml';
import {
  CLI_BIN,
  type CliResult,
  commitAll,
  createSuiteTempRepo,
  createTempRepo,
  PROJECT_ROOT,
  runCli,
  snapshotChanges,
  snapshotDir,
} from '../support/temp-repo.js';

const ACCOUNT = ['--account-id', '123456789012'];
const INIT = ['init', '--yes', ...ACCOUNT, '--region', 'eu-west-1'];

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
const INIT_FILES = ['cached-deploy.yml', ...GENERATED, '.cached-deploy/state.json'];

/** A repository where `init` has run: tests that start from one copy it (faster than init). */
let initialized: { repo: string; remove: () => void } | undefined;

beforeAll(async () => {
  // Incremental: a no-op when lib/ is up to date.
  try {
    await promisify(execFile)('npx', ['tsc', '--build'], { cwd: PROJECT_ROOT, timeout: 120_000 });
  } catch (error) {
    const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
    throw new Error(
      `npx tsc --build failed; the CLI under test would be stale:\n${stdout}${stderr}`,
    );
  }
  initialized = createSuiteTempRepo();
  const result = await runCli(initialized.repo, INIT);
  if (result.code !== 0)
    throw new Error(`init failed in the template repository: ${result.stderr}`);
}, 120_000);

afterAll(() => initialized?.remove());

const read = (repo: string, path: string) => readFileSync(join(repo, path), 'utf8');

/** Edits cached-deploy.yml through the YAML document (keeps the rest as it was). */
function editConfig(repo: string, edit: (document: ReturnType<typeof parseDocument>) => void) {
  const document = parseDocument(read(repo, 'cached-deploy.yml'));
  edit(document);
  writeFileSync(join(repo, 'cached-deploy.yml'), document.toString());
}

/** A fresh copy of a repository where `init` has run (and its result committed). */
async function initializedRepo(): Promise<string> {
  if (!initialized) throw new Error('the template repository was not created');
  const repo = createTempRepo({ fixture: initialized.repo });
  expect(snapshotDir(repo)).toEqual(snapshotDir(initialized.repo));
  expect(read(repo, 'cached-deploy.yml')).toContain('repository: acme/node-service');
  return repo;
}

/** Exit 1, a single `create-cached-deploy: ...` line on stderr, nothing on stdout. */
function expectOneLineError(result: CliResult, mentions: RegExp): string {
  expect(result.code, result.stderr).toBe(1);
  expect(result.stdout).toBe('');
  const lines = result.stderr.split('\n');
  expect(lines.at(-1)).toBe('');
  expect(lines.slice(0, -1), result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^create-cached-deploy: \S/);
  expect(lines[0]).toMatch(mentions);
  expect(lines[0]).not.toMatch(/unexpected error|at .*\.js:\d+/);
  return lines[0] as string;
}

describe('init', () => {
  test('--yes with flags and no TTY writes exactly the expected files', async () => {
    const repo = createTempRepo();
    const before = snapshotDir(repo);
    const result = await runCli(repo, INIT);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    const changes = snapshotChanges(before, snapshotDir(repo));
    expect(changes.changed).toEqual([]);
    expect(changes.removed).toEqual([]);
    expect(changes.added.filter((path) => !path.endsWith('/')).sort()).toEqual(
      [...INIT_FILES].sort(),
    );
    expect(changes.added.filter((path) => path.endsWith('/')).sort()).toEqual(
      ['.cached-deploy/', '.github/', '.github/workflows/', 'ecr/', 'scripts/'].sort(),
    );
    for (const path of ['cached-deploy.yml', ...GENERATED]) {
      expect(result.stdout).toContain(`created  ${path}\n`);
    }

    // What init detected and wrote: both Dockerfiles, the origin remote, the flags.
    const config = parseDocument(read(repo, 'cached-deploy.yml')).toJS();
    expect(config.aws).toEqual({ accountId: '123456789012', region: 'eu-west-1' });
    expect(config.github).toEqual({ repository: 'acme/node-service', mainBranch: 'main' });
    expect(
      config.images.map((image: { dockerfile: string; target: string }) => [
        image.dockerfile,
        image.target,
      ]),
    ).toEqual([
      ['Dockerfile', 'runtime'],
      ['worker/Dockerfile', 'runtime'],
    ]);
    const state = JSON.parse(read(repo, '.cached-deploy/state.json'));
    expect(Object.keys(state.files).sort()).toEqual([...GENERATED].sort());
    expect(read(repo, 'docker-bake.hcl')).toMatch(/^# Generated by create-cached-deploy /);
  });

  test('an existing, unrelated .github/workflows/deploy.yml is a conflict and nothing is written', async () => {
    const repo = createTempRepo();
    const theirs =
      'name: deploy\non: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps: []\n';
    mkdirSync(join(repo, '.github', 'workflows'), { recursive: true });
    writeFileSync(join(repo, '.github/workflows/deploy.yml'), theirs);
    commitAll(repo, 'existing workflow');
    const before = snapshotDir(repo);

    const result = await runCli(repo, INIT);
    expect(result.code).toBe(1);
    const [first, ...rest] = result.stderr.split('\n');
    expect(first).toMatch(
      /^create-cached-deploy: \.github\/workflows\/deploy\.yml exists and was not written by create-cached-deploy: nothing was written/,
    );
    expect(rest.join('\n')).toContain('--- a/.github/workflows/deploy.yml');
    expect(snapshotDir(repo)).toEqual(before);
    expect(read(repo, '.github/workflows/deploy.yml')).toBe(theirs);
  });
});

describe('generate', () => {
  test('twice: the first restores missing files, the second changes no byte and says in sync', async () => {
    const repo = await initializedRepo();
    const complete = snapshotDir(repo);
    rmSync(join(repo, 'docker-bake.hcl'));
    rmSync(join(repo, 'ecr'), { recursive: true });

    const first = await runCli(repo, ['generate']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('created  docker-bake.hcl\n');
    expect(first.stdout).toContain('created  ecr/main-role-policy.json\n');
    expect(first.stdout).toContain('created  ecr/branch-role-trust-policy.json\n');
    expect(snapshotDir(repo)).toEqual(complete);

    const second = await runCli(repo, ['generate']);
    expect(second).toEqual({
      code: 0,
      stdout: `In sync: ${GENERATED.length} generated files are up to date.\n`,
      stderr: '',
    });
    expect(snapshotDir(repo)).toEqual(complete);
  });

  test('--check in sync: exit 0', async () => {
    const repo = await initializedRepo();
    const before = snapshotDir(repo);
    const result = await runCli(repo, ['generate', '--check']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toMatch(/^In sync/);
    expect(snapshotDir(repo)).toEqual(before);
  });

  test('a config change: --check exits 2 and writes nothing, then generate updates', async () => {
    const repo = await initializedRepo();
    editConfig(repo, (document) => document.setIn(['cache', 'branchRetentionDays'], 7));
    const before = snapshotDir(repo);

    const check = await runCli(repo, ['generate', '--check']);
    expect(check.code, check.stderr).toBe(2);
    expect(check.stderr).toBe('');
    expect(check.stdout).toContain('out of date: ecr/cache-lifecycle-policy.json (would update)');
    expect(check.stdout).toContain(
      'out of date: ecr/branch-cache-lifecycle-policy.json (would update)',
    );
    expect(check.stdout).not.toContain('docker-bake.hcl');
    expect(snapshotDir(repo)).toEqual(before);

    const generate = await runCli(repo, ['generate']);
    expect(generate.code, generate.stderr).toBe(0);
    expect(generate.stdout).toContain('updated  ecr/cache-lifecycle-policy.json\n');
    const changes = snapshotChanges(before, snapshotDir(repo));
    expect(changes).toEqual({
      added: [],
      changed: [
        '.cached-deploy/state.json',
        'ecr/branch-cache-lifecycle-policy.json',
        'ecr/cache-lifecycle-policy.json',
      ],
      removed: [],
    });
    const policy = JSON.parse(read(repo, 'ecr/cache-lifecycle-policy.json'));
    const branchRule = policy.rules.find((rule: { selection: { tagPrefixList?: string[] } }) =>
      rule.selection.tagPrefixList?.includes('br-'),
    );
    expect(branchRule.selection).toMatchObject({
      countType: 'sinceImagePushed',
      countNumber: 7,
    });

    expect((await runCli(repo, ['generate', '--check'])).code).toBe(0);
  });

  test('a hand-edited docker-bake.hcl stops the whole run with its diff; --force overwrites', async () => {
    const repo = await initializedRepo();
    const generated = read(repo, 'docker-bake.hcl');
    writeFileSync(join(repo, 'docker-bake.hcl'), `${generated}# my tweak\n`);
    // A legitimate change is pending too: all or nothing means it is not written either.
    editConfig(repo, (document) => document.setIn(['deployImages', 'keep'], 5));
    const before = snapshotDir(repo);

    const result = await runCli(repo, ['generate']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const [first, ...diff] = result.stderr.split('\n');
    expect(first).toMatch(/^create-cached-deploy: docker-bake\.hcl was edited by hand/);
    expect(first).toContain('nothing was written');
    expect(first).toContain('--force');
    const patch = diff.join('\n');
    expect(patch).toContain('--- a/docker-bake.hcl\n+++ b/docker-bake.hcl\n');
    expect(patch).toMatch(/^-# my tweak$/m);
    expect(snapshotDir(repo)).toEqual(before);

    const check = await runCli(repo, ['generate', '--check']);
    expect(check.code).toBe(2);
    expect(check.stdout).toContain('docker-bake.hcl (conflict: edited by hand)');
    expect(snapshotDir(repo)).toEqual(before);

    const forced = await runCli(repo, ['generate', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toContain('updated  docker-bake.hcl\n');
    expect(forced.stdout).toContain('updated  ecr/image-lifecycle-policy.json\n');
    expect(read(repo, 'docker-bake.hcl')).toBe(generated);
    expect(
      JSON.parse(read(repo, 'ecr/image-lifecycle-policy.json')).rules[1].selection.countNumber,
    ).toBe(5);
    expect(await runCli(repo, ['generate', '--check'])).toMatchObject({ code: 0 });
  });
});

describe('bad input: exit 1, one line on stderr, nothing written', () => {
  test('no Dockerfile in the repository (init)', async () => {
    const repo = createTempRepo();
    rmSync(join(repo, 'Dockerfile'));
    rmSync(join(repo, 'worker', 'Dockerfile'));
    commitAll(repo, 'no Dockerfiles');
    const before = snapshotDir(repo);
    expectOneLineError(await runCli(repo, INIT), /no Dockerfile found/);
    expect(snapshotDir(repo)).toEqual(before);
  });

  test('init without a TTY and without --account-id names the flag', async () => {
    const repo = createTempRepo();
    const before = snapshotDir(repo);
    for (const args of [
      ['--region', 'eu-west-1'],
      ['init', '--yes', '--region', 'eu-west-1'],
    ]) {
      const line = expectOneLineError(await runCli(repo, args), /--account-id/);
      expect(line).toMatch(/--account-id is required/);
    }
    expect(snapshotDir(repo)).toEqual(before);
  });

  test.each([
    [
      'an invalid account id',
      ['--account-id', '12', '--region', 'eu-west-1'],
      /--account-id: "12" is not a 12-digit AWS account id/,
    ],
    [
      'an invalid region',
      [...ACCOUNT, '--region', 'mars'],
      /--region: "mars" is not an AWS region/,
    ],
  ])('init with %s', async (_what, flags, mentions) => {
    const repo = createTempRepo();
    const before = snapshotDir(repo);
    expectOneLineError(await runCli(repo, ['init', '--yes', ...flags]), mentions);
    expect(snapshotDir(repo)).toEqual(before);
  });

  type Edit = (document: ReturnType<typeof parseDocument>, repo: string) => void;
  test.each<[string, Edit, RegExp]>([
    [
      'a Dockerfile that no longer exists',
      (_document, repo) => rmSync(join(repo, 'worker', 'Dockerfile')),
      /cached-deploy\.yml: images\[1\]\.dockerfile: "worker\/Dockerfile" does not exist/,
    ],
    [
      'an unknown target stage',
      (document) => document.setIn(['images', 0, 'target'], 'nope'),
      /cached-deploy\.yml: images\[0\]\.target: stage "nope" is not in Dockerfile \(stages: base, deps, build, prod-deps, runtime\)/,
    ],
    [
      'an invalid ECR repository name',
      (document) => document.setIn(['images', 1, 'repository'], 'Node_Service//Worker'),
      /cached-deploy\.yml: images\[1\]\.repository: "Node_Service\/\/Worker" is not a valid ECR repository name/,
    ],
    [
      'an invalid account id in the config',
      (document) => document.setIn(['aws', 'accountId'], '12'),
      /cached-deploy\.yml: aws\.accountId: "12" is not a 12-digit AWS account id/,
    ],
    [
      'an invalid region in the config',
      (document) => document.setIn(['aws', 'region'], 'eu-west'),
      /cached-deploy\.yml: aws\.region: "eu-west" is not an AWS region/,
    ],
    [
      'a Dockerfile outside the repository',
      (document) => document.setIn(['images', 0, 'dockerfile'], '../Dockerfile'),
      /cached-deploy\.yml: images\[0\]\.dockerfile: "\.\.\/Dockerfile" points outside the repository/,
    ],
    [
      'an unknown field',
      (document) => document.setIn(['cache', 'retention'], 3),
      /cached-deploy\.yml: cache\.retention: unknown field \(allowed: .*branchRetentionDays/,
    ],
  ])('generate with %s', async (_what, edit, mentions) => {
    const repo = await initializedRepo();
    const document = parseDocument(read(repo, 'cached-deploy.yml'));
    edit(document, repo);
    writeFileSync(join(repo, 'cached-deploy.yml'), document.toString());
    const before = snapshotDir(repo);
    expectOneLineError(await runCli(repo, ['generate']), mentions);
    // --check reports the same error, not drift.
    expectOneLineError(await runCli(repo, ['generate', '--check']), mentions);
    expect(snapshotDir(repo)).toEqual(before);
  });

  test('malformed YAML: file:line:col', async () => {
    const repo = await initializedRepo();
    const text = read(repo, 'cached-deploy.yml');
    const lines = text.split('\n').length;
    writeFileSync(join(repo, 'cached-deploy.yml'), `${text}cache: [1, 2\n`);
    const before = snapshotDir(repo);
    const line = expectOneLineError(
      await runCli(repo, ['generate']),
      /^create-cached-deploy: cached-deploy\.yml:\d+:\d+: not valid YAML: /,
    );
    const reported = Number(/cached-deploy\.yml:(\d+):/.exec(line)?.[1]);
    expect(reported).toBeGreaterThanOrEqual(lines);
    expect(snapshotDir(repo)).toEqual(before);
  });

  test('generate where there is no cached-deploy.yml', async () => {
    const repo = createTempRepo();
    const before = snapshotDir(repo);
    expectOneLineError(
      await runCli(repo, ['generate']),
      /cached-deploy\.yml: not found \(run `create-cached-deploy init` first\)/,
    );
    expect(snapshotDir(repo)).toEqual(before);
  });
});

describe('the binary', () => {
  test('--version prints the package.json version', async () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
    for (const flag of ['--version', '-v']) {
      expect(await runCli(PROJECT_ROOT, [flag])).toEqual({
        code: 0,
        stdout: `${pkg.version}\n`,
        stderr: '',
      });
    }
  });

  test('package.json maps both create-cached-deploy and the cached-deploy alias to the binary', () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
    expect(pkg.name).toBe('create-cached-deploy');
    expect(pkg.bin['create-cached-deploy']).toBe('bin/create-cached-deploy.js');
    expect(pkg.bin['cached-deploy']).toBe('bin/create-cached-deploy.js');
    expect(join(PROJECT_ROOT, pkg.bin['cached-deploy'])).toBe(CLI_BIN);
    expect(readFileSync(CLI_BIN, 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
  });

  test('an unknown option is a usage error', async () => {
    const repo = createTempRepo();
    const before = snapshotDir(repo);
    const result = await runCli(repo, ['generate', '--frobnicate']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/unknown option '--frobnicate'/);
    expect(snapshotDir(repo)).toEqual(before);
  });
});
