/**
 * `npm run bench`: start-up cost of the CLI against bare node, on this machine, in one run.
 *
 *   node -e 0                                  the floor: what any Node CLI pays
 *   create-cached-deploy --version             our fixed cost
 *   create-cached-deploy generate --check      the whole pipeline on the bundled example
 *   create-cached-deploy generate              (in sync: reads, renders, compares, writes nothing)
 *
 * Each command runs RUNS times after WARMUP runs; it prints median and p90 wall time and the
 * median's ratio to `node -e 0`. The target: generate within 5x of bare node.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bin, initExample } from './support.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 20);
const WARMUP = 3;

const work = mkdtempSync(join(tmpdir(), 'cached-deploy-bench-'));
initExample(work, 'acme/orders-service');

function measure(args: string[]): { median: number; p90: number } {
  const times: number[] = [];
  for (let i = 0; i < WARMUP + RUNS; i++) {
    const start = process.hrtime.bigint();
    const result = spawnSync('node', args, { cwd: work, stdio: 'ignore' });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}`);
    if (i >= WARMUP) times.push(ms);
  }
  times.sort((a, b) => a - b);
  return {
    median: times[Math.floor(times.length / 2)] ?? 0,
    p90: times[Math.floor(times.length * 0.9)] ?? 0,
  };
}

try {
  const cases: [string, string[]][] = [
    ['node -e 0 (baseline)', ['-e', '0']],
    ['create-cached-deploy --version', [bin, '--version']],
    ['create-cached-deploy generate --check', [bin, 'generate', '--check']],
    ['create-cached-deploy generate', [bin, 'generate']],
  ];
  const results = cases.map(([name, args]) => ({ name, ...measure(args) }));
  const baseline = results[0]?.median ?? 1;
  console.log(`node ${process.version}, ${RUNS} runs each after ${WARMUP} warm-up runs\n`);
  console.log('| command | median ms | p90 ms | x node -e 0 |');
  console.log('|---|---:|---:|---:|');
  for (const r of results) {
    console.log(
      `| ${r.name} | ${r.median.toFixed(1)} | ${r.p90.toFixed(1)} | ${(r.median / baseline).toFixed(2)} |`,
    );
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
