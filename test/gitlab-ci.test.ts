/**
 * The generated GitLab pipeline, run: validated against GitLab's published CI JSON schema, then run
 * with gitlab-ci-local's shell executor (test/support/gitlab-ci-local.ts) for a push to main, a
 * push to a branch, merge requests (same project and fork), a schedule and manual reseeds. Every
 * job's own script runs for real with bash; docker, aws, apk, npm and node are stand-ins that
 * record what they are asked. From those records: which jobs ran, which role each assumed (judged
 * by the IAM evaluator against the generated trust policies with the `sub` GitLab would issue),
 * which cache refs each build reads and writes (the generated bake file evaluated with the
 * environment and `--set` flags the job passed), and that installs come before credentials.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
import { GITLAB_JOBS, ID_TOKEN_VARIABLE, RESEED_VARIABLE } from '../src/model/gitlab-ci.js';
import { ciRoles, type RoleKind } from '../src/model/roles.js';
import { renderFiles } from '../src/render/render-files.js';
import { applyBakeSet, type EvaluatedTarget, evaluateBake, parseBake } from './support/bake.js';
import {
  gitlabCiSchema,
  type Invocation,
  type PipelineRun,
  runPipeline,
  writeStandins,
} from './support/gitlab-ci-local.js';
import { type Policy, trustAccepts } from './support/iam-evaluator.js';

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
    label: 'three images on a self-managed instance, one multi-platform, runner tags',
    raw: {
      ci: 'gitlab',
      aws: { accountId: ACCOUNT, region: 'eu-west-1' },
      gitlab: { project: PROJECT, host: 'git.acme.example', tags: ['docker', 'privileged'] },
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

function makeFixture(label: string, raw: Record<string, unknown>, index: number): Fixture {
  const text = stringify(raw);
  const config = parseConfig(text);
  const files = new Map(renderFiles(config, '0.0.0-test').map((file) => [file.path, file.content]));
  const repo = join(scratch, `repo-${index}`);
  mkdirSync(repo);
  writeFileSync(join(repo, 'cached-deploy.yml'), text);
  for (const [path, content] of files) {
    mkdirSync(dirname(join(repo, path)), { recursive: true });
    writeFileSync(join(repo, path), content);
  }
  // The deploy command: records what it was given.
  writeFileSync(
    join(repo, 'deploy.sh'),
    '#!/bin/sh\nprintf "%s\\n" "$REGISTRY" "$IMAGE_TAG" "$AWS_ROLE_ARN" "$(cat "$AWS_WEB_IDENTITY_TOKEN_FILE")" >"$STANDIN_LOG/deployed"\n',
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

const fixtures = RAW_FIXTURES.map(({ label, raw }, index) => makeFixture(label, raw, index));

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

/** The second fixture runs only the pipelines where the number of images matters. */
const MULTI_IMAGE_SCENARIOS = [
  'a push to main',
  'a merge request from a branch of this project',
  'the schedule',
];

function scenariosFor(fixture: Fixture): Scenario[] {
  const all = scenarios(fixture.config);
  return fixture === fixtures[0]
    ? all
    : all.filter((scenario) => MULTI_IMAGE_SCENARIOS.includes(scenario.name));
}

function scenarios(config: ResolvedConfig): Scenario[] {
  const deploy = config.workflow.deploy ? [GITLAB_JOBS.deploy] : [];
  const all: Scenario[] = [
    {
      name: 'a push to main',
      variables: push('main'),
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [GITLAB_JOBS.build, ...deploy, GITLAB_JOBS.prune, GITLAB_JOBS.apply],
    },
    {
      name: 'a push to a branch',
      variables: push(BRANCH),
      ref: BRANCH,
      trusted: true,
      isMain: false,
      jobs: [GITLAB_JOBS.build, GITLAB_JOBS.prune],
    },
    {
      name: 'a push to Main (main in another case)',
      variables: push('Main'),
      ref: 'Main',
      trusted: true,
      isMain: false,
      jobs: [GITLAB_JOBS.build, GITLAB_JOBS.prune],
    },
    {
      name: 'a merge request from a branch of this project',
      variables: mergeRequest(BRANCH, PROJECT_ID),
      unset: ['CI_COMMIT_BRANCH'],
      ref: BRANCH,
      trusted: true,
      isMain: false,
      jobs: [GITLAB_JOBS.build, GITLAB_JOBS.prune],
    },
    {
      name: 'a merge request from a fork whose source branch is main',
      variables: mergeRequest('main', '9999'),
      unset: ['CI_COMMIT_BRANCH'],
      ref: 'main',
      trusted: false,
      isMain: false,
      jobs: [GITLAB_JOBS.build],
    },
    {
      name: 'the schedule',
      variables: { ...push('main'), CI_PIPELINE_SOURCE: 'schedule' },
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [GITLAB_JOBS.seed, GITLAB_JOBS.sweep],
    },
    {
      name: 'a manual reseed of main',
      variables: { ...push('main'), CI_PIPELINE_SOURCE: 'web', [RESEED_VARIABLE]: 'true' },
      ref: 'main',
      trusted: true,
      isMain: true,
      jobs: [GITLAB_JOBS.seed],
    },
    {
      name: 'a manual reseed of a branch (refused)',
      variables: { ...push(BRANCH), CI_PIPELINE_SOURCE: 'web', [RESEED_VARIABLE]: 'true' },
      ref: BRANCH,
      trusted: true,
      isMain: false,
      jobs: [GITLAB_JOBS.seed],
      failing: [GITLAB_JOBS.seed],
    },
  ];
  return all;
}

interface Result {
  scenario: Scenario;
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
          variables: {
            CI_PROJECT_ID: PROJECT_ID,
            CI_REPOSITORY_URL: `file://${fixture.remote}`,
            [ID_TOKEN_VARIABLE]: token,
            ...scenario.variables,
          },
          unset: scenario.unset,
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
        byName.set(scenario.name, { scenario, run, token, deployed, pwned });
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

/** The bake's --file and --set flags, as the job passed them. */
function bakeFlags(call: Invocation): { file: string; set: string[] } {
  const set: string[] = [];
  let file = '';
  for (let i = 2; i < call.args.length; i++) {
    if (call.args[i] === '--set') set.push(call.args[++i] ?? '');
    else if (call.args[i] === '--file') file = call.args[++i] ?? '';
    else throw new Error(`unexpected bake argument ${call.args[i]}`);
  }
  return { file, set };
}

/** The bake's targets as buildx resolves them: the generated file, the job's env, its --set. */
async function bakeTargets(fixture: Fixture, call: Invocation) {
  const { file, set } = bakeFlags(call);
  expect(file).toBe(fixture.config.paths.bakeFile);
  const parsed = await parseBake(fixture.files.get(file) ?? '', file);
  return applyBakeSet(evaluateBake(parsed, call.env).targets, set);
}

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

        it('reads and writes exactly the caches of the strategy', async () => {
          const { run } = result(name);
          const bakes = run.invocations.filter(isBake);
          const builds = bakes.filter((call) => call.job === GITLAB_JOBS.build);
          const seeds = bakes.filter((call) => call.job === GITLAB_JOBS.seed);
          expect(builds).toHaveLength(scenario.jobs.includes(GITLAB_JOBS.build) ? 1 : 0);
          expect(seeds).toHaveLength(
            scenario.jobs.includes(GITLAB_JOBS.seed) && !scenario.failing ? 1 : 0,
          );
          for (const call of builds) {
            const targets = await bakeTargets(fixture, call);
            expect(Object.keys(targets).sort()).toEqual(config.images.map((i) => i.name).sort());
            const scope = cacheScope({
              isMainBranch: scenario.isMain,
              branch: scenario.ref,
              tagSuffixes: cacheTagSuffixes(config.images),
            });
            for (const image of config.images) {
              const target = targets[image.name] as EvaluatedTarget;
              if (!scenario.trusted) {
                expect(target['cache-from']).toEqual([
                  'type=local,src=/tmp/cached-deploy-fork-cache',
                ]);
                expect(target['cache-to']).toEqual([
                  'type=local,dest=/tmp/cached-deploy-fork-cache',
                ]);
                expect(target.output).toBeUndefined();
                continue;
              }
              const own = scenario.isMain ? image.cacheRepository : image.branchCacheRepository;
              const imports = [
                `${registry}/${image.cacheRepository}:${SEED_SCOPE}.${image.name}`,
                `${registry}/${image.cacheRepository}:${MAIN_SCOPE}.${image.name}`,
                `${registry}/${own}:${scope}.${image.name}`,
              ];
              expect((target['cache-from'] ?? []).map(refOf)).toEqual([...new Set(imports)]);
              expect(target['cache-to']).toEqual([
                `type=registry,ref=${registry}/${own}:${scope}.${image.name},${CACHE_EXPORT_OPTIONS}`,
              ]);
              // Pushed on main only (the commit tags are not in ECR yet, says the aws stand-in).
              const pushes = (target.output ?? []).some((output) => output.includes('push=true'));
              expect(pushes, image.name).toBe(scenario.isMain);
            }
          }
          for (const call of seeds) {
            expect(call.env.CACHE_SCOPE).toBe(SEED_SCOPE);
            const { set } = bakeFlags(call);
            expect(set).toContain('*.no-cache=true');
            const targets = await bakeTargets(fixture, call);
            for (const image of config.images) {
              const target = targets[image.name] as EvaluatedTarget;
              expect(target['cache-from']).toBeUndefined();
              expect(target.output).toEqual(['type=cacheonly']);
              expect(target['no-cache']).toBe(true);
              // Strict: no ignore-error on the seed's export.
              expect(target['cache-to']).toEqual([
                `type=registry,ref=${registry}/${image.cacheRepository}:${SEED_SCOPE}.${image.name},${CACHE_EXPORT_LAYOUT}`,
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
                expect([call.job, scenario.isMain]).toEqual([GITLAB_JOBS.build, true]);
              }
              if (tag.startsWith(`${SEED_SCOPE}.`)) expect(call.job).toBe(GITLAB_JOBS.seed);
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
      expect(calls).toHaveLength(byRepository.size);
      calls.forEach((call, index) => {
        const [repository, images] = [...byRepository][index] as [string, string[]];
        expect(call.args).toEqual([
          expect.stringMatching(/\/prune-ecr-cache\.mjs$/),
          'sweep-branches',
          '--repository',
          repository,
          ...images.flatMap((image) => ['--image', image]),
          '--branches-file',
          expect.any(String),
          // The pruner refuses a listing without the main branch: nothing is swept then.
          '--main-branch',
          config.mainBranch,
          '--grace-hours',
          String(config.prune.graceHours),
        ]);
        // One raw branch name a line, read from the real remote with git ls-remote.
        expect((call.env.STANDIN_BRANCHES_FILE ?? '').split('\n').filter(Boolean).sort()).toEqual(
          [...BRANCHES_ON_REMOTE].sort(),
        );
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
