/**
 * `npx tsx bench/pull-requests.ts`: `fleet --open-pr` and `fleet --status` over 1,000 repositories
 * (half on GitHub, half on GitLab) against the fake APIs of test/support, every call answered
 * after 50 ms, by the built CLI in a child process (start-up, evaluation of every repository and
 * the real `@octokit/rest` / `@gitbeaker/rest` included).
 *
 * What it measures is the code host part: the repositories are local, their branches "already
 * pushed" (the fake hosts hold them in memory), so it runs `--open-pr` without `--write`: no clone,
 * no commit, no push (each of those is git's time, and the same with or without pull requests).
 *
 *   open      every repository drifted (the fleet enforces a value none has): a new pull request each
 *   again     the same fleet, nothing new: every pull request found and left as it is
 *   update    the enforced value changes: every body changes
 *   status    `--status`: state, review, checks and the version on the default branch
 *   close     the fleet enforces nothing: every repository is in sync, every pull request closed
 *
 * Calls are counted by the fake hosts, per host, and compared with the fewest the hosts' REST APIs
 * allow for the same outcome (see MINIMUM). The latency floor is calls x 50 ms / concurrency: each
 * repository's calls depend on each other, repositories run `concurrency` at a time. GitHub's
 * 1 s pause between writes is off here (`writeIntervalMs: 0`); with it, a run's GitHub writes alone
 * take (writes x 1 s), printed too. Environment: BENCH_REPOS (1000), BENCH_LATENCY_MS (50),
 * BENCH_CONCURRENCY (8).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { FakeGitHubApi, MemoryRepository } from '../test/support/github-api/index.js';
import { FakeGitLabApi } from '../test/support/gitlab-api/index.js';
import { bin, buildLib, initExample } from './support.js';

const REPOS = Number(process.env.BENCH_REPOS ?? 1000);
const LATENCY = Number(process.env.BENCH_LATENCY_MS ?? 50);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const BRANCH = 'cached-deploy/upgrade';
const GITHUB_TOKEN = 'ghp_benchToken0123456789';
const GITLAB_TOKEN = 'glpat-benchToken0123456789';

/**
 * The fewest calls per repository each host's REST API allows, given the fleet file below
 * (labels, one reviewer, one assignee):
 *
 * GitHub: find = 1 (GET pulls?head=), open = create (1) + labels and assignees (1: PATCH issues
 * takes both) + reviewers (1: only POST requested_reviewers sets them), update = 1 (PATCH pulls),
 * close = comment (1) + close (1); status = the pull request (1) + reviews (1) + commit statuses
 * (1) + check runs (1: statuses and checks are two systems) + the state file (1).
 * GitLab: find = 1, open = 1 (POST merge_requests takes labels, assignee and reviewer ids; the two
 * user ids are looked up once per run, 2 calls for the fleet), update = 1 (PUT), close = note (1)
 * + close (1); status = the merge request (1) + its head pipeline (1: only the single answer has it)
 * + approvals (1) + the state file (1).
 */
const MINIMUM = {
  open: { github: 4, gitlab: 2 },
  again: { github: 1, gitlab: 1 },
  update: { github: 2, gitlab: 2 },
  status: { github: 5, gitlab: 4 },
  close: { github: 3, gitlab: 3 },
} as const;
type Scenario = keyof typeof MINIMUM;

const work = mkdtempSync(join(tmpdir(), 'cached-deploy-pr-bench-'));
const github = new FakeGitHubApi({ token: GITHUB_TOKEN, rateLimit: 1_000_000 });
const gitlab = new FakeGitLabApi({ token: GITLAB_TOKEN });
try {
  buildLib();
  await Promise.all([github.start(), gitlab.start()]);
  github.http.latencyMs = LATENCY;
  gitlab.http.latencyMs = LATENCY;
  gitlab.addUser('alice');
  gitlab.addUser('bob');

  // One repository initialised by the CLI; every other one a copy with its own names, a git
  // repository on main (the branch its pull request targets).
  const template = join(work, 'template');
  initExample(template, 'acme/tmpl');
  const config = readFileSync(join(template, 'cached-deploy.yml'), 'utf8');
  const state = readFileSync(join(template, '.cached-deploy', 'state.json'), 'utf8');
  mkdirSync(join(work, 'repos'));
  const repos = Array.from({ length: REPOS }, (_, i) => {
    const name = `svc-${String(i).padStart(4, '0')}`;
    const kind = i % 2 === 0 ? ('github' as const) : ('gitlab' as const);
    const dir = join(work, 'repos', name);
    cpSync(template, dir, { recursive: true });
    writeFileSync(join(dir, 'cached-deploy.yml'), config.replaceAll('tmpl', name));
    const project = kind === 'github' ? `acme/${name}` : `platform/services/${name}`;
    const source = new MemoryRepository();
    source.setBranch('main', { '.cached-deploy/state.json': state });
    source.setBranch(BRANCH, {});
    if (kind === 'github') github.addRepository(project, source);
    else gitlab.addProject(project, source);
    return {
      path: `repos/${name}`,
      host: kind,
      project,
      apiUrl: kind === 'github' ? github.url : gitlab.url,
    };
  });
  const fleetFile = join(work, 'fleet.yml');
  const writeFleet = (enforce: object | undefined) =>
    writeFileSync(
      fleetFile,
      stringify({
        concurrency: CONCURRENCY,
        ...(enforce ? { enforce } : {}),
        repos,
        pullRequests: {
          branch: BRANCH,
          labels: ['dependencies'],
          reviewers: ['alice'],
          assignees: ['bob'],
          writeIntervalMs: 0,
        },
      }),
    );

  const env = { ...process.env, GITHUB_TOKEN, GITLAB_TOKEN };
  const rows: string[] = [];
  // Asynchronous: the fake hosts answer from this process's event loop.
  const runCli = (args: string[]) =>
    new Promise<{ status: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [bin, 'fleet', fleetFile, ...args],
        { cwd: work, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 },
        (error, _stdout, stderr) =>
          resolve({ status: error ? Number((error as { code?: unknown }).code) : 0, stderr }),
      );
    });
  const measure = async (scenario: Scenario, args: string[], expectCode: number) => {
    github.http.calls.length = 0;
    gitlab.http.calls.length = 0;
    const start = process.hrtime.bigint();
    const result = await runCli(args);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (result.status !== expectCode) {
      throw new Error(
        `${scenario}: exit ${result.status}, expected ${expectCode}\n${result.stderr.slice(-2000)}`,
      );
    }
    const perHost = (api: FakeGitHubApi | FakeGitLabApi, n: number) => ({
      calls: api.http.calls.length,
      writes: api.http.calls.filter((call) => call.method !== 'GET').length,
      perRepo: api.http.calls.length / n,
    });
    const half = { github: Math.ceil(REPOS / 2), gitlab: Math.floor(REPOS / 2) };
    const gh = perHost(github, half.github);
    const gl = perHost(gitlab, half.gitlab);
    const calls = gh.calls + gl.calls;
    const minimum = MINIMUM[scenario].github * half.github + MINIMUM[scenario].gitlab * half.gitlab;
    const floor = (calls * LATENCY) / 1000 / CONCURRENCY;
    rows.push(
      `| ${scenario} | ${seconds.toFixed(1)} | ${gh.perRepo.toFixed(3)} / ${MINIMUM[scenario].github} | ${gl.perRepo.toFixed(3)} / ${MINIMUM[scenario].gitlab} | ${(calls / minimum).toFixed(3)} | ${floor.toFixed(1)} | ${(seconds / floor).toFixed(2)} | ${gh.writes} |`,
    );
    console.error(`${scenario}: ${seconds.toFixed(1)} s, ${calls} calls (minimum ${minimum})`);
  };

  // Setup: every repository generated for its own names (in sync with a fleet enforcing nothing).
  writeFleet(undefined);
  const setup = await runCli(['--write']);
  if (setup.status !== 0) {
    throw new Error(`fleet --write exited ${setup.status}\n${setup.stderr.slice(-2000)}`);
  }

  writeFleet({ cache: { branchRetentionDays: 21 } });
  await measure('open', ['--open-pr'], 2);
  await measure('again', ['--open-pr'], 2);
  writeFleet({ cache: { branchRetentionDays: 30 } });
  await measure('update', ['--open-pr'], 2);
  await measure('status', ['--status'], 2);
  writeFleet(undefined);
  await measure('close', ['--open-pr'], 0);

  console.log(
    `\n${REPOS} repositories (${Math.ceil(REPOS / 2)} GitHub, ${Math.floor(REPOS / 2)} GitLab), ${LATENCY} ms per call, concurrency ${CONCURRENCY}; ${cpus().length} CPUs, Node ${process.versions.node}, load ${loadavg()[0]?.toFixed(1)}\n`,
  );
  console.log(
    '| run | wall s | GitHub calls / repo (min) | GitLab calls / repo (min) | calls / minimum | latency floor s | wall / floor | GitHub writes |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
} finally {
  await Promise.all([github.stop(), gitlab.stop()]);
  if (!process.env.BENCH_KEEP) rmSync(work, { recursive: true, force: true });
}
