/**
 * Regenerates templates/pruner/package.json and package-lock.json: the npm project the workflow
 * installs the prune script's one dependency from (`npm ci --ignore-scripts`). Run it after
 * changing PRUNER_SDK in src/model/actions.ts, with the npm registry reachable:
 *
 *   npx tsx scripts/update-pruner-lockfile.ts
 *
 * It asks npm for a lockfile only (`npm install --package-lock-only --ignore-scripts`): nothing
 * is installed and no package's code runs. `resolved` URLs are left out, so npm ci fetches from
 * whatever registry the runner is configured for and checks each tarball's integrity hash.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PRUNER_SDK } from '../src/model/actions.js';

const at = PRUNER_SDK.lastIndexOf('@');
const name = PRUNER_SDK.slice(0, at);
const version = PRUNER_SDK.slice(at + 1);
const target = fileURLToPath(new URL('../templates/pruner/', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'pruner-lockfile-'));
try {
  const packageJson = {
    name: 'cached-deploy-pruner',
    private: true,
    description:
      'The one dependency of the shipped prune script, installed with npm ci --ignore-scripts',
    dependencies: { [name]: version },
  };
  writeFileSync(join(work, 'package.json'), `${JSON.stringify(packageJson, null, 2)}\n`);
  execFileSync(
    'npm',
    [
      'install',
      '--package-lock-only',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--omit-lockfile-registry-resolved',
    ],
    { cwd: work, stdio: 'inherit' },
  );
  for (const file of ['package.json', 'package-lock.json']) {
    copyFileSync(join(work, file), join(target, file));
  }
  console.log(`templates/pruner/ now pins ${PRUNER_SDK} and its tree`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
