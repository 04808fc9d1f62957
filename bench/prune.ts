/**
 * `npx tsx bench/prune.ts`: the cache pruner against the ECR test server at 10,000 and 100,000
 * images, next to the usual shell pipeline, in one run.
 *
 * The repository holds a realistic mix (mostly untagged cache artifacts older than the grace
 * period, some tagged, some young, multi-platform indexes with untagged children, untagged
 * non-cache artifacts), seeded straight into the server's state. Each pruner run is the shipped
 * script (`prune --repository R --sweep`) in a child process under /usr/bin/time, so the wall
 * time includes Node's start-up and the max RSS is the whole process's. API calls are counted by
 * the server and compared with the minimum the safety rules allow:
 *   ceil(N/1000) DescribeImages + ceil(indexes/100) + ceil(K/100) BatchGetImage + ceil(K/100)
 *   DescribeImages by id (the tag re-check before each delete batch) + ceil(K/100)
 *   BatchDeleteImage (K = images deleted).
 * The shell pipeline is `aws ecr list-images --filter tagStatus=UNTAGGED` into
 * `aws ecr batch-delete-image` 100 at a time (Debian's awscli v2, /usr/bin/aws): one Python
 * process per batch, so it runs at 10,000 images only (at 100,000 it would take ~15 minutes).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderPruneScript } from '../src/render/prune-script.js';
import {
  buildCacheManifest,
  buildImageManifest,
  buildIndexManifest,
  type EcrTestServer,
  type Registry,
  startEcrServer,
} from '../test/support/ecr-server.js';
import { type Measured, measureUnderTime, root } from './support.js';

const REPO = 'cache';
const HOUR = 3_600_000;
const GRACE_HOURS = 6;
const AWS = '/usr/bin/aws';

// --- the repository ---

interface Mix {
  /** untagged cache artifacts older than the grace period: what should go */
  garbage: string[];
  taggedCache: string[];
  /** untagged cache artifacts younger than the grace period (builds still importing them) */
  youngCache: string[];
  /** tagged multi-platform indexes */
  indexes: string[];
  /** their per-platform images, untagged */
  children: string[];
  /** untagged signatures / SBOMs */
  nonCacheArtifacts: string[];
  /** untagged ordinary images (push-by-digest, not merged yet) */
  untaggedImages: string[];
  taggedImages: string[];
}

/** mulberry32, so both runs of one size see the same repository. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fills the repository with `n` images; ages are relative to `base`, so reseeding is identical. */
function seed(state: Registry, n: number, base: number): Mix {
  state.createRepository(REPO);
  const mix: Mix = {
    garbage: [],
    taggedCache: [],
    youngCache: [],
    indexes: [],
    children: [],
    nonCacheArtifacts: [],
    untaggedImages: [],
    taggedImages: [],
  };
  const next = random(n);
  const ago = (minHours: number, maxHours: number) =>
    new Date(base - (minHours + next() * (maxHours - minHours)) * HOUR);
  const cache = (i: number) =>
    buildCacheManifest({ salt: `c${i}`, layerSizes: [1_000_000 + ((i * 7919) % 50_000_000)] });
  let count = 0;
  while (count < n) {
    const i = count;
    const roll = next();
    const put = (manifest: string, pushedAt: Date, tags: string[] = []) => {
      count++;
      return state.putImage(REPO, { manifest, pushedAt, tags });
    };
    if (roll < 0.85) mix.garbage.push(put(cache(i), ago(GRACE_HOURS + 1, 24 * 60)));
    else if (roll < 0.87) {
      mix.taggedCache.push(put(cache(i), ago(0, 24 * 30), [`br-${i}.api`]));
    } else if (roll < 0.91) mix.youngCache.push(put(cache(i), ago(0, GRACE_HOURS - 1)));
    else if (roll < 0.925 && n - count >= 3) {
      const children = ['amd64', 'arm64'].map((arch) =>
        put(buildImageManifest({ salt: `p${i}-${arch}` }), ago(24, 24 * 60)),
      );
      mix.children.push(...children);
      mix.indexes.push(put(buildIndexManifest(children), ago(24, 24 * 60), [`v${i}`]));
    } else if (roll < 0.955) {
      const config = 'application/vnd.dev.cosign.artifact.sig.v1+json';
      mix.nonCacheArtifacts.push(
        put(buildImageManifest({ salt: `s${i}`, configMediaType: config }), ago(24, 24 * 60)),
      );
    } else if (roll < 0.975) {
      mix.untaggedImages.push(put(buildImageManifest({ salt: `u${i}` }), ago(24, 24 * 60)));
    } else {
      mix.taggedImages.push(
        put(buildImageManifest({ salt: `t${i}` }), ago(24, 24 * 60), [`t${i}`]),
      );
    }
  }
  return mix;
}

// --- child processes ---

/** Runs `command` under /usr/bin/time, reading its elapsed time and max RSS. */
function measure(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Measured> {
  return measureUnderTime(command, args, env, work);
}

function awsEnv(server: EcrTestServer): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: work,
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: server.region,
    AWS_DEFAULT_REGION: server.region,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
    AWS_ENDPOINT_URL_ECR: server.endpoint,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ENDPOINT: server.endpoint,
    REPO,
  };
}

// The shipped script resolves @aws-sdk/client-ecr from the repository's node_modules, as in a
// user's repository; the shell pipeline writes its batch responses next to it.
mkdirSync(join(root, 'node_modules', '.cache'), { recursive: true });
const work = mkdtempSync(join(root, 'node_modules', '.cache', 'prune-bench-'));
const script = join(work, 'prune-ecr-cache.mjs');
writeFileSync(script, renderPruneScript('bench'));
const pipeline = join(work, 'naive-prune.sh');
writeFileSync(
  pipeline,
  `#!/usr/bin/env bash
# The usual clean-up: every untagged image, deleted 100 at a time.
set -euo pipefail
aws() { ${AWS} --endpoint-url "$ENDPOINT" "$@"; }
aws ecr list-images --repository-name "$REPO" --filter tagStatus=UNTAGGED \\
    --query 'imageIds[*]' --output json \\
  | jq -c '. as $ids | range(0; length; 100) as $i | $ids[$i:$i + 100]' \\
  | while read -r batch; do
      aws ecr batch-delete-image --repository-name "$REPO" --image-ids "$batch" --output json
    done
`,
);

// --- runs ---

interface Row {
  name: string;
  n: number;
  deleted: number;
  wallMs: number;
  maxRssKb: number;
  calls: Record<string, number>;
  minimum?: number;
}

const OPS = ['DescribeImages', 'ListImages', 'BatchGetImage', 'BatchDeleteImage'] as const;

function countCalls(server: EcrTestServer): Record<string, number> {
  return Object.fromEntries(OPS.map((op) => [op, server.callCount(op)]));
}

const images = (server: EcrTestServer) => new Set(server.state.images(REPO).map((i) => i.digest));

async function runPruner(server: EcrTestServer, n: number, base: number, dryRun: boolean) {
  server.reset();
  const mix = seed(server.state, n, base);
  const args = [
    script,
    'prune',
    '--repository',
    REPO,
    '--sweep',
    '--grace-hours',
    `${GRACE_HOURS}`,
  ];
  const result = await measure(process.execPath, [...args, ...(dryRun ? ['--dry-run'] : [])], {
    ...awsEnv(server),
  });
  if (result.code !== 0) throw new Error(`pruner exited ${result.code}: ${result.stderr}`);
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  const match = /delete (\d+)|Deleted (\d+)/.exec(last);
  const deleted = Number(match?.[1] ?? match?.[2]);
  if (!/errors 0\.$/.test(last)) throw new Error(`pruner reported errors: ${last}`);
  // The pruner deletes exactly the old untagged cache artifacts.
  if (deleted !== mix.garbage.length) {
    throw new Error(`pruner deleted ${deleted}, expected ${mix.garbage.length}`);
  }
  if (!dryRun) {
    const left = images(server);
    if (mix.garbage.some((d) => left.has(d)) || left.size !== n - mix.garbage.length) {
      throw new Error('pruner left garbage or deleted something else');
    }
  }
  const k = mix.garbage.length;
  const minimum =
    Math.ceil(n / 1000) +
    Math.ceil(mix.indexes.length / 100) +
    // A real run reads each batch's tags once more right before deleting it (DescribeImages by
    // id), so a tag a concurrent build just moved onto a candidate is never deleted with it.
    Math.ceil(k / 100) * (dryRun ? 1 : 3);
  const row: Row = {
    name: `pruner${dryRun ? ' --dry-run' : ''}`,
    n,
    deleted,
    wallMs: result.wallMs,
    maxRssKb: result.maxRssKb,
    calls: countCalls(server),
    minimum,
  };
  return { row, mix };
}

interface Harm {
  n: number;
  youngCache: [number, number];
  nonCache: [number, number];
  childAttempts: number;
  childrenDeleted: number;
  indexes: number;
}

async function runPipeline(server: EcrTestServer, n: number, base: number) {
  server.reset();
  const mix = seed(server.state, n, base);
  const before = images(server);
  const result = await measure('bash', [pipeline], awsEnv(server));
  if (result.code !== 0) throw new Error(`pipeline exited ${result.code}: ${result.stderr}`);
  const after = images(server);
  const gone = (digests: string[]) => digests.filter((d) => !after.has(d)).length;
  const failures = result.stdout.match(/"failureCode": "ImageReferencedByManifestList"/g) ?? [];
  const row: Row = {
    name: 'aws ecr list-images → batch-delete-image (shell)',
    n,
    deleted: before.size - after.size,
    wallMs: result.wallMs,
    maxRssKb: result.maxRssKb,
    calls: countCalls(server),
  };
  const nonCache = [...mix.nonCacheArtifacts, ...mix.untaggedImages];
  const harm: Harm = {
    n,
    youngCache: [gone(mix.youngCache), mix.youngCache.length],
    nonCache: [gone(nonCache), nonCache.length],
    childAttempts: failures.length,
    childrenDeleted: gone(mix.children),
    indexes: mix.indexes.length,
  };
  return { row, harm };
}

function total(calls: Record<string, number>): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const server = await startEcrServer();
const started = Date.now();
try {
  const base = Date.now();
  const rows: Row[] = [];
  const harms: Harm[] = [];
  const mixes = new Map<number, Mix>();
  for (const n of [10_000, 100_000]) {
    for (const dryRun of [true, false]) {
      const { row, mix } = await runPruner(server, n, base, dryRun);
      rows.push(row);
      mixes.set(n, mix);
      process.stderr.write(`  ${row.name} at ${fmt(n)}: ${fmt(row.wallMs / 1000, 1)} s\n`);
    }
  }
  const naive = await runPipeline(server, 10_000, base);
  rows.push(naive.row);
  harms.push(naive.harm);
  process.stderr.write(`  pipeline at 10,000: ${fmt(naive.row.wallMs / 1000, 1)} s\n`);

  console.log(
    `node ${process.version}, ${AWS} ${(await measure(AWS, ['--version'], awsEnv(server))).stdout.trim().split(' ')[0]}, grace ${GRACE_HOURS} h, total bench time ${fmt((Date.now() - started) / 1000)} s\n`,
  );
  for (const [n, mix] of mixes) {
    console.log(
      `${fmt(n)} images: ${fmt(mix.garbage.length)} old untagged cache artifacts (K), ${fmt(mix.taggedCache.length)} tagged cache, ${fmt(mix.youngCache.length)} young untagged cache, ${fmt(mix.indexes.length)} indexes with ${fmt(mix.children.length)} untagged children, ${fmt(mix.nonCacheArtifacts.length)} untagged signatures, ${fmt(mix.untaggedImages.length)} untagged images, ${fmt(mix.taggedImages.length)} tagged images`,
    );
  }
  console.log('');
  console.log(
    '| run | images | deleted | wall s | max RSS MB | list calls | BatchGetImage | BatchDeleteImage | calls | minimum | calls / minimum |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const list = (r.calls.DescribeImages ?? 0) + (r.calls.ListImages ?? 0);
    console.log(
      `| ${r.name} | ${fmt(r.n)} | ${fmt(r.deleted)} | ${fmt(r.wallMs / 1000, 2)} | ${fmt(r.maxRssKb / 1024)} | ${fmt(list)} | ${fmt(r.calls.BatchGetImage ?? 0)} | ${fmt(r.calls.BatchDeleteImage ?? 0)} | ${fmt(total(r.calls))} | ${r.minimum === undefined ? '-' : fmt(r.minimum)} | ${r.minimum === undefined ? '-' : fmt(total(r.calls) / r.minimum, 2)} |`,
    );
  }
  const ours = rows.find((r) => r.n === 10_000 && r.name === 'pruner');
  if (ours) {
    console.log('');
    console.log(
      `At 10,000 images the pipeline took ${fmt(naive.row.wallMs / ours.wallMs, 1)}x the pruner's wall time and made ${fmt(total(naive.row.calls) / total(ours.calls), 2)}x its API calls.`,
    );
  }
  console.log('');
  console.log(
    '| pipeline at | young cache artifacts deleted | untagged non-cache images deleted | index children: delete attempts (refused by ECR) | index children deleted |',
  );
  console.log('|---:|---:|---:|---:|---:|');
  for (const h of harms) {
    console.log(
      `| ${fmt(h.n)} | ${fmt(h.youngCache[0])} of ${fmt(h.youngCache[1])} | ${fmt(h.nonCache[0])} of ${fmt(h.nonCache[1])} | ${fmt(h.childAttempts)} | ${fmt(h.childrenDeleted)} |`,
    );
  }
  console.log(
    '\nThe pruner deleted none of these: it kept every young, non-cache and index-child image.',
  );
} finally {
  await server.close();
  rmSync(work, { recursive: true, force: true });
}
