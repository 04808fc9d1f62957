/**
 * The pruner's one dependency is installed with `npm ci --ignore-scripts` from a lockfile the
 * generator ships (templates/pruner/, written beside the prune script): the lockfile must pin the
 * whole tree by integrity hash, agree with its package.json (or npm ci refuses), and install the
 * SDK version the pruner was tested with.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { PRUNER_SDK } from '../src/model/actions.js';
import { generatedPaths, renderFiles } from '../src/render/render-files.js';

const template = (name: string) =>
  readFileSync(new URL(`../templates/pruner/${name}`, import.meta.url), 'utf8');

interface LockEntry {
  name?: string;
  version?: string;
  integrity?: string;
  resolved?: string;
  hasInstallScript?: boolean;
  dependencies?: Record<string, string>;
  optional?: boolean;
  dev?: boolean;
}

const packageJson = JSON.parse(template('package.json'));
const lockfile = JSON.parse(template('package-lock.json')) as {
  name: string;
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
};

describe("the pruner's lockfile", () => {
  const [sdkName, sdkVersion] = [
    PRUNER_SDK.slice(0, PRUNER_SDK.lastIndexOf('@')),
    PRUNER_SDK.slice(PRUNER_SDK.lastIndexOf('@') + 1),
  ];

  it('pins exactly the SDK the pruner was tested with, and nothing else at the top', () => {
    expect(packageJson.private).toBe(true);
    expect(packageJson.dependencies).toEqual({ [sdkName]: sdkVersion });
    expect(sdkVersion).toMatch(/^\d+\.\d+\.\d+$/);
    expect(packageJson.scripts).toBeUndefined();
    expect(lockfile.lockfileVersion).toBe(3);
    // npm ci refuses a lockfile that disagrees with package.json.
    expect(lockfile.name).toBe(packageJson.name);
    expect(lockfile.packages['']).toEqual({
      name: packageJson.name,
      dependencies: packageJson.dependencies,
    });
    expect(lockfile.packages[`node_modules/${sdkName}`]?.version).toBe(sdkVersion);
  });

  it('pins every package of the tree by an sha512 integrity hash, with no install scripts', () => {
    const entries = Object.entries(lockfile.packages).filter(([path]) => path !== '');
    expect(entries.length).toBeGreaterThan(5);
    for (const [path, entry] of entries) {
      expect(path).toMatch(/^(node_modules\/(@[\w.-]+\/)?[\w.-]+\/?)+$/);
      expect(entry.version, path).toMatch(/^\d+\.\d+\.\d+/);
      expect(entry.integrity, path).toMatch(/^sha512-[A-Za-z0-9+/]+={0,2}$/);
      // Registry tarballs only (no git or file dependencies), when npm recorded where from.
      if (entry.resolved !== undefined)
        expect(entry.resolved).toMatch(/^https:\/\/registry\.npmjs\.org\//);
      expect(entry.hasInstallScript, path).toBeUndefined();
      expect(entry.dev, path).toBeUndefined();
    }
  });

  it('is a closed tree: every dependency of every package resolves to a locked package', () => {
    const paths = new Set(Object.keys(lockfile.packages));
    for (const [path, entry] of Object.entries(lockfile.packages)) {
      for (const name of Object.keys(entry.dependencies ?? {})) {
        // Node's resolution: the nearest node_modules/<name> up from the package.
        let dir = path;
        let found = false;
        for (;;) {
          if (paths.has(`${dir ? `${dir}/` : ''}node_modules/${name}`)) {
            found = true;
            break;
          }
          const cut = dir.lastIndexOf('/node_modules/');
          if (dir === '') break;
          dir = cut < 0 ? '' : dir.slice(0, cut);
        }
        expect(found, `${path || '(root)'} -> ${name}`).toBe(true);
      }
    }
  });

  it('is written beside the prune script, byte for byte, wherever the script goes', () => {
    for (const pruneScript of ['scripts/prune-ecr-cache.mjs', 'tools/ci/prune.mjs']) {
      const config = parseConfig(
        [
          'aws: { accountId: "123456789012", region: eu-west-1 }',
          'github: { repository: acme/shop }',
          'images: [{ name: web, repository: shop }]',
          `paths: { pruneScript: ${pruneScript} }`,
        ].join('\n'),
      );
      const paths = generatedPaths(config);
      const stem = pruneScript.replace(/\.mjs$/, '');
      expect([paths.prunerPackage, paths.prunerLockfile]).toEqual([
        `${stem}.package.json`,
        `${stem}.package-lock.json`,
      ]);
      const files = new Map(renderFiles(config, '0.0.0-test').map((f) => [f.path, f.content]));
      expect(files.get(paths.prunerPackage)).toBe(template('package.json'));
      expect(files.get(paths.prunerLockfile)).toBe(template('package-lock.json'));
    }
  });
});
