/**
 * `npm run example`: the main job on the bundled example, without touching the committed tree.
 * Copies examples/node-service to a temporary git repository, runs the built CLI there
 * (`init --yes`, then `generate --check` to show it is idempotent), prints what it wrote, and
 * removes the copy (pass --keep to keep it and look around).
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const bin = join(root, 'bin', 'create-cached-deploy.js');
const keep = process.argv.includes('--keep');
const work = mkdtempSync(join(tmpdir(), 'cached-deploy-example-'));

const run = (command: string, args: string[]) => {
  console.log(`\n$ ${[command, ...args].join(' ')}`);
  execFileSync(command, args, { cwd: work, stdio: 'inherit' });
};

try {
  cpSync(join(root, 'examples', 'node-service'), work, { recursive: true });
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, stdio: 'ignore' });
  git('init', '-q', '-b', 'main');
  git('remote', 'add', 'origin', 'git@github.com:acme/orders-service.git');
  console.log(`Example repository: ${work} (a copy of examples/node-service)`);

  run('node', [bin, 'init', '--yes', '--account-id', '123456789012', '--region', 'eu-west-1']);
  run('node', [bin, 'generate', '--check']);

  for (const file of ['cached-deploy.yml', 'docker-bake.hcl', 'ecr/cache-lifecycle-policy.json']) {
    console.log(`\n----- ${file} -----\n${readFileSync(join(work, file), 'utf8')}`);
  }
  console.log('(also written: .github/workflows/deploy.yml, ecr/image-lifecycle-policy.json,');
  console.log(
    ' ecr/branch-cache-lifecycle-policy.json, ecr/main-role-*.json, ecr/branch-role-*.json,',
  );
  console.log(' scripts/prune-ecr-cache.package*.json, .cached-deploy/state.json)');
} finally {
  if (keep) console.log(`\nKept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
