/**
 * `create-cached-deploy fleet`: the merge of defaults/enforce/overrides, the fleet file, and whole
 * fleets of real git repositories in temporary directories (bare remotes for clone, fetch, branch
 * and push, referred to by file:// URL). Runs the API (`runFleet`) and the CLI's `main` in this
 * process; no build needed.
 */
import { execFileSync } from 'node:child_process';
import {
  appendFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseDocument, stringify } from 'yaml';
import { init } from '../src/api/init.js';
import { main } from '../src/cli/main.js';
import { deepMerge, mergeFleetConfig } from '../src/config/merge.js';
import type { RepoDiff } from '../src/diff/report.js';
import { CachedDeployError } from '../src/errors.js';
import { parseFleetFile } from '../src/fleet/fleet-file.js';
import { createProgress } from '../src/fleet/progress.js';
import {
  type FleetOptions,
  type FleetResult,
  parseShard,
  runFleet,
  shardOf,
} from '../src/fleet/run-fleet.js';
import { formatSummaryMarkdown, formatSummaryTable } from '../src/fleet/summary.js';
import { schemaError } from './support/json-schemas.js';
import {
  commitAll,
  createSuiteTempRepo,
  createTempDir,
  git,
  snapshotDir,
} from './support/temp-repo.js';

const V1 = '1.0.0';
const V2 = '1.1.0';

/** git for the fleet's own git calls: no global or system config, a fixed identity. */
const GIT_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Fleet',
  GIT_AUTHOR_EMAIL: 'fleet@example.com',
  GIT_COMMITTER_NAME: 'Fleet',
  GIT_COMMITTER_EMAIL: 'fleet@example.com',
};

/** examples/node-service after `init` at generator V1, committed: every fixture is a copy. */
let template: { repo: string; remove: () => void } | undefined;

beforeAll(async () => {
  template = createSuiteTempRepo({ name: 'template' });
  await init(template.repo, {
    yes: true,
    accountId: '123456789012',
    region: 'eu-west-1',
    githubRepository: 'acme/template',
    version: V1,
  });
  commitAll(template.repo, 'cached-deploy');
});

afterAll(() => template?.remove());

function service(parent: string, name: string): string {
  if (!template) throw new Error('no template repository');
  const dir = join(parent, name);
  cpSync(template.repo, dir, { recursive: true });
  return dir;
}

const read = (dir: string, path: string) => readFileSync(join(dir, path), 'utf8');

function editConfig(dir: string, edit: (document: ReturnType<typeof parseDocument>) => void) {
  const document = parseDocument(read(dir, 'cached-deploy.yml'));
  edit(document);
  writeFileSync(join(dir, 'cached-deploy.yml'), document.toString());
}

/** A bare remote holding `dir`'s main branch; returns its file:// URL and path. */
function bareRemote(parent: string, name: string, dir: string): { url: string; path: string } {
  const path = join(parent, `${name}.git`);
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', path], { env: GIT_ENV });
  git(dir, ['push', '-q', path, 'main']);
  return { url: `file://${path}`, path };
}

function writeFleet(parent: string, fleet: object): string {
  const file = join(parent, 'fleet.yml');
  writeFileSync(file, stringify(fleet));
  return file;
}

function fleetOptions(options: FleetOptions = {}): FleetOptions {
  return { gitEnv: GIT_ENV, version: V1, ...options };
}

function statuses(result: FleetResult): Record<string, string> {
  return Object.fromEntries(result.results.map((r) => [r.repository, r.status]));
}

function captureIo() {
  const out = { stdout: '', stderr: '' };
  return {
    out,
    io: {
      stdout: (text: string) => {
        out.stdout += text;
      },
      stderr: (text: string) => {
        out.stderr += text;
      },
      interactive: false,
    },
  };
}

describe('merge (defaults under the repository, enforce and overrides over it)', () => {
  test('mappings merge recursively; lists and scalars replace; null removes', () => {
    const merged = mergeFleetConfig(
      {
        cache: { branchRetentionDays: 7 },
        workflow: { on: { push: ['main', 'release/*'] }, name: 'mine' },
        images: [{ name: 'api', repository: 'api' }],
      },
      {
        defaults: {
          cache: { branchRetentionDays: 30, untaggedRetentionDays: 2 },
          workflow: { on: { push: ['main'], pullRequest: false } },
          images: [{ name: 'default', repository: 'default' }],
          prune: { graceHours: 12 },
        },
        enforce: {
          workflow: { on: { push: ['trunk'] }, deploy: null },
          buildkit: { image: 'moby/buildkit:v0.28.0' },
        },
        overrides: { prune: { graceHours: 24 } },
      },
    );
    expect(merged).toEqual({
      cache: { branchRetentionDays: 7, untaggedRetentionDays: 2 },
      workflow: { on: { push: ['trunk'], pullRequest: false }, name: 'mine' },
      images: [{ name: 'api', repository: 'api' }],
      prune: { graceHours: 24 },
      buildkit: { image: 'moby/buildkit:v0.28.0' },
    });
  });

  test('null in a later layer drops the key; inputs are never modified', () => {
    const repo = { workflow: { deploy: { command: './deploy.sh' }, name: 'x' } };
    const enforce = { workflow: { deploy: null } };
    const frozen = JSON.stringify([repo, enforce]);
    expect(mergeFleetConfig(repo, { enforce })).toEqual({ workflow: { name: 'x' } });
    expect(JSON.stringify([repo, enforce])).toBe(frozen);
  });

  test('a "__proto__" key stays a plain (later rejected) field', () => {
    const over = JSON.parse('{"__proto__": {"polluted": true}}');
    const merged = deepMerge({}, over) as Record<string, unknown>;
    expect(Object.hasOwn(merged, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('fleet.yml', () => {
  // Every fleet file here also goes to the shipped JSON Schema (schemas/fleet.schema.json), which
  // must agree, except on repositories listed twice: that compares entries, which only the
  // validator does.
  const parse = (fleet: object) => {
    const parsed = parseFleetFile(stringify(fleet), '/fleets/fleet.yml');
    expect(schemaError('fleet', fleet)).toBeUndefined();
    return parsed;
  };
  const error = (fleet: object) => {
    try {
      parseFleetFile(stringify(fleet), '/fleets/fleet.yml');
    } catch (caught) {
      expect(caught).toBeInstanceOf(CachedDeployError);
      const message = (caught as Error).message;
      if (/is already listed/.test(message)) expect(schemaError('fleet', fleet)).toBeUndefined();
      else expect(schemaError('fleet', fleet), message).toBeDefined();
      return message;
    }
    throw new Error('expected an error');
  };

  test('paths, urls, names, refs and overrides; defaults resolved relative to the file', () => {
    const fleet = parse({
      concurrency: 3,
      enforce: { cache: { branchRetentionDays: 10 } },
      repos: [
        '../svc/a',
        { path: '/abs/b', name: 'b' },
        { url: 'https://github.com/acme/c.git', ref: 'main' },
        'git@github.com:acme/d.git',
        { path: 'e', overrides: { prune: { graceHours: 12 } } },
      ],
    });
    expect(fleet.workDir).toBe('/fleets/.cached-deploy-fleet');
    expect(fleet.concurrency).toBe(3);
    expect(fleet.repos).toEqual([
      { repository: '../svc/a', kind: 'path', path: '/svc/a' },
      { repository: 'b', kind: 'path', path: '/abs/b' },
      {
        repository: 'https://github.com/acme/c.git#main',
        kind: 'url',
        url: 'https://github.com/acme/c.git',
        ref: 'main',
      },
      { repository: 'git@github.com:acme/d.git', kind: 'url', url: 'git@github.com:acme/d.git' },
      {
        repository: 'e',
        kind: 'path',
        path: '/fleets/e',
        overrides: { prune: { graceHours: 12 } },
      },
    ]);
  });

  test('errors in defaults, enforce and overrides name the field path in fleet.yml', () => {
    expect(error({ enforce: { cache: { branchRetentionDays: 0 } }, repos: ['a'] })).toBe(
      'fleet.yml: enforce.cache.branchRetentionDays: number 0 is not an integer from 1 to 3650',
    );
    expect(error({ defaults: { cache: { retention: 3 } }, repos: ['a'] })).toMatch(
      /^fleet\.yml: defaults\.cache\.retention: unknown field/,
    );
    expect(
      error({ repos: ['a', { path: 'b', overrides: { buildkit: { image: 'moby/buildkit' } } }] }),
    ).toMatch(
      /^fleet\.yml: repos\[1\]\.overrides\.buildkit\.image: "moby\/buildkit" is not a pinned/,
    );
    expect(error({ repos: [{ path: 'a', url: 'file:///a' }] })).toBe(
      'fleet.yml: repos[0]: give either `path` or `url`, not both',
    );
    expect(error({ repos: [{ url: '--upload-pack=evil' }] })).toMatch(
      /^fleet\.yml: repos\[0\]\.url: "--upload-pack=evil" is not a git URL/,
    );
    expect(error({ repos: [{ url: 'file:///a', ref: '-x' }] })).toMatch(/repos\[0\]\.ref/);
    expect(error({ repos: ['a', './a'] })).toBe(
      'fleet.yml: repos[1]: "a" is already listed as repos[0]',
    );
    expect(error({ repos: ['a', { path: '/fleets/a', name: 'other' }] })).toBe(
      'fleet.yml: repos[1]: "/fleets/a" is already listed as repos[0]',
    );
    expect(error({ repos: [] })).toBe('fleet.yml: repos: needs at least 1 item(s)');
    expect(error({ repo: ['a'] })).toMatch(/^fleet\.yml: repo: unknown field/);
  });
});

describe('a mixed fleet', () => {
  test('check: in sync, drifted, hand-edited, broken config, unreachable URL, cloned URL', async () => {
    const root = createTempDir();
    service(root, 'in-sync');
    const drifted = service(root, 'drifted');
    editConfig(drifted, (doc) => doc.setIn(['cache', 'branchRetentionDays'], 7));
    const edited = service(root, 'hand-edited');
    appendFileSync(join(edited, 'docker-bake.hcl'), '# my tweak\n');
    const broken = service(root, 'broken');
    editConfig(broken, (doc) => doc.setIn(['cache', 'retention'], 3));
    const remote = bareRemote(root, 'remote', service(root, 'remote-src'));
    const fleet = writeFleet(root, {
      repos: [
        'in-sync',
        'drifted',
        'hand-edited',
        'broken',
        { url: 'file:///nonexistent/repo.git', name: 'unreachable' },
        { url: remote.url, name: 'cloned' },
      ],
    });
    const before = snapshotDir(root);

    const result = await runFleet(fleet, fleetOptions());
    expect(statuses(result)).toEqual({
      'in-sync': 'in-sync',
      drifted: 'changed',
      'hand-edited': 'conflict',
      broken: 'error',
      unreachable: 'error',
      cloned: 'in-sync',
    });
    expect(result.exitCode).toBe(1);
    expect(result.counts).toEqual({ 'in-sync': 2, changed: 1, conflict: 1, error: 2 });
    const byName = Object.fromEntries(result.results.map((r) => [r.repository, r]));
    expect(byName.drifted?.changes).toEqual([
      { path: 'ecr/cache-lifecycle-policy.json', action: 'update' },
      { path: 'ecr/branch-cache-lifecycle-policy.json', action: 'update' },
    ]);
    expect(byName['hand-edited']?.message).toMatch(
      /^docker-bake\.hcl was edited by hand since it was generated: not overwritten/,
    );
    expect(byName.broken?.message).toMatch(/^cached-deploy\.yml: cache\.retention: unknown field/);
    expect(byName.unreachable?.message).toMatch(/^git fetch failed: /);
    expect(byName.cloned?.generatorBefore).toBe(V1);

    // Nothing in any repository changed (the work dir holds the clone and the results).
    const after = snapshotDir(root);
    const changed = Object.keys({ ...before, ...after }).filter(
      (path) => before[path] !== after[path] && !path.startsWith('.cached-deploy-fleet/'),
    );
    expect(changed).toEqual([]);

    // The same in worker threads (what large fleets use): the same results, in the same order.
    const threaded = await runFleet(fleet, fleetOptions({ workers: 2, fetch: false }));
    expect(threaded.results).toEqual(result.results);
    const diffInThreads = await runFleet(fleet, fleetOptions({ mode: 'diff', workers: 2 }));
    const diffHere = await runFleet(fleet, fleetOptions({ mode: 'diff', workers: 0 }));
    expect(diffInThreads.diffs).toEqual(diffHere.diffs);
    const driftedDiff = diffInThreads.diffs?.[1]?.changes.find((c) => c.action === 'update');
    expect(driftedDiff?.after).toContain('"countNumber": 7');

    // Without the failing repositories: drift and conflict are exit 2; all in sync is 0.
    const drift = writeFleet(root, { repos: ['in-sync', 'drifted', 'hand-edited'] });
    expect((await runFleet(drift, fleetOptions())).exitCode).toBe(2);
    const clean = writeFleet(root, { repos: ['in-sync', { url: remote.url, name: 'cloned' }] });
    expect((await runFleet(clean, fleetOptions())).exitCode).toBe(0);
  });

  test('the CLI prints a summary table and exits with the fleet exit code', async () => {
    const root = createTempDir();
    service(root, 'ok');
    const drifted = service(root, 'drifted');
    editConfig(drifted, (doc) => doc.setIn(['deployImages', 'keep'], 5));
    const fleet = writeFleet(root, { repos: ['ok', 'drifted', 'missing'] });
    const { io, out } = captureIo();
    // The built-in version differs from V1, so everything is also an upgrade: check via --json.
    const code = await main(['fleet', fleet, '--check', '--json'], io);
    expect(code).toBe(1);
    const json = JSON.parse(out.stdout);
    expect(json.formatVersion).toBe(1);
    expect(json.repositories.map((r: { status: string }) => r.status)).toEqual([
      'changed',
      'changed',
      'error',
    ]);
    expect(out.stderr).toMatch(/^REPOSITORY\s+STATUS\s+WAS ON\s+MESSAGE$/m);
    expect(out.stderr).toMatch(/^missing\s+error\s+\?\s+.*missing: no such directory$/m);
    expect(out.stderr).toContain('3 repositories: 0 in sync, 2 changed, 0 conflict, 1 error');
    expect(out.stderr).toMatch(/^\[1\/3\] changed {2}ok: /m);

    const usage = captureIo();
    expect(await main(['fleet', fleet, '--check', '--write'], usage.io)).toBe(1);
    expect(usage.out.stderr).toMatch(/choose one of --check, --diff, --write and --status/);
    expect(await main(['fleet', fleet, '--shard', '3/2'], usage.io)).toBe(1);
    expect(usage.out.stderr).toMatch(/--shard: "3\/2" is not i\/n/);
  });

  test('defaults apply where the repository is silent; enforce wins; overrides are last', async () => {
    const root = createTempDir();
    const silent = service(root, 'silent');
    const own = service(root, 'own');
    editConfig(own, (doc) => doc.setIn(['cache', 'branchRetentionDays'], 9));
    const excepted = service(root, 'excepted');
    const fleet = writeFleet(root, {
      defaults: { cache: { branchRetentionDays: 21 } },
      enforce: { buildkit: { image: 'moby/buildkit:v0.28.0' } },
      repos: [
        'silent',
        'own',
        { path: 'excepted', overrides: { buildkit: { image: 'moby/buildkit:v0.26.0' } } },
      ],
    });
    const result = await runFleet(fleet, fleetOptions({ mode: 'write' }));
    expect(result.exitCode).toBe(0);
    const days = (dir: string) =>
      JSON.parse(read(dir, 'ecr/cache-lifecycle-policy.json'))
        .rules.map((rule: { selection: { countNumber: number; countUnit?: string } }) =>
          rule.selection.countUnit === 'days' ? rule.selection.countNumber : undefined,
        )
        .filter((n: number | undefined) => n !== undefined);
    expect(days(silent)).toContain(21);
    expect(days(own)).toContain(9);
    expect(days(own)).not.toContain(21);
    expect(read(silent, '.github/workflows/deploy.yml')).toContain('moby/buildkit:v0.28.0');
    expect(read(own, '.github/workflows/deploy.yml')).toContain('moby/buildkit:v0.28.0');
    expect(read(excepted, '.github/workflows/deploy.yml')).toContain('moby/buildkit:v0.26.0');
    // The repositories' own cached-deploy.yml is never rewritten by the fleet.
    expect(read(silent, 'cached-deploy.yml')).toBe(read(template?.repo ?? '', 'cached-deploy.yml'));
  });
});

describe('--write', () => {
  test('writes drifted repositories, never a hand-edited one; a second --write is a no-op', async () => {
    const root = createTempDir();
    const ok = service(root, 'ok');
    const drifted = service(root, 'drifted');
    editConfig(drifted, (doc) => doc.setIn(['prune', 'graceHours'], 12));
    const edited = service(root, 'edited');
    appendFileSync(join(edited, 'docker-bake.hcl'), '# mine\n');
    const fleet = writeFleet(root, { repos: ['ok', 'drifted', 'edited'] });
    const okBefore = snapshotDir(ok);
    const editedBefore = snapshotDir(edited);

    const first = await runFleet(fleet, fleetOptions({ mode: 'write' }));
    expect(statuses(first)).toEqual({ ok: 'in-sync', drifted: 'changed', edited: 'conflict' });
    expect(first.exitCode).toBe(1); // a conflict when writing is a failure, as with `generate`
    expect(first.results[1]?.message).toBe('wrote 1 file: .github/workflows/deploy.yml');
    expect(read(drifted, '.github/workflows/deploy.yml')).toContain('--grace-hours 12');
    expect(snapshotDir(ok)).toEqual(okBefore);
    expect(snapshotDir(edited)).toEqual(editedBefore);

    const between = snapshotDir(root);
    const second = await runFleet(fleet, fleetOptions({ mode: 'write' }));
    expect(statuses(second)).toEqual({ ok: 'in-sync', drifted: 'in-sync', edited: 'conflict' });
    const after = snapshotDir(root);
    for (const path of Object.keys({ ...between, ...after })) {
      if (path.startsWith('.cached-deploy-fleet/')) continue;
      expect(after[path], path).toBe(between[path]);
    }

    // --force overwrites the hand edit.
    const forced = await runFleet(fleet, fleetOptions({ mode: 'write', force: true }));
    expect(statuses(forced)).toEqual({ ok: 'in-sync', drifted: 'in-sync', edited: 'changed' });
    expect(read(edited, 'docker-bake.hcl')).not.toContain('# mine');
    expect(forced.exitCode).toBe(0);
  });

  test('a generator upgrade updates every prune script and workflow in one pass and says what each was on', async () => {
    const root = createTempDir();
    const a = service(root, 'a');
    const b = service(root, 'b');
    const c = service(root, 'c');
    // c was already upgraded by someone: the report must say so.
    await runFleet(
      writeFleet(root, { repos: ['c'] }),
      fleetOptions({ mode: 'write', version: V2 }),
    );
    const fleet = writeFleet(root, { repos: ['a', 'b', 'c'] });

    const check = await runFleet(fleet, fleetOptions({ version: V2 }));
    expect(statuses(check)).toEqual({ a: 'changed', b: 'changed', c: 'in-sync' });
    expect(check.results.map((r) => r.generatorBefore)).toEqual([V1, V1, V2]);
    expect(check.results[0]?.message).toMatch(/\(generator 1\.0\.0 -> 1\.1\.0\)$/);

    const result = await runFleet(fleet, fleetOptions({ mode: 'write', version: V2 }));
    expect(result.exitCode).toBe(0);
    expect(result.results.map((r) => [r.repository, r.generatorBefore, r.generatorAfter])).toEqual([
      ['a', V1, V2],
      ['b', V1, V2],
      ['c', V2, V2],
    ]);
    expect(result.results[0]?.changes.map((change) => change.path).sort()).toEqual([
      '.github/workflows/deploy.yml',
      'docker-bake.hcl',
      'scripts/prune-ecr-cache.mjs',
    ]);
    for (const dir of [a, b, c]) {
      expect(read(dir, 'scripts/prune-ecr-cache.mjs')).toContain(V2);
      expect(read(dir, 'scripts/prune-ecr-cache.mjs')).not.toContain(V1);
      expect(read(dir, '.github/workflows/deploy.yml')).toMatch(
        /^# Generated by create-cached-deploy 1\.1\.0\. /,
      );
      expect(JSON.parse(read(dir, '.cached-deploy/state.json')).generator).toBe(V2);
    }
    const table = formatSummaryTable(result);
    expect(table).toMatch(
      /^a\s+changed\s+1\.0\.0\s+wrote 3 files: .*\(generator 1\.0\.0 -> 1\.1\.0\)$/m,
    );
    expect(table).toMatch(/^c\s+in-sync\s+1\.1\.0$/m);
    expect(formatSummaryMarkdown(result)).toContain('| a | changed | 1.0.0 | wrote 3 files');
    // The prune scripts are byte-identical across the fleet.
    expect(read(a, 'scripts/prune-ecr-cache.mjs')).toBe(read(c, 'scripts/prune-ecr-cache.mjs'));
  });
});

describe('--write --branch (and --push)', () => {
  test('URL repositories: a commit on a branch of the bare remote; a second run is a no-op', async () => {
    const root = createTempDir();
    const remotes = ['one', 'two'].map((name) => {
      const src = service(root, `${name}-src`);
      return { name, ...bareRemote(root, name, src) };
    });
    const fleet = writeFleet(root, {
      enforce: { cache: { branchRetentionDays: 5 } },
      repos: remotes.map((remote) => ({ url: remote.url, name: remote.name })),
    });
    const mainBefore = remotes.map((remote) => git(remote.path, ['rev-parse', 'main']));

    const options = fleetOptions({ mode: 'write', branch: 'cached-deploy/update', push: true });
    const first = await runFleet(fleet, options);
    expect(statuses(first)).toEqual({ one: 'changed', two: 'changed' });
    expect(first.exitCode).toBe(0);
    for (const [index, remote] of remotes.entries()) {
      const log = git(remote.path, ['log', '-1', '--format=%s%n%b', 'cached-deploy/update']);
      expect(log).toMatch(
        /^chore\(cached-deploy\): regenerate files with create-cached-deploy 1\.0\.0\n/,
      );
      expect(log).toContain('Generator: 1.0.0 -> 1.0.0');
      expect(log).toContain('- update ecr/cache-lifecycle-policy.json');
      expect(git(remote.path, ['rev-parse', 'cached-deploy/update^'])).toBe(mainBefore[index]);
      expect(git(remote.path, ['rev-parse', 'main'])).toBe(mainBefore[index]);
      expect(
        git(remote.path, ['diff', '--name-only', 'main', 'cached-deploy/update'])
          .trim()
          .split('\n'),
      ).toEqual([
        '.cached-deploy/state.json',
        'ecr/branch-cache-lifecycle-policy.json',
        'ecr/cache-lifecycle-policy.json',
      ]);
    }
    expect(first.results[0]?.message).toMatch(
      /^committed [0-9a-f]{7} on cached-deploy\/update and pushed it: wrote 2 files/,
    );

    const tips = remotes.map((remote) => git(remote.path, ['rev-parse', 'cached-deploy/update']));
    const second = await runFleet(fleet, options);
    expect(statuses(second)).toEqual({ one: 'in-sync', two: 'in-sync' });
    expect(second.exitCode).toBe(0);
    expect(second.results[0]?.message).toBe('branch cached-deploy/update is up to date (pushed)');
    expect(
      remotes.map((remote) => git(remote.path, ['rev-parse', 'cached-deploy/update'])),
    ).toEqual(tips);

    // A generator upgrade lands as a second commit on the same branch, named as an upgrade.
    const upgrade = await runFleet(fleet, { ...options, version: V2 });
    expect(upgrade.results.map((r) => r.generatorBefore)).toEqual([V1, V1]);
    const log = git(remotes[0]?.path ?? '', ['log', '-1', '--format=%s', 'cached-deploy/update']);
    expect(log.trim()).toBe(
      'chore(cached-deploy): upgrade generated files to create-cached-deploy 1.1.0',
    );
  });

  test('a local repository: commits on the branch, returns to where it was, pushes to origin', async () => {
    const root = createTempDir();
    const local = service(root, 'local');
    editConfig(local, (doc) => doc.setIn(['deployImages', 'keep'], 7));
    commitAll(local, 'keep 7 images');
    const remote = join(root, 'local-origin.git');
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote], { env: GIT_ENV });
    git(local, ['remote', 'set-url', 'origin', remote]);
    const head = git(local, ['rev-parse', 'HEAD']);
    const fleet = writeFleet(root, { repos: ['local'] });

    const result = await runFleet(
      fleet,
      fleetOptions({ mode: 'write', branch: 'fleet/keep', push: true }),
    );
    expect(statuses(result)).toEqual({ local: 'changed' });
    expect(git(local, ['symbolic-ref', '--short', 'HEAD']).trim()).toBe('main');
    expect(git(local, ['rev-parse', 'HEAD'])).toBe(head);
    expect(git(local, ['status', '--porcelain'])).toBe('');
    expect(git(local, ['show', 'fleet/keep:ecr/image-lifecycle-policy.json'])).toContain(
      '"countNumber": 7',
    );
    expect(git(remote, ['rev-parse', 'fleet/keep'])).toBe(git(local, ['rev-parse', 'fleet/keep']));

    // A dirty working tree is that repository's error, never a stash or a lost change.
    appendFileSync(join(local, 'README.md'), 'wip\n');
    const dirty = await runFleet(fleet, fleetOptions({ mode: 'write', branch: 'fleet/keep' }));
    expect(dirty.results[0]?.status).toBe('error');
    expect(dirty.results[0]?.message).toMatch(/uncommitted changes/);
  });

  test('a commit that fails leaves the repository as it was: no generated files carried back, no empty branch', async () => {
    const root = createTempDir();
    const local = service(root, 'local');
    editConfig(local, (doc) => doc.setIn(['deployImages', 'keep'], 7));
    commitAll(local, 'keep 7 images');
    const head = git(local, ['rev-parse', 'HEAD']);
    const fleet = writeFleet(root, { repos: ['local'] });
    const options = fleetOptions({ mode: 'write', branch: 'fleet/keep' });

    // The fleet runs no hooks (see fleet-git-hardening.test.ts): an author date git cannot parse
    // is what makes only the commit fail.
    const failed = await runFleet(fleet, {
      ...options,
      gitEnv: { ...GIT_ENV, GIT_AUTHOR_DATE: 'not a date' },
    });
    expect(failed.results[0]?.status).toBe('error');
    expect(failed.results[0]?.message).toMatch(/^git commit failed/);
    expect(git(local, ['symbolic-ref', '--short', 'HEAD']).trim()).toBe('main');
    expect(git(local, ['rev-parse', 'HEAD'])).toBe(head);
    expect(git(local, ['status', '--porcelain'])).toBe('');
    expect(git(local, ['branch', '--list', 'fleet/keep'])).toBe('');

    // Nothing is left in the way of the next run.
    const retried = await runFleet(fleet, options);
    expect(retried.results[0]?.status).toBe('changed');
    expect(git(local, ['show', 'fleet/keep:ecr/image-lifecycle-policy.json'])).toContain(
      '"countNumber": 7',
    );
  });

  test('URL repositories: a branch merged and deleted on the remote is not pushed again from the clone', async () => {
    const root = createTempDir();
    const remote = bareRemote(root, 'one', service(root, 'one-src'));
    const fleetWith = (days: number) =>
      writeFleet(root, {
        enforce: { cache: { branchRetentionDays: days } },
        repos: [{ url: remote.url, name: 'one' }],
      });
    const options = fleetOptions({ mode: 'write', branch: 'fleet/update', push: true });
    expect(statuses(await runFleet(fleetWith(5), options))).toEqual({ one: 'changed' });

    // The pull request is merged (main fast-forwards) and its branch deleted.
    git(remote.path, ['update-ref', 'refs/heads/main', 'refs/heads/fleet/update']);
    git(remote.path, ['update-ref', '-d', 'refs/heads/fleet/update']);

    const again = await runFleet(fleetWith(5), options);
    expect(again.results[0]?.status).toBe('in-sync');
    expect(again.results[0]?.pushed).toBeUndefined();
    expect(git(remote.path, ['branch', '--list', 'fleet/update'])).toBe('');

    // The next change starts from the new main, not from the old branch left in the clone.
    const mainNow = git(remote.path, ['rev-parse', 'main']);
    expect(statuses(await runFleet(fleetWith(6), options))).toEqual({ one: 'changed' });
    expect(git(remote.path, ['rev-parse', 'fleet/update^'])).toBe(mainNow);
  });

  test('usage: --branch needs --write, --push needs --branch, url repositories need --branch', async () => {
    const root = createTempDir();
    const fleet = writeFleet(root, { repos: ['a', { url: 'file:///x.git' }] });
    await expect(runFleet(fleet, fleetOptions({ branch: 'b' }))).rejects.toThrow(
      '--branch only goes with --write',
    );
    await expect(runFleet(fleet, fleetOptions({ mode: 'write', push: true }))).rejects.toThrow(
      '--push needs --branch NAME',
    );
    await expect(runFleet(fleet, fleetOptions({ mode: 'write' }))).rejects.toThrow(
      /--write needs --branch NAME when the fleet has url repositories/,
    );
    await expect(
      runFleet(fleet, fleetOptions({ mode: 'write', branch: '-delete' })),
    ).rejects.toThrow(/--branch: "-delete" is not a valid git branch name/);
  });
});

describe('--shard and --only-failed', () => {
  test('--shard i/n partitions the fleet deterministically and covers it exactly once', async () => {
    const root = createTempDir();
    const names = Array.from({ length: 40 }, (_, i) => `svc-${i}`);
    const fleet = writeFleet(root, { repos: names });
    // The same fleet with repositories added before and among the others.
    mkdirSync(join(root, 'grown'));
    const grown = writeFleet(join(root, 'grown'), {
      repos: [...names, 'new-a', 'new-b'].reverse().map((name) => ({ path: `../${name}`, name })),
    });
    const seen: string[] = [];
    for (let index = 1; index <= 3; index++) {
      const options = fleetOptions({ shard: `${index}/3`, record: false });
      const first = (await runFleet(fleet, options)).results.map((r) => r.repository);
      const again = (await runFleet(fleet, options)).results.map((r) => r.repository);
      expect(again).toEqual(first);
      expect(first.length).toBeGreaterThan(5);
      expect(first.every((name) => shardOf(name, 3) === index - 1)).toBe(true);
      seen.push(...first);
      // Adding repositories never moves the others to another shard.
      const after = (await runFleet(grown, options)).results
        .map((r) => r.repository)
        .filter((name) => names.includes(name));
      expect(after.sort()).toEqual([...first].sort());
    }
    expect(seen.sort()).toEqual([...names].sort());
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    for (const bad of ['0/2', '3/2', '1/0', 'a/b', '1']) {
      expect(() => parseShard(bad)).toThrow(/--shard/);
    }
  });

  test('--only-failed re-runs the repositories that errored or conflicted last time', async () => {
    const root = createTempDir();
    service(root, 'ok');
    const broken = service(root, 'broken');
    editConfig(broken, (doc) => doc.setIn(['aws', 'region'], 'nowhere'));
    const edited = service(root, 'edited');
    appendFileSync(join(edited, 'docker-bake.hcl'), '# mine\n');
    const fleet = writeFleet(root, { repos: ['ok', 'broken', 'edited'] });

    await expect(runFleet(fleet, fleetOptions({ onlyFailed: true }))).rejects.toThrow(
      /--only-failed: no previous run recorded/,
    );
    const first = await runFleet(fleet, fleetOptions());
    expect(statuses(first)).toEqual({ ok: 'in-sync', broken: 'error', edited: 'conflict' });
    expect(existsSync(first.resultsFile)).toBe(true);

    const retry = await runFleet(fleet, fleetOptions({ onlyFailed: true }));
    expect(statuses(retry)).toEqual({ broken: 'error', edited: 'conflict' });
    expect(retry.total).toBe(3);

    editConfig(broken, (doc) => doc.setIn(['aws', 'region'], 'eu-west-1'));
    const fixed = await runFleet(fleet, fleetOptions({ onlyFailed: true }));
    expect(statuses(fixed)).toEqual({ broken: 'in-sync', edited: 'conflict' });
    const last = await runFleet(fleet, fleetOptions({ onlyFailed: true }));
    expect(statuses(last)).toEqual({ edited: 'conflict' });
  });

  test('two fleet files sharing a work directory keep separate records', async () => {
    const root = createTempDir();
    service(root, 'ok');
    const broken = service(root, 'broken');
    editConfig(broken, (doc) => doc.setIn(['aws', 'region'], 'nowhere'));
    const first = writeFleet(root, { repos: ['ok', 'broken'] });
    const second = join(root, 'other-fleet.yml');
    writeFileSync(second, stringify({ repos: ['ok'] }));

    const a = await runFleet(first, fleetOptions());
    const b = await runFleet(second, fleetOptions());
    expect(a.resultsFile).not.toBe(b.resultsFile);
    // The other fleet file's run (everything in sync) did not erase this one's failure.
    const retry = await runFleet(first, fleetOptions({ onlyFailed: true }));
    expect(statuses(retry)).toEqual({ broken: 'error' });
  });
});

describe('--diff', () => {
  test('one report for the whole fleet, with the version each repository was on', async () => {
    const root = createTempDir();
    service(root, 'ok');
    const drifted = service(root, 'drifted');
    editConfig(drifted, (doc) => doc.setIn(['cache', 'branchRetentionDays'], 3));
    const fleet = writeFleet(root, { repos: ['ok', 'drifted', 'gone'] });

    const result = await runFleet(fleet, fleetOptions({ mode: 'diff' }));
    expect(result.exitCode).toBe(1);
    const pending = (d: RepoDiff) => d.changes.filter((c) => c.action !== 'unchanged');
    expect(result.diffs?.map((d) => [d.repository, d.generatorBefore, pending(d).length])).toEqual([
      ['ok', V1, 0],
      ['drifted', V1, 2],
      ['gone', undefined, 0],
    ]);
    const drift = result.diffs?.[1] as RepoDiff;
    expect(pending(drift)[0]?.path).toBe('ecr/cache-lifecycle-policy.json');
    expect(pending(drift)[0]?.after).toContain('"countNumber": 3');
    // Unchanged files are counted, without their contents.
    expect(drift.changes.filter((c) => c.action === 'unchanged')).toHaveLength(10);
    expect(drift.changes.every((c) => c.action !== 'unchanged' || c.after === undefined)).toBe(
      true,
    );
    expect(drift.explanations.join('\n')).toMatch(/3 days/);
    expect(result.diffs?.[2]?.error).toMatch(/no such directory/);

    const report = join(root, 'review.md');
    const { io, out } = captureIo();
    const code = await main(['fleet', fleet, '--diff', '--report', report], io);
    expect(code).toBe(1);
    expect(out.stdout).toContain('+++ b/ecr/cache-lifecycle-policy.json');
    expect(out.stdout).toMatch(/^# drifted$/m);
    expect(out.stderr).toMatch(/^drifted\s+changed\s+1\.0\.0/m);
    expect(readFileSync(report, 'utf8')).toMatch(/^## /);
    const json = captureIo();
    expect(await main(['fleet', fleet, '--diff', '--json'], json.io)).toBe(1);
    const parsed = JSON.parse(json.out.stdout);
    expect(parsed.formatVersion).toBe(1);
    expect(parsed.repositories.map((r: { repository: string }) => r.repository)).toEqual([
      'ok',
      'drifted',
      'gone',
    ]);
  });
});

describe('the markdown report', () => {
  test('names and messages are literal text: no HTML, links or table cells out of a repository', () => {
    const message = 'cached-deploy.yml: <img src=x> [x](javascript:alert(1)) `a|b` **c**\nnext';
    const result: FleetResult = {
      mode: 'check',
      fleetFile: '/f/fleet.yml',
      generator: V1,
      total: 1,
      results: [
        {
          repository: 'acme/<b>x</b>',
          status: 'error',
          generatorBefore: undefined,
          generatorAfter: V1,
          message,
          changes: [],
        },
      ],
      counts: { 'in-sync': 0, changed: 0, conflict: 0, error: 1 },
      exitCode: 1,
      resultsFile: '/f/last-run.json',
    };
    const tree = fromMarkdown(formatSummaryMarkdown(result), {
      extensions: [gfm()],
      mdastExtensions: [gfmFromMarkdown()],
    });
    const types = new Set<string>();
    const texts: string[] = [];
    const walk = (node: { type: string; value?: string; children?: unknown[] }) => {
      types.add(node.type);
      if (node.type === 'tableCell') texts.push(toText(node));
      for (const child of node.children ?? []) walk(child as typeof node);
    };
    const toText = (node: { value?: string; children?: unknown[] }): string =>
      node.value ?? (node.children ?? []).map((child) => toText(child as typeof node)).join('');
    walk(tree as unknown as Parameters<typeof walk>[0]);
    for (const type of ['html', 'link', 'inlineCode', 'strong', 'break']) {
      expect(types.has(type), type).toBe(false);
    }
    expect(texts.slice(4)).toEqual([
      'acme/<b>x</b>',
      'error',
      '?',
      'cached-deploy.yml: <img src=x> [x](javascript:alert(1)) `a|b` **c** next',
    ]);
  });
});

describe('progress', () => {
  test('plain lines without a TTY; one redrawn bar on a TTY', () => {
    let plain = '';
    const lines = createProgress({ write: (text: string) => (plain += text) });
    lines.start(2);
    lines.done('a', 'in-sync', '');
    lines.done('b', 'error', 'boom');
    lines.finish();
    expect(plain).toBe('[1/2] in-sync  a\n[2/2] error    b: boom\n');

    let tty = '';
    let clock = 0;
    const bar = createProgress(
      { write: (text: string) => (tty += text), isTTY: true, columns: 200 },
      { now: () => clock },
    );
    bar.start(3);
    clock = 10;
    bar.done('a', 'in-sync', '');
    clock = 100;
    bar.done('b', 'changed', '');
    clock = 110;
    bar.done('c', 'error', 'x');
    bar.finish();
    expect(tty).not.toContain('\n');
    const frames = tty.split('\r\x1b[2K').filter(Boolean);
    // start, b (50 ms later), c (the last one is always drawn); a was throttled.
    expect(frames).toEqual([
      '[------------------------] 0/3  0 in sync, 0 changed, 0 conflict, 0 error  ',
      '[################--------] 2/3  1 in sync, 1 changed, 0 conflict, 0 error  b',
      '[########################] 3/3  1 in sync, 1 changed, 0 conflict, 1 error  c',
    ]);
  });
});
