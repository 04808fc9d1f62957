/**
 * `npx tsx bench/fleet.ts`: a synthetic fleet of 1,000 repositories, checked by the built CLI.
 *
 *   read floor              a node script that only reads every file `fleet --check` reads
 *   read floor + parse      the same, also parsing every cached-deploy.yml (yaml)
 *   fleet --check           the whole fleet in one process, one thread; again with --workers 1
 *   fleet --diff            the same, keeping contents and printing one unified diff
 *   fleet --write           the first generation of every repository (the setup step, timed)
 *   generate --check loop   a bash loop running `create-cached-deploy generate --check` once per
 *                           repository: measured on a sample and extrapolated to the fleet
 *
 * Wall time, CPU time and peak RSS come from /usr/bin/time (GNU time, Debian package `time`);
 * without it, from a preload in every node process (`process.resourceUsage()` at exit). CPU time
 * is the fairer number on a busy machine: wall time includes waiting for other processes. Each
 * fleet command runs RUNS times (median). Environment: BENCH_REPOS (1000), BENCH_DRIFTED (50),
 * BENCH_LOOP_SAMPLE (100), BENCH_RUNS (3), BENCH_KEEP=1 keeps the fleet.
 */
import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { bin, buildLib, initExample, root } from './support.js';

const REPOS = Number(process.env.BENCH_REPOS ?? 1000);
const DRIFTED = Number(process.env.BENCH_DRIFTED ?? 50);
const LOOP_SAMPLE = Math.min(REPOS, Number(process.env.BENCH_LOOP_SAMPLE ?? 100));
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const GNU_TIME = '/usr/bin/time';
const hasGnuTime = existsSync(GNU_TIME);

interface Measure {
  seconds: number;
  /** user + system CPU seconds (of the process and its children). */
  cpu: number;
  rssMb: number;
  code: number;
}

/**
 * Without GNU time: every node process (also those the bash loop starts) preloads this file, which
 * prints its own `process.resourceUsage().maxRSS` on exit; the peak is the largest reported.
 */
const RSS_MARK = '__cached_deploy_bench_rss__';
const rssPreload = `process.on('exit', () => { const u = process.resourceUsage(); require('node:fs').writeSync(2, '\\n${RSS_MARK} ' + u.maxRSS + ' ' + (u.userCPUTime + u.systemCPUTime) + '\\n'); });\n`;

/** Runs `cmd args` once: wall time, peak RSS of the process (or its largest child), exit code. */
function run(cmd: string, args: string[], cwd: string): Measure {
  if (hasGnuTime) {
    const result = spawnSync(GNU_TIME, ['-f', '%e %M %x %U %S', cmd, ...args], {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'ignore', 'pipe'],
      maxBuffer: 256 * 1024 * 1024,
    });
    const last = result.stderr.trim().split('\n').at(-1) ?? '';
    const [seconds, kb, code, user, sys] = last.split(' ').map(Number);
    return {
      seconds: seconds ?? Number.NaN,
      cpu: (user ?? 0) + (sys ?? 0),
      rssMb: (kb ?? 0) / 1024,
      code: code ?? -1,
    };
  }
  const preload = join(work, 'rss-preload.cjs');
  if (!existsSync(preload)) writeFileSync(preload, rssPreload);
  const start = process.hrtime.bigint();
  const result = spawnSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, NODE_OPTIONS: `--require ${preload}` },
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const reports = [...result.stderr.matchAll(new RegExp(`${RSS_MARK} (\\d+) (\\d+)`, 'g'))];
  const kb = Math.max(0, ...reports.map((m) => Number(m[1])));
  const cpu = reports.reduce((sum, m) => sum + Number(m[2]), 0) / 1e6;
  return { seconds, cpu, rssMb: kb / 1024, code: result.status ?? -1 };
}

function median(cmd: string, args: string[], cwd: string, runs = RUNS): Measure {
  const results = Array.from({ length: runs }, () => run(cmd, args, cwd));
  results.sort((a, b) => a.seconds - b.seconds);
  return results[Math.floor(results.length / 2)] as Measure;
}

const work = mkdtempSync(join(tmpdir(), 'cached-deploy-fleet-bench-'));
try {
  buildLib();

  // One template repository, initialised by the CLI; every other repository is a copy of it
  // with its own names, so every repository renders different bytes.
  const template = join(work, 'template');
  initExample(template, 'acme/tmpl');
  rmSync(join(template, '.git'), { recursive: true, force: true });
  const config = readFileSync(join(template, 'cached-deploy.yml'), 'utf8');
  const repos = join(work, 'repos');
  mkdirSync(repos);
  const names = Array.from({ length: REPOS }, (_, i) => `svc-${String(i).padStart(4, '0')}`);
  for (const name of names) {
    const dir = join(repos, name);
    cpSync(template, dir, { recursive: true });
    writeFileSync(join(dir, 'cached-deploy.yml'), config.replaceAll('tmpl', name));
  }
  const fleetFile = join(work, 'fleet.yml');
  writeFileSync(
    fleetFile,
    `concurrency: 8\nenforce:\n  buildkit: { image: moby/buildkit:v0.27.0 }\nrepos:\n${names.map((name) => `  - repos/${name}\n`).join('')}`,
  );

  // Setup, timed: the first generation of every repository in one pass.
  const write = run(process.execPath, [bin, 'fleet', fleetFile, '--write'], work);
  if (write.code !== 0) throw new Error(`fleet --write exited ${write.code}`);
  // Some drift, so --check and --diff have something to report.
  for (const name of names.slice(0, DRIFTED)) {
    const file = join(repos, name, 'cached-deploy.yml');
    writeFileSync(file, `${readFileSync(file, 'utf8')}cache:\n  branchRetentionDays: 7\n`);
  }

  // (b) the read floor: every file the check reads, nothing else (same order, sync reads).
  const floorScript = join(work, 'floor.mjs');
  const generated = [
    'cached-deploy.yml',
    'Dockerfile',
    'worker/Dockerfile',
    '.github/workflows/deploy.yml',
    'docker-bake.hcl',
    'ecr/cache-lifecycle-policy.json',
    'ecr/branch-cache-lifecycle-policy.json',
    'ecr/image-lifecycle-policy.json',
    'ecr/main-role-policy.json',
    'ecr/main-role-trust-policy.json',
    'ecr/branch-role-policy.json',
    'ecr/branch-role-trust-policy.json',
    'scripts/prune-ecr-cache.mjs',
    'scripts/prune-ecr-cache.package.json',
    'scripts/prune-ecr-cache.package-lock.json',
    '.cached-deploy/state.json',
  ];
  writeFileSync(
    floorScript,
    `import { readFileSync } from 'node:fs';
const files = ${JSON.stringify(generated)};
const names = ${JSON.stringify(names)};
let bytes = 0;
readFileSync(${JSON.stringify(fleetFile)});
for (const name of names) for (const file of files) bytes += readFileSync(${JSON.stringify(repos)} + '/' + name + '/' + file).length;
console.log(bytes);
`,
  );

  // (b') the same, also parsing each cached-deploy.yml with the `yaml` library: the part of the
  // check's work no implementation can skip.
  const parseScript = join(work, 'floor-parse.mjs');
  writeFileSync(
    parseScript,
    readFileSync(floorScript, 'utf8')
      .replace(
        "import { readFileSync } from 'node:fs';",
        `import { readFileSync } from 'node:fs';\nimport { parse } from ${JSON.stringify(join(root, 'node_modules', 'yaml', 'dist', 'index.js'))};`,
      )
      .replace(
        'for (const file of files) bytes +=',
        "for (const file of files) if (file === 'cached-deploy.yml') parse(readFileSync(" +
          `${JSON.stringify(repos)} + '/' + name + '/' + file, 'utf8')); else bytes +=`,
      ),
  );
  const floor = median(process.execPath, [floorScript], work);
  const floorParse = median(process.execPath, [parseScript], work);
  const fleet = (mode: string, extra: string[] = []) => {
    const measure = median(process.execPath, [bin, 'fleet', fleetFile, mode, ...extra], work);
    if (measure.code !== 2) throw new Error(`fleet ${mode} exited ${measure.code}, expected 2`);
    return measure;
  };
  const check = fleet('--check');
  const checkWorker = fleet('--check', ['--workers', '1']);
  const diff = fleet('--diff');

  // (a) one process per repository, on a sample (the last LOOP_SAMPLE: in sync, like most).
  const sample = names.slice(-LOOP_SAMPLE).map((name) => join(repos, name));
  const loopScript = join(work, 'loop.sh');
  writeFileSync(
    loopScript,
    `for d in "$@"; do node ${JSON.stringify(bin)} generate --check "$d" >/dev/null || test $? -eq 2 || exit 1; done\n`,
  );
  const loop = run('bash', [loopScript, ...sample], work);
  if (loop.code !== 0) throw new Error(`the generate --check loop exited ${loop.code}`);
  const scale = REPOS / LOOP_SAMPLE;

  const rows: [string, Measure][] = [
    ['read floor: node reading every file the check reads', floor],
    ['read floor + `yaml` parse of every cached-deploy.yml', floorParse],
    [`\`fleet --check\` (${DRIFTED} drifted)`, check],
    ['`fleet --check --workers 1` (a worker thread besides the main one)', checkWorker],
    [`\`fleet --diff\` (${DRIFTED} drifted)`, diff],
    ['`fleet --write` (first generation of every repository, 1 run)', write],
    [
      `bash loop of \`generate --check\`, ${LOOP_SAMPLE} repositories x${scale} (extrapolated)`,
      { ...loop, seconds: loop.seconds * scale, cpu: loop.cpu * scale },
    ],
  ];
  console.log(
    `${REPOS} repositories (2 images each, 16 files read per repository), node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]?.toFixed(1)} at the end; median of ${RUNS} runs (the loop and --write: 1 run); ${hasGnuTime ? 'GNU time' : 'a node preload'} for wall time, CPU time and peak RSS\n`,
  );
  console.log(
    '| command | wall s | CPU s | peak RSS MB | wall x read floor | wall x `fleet --check` |',
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [name, m] of rows) {
    console.log(
      `| ${name} | ${m.seconds.toFixed(2)} | ${m.cpu.toFixed(2)} | ${m.rssMb.toFixed(0)} | ${(m.seconds / floor.seconds).toFixed(1)} | ${(m.seconds / check.seconds).toFixed(2)} |`,
    );
  }
} finally {
  if (process.env.BENCH_KEEP) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
