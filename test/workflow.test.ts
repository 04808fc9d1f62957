// biome-ignore-all lint/suspicious/noTemplateCurlyInString: this file holds shell scripts and GitHub expressions, whose ${…} is not JavaScript's
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { ACTIONS } from '../src/model/actions.js';
import { registryHost } from '../src/model/aws.js';
import { CACHE_EXPORT_OPTIONS } from '../src/model/bake.js';
import { cacheScope } from '../src/model/cache-tags.js';
import type { Job, Step, Workflow } from '../src/model/workflow.js';
import { renderFiles } from '../src/render/render-files.js';
import { actionlint, formatActionlintErrors } from './support/actionlint.js';
import {
  applyBakeSet,
  type EvaluatedTarget,
  evaluateBake,
  type ParsedBake,
  parseBake,
} from './support/bake.js';

// ---------------------------------------------------------------------------------------------
// Configurations under test
// ---------------------------------------------------------------------------------------------

const ACCOUNT = '123456789012';
const REPOSITORY = 'acme/shop';

const ONE_IMAGE = [{ name: 'api', repository: 'acme/api' }];
const THREE_IMAGES = [
  {
    name: 'api',
    repository: 'acme/api',
    target: 'runtime',
    platforms: ['linux/amd64', 'linux/arm64'],
  },
  { name: 'web', repository: 'acme/web', context: 'web' },
  {
    name: 'worker-jobs',
    repository: 'acme/worker',
    context: 'services/worker',
    dockerfile: 'docker/worker.Dockerfile',
    cacheRepository: 'acme/build-cache-worker',
  },
];

type Raw = Record<string, unknown>;

function raw(patch: {
  mainBranch?: string;
  images?: Raw[];
  region?: string;
  workflow?: Raw;
  paths?: Raw;
  buildkit?: Raw;
}): Raw {
  return {
    aws: { accountId: ACCOUNT, region: patch.region ?? 'eu-west-1' },
    github: {
      repository: REPOSITORY,
      ...(patch.mainBranch === undefined ? {} : { mainBranch: patch.mainBranch }),
    },
    images: patch.images ?? ONE_IMAGE,
    ...(patch.workflow ? { workflow: patch.workflow } : {}),
    ...(patch.paths ? { paths: patch.paths } : {}),
    ...(patch.buildkit ? { buildkit: patch.buildkit } : {}),
  };
}

const DEPLOY_COMMAND = './scripts/deploy.sh "$REGISTRY" "$IMAGE_TAG"';

const CASES: { name: string; raw: Raw }[] = [
  { name: 'defaults, one image', raw: raw({}) },
  { name: 'three images', raw: raw({ images: THREE_IMAGES }) },
  { name: 'main branch "master"', raw: raw({ mainBranch: 'master' }) },
  { name: 'main branch "release/prod"', raw: raw({ mainBranch: 'release/prod' }) },
  { name: `main branch "it's" (a single quote)`, raw: raw({ mainBranch: "it's" }) },
  { name: 'main branch "v2+hotfix" (a filter character)', raw: raw({ mainBranch: 'v2+hotfix' }) },
  {
    name: 'no push trigger',
    raw: raw({ workflow: { on: { push: [] } } }),
  },
  {
    name: 'several push branches with globs',
    raw: raw({
      workflow: { on: { push: ['main', 'release/**', 'feature/*', 'v[0-9].x', '!feature/wip*'] } },
    }),
  },
  { name: 'pullRequest false', raw: raw({ workflow: { on: { pullRequest: false } } }) },
  { name: 'workflowDispatch false', raw: raw({ workflow: { on: { workflowDispatch: false } } }) },
  {
    name: 'dispatch only',
    raw: raw({ workflow: { on: { push: [], pullRequest: false } } }),
  },
  {
    name: 'deploy with environment',
    raw: raw({ workflow: { deploy: { command: DEPLOY_COMMAND, environment: 'production' } } }),
  },
  {
    name: 'deploy without environment',
    raw: raw({ workflow: { deploy: { command: 'make deploy\necho "deployed $IMAGE_TAG"' } } }),
  },
  { name: 'runsOn self-hosted', raw: raw({ workflow: { runsOn: 'self-hosted' } }) },
  { name: 'runsOn ubuntu-22.04', raw: raw({ workflow: { runsOn: 'ubuntu-22.04' } }) },
  {
    name: 'custom workflow file and bake file paths',
    raw: raw({
      workflow: { file: '.github/workflows/cached-deploy.yaml', name: 'Build & deploy' },
      paths: { bakeFile: 'build/docker-bake.hcl', ecrDir: 'infra/ecr' },
    }),
  },
  {
    name: 'China partition, custom BuildKit pin',
    raw: raw({ region: 'cn-north-1', buildkit: { image: 'moby/buildkit:v0.21.1' } }),
  },
  {
    name: 'everything at once',
    raw: raw({
      mainBranch: 'release/prod',
      images: THREE_IMAGES,
      workflow: {
        file: '.github/workflows/ship.yml',
        runsOn: 'ubuntu-22.04',
        on: { push: ['release/prod', 'hotfix/**'], workflowDispatch: false },
        deploy: { command: DEPLOY_COMMAND, environment: 'prod eu' },
      },
      paths: { bakeFile: 'ci/bake.hcl' },
    }),
  },
];

interface Generated {
  config: ResolvedConfig;
  workflowPath: string;
  workflowText: string;
  workflow: Workflow;
  bakeText: string;
  paths: string[];
}

function generate(rawConfig: Raw): Generated {
  const config = parseConfig(stringify(rawConfig));
  const files = renderFiles(config, '0.0.0-test');
  const workflowFile = files.find((file) => file.path === config.workflow.file);
  const bakeFile = files.find((file) => file.path === config.paths.bakeFile);
  if (!workflowFile || !bakeFile) throw new Error('renderFiles lost the workflow or bake file');
  return {
    config,
    workflowPath: workflowFile.path,
    workflowText: workflowFile.content,
    workflow: parse(workflowFile.content) as Workflow,
    bakeText: bakeFile.content,
    paths: files.map((file) => file.path),
  };
}

// ---------------------------------------------------------------------------------------------
// A GitHub Actions expression evaluator for the subset the workflow uses: context paths,
// string/boolean/null literals, ! == != && || and parentheses. Semantics as documented by GitHub:
// && and || return an operand, falsy is false/0/''/null, and string comparison ignores case.
// ---------------------------------------------------------------------------------------------

type Value = string | number | boolean | null | { [key: string]: Value };

function tokenize(source: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s*('(?:[^']|'')*'|==|!=|&&|\|\||[()!,]|[A-Za-z_][A-Za-z0-9_.-]*)/y;
  let index = 0;
  while (index < source.length) {
    if (/^\s*$/.test(source.slice(index))) break;
    pattern.lastIndex = index;
    const match = pattern.exec(source);
    if (!match?.[1]) throw new Error(`cannot tokenize ${JSON.stringify(source.slice(index))}`);
    tokens.push(match[1]);
    index = pattern.lastIndex;
  }
  return tokens;
}

function truthy(value: Value): boolean {
  return !(value === false || value === 0 || value === '' || value === null);
}

function looseEquals(left: Value, right: Value): boolean {
  if (typeof left === 'string' && typeof right === 'string') {
    return left.toUpperCase() === right.toUpperCase();
  }
  if (typeof left === typeof right) return left === right;
  const number = (value: Value) =>
    value === null ? 0 : typeof value === 'boolean' ? Number(value) : Number(value);
  return number(left) === number(right);
}

/** The functions the workflow calls; status functions answer for a run where nothing failed. */
function callFunction(name: string, args: Value[]): Value {
  switch (name) {
    case 'format': {
      const [template, ...values] = args;
      return String(template).replace(/\{(\d+)\}/g, (_, index: string) =>
        String(values[Number(index)] ?? ''),
      );
    }
    case 'success':
    case 'always':
      return true;
    case 'cancelled':
    case 'failure':
      return false;
    default:
      throw new Error(`function ${name}() is not modelled`);
  }
}

function evaluateExpression(source: string, context: Record<string, Value>): Value {
  const tokens = tokenize(source);
  let position = 0;
  const peek = () => tokens[position];
  const next = () => {
    const token = tokens[position++];
    if (token === undefined) throw new Error(`unexpected end of ${source}`);
    return token;
  };
  const or = (): Value => {
    let left = and();
    while (peek() === '||') {
      next();
      const right = and();
      left = truthy(left) ? left : right;
    }
    return left;
  };
  const and = (): Value => {
    let left = equality();
    while (peek() === '&&') {
      next();
      const right = equality();
      left = truthy(left) ? right : left;
    }
    return left;
  };
  const equality = (): Value => {
    let left = unary();
    while (peek() === '==' || peek() === '!=') {
      const operator = next();
      const right = unary();
      left = looseEquals(left, right) === (operator === '==');
    }
    return left;
  };
  const unary = (): Value => {
    if (peek() === '!') {
      next();
      return !truthy(unary());
    }
    return primary();
  };
  const primary = (): Value => {
    const token = next();
    if (token === '(') {
      const value = or();
      if (next() !== ')') throw new Error(`missing ) in ${source}`);
      return value;
    }
    if (token.startsWith("'")) return token.slice(1, -1).replaceAll("''", "'");
    if (peek() === '(') {
      next();
      const args: Value[] = [];
      while (peek() !== ')') {
        args.push(or());
        if (peek() === ',') next();
      }
      next();
      return callFunction(token, args);
    }
    if (token === 'true') return true;
    if (token === 'false') return false;
    if (token === 'null') return null;
    let value: Value = context;
    for (const segment of token.split('.')) {
      if (value === null || typeof value !== 'object') return null;
      value = Object.hasOwn(value, segment) ? (value[segment] ?? null) : null;
    }
    return value;
  };
  const result = or();
  if (position !== tokens.length) throw new Error(`trailing tokens in ${source}`);
  return result;
}

/** Evaluates a workflow value: `${{ … }}` segments in text, or a bare `if:` expression. */
function evaluateField(text: string, context: Record<string, Value>, bareExpression = false) {
  if (bareExpression && !text.includes('${{')) return evaluateExpression(text, context);
  const whole = /^\$\{\{(.*?)\}\}$/s.exec(text);
  if (whole?.[1] !== undefined && !whole[1].includes('}}')) {
    return evaluateExpression(whole[1], context);
  }
  return text.replace(/\$\{\{(.*?)\}\}/gs, (_, inner: string) =>
    String(evaluateExpression(inner, context)),
  );
}

const asEnvString = (value: Value) => (typeof value === 'string' ? value : String(value));

// ---------------------------------------------------------------------------------------------
// Simulated runs: which steps run, with which inputs, for each kind of event
// ---------------------------------------------------------------------------------------------

interface Scenario {
  name: string;
  event: 'push' | 'workflow_dispatch' | 'pull_request';
  branch: string;
  fork?: boolean;
}

/** A branch deletion: GitHub runs it on the default branch (taken to be the main branch). */
const deletion = (
  config: ResolvedConfig,
  branch: string,
  refType = 'branch',
): Record<string, Value> => ({
  github: {
    event_name: 'delete',
    repository: REPOSITORY,
    workflow: config.workflow.name,
    sha: 'c0ffee'.padEnd(40, '0'),
    ref: `refs/heads/${config.github.mainBranch}`,
    ref_name: config.github.mainBranch,
    head_ref: '',
    event: { ref: branch, ref_type: refType },
  },
});

function scenarios(mainBranch: string): Scenario[] {
  return [
    { name: 'push to main', event: 'push', branch: mainBranch },
    { name: 'push to feat/x', event: 'push', branch: 'feat/x' },
    { name: 'dispatch on main', event: 'workflow_dispatch', branch: mainBranch },
    { name: 'dispatch on feat/x', event: 'workflow_dispatch', branch: 'feat/x' },
    { name: 'same-repo PR from feat/x', event: 'pull_request', branch: 'feat/x' },
    { name: 'same-repo PR from main', event: 'pull_request', branch: mainBranch },
    { name: 'fork PR from its main', event: 'pull_request', branch: mainBranch, fork: true },
    { name: 'fork PR from feat/x', event: 'pull_request', branch: 'feat/x', fork: true },
  ];
}

function githubContext(scenario: Scenario, config: ResolvedConfig): Record<string, Value> {
  const pr = scenario.event === 'pull_request';
  const repoName = REPOSITORY.split('/')[1] ?? 'shop';
  return {
    github: {
      event_name: scenario.event,
      repository: REPOSITORY,
      workflow: config.workflow.name,
      sha: 'c0ffee'.padEnd(40, '0'),
      ref: pr ? 'refs/pull/42/merge' : `refs/heads/${scenario.branch}`,
      ref_name: pr ? '42/merge' : scenario.branch,
      head_ref: pr ? scenario.branch : '',
      event: pr
        ? {
            pull_request: {
              head: {
                repo: { full_name: scenario.fork ? `mallory/${repoName}` : REPOSITORY },
              },
            },
          }
        : {},
    },
  };
}

interface RunResult {
  buildRuns: boolean;
  ran: Step[];
  concurrency: { group: Value; cancel: Value };
  deployRuns: boolean;
  /** The trusted bake step's evaluated `push` input, when it ran. */
  push: Value | undefined;
  scope: string | undefined;
  /** The effective bake targets of whichever bake step ran. */
  targets: Record<string, EvaluatedTarget>;
}

const scratch = mkdtempSync(join(tmpdir(), 'workflow-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * Runs `run:` steps with bash, batched: spawning from the (large) test process costs ~100 ms a
 * time, so requests made in the same tick are queued and run by one small bash loop, which runs
 * each step's script as its own file with `bash -e` (GitHub's default shell) in a clean
 * environment (PATH, LANG, the step's env, GITHUB_OUTPUT) and prints what it wrote to
 * GITHUB_OUTPUT.
 */
const STEP_LOOP = [
  'set -u',
  'script=$1',
  'shift',
  'names=("$@")',
  'while :; do',
  '  assigns=()',
  '  for name in "${names[@]}"; do',
  "    IFS= read -r -d '' value || exit 0",
  '    assigns+=("$name=$value")',
  '  done',
  '  : >"$STEP_OUTPUT"',
  '  if env -i PATH="$PATH" LANG=C.UTF-8 "${assigns[@]}" GITHUB_OUTPUT="$STEP_OUTPUT" \\',
  '      bash -e "$script" >/dev/null 2>"$STEP_STDERR"; then',
  '    printf \'%s\\0\' "$(<"$STEP_OUTPUT")"',
  '  else',
  '    printf \'\\001%s\\0\' "$(<"$STEP_STDERR")"',
  '  fi',
  'done',
].join('\n');

interface StepRequest {
  script: string;
  env: Record<string, string>;
  resolve: (outputs: Record<string, string>) => void;
  reject: (error: Error) => void;
}

let queue: StepRequest[] = [];
let batchCounter = 0;

function runStep(script: string, env: Record<string, string>): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    queue.push({ script, env, resolve, reject });
    if (queue.length === 1) setImmediate(flushSteps);
  });
}

function flushSteps(): void {
  const batch = queue;
  queue = [];
  const groups = new Map<string, StepRequest[]>();
  for (const request of batch) {
    const key = JSON.stringify([request.script, Object.keys(request.env).sort()]);
    groups.set(key, [...(groups.get(key) ?? []), request]);
  }
  for (const requests of groups.values()) {
    runStepBatch(requests).catch((error: Error) => {
      for (const request of requests) request.reject(error);
    });
  }
}

async function runStepBatch(requests: StepRequest[]): Promise<void> {
  const [first] = requests as [StepRequest];
  const names = Object.keys(first.env).sort();
  const base = join(scratch, `batch-${batchCounter++}`);
  writeFileSync(`${base}-step.sh`, first.script);
  writeFileSync(`${base}-loop.sh`, STEP_LOOP);
  const input = Buffer.concat(
    requests.flatMap((request) =>
      names.flatMap((name) => [Buffer.from(request.env[name] ?? '', 'utf8'), Buffer.from([0])]),
    ),
  );
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [`${base}-loop.sh`, `${base}-step.sh`, ...names], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        LC_ALL: 'C',
        STEP_OUTPUT: `${base}-output`,
        STEP_STDERR: `${base}-stderr`,
      },
    });
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out).toString('utf8')) : reject(new Error(`bash ${code}`)),
    );
    child.stdin.end(input);
  });
  const results = stdout.split('\0');
  requests.forEach((request, index) => {
    const result = results[index];
    if (result === undefined || result.startsWith('\x01')) {
      request.reject(new Error(`step failed for ${JSON.stringify(request.env)}: ${result}`));
      return;
    }
    const outputs: Record<string, string> = {};
    for (const line of result.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) outputs[line.slice(0, eq)] = line.slice(eq + 1);
    }
    request.resolve(outputs);
  });
}

const bakeCache = new WeakMap<Generated, Promise<ParsedBake>>();
const simulationCache = new WeakMap<Generated, Map<string, Promise<RunResult>>>();

function parsedBakeOf(generated: Generated): Promise<ParsedBake> {
  let parsed = bakeCache.get(generated);
  if (!parsed) {
    parsed = parseBake(generated.bakeText);
    bakeCache.set(generated, parsed);
  }
  return parsed;
}

/** One simulated run per configuration and scenario (memoised: several tests read each). */
function simulate(generated: Generated, scenario: Scenario): Promise<RunResult> {
  let runs = simulationCache.get(generated);
  if (!runs) {
    runs = new Map();
    simulationCache.set(generated, runs);
  }
  const key = JSON.stringify([scenario.event, scenario.branch, scenario.fork ?? false]);
  let run = runs.get(key);
  if (!run) {
    run = simulateRun(generated, scenario);
    runs.set(key, run);
  }
  return run;
}

async function simulateRun(generated: Generated, scenario: Scenario): Promise<RunResult> {
  const { workflow, config } = generated;
  const context: Record<string, Value> = githubContext(scenario, config);
  const concurrency = {
    group: evaluateField(workflow.concurrency.group, context),
    cancel: evaluateField(workflow.concurrency['cancel-in-progress'], context),
  };
  const build = workflow.jobs.build as Job;
  const buildRuns = build.if === undefined || truthy(evaluateField(build.if, context, true));
  const jobEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(build.env ?? {})) {
    jobEnv[name] = asEnvString(evaluateField(value, context));
  }
  const steps: Record<string, Value> = {};
  const ran: Step[] = [];
  let push: Value | undefined;
  let scope: string | undefined;
  let targets: Record<string, EvaluatedTarget> = {};
  const parsedBake = await parsedBakeOf(generated);
  for (const step of buildRuns ? build.steps : []) {
    const stepContext = { ...context, env: { ...jobEnv }, steps };
    if (step.if !== undefined && !truthy(evaluateField(step.if, stepContext, true))) continue;
    ran.push(step);
    const stepEnv: Record<string, string> = { ...jobEnv };
    for (const [name, value] of Object.entries(step.env ?? {})) {
      stepEnv[name] = asEnvString(evaluateField(value, stepContext));
    }
    if (step.run !== undefined && step.id) {
      const outputs = await runStep(step.run, stepEnv);
      steps[step.id] = { outputs };
      scope = outputs.scope;
    }
    if (step.uses === ACTIONS.bake) {
      const inputs = step.with ?? {};
      const pushInput = inputs.push;
      push =
        typeof pushInput === 'string' ? evaluateField(pushInput, stepContext) : (pushInput ?? null);
      const evaluated = evaluateBake(parsedBake, stepEnv);
      const set = typeof inputs.set === 'string' ? inputs.set.split('\n') : [];
      targets = applyBakeSet(evaluated.targets, set.filter(Boolean));
    }
  }
  const deploy = workflow.jobs.deploy;
  // Without a status function in its `if`, a job runs only when the jobs it needs succeeded.
  const deployRuns =
    deploy !== undefined &&
    buildRuns &&
    (deploy.if === undefined || truthy(evaluateField(deploy.if, context, true)));
  return { buildRuns, ran, concurrency, deployRuns, push, scope, targets };
}

// ---------------------------------------------------------------------------------------------
// GitHub branch filters (on.push.branches): *, **, ?, +, [], \ escapes, leading ! negation
// ---------------------------------------------------------------------------------------------

function filterToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i] as string;
    if (char === '\\') {
      source += (pattern[++i] ?? '').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else if (char === '*' && pattern[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (char === '*') {
      source += '[^/]*';
    } else if (char === '?' || char === '+') {
      source += char;
    } else if (char === '[') {
      const end = pattern.indexOf(']', i);
      source += pattern.slice(i, end + 1);
      i = end;
    } else {
      source += char.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`);
}

function branchFilterMatches(patterns: readonly string[], branch: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    if (pattern.startsWith('!')) {
      if (filterToRegExp(pattern.slice(1)).test(branch)) matched = false;
    } else if (filterToRegExp(pattern).test(branch)) {
      matched = true;
    }
  }
  return matched;
}

// ---------------------------------------------------------------------------------------------
// Helpers over the parsed workflow
// ---------------------------------------------------------------------------------------------

const allSteps = (workflow: Workflow) =>
  Object.entries(workflow.jobs).flatMap(([job, body]) => body.steps.map((step) => ({ job, step })));

/** Every string in the document with the key path that leads to it. */
function strings(value: unknown, path: string[] = []): { path: string[]; text: string }[] {
  if (typeof value === 'string') return [{ path, text: value }];
  if (Array.isArray(value))
    return value.flatMap((item, index) => strings(item, [...path, `${index}`]));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, item]) => strings(item, [...path, key]));
  }
  return [];
}

const expr = (expression: string) => `\${{ ${expression} }}`;
const BRANCH = 'github.head_ref || github.ref_name';
const TRUSTED_IF = "env.TRUSTED == 'true'";
const mainRef = (config: ResolvedConfig) =>
  `'refs/heads/${config.github.mainBranch.replaceAll("'", "''")}'`;
const mainPushExpression = (config: ResolvedConfig) =>
  `github.ref == ${mainRef(config)} && github.event_name != 'pull_request'`;

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

describe('the action table', () => {
  it('pins every action to the major DOMAIN.md §3 names (checkout v5 or later)', () => {
    const { checkout, ...rest } = ACTIONS;
    expect(checkout).toMatch(/^actions\/checkout@v(\d+)$/);
    expect(Number(/@v(\d+)$/.exec(checkout)?.[1])).toBeGreaterThanOrEqual(5);
    expect(rest).toEqual({
      configureAwsCredentials: 'aws-actions/configure-aws-credentials@v6',
      ecrLogin: 'aws-actions/amazon-ecr-login@v2',
      setupBuildx: 'docker/setup-buildx-action@v4',
      bake: 'docker/bake-action@v7',
    });
  });
});

describe('configurations the generator refuses because the workflow would be broken', () => {
  it('refuses ${{ in a main branch name or a push filter (GitHub would parse an expression)', () => {
    expect(() => parseConfig(stringify(raw({ mainBranch: 'a${{b' })))).toThrow(/mainBranch/);
    expect(() => parseConfig(stringify(raw({ workflow: { on: { push: ['x${{y'] } } })))).toThrow(
      /workflow\.on\.push\[0\]/,
    );
  });
});

describe.each(CASES)('generated workflow: $name', ({ raw: rawConfig }) => {
  const generated = generate(rawConfig);
  const { config, workflow, workflowText } = generated;
  const build = workflow.jobs.build as Job;
  const stepsUsing = (action: string) => build.steps.filter((step) => step.uses === action);
  const cacheStep = build.steps.find((step) => step.id === 'cache');
  const [trustedBake, forkBake] = stepsUsing(ACTIONS.bake);

  it('passes actionlint with zero errors', async () => {
    const errors = await actionlint(workflowText, generated.workflowPath);
    expect(formatActionlintErrors(errors)).toEqual([]);
  });

  it('is written at the configured path, next to the bake file it names', () => {
    expect(generated.workflowPath).toBe(config.workflow.file);
    expect(generated.paths).toContain(config.paths.bakeFile);
    expect(workflow.name).toBe(config.workflow.name);
  });

  it('grants nothing at the top level and exactly contents: read + id-token: write per job', () => {
    expect(workflow.permissions).toEqual({});
    for (const job of Object.values(workflow.jobs)) {
      expect(job.permissions).toEqual({ contents: 'read', 'id-token': 'write' });
      expect(job['runs-on']).toBe(config.workflow.runsOn);
    }
  });

  it('has triggers exactly as configured, and a push filter that matches the main branch', () => {
    const on = workflow.on as Record<string, { branches?: string[] }>;
    expect(Object.keys(on).sort()).toEqual(
      [
        ...(config.workflow.on.push.length > 0 ? ['push'] : []),
        ...(config.workflow.on.pullRequest ? ['pull_request'] : []),
        ...(config.workflow.on.workflowDispatch ? ['workflow_dispatch'] : []),
        'delete',
      ].sort(),
    );
    if (config.workflow.on.push.length > 0) {
      expect(on.push?.branches).toEqual(config.workflow.on.push);
    }
    const rawOn = (rawConfig.workflow as Raw | undefined)?.on as Raw | undefined;
    if (rawOn?.push === undefined) {
      // The default push filter: the main branch, and only it.
      const branches = on.push?.branches ?? [];
      expect(branchFilterMatches(branches, config.github.mainBranch)).toBe(true);
      expect(branchFilterMatches(branches, `${config.github.mainBranch}x`)).toBe(false);
      expect(branchFilterMatches(branches, `x${config.github.mainBranch}`)).toBe(false);
    }
  });

  it('runs one build per branch at a time, grouped by `github.head_ref || github.ref_name`', () => {
    expect(workflow.concurrency.group.startsWith(expr('github.workflow'))).toBe(true);
    expect(workflow.concurrency.group).toContain(`${BRANCH} }}`);
    expect(workflow.concurrency['cancel-in-progress']).toContain(BRANCH);
    expect(workflow.concurrency['cancel-in-progress']).toMatch(/^\$\{\{ .* \}\}$/);
  });

  it('has no ${{ … }} expression inside any run: block', () => {
    const runs = allSteps(workflow).flatMap(({ step }) =>
      step.run === undefined ? [] : [step.run],
    );
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs) expect(run).not.toContain('${{');
  });

  it('passes the branch name to the scope step only through env', () => {
    expect(cacheStep).toBeDefined();
    expect(cacheStep?.env).toEqual({
      BRANCH: expr(BRANCH),
      IS_MAIN: expr(`github.ref == ${mainRef(config)}`),
    });
    // The script only ever reads the branch as a quoted "$BRANCH".
    const reads = cacheStep?.run?.match(/.?\$\{?BRANCH\b.?/g) ?? [];
    expect(reads.length).toBeGreaterThan(0);
    for (const read of reads) expect(read).toBe('"$BRANCH"');
    // Attacker-controlled context (head_ref, ref_name, ref, github.event.*) appears only in
    // expression-evaluated fields, never in a run: script or an action input.
    const untrusted = /github\.(head_ref|ref_name|ref\b|event\.)/;
    for (const { path, text } of strings(workflow)) {
      if (!untrusted.test(text)) continue;
      const key = path.at(-1) ?? '';
      const where = path.join('.');
      // The bake step's `push` input is a comparison: it evaluates to a boolean, not to text.
      const allowed =
        where === 'concurrency.group' ||
        where === 'concurrency.cancel-in-progress' ||
        key === 'if' ||
        (path.includes('env') && !path.includes('with')) ||
        (key === 'push' && path.at(-2) === 'with' && /^\$\{\{ [^}]* \}\}$/.test(text));
      expect(allowed, `untrusted context in ${where}: ${text}`).toBe(true);
      expect(path).not.toContain('run');
    }
  });

  it('uses only actions from the action table, pinned to their majors', () => {
    const uses = allSteps(workflow).flatMap(({ step }) => (step.uses ? [step.uses] : []));
    expect(uses.length).toBeGreaterThan(0);
    const pinned = new Set<string>(Object.values(ACTIONS));
    for (const action of uses) {
      expect(pinned.has(action), action).toBe(true);
      expect(action).toMatch(/^[\w-]+\/[\w-]+@v\d+$/);
    }
    for (const { step } of allSteps(workflow)) {
      if (step.uses === ACTIONS.checkout)
        expect(step.with).toEqual({ 'persist-credentials': false });
    }
  });

  it('pins BuildKit in setup-buildx (driver-opts image=moby/buildkit:v…, at least v0.13)', () => {
    const [buildx, ...more] = stepsUsing(ACTIONS.setupBuildx);
    expect(more).toEqual([]);
    const driverOpts = String(buildx?.with?.['driver-opts']);
    const version = /^image=moby\/buildkit:v(\d+)\.(\d+)\.(\d+)(@sha256:[0-9a-f]{64})?$/.exec(
      driverOpts,
    );
    expect(version, driverOpts).not.toBeNull();
    expect(driverOpts).toBe(`image=${config.buildkit.image}`);
    const [major, minor] = [Number(version?.[1]), Number(version?.[2])];
    expect(major > 0 || minor >= 13).toBe(true);
    // The docker driver cannot export a cache; the default docker-container driver can.
    expect(buildx?.with?.driver ?? 'docker-container').toBe('docker-container');
    // It comes before both bake steps.
    const index = (step: Step | undefined) => build.steps.indexOf(step as Step);
    expect(index(buildx)).toBeLessThan(index(trustedBake));
    expect(index(cacheStep)).toBeLessThan(index(trustedBake));
  });

  it('bakes the generated file from the working tree (source: .) in both bake steps', async () => {
    expect(stepsUsing(ACTIONS.bake)).toHaveLength(2);
    for (const step of [trustedBake, forkBake]) {
      expect(step?.with?.source).toBe('.');
      expect(step?.with?.files).toBe(config.paths.bakeFile);
    }
    // The trusted step feeds the bake file's own variables.
    const bake = await parseBake(generated.bakeText);
    expect(trustedBake?.env).toEqual({
      CACHE_SCOPE: expr('steps.cache.outputs.scope'),
      IMAGE_TAG: expr('github.sha'),
    });
    for (const name of Object.keys(trustedBake?.env ?? {})) {
      expect(bake.variables.has(name), name).toBe(true);
    }
    expect(trustedBake?.if).toBe(TRUSTED_IF);
    expect(trustedBake?.with?.push).toBe(expr(mainPushExpression(config)));
  });

  it('conditions every AWS step of the build on TRUSTED', () => {
    expect(build.env).toEqual({
      TRUSTED: expr(
        "github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository",
      ),
    });
    const aws = build.steps.filter((step) => step.uses?.startsWith('aws-actions/'));
    expect(aws.map((step) => step.uses)).toEqual([
      ACTIONS.configureAwsCredentials,
      ACTIONS.ecrLogin,
    ]);
    for (const step of aws) expect(step.if).toBe(TRUSTED_IF);
  });

  it('builds fork pull requests with a throwaway local cache, never a registry one', async () => {
    expect(forkBake?.if).toBe("env.TRUSTED != 'true'");
    expect(forkBake?.with?.push).toBe(false);
    expect(forkBake?.env).toBeUndefined();
    const set = String(forkBake?.with?.set).split('\n').filter(Boolean);
    expect(set.map((line) => line.split('=')[0]).sort()).toEqual(['*.cache-from', '*.cache-to']);
    const bake = evaluateBake(await parseBake(generated.bakeText), {});
    const targets = applyBakeSet(bake.targets, set);
    expect(Object.keys(targets).sort()).toEqual(config.images.map((image) => image.name).sort());
    for (const target of Object.values(targets)) {
      for (const ref of [...(target['cache-from'] ?? []), ...(target['cache-to'] ?? [])]) {
        expect(ref).toMatch(/^type=local,/);
        expect(ref).not.toContain('registry');
      }
      expect(target['cache-from']).toHaveLength(1);
      expect(target['cache-to']).toHaveLength(1);
    }
  });

  it('has a deploy job iff one is configured, after the build, on main pushes only', () => {
    const deploy = workflow.jobs.deploy;
    expect(Object.keys(workflow.jobs).sort()).toEqual(
      config.workflow.deploy
        ? ['build', 'delete-branch-cache', 'deploy']
        : ['build', 'delete-branch-cache'],
    );
    if (!config.workflow.deploy || !deploy) return;
    expect(deploy.needs).toBe('build');
    expect(deploy.if).toBe(mainPushExpression(config));
    expect(deploy.environment).toBe(config.workflow.deploy.environment);
    expect('environment' in deploy).toBe(config.workflow.deploy.environment !== undefined);
    const run = deploy.steps.find((step) => step.run !== undefined);
    expect(run?.run).toBe(config.workflow.deploy.command);
    expect(run?.env).toEqual({
      REGISTRY: registryHost(config.aws.accountId, config.aws.region),
      IMAGE_TAG: expr('github.sha'),
    });
    const aws = deploy.steps.find((step) => step.uses === ACTIONS.configureAwsCredentials);
    expect(aws?.with?.['role-to-assume']).toMatch(
      new RegExp(`^arn:aws(-cn)?:iam::${config.aws.accountId}:role/`),
    );
  });

  describe.each(scenarios(config.github.mainBranch))('a run: $name', (scenario) => {
    const mainPush =
      scenario.event !== 'pull_request' && scenario.branch === config.github.mainBranch;
    const trusted = !scenario.fork;
    const result = async () => {
      // All scenarios of a configuration start together, so their shell steps share one batch.
      await Promise.all(
        scenarios(config.github.mainBranch).map((each) => simulate(generated, each)),
      );
      return simulate(generated, scenario);
    };

    it(`runs AWS steps ${trusted ? 'and' : 'but not'} the registry-cache bake`, async () => {
      const { ran } = await result();
      const names = ran.map((step) => step.uses ?? step.id);
      expect(names.includes(ACTIONS.configureAwsCredentials)).toBe(trusted);
      expect(names.includes(ACTIONS.ecrLogin)).toBe(trusted);
      expect(ran.filter((step) => step.uses === ACTIONS.bake)).toEqual([
        trusted ? trustedBake : forkBake,
      ]);
      if (!trusted) {
        // Nothing that needs AWS (credentials, ECR, the pruner) runs for a fork.
        expect(ran).toEqual(
          build.steps.filter(
            (step) =>
              step.uses === ACTIONS.checkout ||
              step.id === 'cache' ||
              step.uses === ACTIONS.setupBuildx ||
              step === forkBake,
          ),
        );
        expect(ran).toHaveLength(4);
      }
    });

    it(`${mainPush ? 'pushes and deploys' : 'neither pushes nor deploys'}`, async () => {
      const { push, deployRuns } = await result();
      expect(push).toBe(trusted ? mainPush : false);
      expect(deployRuns).toBe(config.workflow.deploy !== undefined && mainPush);
    });

    it(`${!trusted ? 'uses only a local cache' : mainPush ? 'writes only the main cache' : 'writes only its branch cache'}`, async () => {
      const { targets, scope } = await result();
      const names = config.images.map((image) => image.name);
      expect(Object.keys(targets).sort()).toEqual([...names].sort());
      const expectedScope = cacheScope({
        isMainBranch: mainPush,
        branch: scenario.branch,
        imageNames: names,
      });
      expect(scope).toBe(expectedScope);
      for (const image of config.images) {
        const target = targets[image.name] as EvaluatedTarget;
        if (!trusted) {
          expect(
            [...(target['cache-from'] ?? []), ...(target['cache-to'] ?? [])].join(),
          ).not.toMatch(/registry/);
          continue;
        }
        const ref = (tagScope: string) =>
          `type=registry,ref=${registryHost(config.aws.accountId, config.aws.region)}/${image.cacheRepository}:${tagScope}.${image.name}`;
        expect(target['cache-to']).toEqual([`${ref(expectedScope)},${CACHE_EXPORT_OPTIONS}`]);
        expect(new Set(target['cache-from'])).toEqual(new Set([ref('main'), ref(expectedScope)]));
        if (!mainPush) expect(expectedScope.startsWith('main')).toBe(false);
      }
    });

    it('never shares a concurrency group with a main deploy it could cancel or displace', async () => {
      const { concurrency } = await result();
      const mainRun = await simulate(generated, {
        name: 'main push',
        event: 'push',
        branch: config.github.mainBranch,
      });
      expect(String(concurrency.group)).toContain(scenario.branch);
      if (concurrency.group === mainRun.concurrency.group) {
        // Only trusted runs of the main branch itself share main's group, and none cancels.
        expect(trusted).toBe(true);
        expect(scenario.branch).toBe(config.github.mainBranch);
        expect(concurrency.cancel).toBe(false);
      } else if (scenario.branch !== config.github.mainBranch) {
        expect(concurrency.cancel).toBe(true);
      }
      if (!trusted) {
        const trustedTwin = await simulate(generated, { ...scenario, fork: false });
        expect(concurrency.group).not.toBe(trustedTwin.concurrency.group);
      }
    });
  });

  it("runs only the cache deletion for a deleted branch, outside main's group and namespace", async () => {
    const mainRun = await simulate(generated, {
      name: 'main push',
      event: 'push',
      branch: config.github.mainBranch,
    });
    const job = workflow.jobs['delete-branch-cache'] as Job;
    const step = job.steps.find((candidate) => candidate.id === 'cache');
    expect(step?.run).toBe(cacheStep?.run);
    const names = config.images.map((image) => image.name);
    const branches = ['feat/x', `${config.github.mainBranch}-old`, 'main', 'master', 'Main'].filter(
      (branch) => branch !== config.github.mainBranch,
    );
    const scopes = await Promise.all(
      branches.map((branch) => {
        const context = deletion(config, branch);
        expect(truthy(evaluateField(build.if ?? 'true', context, true))).toBe(false);
        expect(truthy(evaluateField(job.if ?? 'true', context, true))).toBe(true);
        expect(evaluateField(workflow.concurrency.group, context)).not.toBe(
          mainRun.concurrency.group,
        );
        const env: Record<string, string> = {};
        for (const [name, value] of Object.entries(step?.env ?? {})) {
          env[name] = asEnvString(evaluateField(value, context));
        }
        return runStep(step?.run ?? 'false', env).then((outputs) => outputs.scope);
      }),
    );
    branches.forEach((branch, index) => {
      expect(scopes[index]).toBe(cacheScope({ isMainBranch: false, branch, imageNames: names }));
      expect(scopes[index]?.startsWith('br-')).toBe(true);
    });
    // A deleted tag is not a branch: nothing runs.
    expect(truthy(evaluateField(job.if ?? 'true', deletion(config, 'v1.0', 'tag'), true))).toBe(
      false,
    );
  });
});

describe('the default workflow', () => {
  it('matches its snapshot', async () => {
    const { workflowText } = generate(raw({}));
    await expect(workflowText).toMatchFileSnapshot('./__snapshots__/workflow.default.yml');
  });

  it('lints with errors when broken (the linter is really running)', async () => {
    const { workflowText } = generate(raw({}));
    const broken = workflowText.replace(
      'run: |-',
      'run: |-\n          echo "${{ github.head_ref }}"',
    );
    expect(broken).not.toBe(workflowText);
    const errors = await actionlint(broken, '.github/workflows/deploy.yml');
    expect(errors.length).toBeGreaterThan(0);
  });
});
