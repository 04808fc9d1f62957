/**
 * The generated GitLab pipeline, run: validated against GitLab's published CI JSON schema, then run
 * with gitlab-ci-local's shell executor (test/support/gitlab-ci-local.ts) for a push to main, a
 * push to a branch, merge requests (same project and fork), a schedule and manual reseeds. Every
 * job's own script runs for real with bash; docker, aws, apk, npm and node are stand-ins that
 * record what they are asked. From those records: which jobs ran, which role each assumed (judged
 * by the IAM evaluator against the generated trust policies with the `sub` GitLab would issue),
 * which cache refs each build reads and writes (the generated bake file evaluated with the
 * environment and `--set` flags the job passed), and that installs come before credentials. An
 * image built natively per platform gets a build job per platform (its runner tags from the YAML),
 * each passing the digest it pushed to the merge job in a dotenv report, which gitlab-ci-local
 * hands on as GitLab does; the merge's `imagetools create` must name every one of them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { registryHost } from '../src/model/aws.js';
import { CACHE_EXPORT_LAYOUT, CACHE_EXPORT_OPTIONS } from '../src/model/bake.js';
import { cacheScope, cacheTagSuffixes, MAIN_SCOPE, SEED_SCOPE } from '../src/model/cache-tags.js';
import {
  digestsDotenv,
  digestVariable,
  GITLAB_JOBS,
  ID_TOKEN_VARIABLE,
  RESEED_VARIABLE,
} from '../src/model/gitlab-ci.js';
import {
  type BuildLeg,
  type BuildTarget,
  buildLegs,
  hasPlatformLegs,
} from '../src/model/platforms.js';
import { ciRoles, type RoleKind } from '../src/model/roles.js';
import { legJobId } from '../src/model/workflow.js';
import { renderFiles } from '../src/render/render-files.js';
import { applyBakeSet, type EvaluatedTarget, evaluateBake, parseBake } from './support/bake.js';
import {
  gitlabCiSchema,
  type Invocation,
  type PipelineRun,
  readInvocations,
  runPipeline,
  standinDigest,
  workflowCreatesPipelines,
  writeStandins,
} from './support/gitlab-ci-local.js';
import { type Policy, trustAccepts } from './support/iam-evaluator.js';
import { findSystemTool, needSystemTool } from './support/system-tools.js';

const PROJECT = 'acme/platform/shop';
const ACCOUNT = '123456789012';
const PROJECT_ID = '4711';
/** A branch name a shell would run if it were ever interpolated (git accepts it). */
const BRANCH = `feat/ä"q'$(touch pwned)`;
const BRANCHES_ON_REMOTE = ['main', 'feat/x', 'fëature/ü'];

interface Fixture {
  label: string;
  config: ResolvedConfig;
  files: Map<string, string>;
  /** A committed repository holding the generated files, with an origin like GitLab's. */
  repo: string;
  /** A bare repository with BRANCHES_ON_REMOTE: CI_REPOSITORY_URL of the sweep. */
  remote: string;
}

const RAW_FIXTURES: { label: string; raw: Record<string, unknown> }[] = [
  {
    label: 'one image, a deploy environment',
    raw: {
      ci: 'gitlab',
      aws: { accountId: ACCOUNT, region: 'eu-west-1' },
      gitlab: { project: PROJECT },
      images: [{ name: 'api', repository: 'acme/api' }],
      workflow: { deploy: { command: './deploy.sh', environment: 'production' } },
    },
  },
  {
    label:
      'three images on a self-managed instance, one built natively on two platforms, runner tags',
    raw: {
      ci: 'gitlab',
      aws: { accountId: ACCOUNT, region: 'eu-west-1' },
      gitlab: {
        project: PROJECT,
        host: 'git.acme.example',
        tags: ['docker', 'privileged'],
        // amd64 on the ordinary runners, arm64 on those also tagged arm64.
        runnerTags: { 'linux/amd64': [], 'linux/arm64': ['arm64'] },
      },
      images: [
        { name: 'api', repository: 'acme/api' },
        { name: 'web', repository: 'acme/web', platforms: ['linux/amd64', 'linux/arm64'] },
        {
          name: 'worker',
          repository: 'acme/worker',
          branchCacheRepository: 'acme/api-buildcache-branches',
        },
      ],
      workflow: { deploy: { command: './deploy.sh' } },
    },
  },
];

const scratch = mkdtempSync(join(tmpdir(), 'gitlab-ci-test-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const standins = writeStandins(join(scratch, 'bin'));

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
};
const git = (cwd: string, args: string[]) =>
  execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', stdio: 'pipe' });

function makeFixture(
  label: string,
  raw: Record<string, unknown>,
  index: number,
  ownFiles: Record<string, string> = {},
): Fixture {
  const text = stringify(raw);
  const config = parseConfig(text);
  const files = new Map(renderFiles(config, '0.0.0-test').map((file) => [file.path, file.content]));
  const repo = join(scratch, `repo-${index}`);
  mkdirSync(repo);
  writeFileSync(join(repo, 'cached-deploy.yml'), text);
  for (const [path, content] of [...files, ...Object.entries(ownFiles)]) {
    mkdirSync(dirname(join(repo, path)), { recursive: true });
    writeFileSync(join(repo, path), content);
  }
  // The deploy command: records what it was given.
  writeFileSync(
    join(repo, 'deploy.sh'),
    '#!/bin/sh\nprintf "%s\\n" "$REGISTRY" "$IMAGE_TAG" "$AWS_ROLE_ARN" "$(cat "$AWS_WEB_IDENTITY_TOKEN_FILE")" "$(date +%s%N)" >"$STANDIN_LOG/deployed"\n',
    { mode: 0o755 },
  );
  git(repo, ['init', '-q', '-b', 'main']);
  git(repo, ['add', '-A']);
  git(repo, ['commit', '-q', '-m', 'generated']);
  git(repo, ['remote', 'add', 'origin', `git@gitlab.com:${PROJECT}.git`]);
  git(repo, ['update-ref', 'refs/remotes/origin/main', 'HEAD']);
  git(repo, ['symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main']);
  const remote = join(scratch, `remote-${index}.git`);
  git(scratch, ['clone', '-q', '--bare', repo, remote]);
  for (const branch of BRANCHES_ON_REMOTE.filter((name) => name !== 'main')) {
    git(remote, ['branch', branch, 'main']);
  }
  return { label, config, files, repo, remote };
}

/**
 * The per-platform build jobs read bake's metadata with jq (installed in the job with apk; here the
 * machine's): without it the fixtures with native images do not run, and the test below says so.
 */
const jq = findSystemTool('jq');
const fixtures = RAW_FIXTURES.map(({ label, raw }, index) => makeFixture(label, raw, index)).filter(
  (fixture) => jq !== undefined || !hasPlatformLegs(fixture.config),
);
if (fixtures.length < RAW_FIXTURES.length) {
  it('runs the pipelines of images built per platform', (context) => {
    needSystemTool(context, 'jq');
  });
}

// ---------------------------------------------------------------------------------------------
// Scenarios: the predefined variables GitLab sets for each kind of pipeline
// ---------------------------------------------------------------------------------------------

interface Scenario {
  name: string;
  variables: Record<string, string>;
  unset?: string[];
  /** The ref GitLab puts in the ID token's sub (a merge request's: its source branch). */
  ref: string;
  /** Whether the pipeline runs in this project (a fork's merge request pipeline does not). */
  trusted: boolean;
  isMain: boolean;
  jobs: string[];
  /** Jobs expected to fail. */
  failing?: string[];
  /** The stand-ins' environment: STANDIN_IMAGES_EXIST for a re-run of a commit already pushed. */
  env?: Record<string, string>;
}

const push = (branch: string) => ({
  CI_PIPELINE_SOURCE: 'push',
  CI_COMMIT_BRANCH: branch,
  CI_COMMIT_REF_NAME: branch,
});
const mergeRequest = (branch: string, sourceProject: string) => ({
  CI_PIPELINE_SOURCE: 'merge_request_event',
  CI_COMMIT_REF_NAME: branch,
  CI_MERGE_REQUEST_SOURCE_BRANCH_NAME: branch,
  CI_MERGE_REQUEST_SOURCE_PROJECT_ID: sourceProject,
  CI_MERGE_REQUEST_IID: '7',
});

/**
 * The second fixture runs only the pipelines where the number of images and the per-platform jobs
 * matter.
 */
const MULTI_IMAGE_SCENARIOS = [
  'a push to main',
  'a push to a branch',
  'a merge request from a branch of this project',
  'the schedule',
  'a re-run of main (every commit tag in ECR already)',
];

function scenariosFor(fixture: Fixture): Scenario[] {
  const all = scenarios(fixture.config);
  return fixture === fixtures[0]
    ? all.filter((scenario) => scenario.env === undefined)
    : all.filter((scenario) => MULTI_IMAGE_SCENARIOS.includes(scenario.name));
}

function scenarios(config: ResolvedConfig): Scenario[] {
  // One build and one seed job per leg (build, build-linux-amd64, …), a merge with platform legs.
  const legs = buildLegs(config);
  const builds = legs.map((leg) => legJobId('build', leg));
  const seeds = legs.map((leg) => legJobId('seed', leg));
  const merge = hasPlatformLegs(config) ? [GITLAB_JOBS.merge] : [];
  const deploy = config.workflow.deploy ? [GITLAB_JOBS.deploy] : [];
  const all: Scenario[] = [
    {
      name: 'a push to main',
      variables: push('main'),
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [...builds, ...merge, ...deploy, GITLAB_JOBS.prune, GITLAB_JOBS.apply],
    },
    {
      name: 'a re-run of main (every commit tag in ECR already)',
      variables: push('main'),
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [...builds, ...merge, ...deploy, GITLAB_JOBS.prune, GITLAB_JOBS.apply],
      env: { STANDIN_IMAGES_EXIST: '1' },
    },
    {
      // main as the source of a merge request (into a release branch, say): its pushes still
      // build, push and deploy as main; the merge request pipeline beside them is a branch build.
      name: 'a push to main while a merge request from main is open',
      variables: { ...push('main'), CI_OPEN_MERGE_REQUESTS: `${PROJECT}!7` },
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [...builds, ...merge, ...deploy, GITLAB_JOBS.prune, GITLAB_JOBS.apply],
    },
    {
      // Any other branch: its merge request pipeline runs instead (GitLab's documented switch).
      name: 'a push to a branch whose merge request is open (no pipeline)',
      variables: { ...push(BRANCH), CI_OPEN_MERGE_REQUESTS: `${PROJECT}!7` },
      ref: BRANCH,
      trusted: true,
      isMain: false,
      jobs: [],
    },
    {
      name: 'a push to a branch',
      variables: push(BRANCH),
      ref: BRANCH,
      trusted: true,
      isMain: false,
      jobs: [...builds, GITLAB_JOBS.prune],
    },
    {
      name: 'a push to Main (main in another case)',
      variables: push('Main'),
      ref: 'Main',
      trusted: true,
      isMain: false,
      jobs: [...builds, GITLAB_JOBS.prune],
    },
    {
      name: 'a merge request from a branch of this project',
      variables: mergeRequest(BRANCH, PROJECT_ID),
      unset: ['CI_COMMIT_BRANCH'],
      ref: BRANCH,
      trusted: true,
      isMain: false,
      jobs: [...builds, GITLAB_JOBS.prune],
    },
    {
      name: 'a merge request from a fork whose source branch is main',
      variables: mergeRequest('main', '9999'),
      unset: ['CI_COMMIT_BRANCH'],
      ref: 'main',
      trusted: false,
      isMain: false,
      jobs: [...builds],
    },
    {
      name: 'the schedule',
      variables: { ...push('main'), CI_PIPELINE_SOURCE: 'schedule' },
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [...seeds, GITLAB_JOBS.sweep],
    },
    {
      name: 'a manual reseed of main',
      variables: { ...push('main'), CI_PIPELINE_SOURCE: 'web', [RESEED_VARIABLE]: 'true' },
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [...seeds],
    },
    {
      name: 'a manual reseed of a branch (refused)',
      variables: { ...push(BRANCH), CI_PIPELINE_SOURCE: 'web', [RESEED_VARIABLE]: 'true' },
      ref: BRANCH,
      trusted: true,
      isMain: false,
      jobs: [...seeds],
      failing: [...seeds],
    },
  ];
  return all;
}

interface Result {
  scenario: Scenario;
  /** The copy of the repository the pipeline ran in (gitlab-ci-local's state is in it). */
  repo: string;
  run: PipelineRun;
  token: string;
  deployed: string | undefined;
  pwned: boolean;
}

const results = new Map<Fixture, Map<string, Result>>();

/** At most this many pipelines at once (each ~1.5 s, mostly waiting on processes it starts). */
const PARALLEL = 4;

beforeAll(async () => {
  const started = performance.now();
  const jobs: (() => Promise<void>)[] = [];
  const pipelineVariables = (fixture: Fixture, token: string, scenario: Scenario) => ({
    CI_PROJECT_ID: PROJECT_ID,
    CI_REPOSITORY_URL: `file://${fixture.remote}`,
    [ID_TOKEN_VARIABLE]: token,
    ...scenario.variables,
  });
  const created = await Promise.all(
    fixtures.map((fixture, fixtureIndex) =>
      workflowCreatesPipelines(
        fixture.repo,
        join(scratch, `probe-${fixtureIndex}`),
        scenariosFor(fixture).map((scenario) => ({
          variables: pipelineVariables(fixture, 'token', scenario),
          unset: scenario.unset,
        })),
      ),
    ),
  );
  fixtures.forEach((fixture, fixtureIndex) => {
    const byName = new Map<string, Result>();
    results.set(fixture, byName);
    scenariosFor(fixture).forEach((scenario, index) => {
      jobs.push(async () => {
        const dir = join(scratch, `run-${fixtureIndex}-${index}`);
        const repo = join(dir, 'repo');
        const logDir = join(dir, 'log');
        mkdirSync(logDir, { recursive: true });
        cpSync(fixture.repo, repo, { recursive: true });
        const token = `id-token-${fixtureIndex}-${index}`;
        const run = await runPipeline({
          repo,
          standins,
          logDir,
          variables: pipelineVariables(fixture, token, scenario),
          unset: scenario.unset,
          env: scenario.env,
          created: created[fixtureIndex]?.[index] ?? true,
        });
        let deployed: string | undefined;
        try {
          deployed = readFileSync(join(logDir, 'deployed'), 'utf8');
        } catch {
          deployed = undefined;
        }
        let pwned = false;
        try {
          readFileSync(join(repo, 'pwned'));
          pwned = true;
        } catch {
          pwned = false;
        }
        byName.set(scenario.name, { scenario, repo, run, token, deployed, pwned });
      });
    });
  });
  const queue = [...jobs];
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      for (let job = queue.shift(); job; job = queue.shift()) await job();
    }),
  );
  if (process.env.GITLAB_CI_TIMING) {
    console.log(
      `${jobs.length} pipelines in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }
}, 180_000);

// ---------------------------------------------------------------------------------------------
// Reading what the stand-ins recorded
// ---------------------------------------------------------------------------------------------

const callsOf = (run: PipelineRun, job: string, tool?: string) =>
  run.invocations.filter((call) => call.job === job && (tool === undefined || call.tool === tool));

const isBake = (call: Invocation) =>
  call.tool === 'docker' && call.args[0] === 'buildx' && call.args[1] === 'bake';

/**
 * The bake's --file, --set, --allow and --metadata-file flags and its targets, as the job passed
 * them.
 */
function bakeFlags(call: Invocation): {
  file: string;
  set: string[];
  allow: string[];
  targets: string[];
  metadata: string | undefined;
} {
  const set: string[] = [];
  const allow: string[] = [];
  const targets: string[] = [];
  let file = '';
  let metadata: string | undefined;
  for (let i = 2; i < call.args.length; i++) {
    const arg = call.args[i] ?? '';
    if (arg === '--set') set.push(call.args[++i] ?? '');
    else if (arg === '--allow') allow.push(call.args[++i] ?? '');
    else if (arg === '--file') file = call.args[++i] ?? '';
    else if (arg === '--metadata-file') metadata = call.args[++i] ?? '';
    else if (/^[a-z0-9][a-z0-9_-]*$/.test(arg)) targets.push(arg);
    else throw new Error(`unexpected bake argument ${arg}`);
  }
  return { file, set, allow, targets, metadata };
}

/**
 * The bake's targets as buildx resolves them: the generated file, the job's env, its --set, and
 * only the targets it names (the `default` group when it names none).
 */
async function bakeTargets(fixture: Fixture, call: Invocation) {
  const { file, set, targets } = bakeFlags(call);
  expect(file).toBe(fixture.config.paths.bakeFile);
  const parsed = await parseBake(fixture.files.get(file) ?? '', file);
  const all = applyBakeSet(evaluateBake(parsed, call.env).targets, set);
  const built = targets.length > 0 ? targets : Object.keys(all);
  return Object.fromEntries(built.map((name) => [name, all[name] as EvaluatedTarget]));
}

/** The leg a build or seed job builds. */
function legOfJob(config: ResolvedConfig, job: string): BuildLeg {
  const leg = buildLegs(config).find(
    (each) => legJobId('build', each) === job || legJobId('seed', each) === job,
  );
  if (!leg) throw new Error(`${job} builds no leg`);
  return leg;
}

const isBuildJob = (job: string) => job === GITLAB_JOBS.build || job.startsWith('build-');
const isSeedJob = (job: string) => job === GITLAB_JOBS.seed || job.startsWith('seed-');

const refOf = (entry: string) => /(?:^|,)ref=([^,]+)/.exec(entry)?.[1] ?? `<no ref: ${entry}>`;

interface RoleFiles {
  kind: RoleKind;
  arn: string;
  trust: Policy;
}

function rolesOf(fixture: Fixture): RoleFiles[] {
  return ciRoles(fixture.config).map((role) => ({
    kind: role.kind,
    arn: role.arn,
    trust: JSON.parse(
      fixture.files.get(`${fixture.config.paths.ecrDir}/${role.kind}-role-trust-policy.json`) ??
        'null',
    ) as Policy,
  }));
}

const subOf = (ref: string) => `project_path:${PROJECT}:ref_type:branch:ref:${ref}`;

// ---------------------------------------------------------------------------------------------

describe('the generated .gitlab-ci.yml', () => {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(gitlabCiSchema());

  it.each(fixtures.map((fixture) => [fixture.label, fixture] as const))(
    'is valid against GitLab CI JSON schema (%s)',
    (_, fixture) => {
      const document = parse(fixture.files.get(fixture.config.workflow.file) ?? '');
      expect(validate(document), JSON.stringify(validate.errors)).toBe(true);
      // The schema is really checking: a misspelt keyword fails it.
      const broken = { ...document, build: { ...document.build, rules: [{ iff: 'x' }] } };
      expect(validate(broken)).toBe(false);
    },
  );

  it('carries no GitLab variable reference in rules, variables or id_tokens that holds untrusted text', () => {
    for (const fixture of fixtures) {
      const text = fixture.files.get(fixture.config.workflow.file) ?? '';
      // Branch names reach scripts only as these variables, in one assignment inside double quotes.
      const lines = text
        .split('\n')
        .filter((line) => /CI_COMMIT_REF_NAME|CI_MERGE_REQUEST_SOURCE_BRANCH_NAME/.test(line))
        .map((line) => line.trim());
      expect(lines.length).toBeGreaterThan(0);
      expect(new Set(lines)).toEqual(
        // biome-ignore lint/suspicious/noTemplateCurlyInString: a line of shell, not a template
        new Set(['BRANCH="${CI_MERGE_REQUEST_SOURCE_BRANCH_NAME:-${CI_COMMIT_REF_NAME:-}}"']),
      );
      expect(text).not.toContain('CI_COMMIT_REF_SLUG}');
      expect(text).not.toMatch(/scope.*CI_COMMIT_REF_SLUG/);
    }
  });
});

describe.each(fixtures.map((fixture) => [fixture.label, fixture] as const))(
  'the pipeline run with gitlab-ci-local: %s',
  (_, fixture) => {
    const config = fixture.config;
    const roles = rolesOf(fixture);
    const role = (kind: RoleKind) => roles.find((each) => each.kind === kind) as RoleFiles;
    const registry = registryHost(config.aws.accountId, config.aws.region);
    const issuer = config.gitlab?.host ?? '';
    const audience = config.gitlab?.audience ?? '';
    const accepts = (r: RoleFiles, sub: string) =>
      trustAccepts(r.trust, {
        providerArn: `arn:aws:iam::${ACCOUNT}:oidc-provider/${issuer}`,
        roleArn: r.arn,
        sub,
        aud: audience,
        issuer,
      });
    const result = (name: string) => results.get(fixture)?.get(name) as Result;

    describe.each(scenariosFor(fixture).map((scenario) => [scenario.name, scenario] as const))(
      '%s',
      (name, scenario) => {
        it('runs exactly the expected jobs, and no branch name ran as code', () => {
          const { run, pwned } = result(name);
          expect([...run.passed, ...run.failed].sort(), run.output).toEqual(
            [...scenario.jobs].sort(),
          );
          expect(run.failed, run.output).toEqual(scenario.failing ?? []);
          expect(pwned).toBe(false);
        });

        it('assumes, in every job, the role of its work; its sub is accepted by that role, and no branch reaches the main role', () => {
          const { run, token } = result(name);
          const sub = subOf(scenario.ref);
          const credentialed = run.invocations.filter(
            (call) => call.env.AWS_WEB_IDENTITY_TOKEN_FILE !== undefined,
          );
          if (!scenario.trusted) {
            expect(credentialed).toEqual([]);
            return;
          }
          for (const call of credentialed) {
            // The token GitLab issued, in the file the CLI and SDK read.
            expect(readFileSync(call.env.AWS_WEB_IDENTITY_TOKEN_FILE ?? '', 'utf8')).toBe(token);
            const assumed = roles.find((each) => each.arn === call.env.AWS_ROLE_ARN);
            expect(assumed, `${call.job}: ${call.env.AWS_ROLE_ARN}`).toBeDefined();
            expect(accepts(assumed as RoleFiles, sub), `${call.job} as ${assumed?.kind}`).toBe(
              true,
            );
            const expected =
              call.job === GITLAB_JOBS.deploy
                ? config.workflow.deploy?.environment
                  ? 'deploy'
                  : 'main'
                : call.job === GITLAB_JOBS.sweep
                  ? 'branch'
                  : scenario.isMain
                    ? 'main'
                    : 'branch';
            expect(assumed?.kind, call.job).toBe(expected);
          }
          if (!scenario.isMain) expect(accepts(role('main'), sub)).toBe(false);
        });

        it('installs nothing once credentials exist, and nothing with the ID token in reach', () => {
          const { run } = result(name);
          for (const job of scenario.jobs) {
            const calls = callsOf(run, job);
            const firstCredentialed = calls.findIndex(
              (call) => call.env.AWS_WEB_IDENTITY_TOKEN_FILE !== undefined,
            );
            calls.forEach((call, index) => {
              if (call.tool !== 'npm' && call.tool !== 'apk') return;
              expect(call.env[ID_TOKEN_VARIABLE], `${job}: ${call.tool}`).toBeUndefined();
              if (firstCredentialed >= 0) expect(index).toBeLessThan(firstCredentialed);
              if (call.tool === 'npm' && call.args[0] === 'ci') {
                expect(call.args).toContain('--ignore-scripts');
              }
              if (call.tool === 'npm' && call.args[0] === 'install') {
                expect(call.args).toContain('--ignore-scripts');
                expect(call.args.at(-1)).toBe('create-cached-deploy@0.0.0-test');
              }
            });
          }
        });

        it('reads and writes exactly the caches of the strategy, each job its own targets', async () => {
          const { run } = result(name);
          const bakes = run.invocations.filter(isBake);
          const builds = bakes.filter((call) => isBuildJob(call.job));
          const seeds = bakes.filter((call) => isSeedJob(call.job));
          // One bake per build job (and per seed job, unless refused), each in its own job.
          expect(builds.map((call) => call.job).sort()).toEqual(
            scenario.jobs.filter(isBuildJob).sort(),
          );
          expect(seeds.map((call) => call.job).sort()).toEqual(
            scenario.failing ? [] : scenario.jobs.filter(isSeedJob).sort(),
          );
          const scope = cacheScope({
            isMainBranch: scenario.isMain,
            branch: scenario.ref,
            tagSuffixes: cacheTagSuffixes(config.images),
          });
          for (const call of builds) {
            const leg = legOfJob(config, call.job);
            // Bake may reach outside the checkout only for a fork's throwaway cache.
            expect(bakeFlags(call).allow).toEqual(
              scenario.trusted ? [] : ['fs=/tmp/cached-deploy-fork-cache'],
            );
            const targets = await bakeTargets(fixture, call);
            expect(Object.keys(targets).sort(), call.job).toEqual(
              leg.targets.map((target) => target.name).sort(),
            );
            for (const buildTarget of leg.targets) {
              const { image } = buildTarget;
              const target = targets[buildTarget.name] as EvaluatedTarget;
              // A platform's job builds that platform alone.
              expect(target.platforms).toEqual(buildTarget.platforms);
              if (!scenario.trusted) {
                expect(target['cache-from']).toEqual([
                  'type=local,src=/tmp/cached-deploy-fork-cache',
                ]);
                expect(target['cache-to']).toEqual([
                  'type=local,dest=/tmp/cached-deploy-fork-cache',
                ]);
                continue;
              }
              const own = scenario.isMain ? image.cacheRepository : image.branchCacheRepository;
              const tag = (tagScope: string) => `${tagScope}.${buildTarget.tagSuffix}`;
              const imports = [
                `${registry}/${image.cacheRepository}:${tag(SEED_SCOPE)}`,
                `${registry}/${image.cacheRepository}:${tag(MAIN_SCOPE)}`,
                `${registry}/${own}:${tag(scope)}`,
              ];
              expect((target['cache-from'] ?? []).map(refOf)).toEqual([...new Set(imports)]);
              expect(target['cache-to']).toEqual([
                `type=registry,ref=${registry}/${own}:${tag(scope)},${CACHE_EXPORT_OPTIONS}`,
              ]);
              // Pushed on main only, unless the commit tag is in ECR already (a re-run).
              const pushes = scenario.isMain && scenario.env?.STANDIN_IMAGES_EXIST === undefined;
              if (buildTarget.platform === undefined) {
                const pushed = (target.output ?? []).some((output) => output.includes('push=true'));
                expect(pushed, buildTarget.name).toBe(pushes);
              } else {
                // By digest: no tag, the repository named in the output.
                expect(target.tags ?? []).toEqual([]);
                expect(target.output).toEqual([
                  `type=image,name=${registry}/${image.repository},push-by-digest=true,name-canonical=true,push=${pushes}`,
                ]);
              }
            }
          }
          for (const call of seeds) {
            const leg = legOfJob(config, call.job);
            expect(call.env.CACHE_SCOPE).toBe(SEED_SCOPE);
            const { set } = bakeFlags(call);
            expect(set).toContain('*.no-cache=true');
            const targets = await bakeTargets(fixture, call);
            expect(Object.keys(targets).sort(), call.job).toEqual(
              leg.targets.map((target) => target.name).sort(),
            );
            for (const buildTarget of leg.targets) {
              const target = targets[buildTarget.name] as EvaluatedTarget;
              expect(target['cache-from']).toBeUndefined();
              expect(target.output).toEqual(['type=cacheonly']);
              expect(target['no-cache']).toBe(true);
              // Strict: no ignore-error on the seed's export.
              expect(target['cache-to']).toEqual([
                `type=registry,ref=${registry}/${buildTarget.image.cacheRepository}:${SEED_SCOPE}.${buildTarget.tagSuffix},${CACHE_EXPORT_LAYOUT}`,
              ]);
            }
          }
        });
      },
    );

    it('only a build of main writes main.*, and only the seed job writes seed.*', async () => {
      for (const scenario of scenariosFor(fixture)) {
        for (const call of result(scenario.name).run.invocations.filter(isBake)) {
          const targets = await bakeTargets(fixture, call);
          for (const target of Object.values(targets)) {
            for (const entry of target['cache-to'] ?? []) {
              const tag = refOf(entry).split(':').at(-1) ?? '';
              if (tag.startsWith(`${MAIN_SCOPE}.`)) {
                expect([isBuildJob(call.job), scenario.isMain]).toEqual([true, true]);
              }
              if (tag.startsWith(`${SEED_SCOPE}.`)) expect(isSeedJob(call.job)).toBe(true);
            }
          }
        }
      }
    });

    it('prunes, beside the deploy, the repositories the build wrote, with the role of its work', () => {
      for (const scenario of scenariosFor(fixture).filter((each) =>
        each.jobs.includes(GITLAB_JOBS.prune),
      )) {
        const pruner = callsOf(result(scenario.name).run, GITLAB_JOBS.prune, 'node');
        expect(pruner).toHaveLength(1);
        const args = pruner[0]?.args ?? [];
        expect(args[1]).toBe('prune');
        const repositories = args.flatMap((arg, i) =>
          args[i - 1] === '--repository' ? [arg] : [],
        );
        expect(repositories).toEqual(
          config.images.map((image) =>
            scenario.isMain ? image.cacheRepository : image.branchCacheRepository,
          ),
        );
        expect(args).toContain('--sweep');
      }
    });

    it('deploys on main only, what the build pushed, with the deploy role', () => {
      const main = result('a push to main');
      const [registryLine, tag, roleArn, token] = (main.deployed ?? '').split('\n');
      expect(registryLine).toBe(registry);
      expect(tag).toMatch(/^[0-9a-f]{40}$/);
      expect(roleArn).toBe(role(config.workflow.deploy?.environment ? 'deploy' : 'main').arn);
      expect(token).toBe(main.token);
      for (const scenario of scenariosFor(fixture).filter((each) => !each.isMain)) {
        expect(result(scenario.name).deployed, scenario.name).toBeUndefined();
      }
    });

    it('sweeps, on the schedule, each branch-cache repository against the branches the remote has', () => {
      const calls = callsOf(result('the schedule').run, GITLAB_JOBS.sweep, 'node');
      const byRepository = new Map<string, string[]>();
      for (const image of config.images) {
        byRepository.set(image.branchCacheRepository, [
          ...(byRepository.get(image.branchCacheRepository) ?? []),
          image.name,
        ]);
      }
      // One pruner run for every branch-cache repository, each followed by its images.
      expect(calls).toHaveLength(1);
      const [call] = calls;
      expect(call?.args).toEqual([
        expect.stringMatching(/\/prune-ecr-cache\.mjs$/),
        'sweep-branches',
        ...[...byRepository].flatMap(([repository, images]) => [
          '--repository',
          repository,
          ...images.flatMap((image) => ['--image', image]),
        ]),
        '--branches-file',
        expect.any(String),
        // The pruner refuses a listing without the main branch: nothing is swept then.
        '--main-branch',
        config.mainBranch,
        '--grace-hours',
        String(config.prune.graceHours),
        ...(config.prune.failOnError ? ['--fail-on-error'] : []),
      ]);
      // One raw branch name a line, read from the real remote with git ls-remote.
      expect((call?.env.STANDIN_BRANCHES_FILE ?? '').split('\n').filter(Boolean).sort()).toEqual(
        [...BRANCHES_ON_REMOTE].sort(),
      );
    });

    // Defined for the fixtures with images built per platform only (no skipped tests).
    const native = hasPlatformLegs(config) ? describe : undefined;
    native?.('images built per platform', () => {
      const legs = buildLegs(config);
      const platformLegs = legs.filter((leg) => leg.platform !== undefined);
      const document = parse(fixture.files.get(config.workflow.file) ?? '') as Record<
        string,
        { tags?: string[]; needs?: string[]; script?: string[] }
      >;
      const gitlabTags = config.gitlab?.tags ?? [];
      const runnerTags = config.gitlab?.runnerTags ?? {};
      /** What the dotenv report of a platform's build job held, as gitlab-ci-local kept it. */
      const dotenvOf = (scenario: string, leg: BuildLeg) => {
        const job = legJobId('build', leg);
        return readFileSync(
          join(
            result(scenario).repo,
            '.gitlab-ci-local/artifacts',
            job,
            '.gitlab-ci-reports/dotenv',
            digestsDotenv(leg),
          ),
          'utf8',
        );
      };
      const imagetools = (run: PipelineRun) =>
        callsOf(run, GITLAB_JOBS.merge, 'docker').filter(
          (call) => call.args[1] === 'imagetools' && call.args[2] === 'create',
        );

      it("runs each platform's build and seed job on runners with its tags and gitlab.tags, every other job with gitlab.tags", () => {
        const ran = new Set(
          scenariosFor(fixture).flatMap((scenario) => [
            ...result(scenario.name).run.passed,
            ...result(scenario.name).run.failed,
          ]),
        );
        for (const leg of platformLegs) {
          for (const job of [legJobId('build', leg), legJobId('seed', leg)]) {
            expect(ran.has(job), job).toBe(true);
            expect(document[job]?.tags, job).toEqual([
              ...new Set([...gitlabTags, ...(runnerTags[leg.platform ?? ''] ?? [])]),
            ]);
          }
        }
        expect(document['build-linux-arm64']?.tags).toEqual(['docker', 'privileged', 'arm64']);
        expect(document['build-linux-amd64']?.tags).toEqual(['docker', 'privileged']);
        const platformJobs = platformLegs.flatMap((leg) => [
          legJobId('build', leg),
          legJobId('seed', leg),
        ]);
        for (const job of ran) {
          if (!platformJobs.includes(job)) expect(document[job]?.tags, job).toEqual(gitlabTags);
        }
      });

      it('passes each digest a platform pushed in its dotenv report, and the merge makes the list of every platform, before the deploy', () => {
        const { run, deployed } = result('a push to main');
        const sha = /^[0-9a-f]{40}$/;
        const mergeCalls = imagetools(run);
        const merged = config.images.filter((image) => image.build === 'native');
        expect(merged.length).toBeGreaterThan(0);
        expect(mergeCalls).toHaveLength(merged.length);
        for (const leg of platformLegs) {
          // The build job's report: one line per image it pushed, its digest from the bake.
          expect(dotenvOf('a push to main', leg)).toBe(
            leg.targets
              .map((target) => `${digestVariable(config, target)}=${standinDigest(target.name)}\n`)
              .join(''),
          );
        }
        merged.forEach((image, index) => {
          const call = mergeCalls[index] as Invocation;
          const targets = platformLegs.flatMap((leg) =>
            leg.targets.filter((target) => target.image === image),
          );
          const [tag, ...sources] = call.args.slice(3);
          expect(tag).toBe('--tag');
          expect(sources[0]).toMatch(new RegExp(`^${registry}/${image.repository}:[0-9a-f]{40}$`));
          expect(sha.test(sources[0]?.split(':').at(-1) ?? '')).toBe(true);
          // Every platform's digest, in the order the image lists its platforms, as GitLab passed
          // the build jobs' dotenv variables to the merge job.
          expect(sources.slice(1)).toEqual(
            image.platforms.map((platform) => {
              const target = targets.find((each) => each.platform === platform) as BuildTarget;
              expect(call.env[digestVariable(config, target)]).toBe(standinDigest(target.name));
              return `${registry}/${image.repository}@${standinDigest(target.name)}`;
            }),
          );
        });
        // The deploy waits for the merge: it needs it, and ran after it.
        expect(document.deploy?.needs).toContain(GITLAB_JOBS.merge);
        const deployedAt = BigInt((deployed ?? '').split('\n')[4] ?? '0');
        for (const call of mergeCalls) expect(deployedAt).toBeGreaterThan(call.at);
        // Prune waits for every build job (it sweeps what they all wrote).
        expect(document.prune?.needs).toEqual(legs.map((leg) => legJobId('build', leg)));
      });

      it('pushes and merges nothing off main, nor on a re-run of a commit already in ECR', () => {
        for (const scenario of scenariosFor(fixture).filter(
          (each) => isBuildJob(each.jobs[0] ?? '') && (!each.isMain || each.env !== undefined),
        )) {
          const { run } = result(scenario.name);
          for (const leg of platformLegs)
            expect(dotenvOf(scenario.name, leg), scenario.name).toBe('');
          expect(imagetools(run), scenario.name).toEqual([]);
        }
        const rerun = result('a re-run of main (every commit tag in ECR already)');
        expect(rerun.run.output).toContain(
          'no platform pushed (a re-run of this commit): nothing to merge',
        );
        expect(rerun.deployed).toBeDefined();
      });

      it('refuses a manifest list without every platform, or with what is not a digest', () => {
        const logDirFor = (prefix: string) => {
          const dir = mkdtempSync(join(scratch, prefix));
          mkdirSync(join(dir, 'calls'));
          return dir;
        };
        const script = document.merge?.script ?? [];
        const env = (digests: Record<string, string>) => ({
          PATH: `${standins}:${process.env.PATH ?? ''}`,
          STANDIN_LOG: logDirFor('merge-'),
          CI_PIPELINE_SOURCE: 'push',
          CI_COMMIT_BRANCH: 'main',
          CI_COMMIT_REF_NAME: 'main',
          CI_COMMIT_SHA: 'a'.repeat(40),
          CI_PROJECT_PATH: PROJECT,
          CI_PROJECT_ID: PROJECT_ID,
          CACHED_DEPLOY_PROJECT: PROJECT,
          CACHED_DEPLOY_MAIN_BRANCH: config.mainBranch,
          REGISTRY: registry,
          [ID_TOKEN_VARIABLE]: 'token',
          ...digests,
        });
        const targets = platformLegs.flatMap((leg) => leg.targets);
        const [first, second] = targets as [BuildTarget, BuildTarget];
        const cases: [Record<string, string>, RegExp][] = [
          [
            { [digestVariable(config, first)]: standinDigest(first.name) },
            new RegExp(
              `no digest from the ${second.platform} build: refusing a manifest list without every platform`,
            ),
          ],
          [
            {
              [digestVariable(config, first)]: standinDigest(first.name),
              [digestVariable(config, second)]: 'sha256:$(touch pwned)',
            },
            /build passed on 'sha256:\$\(touch pwned\)', not a digest/,
          ],
        ];
        for (const [digests, message] of cases) {
          const variables = env(digests);
          const outcome = spawnSync('sh', ['-c', script.join('\n')], {
            cwd: scratch,
            env: variables,
            encoding: 'utf8',
          });
          expect(outcome.status, outcome.stdout + outcome.stderr).not.toBe(0);
          expect(outcome.stdout + outcome.stderr).toMatch(message);
          const docker = readInvocations(variables.STANDIN_LOG).filter(
            (call) => call.tool === 'docker',
          );
          // It logged in, and created nothing.
          expect(docker.map((call) => call.args[0])).toContain('login');
          expect(docker.filter((call) => call.args[1] === 'imagetools')).toEqual([]);
        }
        expect(readdirSync(scratch)).not.toContain('pwned');
      });
    });

    // Defined for the fixture that runs this pipeline only (no skipped tests).
    const refusing = fixture === fixtures[0] ? it : undefined;
    refusing?.('refuses to seed from a branch before installing or assuming anything', () => {
      const { run } = result('a manual reseed of a branch (refused)');
      expect(run.output).toContain('The seed cache is refreshed only from the main branch.');
      const calls = callsOf(run, GITLAB_JOBS.seed).filter((call) => call.tool !== 'apk');
      expect(calls).toEqual([]);
    });
  },
);

describe("a branch's environment with an image built per platform", () => {
  const text = stringify({
    ci: 'gitlab',
    aws: { accountId: ACCOUNT, region: 'eu-west-1' },
    gitlab: { project: PROJECT },
    images: [
      { name: 'api', repository: 'acme/api' },
      { name: 'web', repository: 'acme/web', platforms: ['linux/amd64', 'linux/arm64'] },
    ],
    workflow: { deploy: { command: './deploy.sh', environment: 'production' } },
  });
  const config = parseConfig(text);
  const files = new Map(renderFiles(config, '0.0.0-test').map((file) => [file.path, file.content]));
  const document = parse(files.get(config.workflow.file) ?? '') as Record<
    string,
    { environment?: { name: string; action?: string; on_stop?: string }; script?: string[] }
  >;

  it('is started by the first build job only, whose stop job is the one to delete the caches', () => {
    expect(document.build?.environment).toMatchObject({
      action: 'start',
      on_stop: GITLAB_JOBS.stopBranchCache,
    });
    expect(document['build-linux-amd64']?.environment).toBeUndefined();
    expect(document['build-linux-arm64']?.environment).toBeUndefined();
    expect(document[GITLAB_JOBS.stopBranchCache]?.environment).toMatchObject({ action: 'stop' });
  });

  it("deletes, when the branch is deleted, the branch's tag of every image and platform", () => {
    const log = mkdtempSync(join(scratch, 'stop-'));
    mkdirSync(join(log, 'calls'));
    const work = mkdtempSync(join(scratch, 'stop-work-'));
    const outcome = spawnSync(
      'sh',
      ['-c', (document[GITLAB_JOBS.stopBranchCache]?.script ?? []).join('\n')],
      {
        cwd: work,
        encoding: 'utf8',
        env: {
          PATH: `${standins}:${process.env.PATH ?? ''}`,
          STANDIN_LOG: log,
          STANDIN_BIN: standins,
          CI_PIPELINE_SOURCE: 'push',
          CI_COMMIT_BRANCH: BRANCH,
          CI_COMMIT_REF_NAME: BRANCH,
          CI_PROJECT_PATH: PROJECT,
          CI_PROJECT_ID: PROJECT_ID,
          CACHED_DEPLOY_PROJECT: PROJECT,
          CACHED_DEPLOY_MAIN_BRANCH: config.mainBranch,
          CACHED_DEPLOY_BRANCH_ROLE:
            ciRoles(config).find((role) => role.kind === 'branch')?.arn ?? '',
          [ID_TOKEN_VARIABLE]: 'token',
        },
      },
    );
    expect(outcome.status, outcome.stdout + outcome.stderr).toBe(0);
    const [call, ...more] = readInvocations(log).filter(
      (each) => each.tool === 'create-cached-deploy',
    );
    expect(more).toEqual([]);
    const scope = cacheScope({
      isMainBranch: false,
      branch: BRANCH,
      tagSuffixes: cacheTagSuffixes(config.images),
    });
    expect(call?.args).toEqual([
      'prune',
      'delete-branch',
      '--repository',
      'acme/api-buildcache-branches',
      '--tag',
      `${scope}.api`,
      '--repository',
      'acme/web-buildcache-branches',
      '--tag',
      `${scope}.web.linux-amd64`,
      '--tag',
      `${scope}.web.linux-arm64`,
    ]);
    expect(readdirSync(work)).not.toContain('pwned');
  });
});

/**
 * A repository with a `.gitlab-ci.yml` of its own includes the generated pipeline
 * (`.gitlab/cached-deploy.yml`). GitLab merges the included file into it, top-level keys and
 * same-named jobs alike, so the included pipeline must leave the repository's own pipeline as it
 * was: its `build` and `deploy` jobs, its default `test` stage, its jobs without `rules` on
 * branches with an open merge request, its `default:` outside our jobs.
 */
describe('the pipeline included by a .gitlab-ci.yml of the repository', () => {
  const marker = (what: string) => `touch "$STANDIN_LOG/${what}-\${CI_JOB_NAME}"`;
  const own = {
    include: [{ local: '.gitlab/cached-deploy.yml' }],
    default: { before_script: [marker('default-before-script')] },
    build: { stage: 'build', script: [marker('own-build')] },
    test: { script: [marker('own-test')] },
    deploy: { stage: 'deploy', script: [marker('own-deploy')] },
    'mr-check': {
      rules: [{ if: '$CI_PIPELINE_SOURCE == "merge_request_event"' }],
      script: [marker('own-mr-check')],
    },
  };
  const raw = {
    ci: 'gitlab',
    aws: { accountId: ACCOUNT, region: 'eu-west-1' },
    gitlab: { project: PROJECT },
    images: [{ name: 'api', repository: 'acme/api' }],
    workflow: {
      file: '.gitlab/cached-deploy.yml',
      deploy: { command: './deploy.sh', environment: 'production' },
    },
  };
  const fixture = makeFixture('included', raw, 100, { '.gitlab-ci.yml': stringify(own) });
  const ours = (job: string) => `cached-deploy-${job}`;
  const OWN_JOBS = ['build', 'test', 'deploy'];
  const runs = new Map<string, { run: PipelineRun; log: string }>();
  const PIPELINES: Record<string, Record<string, string>> = {
    main: push('main'),
    'branch with an open merge request': {
      ...push(BRANCH),
      CI_OPEN_MERGE_REQUESTS: `${PROJECT}!7`,
    },
    'merge request': mergeRequest(BRANCH, PROJECT_ID),
  };

  beforeAll(async () => {
    await Promise.all(
      Object.entries(PIPELINES).map(async ([name, variables], index) => {
        const dir = join(scratch, `included-${index}`);
        const repo = join(dir, 'repo');
        const log = join(dir, 'log');
        mkdirSync(log, { recursive: true });
        cpSync(fixture.repo, repo, { recursive: true });
        const run = await runPipeline({
          repo,
          standins,
          logDir: log,
          variables: {
            CI_PROJECT_ID: PROJECT_ID,
            CI_REPOSITORY_URL: `file://${fixture.remote}`,
            [ID_TOKEN_VARIABLE]: 'id-token',
            ...variables,
          },
          unset: name === 'merge request' ? ['CI_COMMIT_BRANCH'] : [],
          // Neither file has a `workflow:` (asserted below): GitLab creates every pipeline.
          created: true,
        });
        runs.set(name, { run, log });
      }),
    );
  }, 120_000);

  const markers = (log: string, what: string) =>
    readdirSync(log)
      .filter((file) => file.startsWith(`${what}-`))
      .map((file) => file.slice(what.length + 1))
      .sort();

  it("keeps the repository's own jobs, stages and pipelines, and runs ours beside them on main", () => {
    const { run, log } = runs.get('main') ?? ({} as never);
    expect(run.failed, run.output).toEqual([]);
    expect(run.passed, run.output).toEqual(
      [...OWN_JOBS, ...['build', 'deploy', 'prune', 'apply'].map(ours)].sort(),
    );
    for (const job of OWN_JOBS) expect(markers(log, `own-${job}`)).toEqual([job]);
    // Our build built and pushed, and our deploy deployed what it pushed.
    const bakes = run.invocations.filter(isBake);
    expect(bakes.map((call) => call.job)).toEqual([ours('build')]);
    expect(bakes[0]?.args).toContain('api.push=true');
    expect(callsOf(run, 'build')).toEqual([]);
    expect(readFileSync(join(log, 'deployed'), 'utf8').split('\n')[2]).toBe(
      ciRoles(fixture.config).find((role) => role.kind === 'deploy')?.arn,
    );
  });

  it("runs the repository's default: in its own jobs only", () => {
    const { log } = runs.get('main') ?? ({} as never);
    expect(markers(log, 'default-before-script')).toEqual([...OWN_JOBS].sort());
  });

  it('leaves the choice between branch and merge request pipelines to the repository', () => {
    // No workflow of ours: the branch pipeline runs though a merge request is open, the
    // repository's jobs in it, and our build of the branch beside them.
    const branch = runs.get('branch with an open merge request')?.run as PipelineRun;
    expect(branch.failed, branch.output).toEqual([]);
    expect(branch.passed, branch.output).toEqual(
      [...OWN_JOBS, ours('build'), ours('prune')].sort(),
    );
    // Our jobs never run in a merge request pipeline, so they never make GitLab create one.
    // (gitlab-ci-local also runs jobs without rules there, which GitLab does not.)
    const mergeRequestRun = runs.get('merge request')?.run as PipelineRun;
    expect(mergeRequestRun.failed, mergeRequestRun.output).toEqual([]);
    expect(mergeRequestRun.passed, mergeRequestRun.output).toContain('mr-check');
    expect(mergeRequestRun.passed.filter((job) => job.startsWith('cached-deploy-'))).toEqual([]);
    expect(mergeRequestRun.invocations).toEqual([]);
  });

  it('is valid against GitLab CI JSON schema, alone and as the repository merges it', () => {
    const validate = new Ajv({ strict: false, allErrors: true, validateFormats: false }).compile(
      gitlabCiSchema(),
    );
    const included = parse(fixture.files.get(fixture.config.workflow.file) ?? '');
    expect(validate(included), JSON.stringify(validate.errors)).toBe(true);
    const { include: _, ...ownJobs } = own;
    expect(validate({ ...included, ...ownJobs }), JSON.stringify(validate.errors)).toBe(true);
  });

  it('names the stop job of the branch environment by its prefixed name, in the .post stage', () => {
    const document = parse(fixture.files.get(fixture.config.workflow.file) ?? '') as Record<
      string,
      { stage?: string; environment?: { on_stop?: string } }
    >;
    expect(document.workflow).toBeUndefined();
    expect(document.stages).toBeUndefined();
    expect(document[ours('build')]?.environment?.on_stop).toBe(ours('delete-branch-cache'));
    expect(document[ours('delete-branch-cache')]?.stage).toBe('.post');
    expect(document[ours('sweep-branch-caches')]?.stage).toBe('.post');
    expect(Object.keys(document).filter((key) => !key.startsWith('cached-deploy-'))).toEqual([
      'variables',
    ]);
  });
});
