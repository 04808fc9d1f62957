/**
 * `fleet` runs git in repositories it does not control. Their config, hooks and remotes, and the
 * machine's global git config, must not run anything: every git child process gets a hardened
 * environment. Real repositories in temporary directories, each carrying a trap that writes a
 * marker file if git ever runs it.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseDocument, stringify } from 'yaml';
import { init } from '../src/api/init.js';
import { parseFleetFile } from '../src/fleet/fleet-file.js';
import { runFleet } from '../src/fleet/run-fleet.js';
import { runMain } from './support/run-main.js';
import { createSuiteTempRepo, createTempDir } from './support/temp-repo.js';

const SECRET = 'SECRET-91c4e2d0';

/** A test's own git: isolated from the machine's config, with a fixed identity. */
const TEST_GIT_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
};

function git(cwd: string, args: string[]): string {
  return execFileSync('git', args, { cwd, env: TEST_GIT_ENV, encoding: 'utf8' });
}

let template: { repo: string; remove: () => void } | undefined;

beforeAll(async () => {
  template = createSuiteTempRepo({ name: 'template' });
  await init(template.repo, {
    yes: true,
    accountId: '123456789012',
    region: 'eu-west-1',
    githubRepository: 'acme/template',
  });
  git(template.repo, ['add', '-A']);
  git(template.repo, ['-c', 'commit.gpgsign=false', 'commit', '-q', '-m', 'generated']);
});

afterAll(() => template?.remove());

/** A copy of the generated template whose config drifted (so --write has a commit to make). */
function drifted(parent: string, name: string): string {
  const dir = join(parent, name);
  cpSync(template?.repo as string, dir, { recursive: true });
  const document = parseDocument(readFileSync(join(dir, 'cached-deploy.yml'), 'utf8'));
  document.setIn(['cache', 'branchRetentionDays'], 5);
  writeFileSync(join(dir, 'cached-deploy.yml'), document.toString());
  git(dir, ['-c', 'commit.gpgsign=false', 'commit', '-q', '-am', 'drift']);
  return dir;
}

/** An executable that records that it ran, by creating `<markers>/<name>`. */
function trap(markers: string, name: string): string {
  mkdirSync(markers, { recursive: true });
  const script = join(markers, `${name}.sh`);
  writeFileSync(script, `#!/bin/sh\ntouch '${join(markers, name)}'\nexit 0\n`);
  chmodSync(script, 0o755);
  return script;
}

function sprung(markers: string): string[] {
  return readdirSync(markers).filter((name) => !name.endsWith('.sh'));
}

describe('fleet git runs nothing a repository or the machine configured', () => {
  test('a local repository with core.fsmonitor, hooks, a gpg program and an ext:: origin', async () => {
    const root = createTempDir();
    const markers = join(root, 'markers');
    const repo = drifted(root, 'local');
    const hooks = join(repo, '.git', 'hooks');
    for (const hook of ['pre-commit', 'post-checkout', 'commit-msg', 'pre-push', 'post-commit']) {
      cpSync(trap(markers, hook), join(hooks, hook));
    }
    const config = (key: string, value: string) => git(repo, ['config', key, value]);
    config('core.fsmonitor', trap(markers, 'fsmonitor'));
    config('core.hooksPath', hooks);
    config('commit.gpgSign', 'true');
    config('gpg.program', trap(markers, 'gpg'));
    config('protocol.ext.allow', 'always');
    config('protocol.allow', 'always');
    config('remote.origin.url', `ext::sh -c touch% ${join(markers, 'ext')}`);
    config('core.sshCommand', trap(markers, 'ssh'));
    const fleet = join(root, 'fleet.yml');
    writeFileSync(fleet, stringify({ repos: [{ path: repo, name: 'local' }] }));

    const home = join(root, 'home');
    mkdirSync(home);
    const result = await runFleet(fleet, {
      mode: 'write',
      branch: 'cached-deploy/update',
      push: true,
      gitEnv: { ...process.env, HOME: home, GIT_CONFIG_GLOBAL: undefined },
      record: false,
    });

    expect(sprung(markers)).toEqual([]);
    // The commit was made (with a default identity, as the machine has none) and the push refused.
    expect(result.results[0]?.status).toBe('error');
    expect(result.results[0]?.message).toMatch(/^git push failed: .*transport 'ext' not allowed/);
    const author = git(repo, ['log', '-1', '--format=%an <%ae>', 'cached-deploy/update']);
    expect(author.trim()).toBe('create-cached-deploy <create-cached-deploy@noreply.invalid>');
  });

  test("the machine's global config: its identity is used, its hooks and fsmonitor are not", async () => {
    const root = createTempDir();
    const markers = join(root, 'markers');
    const source = drifted(root, 'source');
    const remote = join(root, 'remote.git');
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote], { env: TEST_GIT_ENV });
    git(source, ['push', '-q', remote, 'main']);
    const hooks = join(root, 'global-hooks');
    mkdirSync(hooks);
    for (const hook of ['pre-commit', 'post-checkout', 'pre-push', 'reference-transaction']) {
      cpSync(trap(markers, hook), join(hooks, hook));
    }
    const home = join(root, 'home');
    mkdirSync(home);
    writeFileSync(
      join(home, '.gitconfig'),
      [
        '[user]',
        '\tname = Global Person',
        '\temail = global@example.com',
        '[core]',
        `\thooksPath = ${hooks}`,
        `\tfsmonitor = ${trap(markers, 'fsmonitor')}`,
        '[commit]',
        '\tgpgSign = true',
        '[gpg]',
        `\tprogram = ${trap(markers, 'gpg')}`,
        '',
      ].join('\n'),
    );
    const fleet = join(root, 'fleet.yml');
    writeFileSync(fleet, stringify({ repos: [{ url: `file://${remote}`, name: 'cloned' }] }));

    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, GIT_CONFIG_GLOBAL: undefined };
    delete env.GIT_AUTHOR_NAME;
    delete env.GIT_AUTHOR_EMAIL;
    delete env.GIT_COMMITTER_NAME;
    delete env.GIT_COMMITTER_EMAIL;
    const result = await runFleet(fleet, {
      mode: 'write',
      branch: 'cached-deploy/update',
      push: true,
      gitEnv: env,
      record: false,
    });

    expect(result.results[0]?.message).toMatch(/^committed [0-9a-f]{7} on cached-deploy\/update/);
    expect(sprung(markers)).toEqual([]);
    const author = git(remote, ['log', '-1', '--format=%an <%ae>', 'cached-deploy/update']);
    expect(author.trim()).toBe('Global Person <global@example.com>');
  });

  test('transports: ext:: never reaches git, file:// only where the fleet file names a local repository', async () => {
    const root = createTempDir();
    const markers = join(root, 'markers');
    trap(markers, 'unused');
    expect(() =>
      parseFleetFile(
        stringify({ repos: [{ url: `ext::sh -c touch% ${join(markers, 'ext')}` }] }),
        join(root, 'fleet.yml'),
      ),
    ).toThrow(/repos\[0\]\.url: .* is not a git URL/);

    // A URL repository whose remote names a file:// submodule-like second remote: the clone's
    // own fetches may use only the URL's own transport. An https URL may not fall back to file.
    const source = drifted(root, 'source');
    const remote = join(root, 'remote.git');
    execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote], { env: TEST_GIT_ENV });
    git(source, ['push', '-q', remote, 'main']);
    const home = join(root, 'home');
    mkdirSync(home);
    // insteadOf in the machine's config would turn the https URL into a local one: ignored.
    writeFileSync(
      join(home, '.gitconfig'),
      `[url "file://${remote}"]\n\tinsteadOf = https://example.invalid/repo.git\n`,
    );
    const fleet = join(root, 'fleet.yml');
    writeFileSync(
      fleet,
      stringify({ repos: [{ url: 'https://example.invalid/repo.git', name: 'https' }] }),
    );
    const result = await runFleet(fleet, {
      mode: 'check',
      gitEnv: { ...process.env, HOME: home, GIT_CONFIG_GLOBAL: undefined },
      record: false,
    });
    expect(result.results[0]?.status).toBe('error');
    expect(result.results[0]?.message).toMatch(/^git fetch failed: /);
    expect(result.results[0]?.message).toContain('example.invalid');
  });
});

describe('a fleet URL repository with symlinks committed', () => {
  test.each([
    ['cached-deploy.yml', (outside: string) => join(outside, 'secret.txt')],
    ['ecr/main-role-policy.json', () => '/proc/self/environ'],
    ['docker-bake.hcl', (outside: string) => join(outside, 'secret.txt')],
  ])(
    '%s as a symlink: that repository errors, no byte of the target in any output',
    async (path, target) => {
      const root = createTempDir();
      const outside = join(root, 'outside');
      mkdirSync(outside);
      writeFileSync(join(outside, 'secret.txt'), `${SECRET}\n`);
      const source = join(root, 'source');
      cpSync(template?.repo as string, source, { recursive: true });
      rmSync(join(source, path));
      symlinkSync(target(outside), join(source, path));
      git(source, ['add', '-A']);
      git(source, ['-c', 'commit.gpgsign=false', 'commit', '-q', '-m', 'symlink']);
      const remote = join(root, 'remote.git');
      execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote], { env: TEST_GIT_ENV });
      git(source, ['push', '-q', remote, 'main']);
      const workDir = join(root, 'work');
      const fleet = join(root, 'fleet.yml');
      writeFileSync(
        fleet,
        stringify({ workDir, repos: [{ url: `file://${remote}`, name: 'linked' }] }),
      );
      process.env.CANARY_FLEET_SECRET = SECRET;
      try {
        for (const mode of ['--check', '--diff']) {
          const report = join(root, `report${mode}.md`);
          const run = await runMain(['fleet', fleet, mode, '--report', report]);
          const results = readFileSync(join(workDir, 'last-run.fleet.json'), 'utf8');
          expect(run.code, mode).toBe(1);
          expect(JSON.parse(results).repositories.linked.message).toMatch(
            new RegExp(`^${path.replaceAll('.', '\\.')}: is a symbolic link`),
          );
          const everything = run.stdout + run.stderr + results + readFileSync(report, 'utf8');
          expect(everything, mode).not.toContain(SECRET);
        }
      } finally {
        delete process.env.CANARY_FLEET_SECRET;
      }
      expect(existsSync(join(outside, 'secret.txt'))).toBe(true);
    },
  );
});
