/**
 * `prepack`: writes npm-shrinkwrap.json from package-lock.json, so the published package carries
 * the dependency tree its tests ran with, and `npx create-cached-deploy@<version>` installs exactly
 * that tree (versions and integrity hashes) instead of resolving the semver ranges again.
 * `postpack` removes it: package-lock.json stays the repository's only lockfile (npm prefers a
 * shrinkwrap at the root, so a copy left behind would take over `npm ci`).
 *
 * Only the runtime tree goes in: every entry npm does not flag `dev: true`, the set
 * `npm ci --omit=dev` would install, each entry byte for byte as in package-lock.json. npm installs
 * every entry of a dependency's shrinkwrap, `dev: true` or not (measured with npm 10.9 and 11.19),
 * so the development tree (vitest, TypeScript, projen, their install scripts) must be left out.
 * See docs/supply-chain.md.
 *
 * Usage: tsx scripts/shrinkwrap.ts [package-lock.json] [npm-shrinkwrap.json]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

interface LockEntry {
  version?: string;
  integrity?: string;
  resolved?: string;
  link?: boolean;
  dev?: boolean;
  optional?: boolean;
  devOptional?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [field: string]: unknown;
}

export interface Lockfile {
  name: string;
  version: string;
  lockfileVersion: number;
  requires?: boolean;
  packages: Record<string, LockEntry>;
  [field: string]: unknown;
}

/**
 * The shrinkwrap of `lock`: its runtime entries only, unchanged. Refuses (with the entry's path)
 * a lockfile it cannot vouch for: not version 3, a linked or integrity-less runtime entry, or a
 * runtime dependency that resolves to no runtime entry (a shrinkwrap missing one installs a
 * broken tree).
 */
export function runtimeShrinkwrap(lock: Lockfile): Lockfile {
  if (lock.lockfileVersion !== 3) {
    throw new Error(`package-lock.json: lockfileVersion ${lock.lockfileVersion}, expected 3`);
  }
  const runtime = Object.entries(lock.packages).filter(([, entry]) => entry.dev !== true);
  const packages = Object.fromEntries(runtime);
  for (const [location, entry] of runtime) {
    if (location === '') continue;
    if (entry.link) throw new Error(`package-lock.json: ${location}: a link cannot be shipped`);
    if (!entry.version || !/^sha512-[A-Za-z0-9+/]+=*$/.test(entry.integrity ?? '')) {
      throw new Error(`package-lock.json: ${location}: no version or sha512 integrity`);
    }
  }
  for (const [location, entry] of runtime) {
    const required = {
      ...entry.dependencies,
      ...Object.fromEntries(
        Object.entries(entry.peerDependencies ?? {}).filter(
          ([name]) => entry.peerDependenciesMeta?.[name]?.optional !== true,
        ),
      ),
    };
    for (const name of Object.keys(required)) {
      const found = resolveFrom(lock.packages, location, name);
      if (found === undefined || packages[found] === undefined) {
        throw new Error(
          `package-lock.json: ${location || 'the package'} needs ${name}, which is not in the runtime tree`,
        );
      }
    }
  }
  return { ...lock, packages };
}

/** Node's lookup: `<location>/node_modules/<name>`, then each enclosing node_modules, then the root's. */
export function resolveFrom(
  packages: Record<string, unknown>,
  location: string,
  name: string,
): string | undefined {
  let from = location;
  for (;;) {
    const candidate = from === '' ? `node_modules/${name}` : `${from}/node_modules/${name}`;
    if (packages[candidate] !== undefined) return candidate;
    if (from === '') return undefined;
    const parent = from.lastIndexOf('/node_modules/');
    from = parent < 0 ? '' : from.slice(0, parent);
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [lockPath = 'package-lock.json', shrinkwrapPath = 'npm-shrinkwrap.json'] =
    process.argv.slice(2);
  const lock = JSON.parse(readFileSync(lockPath, 'utf8')) as Lockfile;
  const shrinkwrap = runtimeShrinkwrap(lock);
  writeFileSync(shrinkwrapPath, `${JSON.stringify(shrinkwrap, null, 2)}\n`);
  const count = Object.keys(shrinkwrap.packages).length - 1;
  console.error(`${shrinkwrapPath}: ${count} runtime packages from ${lockPath}`);
}
