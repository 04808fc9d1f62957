/**
 * `npx tsx bench/sweep-branches.ts`: the branch sweep (`prune-ecr-cache.mjs sweep-branches`)
 * against the ECR test server, at 10,000 and 50,000 branch cache tags, with a listing of the
 * branches that exist.
 *
 * The branch-cache repository holds one `br-<slug>.api` tag per branch, a third of them of
 * branches that still exist (named like real branches: `feature/…`, `fix/…`, long ones, unicode),
 * the rest of deleted ones, a tenth of those pushed inside the grace period. Each run is the
 * shipped script in a child process under /usr/bin/time (Node's start-up included). API calls are
 * counted by the server and compared with the minimum the safety rules allow:
 *   ceil(T/1000) DescribeImages (the tagged listing) + ceil(K/100) DescribeImages by tag (the
 *   re-read before each delete batch) + ceil(K/100) BatchDeleteImage (K = tags deleted).
 * The baseline is the per-deletion job (`delete-branch`), one run per deleted branch: a process
 * start and one BatchDeleteImage each, measured on 100 branches and scaled.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheScope, cacheTag } from '../src/model/cache-tags.js';
import { renderPruneScript } from '../src/render/prune-script.js';
import {
  buildCacheManifest,
  type EcrTestServer,
  startEcrServer,
} from '../test/support/ecr-server.js';
import { type Measured, measureUnderTime, root } from './support.js';

const REPO = 'app-buildcache-branches';
const HOUR = 3_600_000;
const work = mkdtempSync(join(root, 'node_modules', '.cache', 'sweep-bench-'));
const script = join(work, 'prune-ecr-cache.mjs');
writeFileSync(script, renderPruneScript('bench'));

function measure(args: string[], server: EcrTestServer): Promise<Measured> {
  const env = {
    PATH: process.env.PATH,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: server.region,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL_ECR: server.endpoint,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  return measureUnderTime(process.execPath, args, env, work);
}

const PREFIXES = [
  'feature/',
  'fix/',
  'renovate/npm-',
  'release/',
  'dependabot/npm_and_yarn/',
  'ü/',
];
function branchName(i: number): string {
  const prefix = PREFIXES[i % PREFIXES.length] as string;
  const tail = i % 17 === 0 ? `${'x'.repeat(100)}-${i}` : `topic-${i}`;
  return `${prefix}${tail}`;
}

interface Scenario {
  tags: number;
  living: string[];
  stale: number;
  young: number;
  listing: string;
}

function seed(server: EcrTestServer, tags: number): Scenario {
  server.reset();
  server.state.createRepository(REPO);
  const now = Date.now();
  const living: string[] = ['main'];
  let stale = 0;
  let young = 0;
  for (let i = 0; i < tags; i++) {
    const branch = branchName(i);
    const lives = i % 3 === 0;
    const isYoung = !lives && i % 10 === 1;
    if (lives) living.push(branch);
    else if (isYoung) young++;
    else stale++;
    const scope = cacheScope({ isMainBranch: false, branch, tagSuffixes: ['api'] });
    server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: `b${i}`, layerSizes: [1000] }),
      pushedAt: new Date(now - (isYoung ? 1 : 48) * HOUR),
      tags: [cacheTag(scope, 'api')],
    });
  }
  const listing = join(work, `branches-${tags}.txt`);
  writeFileSync(listing, `${living.join('\n')}\n`);
  return { tags, living, stale, young, listing };
}

const count = (server: EcrTestServer, op: string, byId?: boolean) =>
  server.calls.filter(
    (call) =>
      call.op === op && (byId === undefined || (call.request.imageIds !== undefined) === byId),
  ).length;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const server = await startEcrServer();
try {
  const rows: string[] = [];
  let firstStale = 0;
  let firstWallMs = 0;
  for (const tags of [10_000, 50_000]) {
    const s = seed(server, tags);
    firstStale ||= s.stale;
    const run = await measure(
      [
        script,
        'sweep-branches',
        '--repository',
        REPO,
        '--image',
        'api',
        '--branches-file',
        s.listing,
        '--main-branch',
        'main',
        '--json',
      ],
      server,
    );
    if (run.code !== 0) throw new Error(`sweep exited ${run.code}: ${run.stderr}`);
    firstWallMs ||= run.wallMs;
    const summary = JSON.parse(run.stdout) as { deleted: unknown[]; errors: unknown[] };
    if (summary.errors.length > 0 || summary.deleted.length !== s.stale) {
      throw new Error(
        `sweep deleted ${summary.deleted.length} (expected ${s.stale}), errors ${summary.errors.length}`,
      );
    }
    const left = server.state.images(REPO).length;
    if (left !== tags - s.stale) throw new Error(`${left} images left, expected ${tags - s.stale}`);
    const calls = server.calls.length;
    const minimum = Math.ceil(tags / 1000) + 2 * Math.ceil(s.stale / 100);
    rows.push(
      `| ${fmt(tags)} | ${fmt(s.living.length)} | ${fmt(s.stale)} | ${fmt(s.young)} | ${fmt(run.wallMs / 1000, 2)} | ${fmt(run.maxRssKb / 1024)} | ${count(server, 'DescribeImages', false)} | ${count(server, 'DescribeImages', true)} | ${count(server, 'BatchDeleteImage')} | ${fmt(calls)} | ${fmt(minimum)} | ${fmt(calls / minimum, 2)} |`,
    );
  }

  // The baseline: one delete-branch run per deleted branch, measured on 100 and scaled.
  seed(server, 300);
  const deleted = Array.from({ length: 300 }, (_, i) => i)
    .filter((i) => i % 3 !== 0 && i % 10 !== 1)
    .slice(0, 100);
  const started = process.hrtime.bigint();
  for (const i of deleted) {
    const tag = cacheTag(
      cacheScope({ isMainBranch: false, branch: branchName(i), tagSuffixes: ['api'] }),
      'api',
    );
    const run = await measure(
      [script, 'delete-branch', '--repository', REPO, '--tag', tag],
      server,
    );
    if (run.code !== 0) throw new Error(`delete-branch exited ${run.code}: ${run.stderr}`);
  }
  const perBranchMs = Number(process.hrtime.bigint() - started) / 1e6 / deleted.length;

  console.log(
    'Branch sweep (`sweep-branches`, the shipped script in a child process), one image:\n',
  );
  console.log(
    '| tags | branches listed | stale (deleted) | stale, inside the grace period (kept) | wall s | max RSS MB | listing calls | re-read calls | BatchDeleteImage | calls | minimum | calls / minimum |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
  console.log(
    `\nBaseline: one delete-branch run per deleted branch took ${fmt(perBranchMs)} ms each (100 runs): ${fmt((perBranchMs * firstStale) / 1000, 1)} s for the ${fmt(firstStale)} stale tags of the 10,000-tag run, ${fmt((perBranchMs * firstStale) / firstWallMs)}x the sweep's wall time.`,
  );
} finally {
  await server.close();
  rmSync(work, { recursive: true, force: true });
}
