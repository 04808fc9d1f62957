/**
 * `prepack`, after the compile: removes every file of lib/ whose module is no longer in src/ (a
 * module moved or deleted since lib/ was first built), so `npm pack` ships only what src/ builds.
 * `tsc --build` writes outputs but never deletes one; deleting lib/ itself instead would pull it
 * from under anything running the CLI from this checkout at the time (the test suite packs).
 *
 * Usage: tsx scripts/clean-lib.ts [root]
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The files of `lib` that no `.ts` file of `src` compiles to; paths relative to `lib`. */
export function staleOutputs(lib: string, src: string): string[] {
  if (!existsSync(lib)) return [];
  const stale: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(path);
        continue;
      }
      const module = /^(.*)\.(?:js|d\.ts|js\.map|d\.ts\.map)$/.exec(relative(lib, path));
      if (module && !existsSync(join(src, `${module[1]}.ts`))) stale.push(relative(lib, path));
    }
  };
  walk(lib);
  return stale.sort();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(process.argv[2] ?? '.');
  const lib = join(root, 'lib');
  const stale = staleOutputs(lib, join(root, 'src'));
  for (const path of stale) rmSync(join(lib, path));
  // Folders left empty go too.
  const prune = (dir: string): boolean => {
    const empty = readdirSync(dir, { withFileTypes: true })
      .map((entry) => (entry.isDirectory() ? prune(join(dir, entry.name)) : false))
      .every(Boolean);
    if (empty && dir !== lib) rmSync(dir, { recursive: true });
    return empty;
  };
  if (existsSync(lib)) prune(lib);
  // On stderr: `npm pack --json` answers on stdout.
  if (stale.length > 0) {
    console.error(`lib/: removed ${stale.length} files of modules src/ no longer has`);
  }
}
