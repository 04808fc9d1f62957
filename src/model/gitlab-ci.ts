// biome-ignore-all lint/suspicious/noTemplateCurlyInString: shell scripts, whose ${…} is not JavaScript's
import type { ImageSettings, ResolvedConfig } from '../config/resolve.js';
import { GENERATOR_VERSION } from '../version.js';
import { BINFMT_IMAGE } from './actions.js';
import { registryHost } from './aws.js';
import { BAKE_VARIABLES } from './bake.js';
import {
  branchScopeScript,
  cacheRepositoryVariable,
  cacheTag,
  ownCacheRepository,
  SEED_SCOPE,
} from './cache-tags.js';
import {
  type BuildLeg,
  type BuildTarget,
  buildLegs,
  gitlabRunnerTags,
  hasPlatformLegs,
} from './platforms.js';
import { pruneFlags, prunerCommand, prunerPaths, sweepBranchesCommand } from './pruner.js';
import { ciRole, gitlabOf, type RoleKind, roleForWork, type Work } from './roles.js';
import {
  imageTagCheckLines,
  legImages,
  legJobId,
  mergeScript,
  seedBakeOverrides,
} from './workflow.js';

/**
 * The GitLab CI pipeline (`.gitlab-ci.yml`) as a typed object, beside the GitHub workflow
 * (workflow.ts), built from the same pieces: the role of each kind of work (roles.ts), the
 * branch scope script (cache-tags.ts), the legs of a multi-platform build (platforms.ts: a build
 * and a seed job per leg, a merge of the platforms' digests), the image tag check, the merge script
 * and the seed's bake overrides (workflow.ts), the same bake file. render/ serialises it with
 * `yaml`. docs/gitlab-ci.md and docs/multi-platform.md have the facts it relies on.
 *
 * Every job's logic runs in bash (`bash -euo pipefail` reading a quoted heredoc, so the job's own
 * shell expands nothing in it). Untrusted text (branch names: CI_COMMIT_REF_NAME,
 * CI_MERGE_REQUEST_SOURCE_BRANCH_NAME) reaches a script only as those variables, quoted; no
 * keyword GitLab expands (`rules`, `variables`, `environment`) holds one, except the environment
 * name, which holds GitLab's own slug of it.
 */
export interface GitlabPipeline {
  /** Absent from a pipeline another `.gitlab-ci.yml` includes (forInclusion). */
  workflow?: { rules: GitlabRule[] };
  stages?: string[];
  variables: Record<string, string>;
  jobs: Record<string, GitlabJob>;
}

export interface GitlabRule {
  if?: string;
  when?: 'on_success' | 'always' | 'never' | 'manual';
  allow_failure?: boolean;
}

export interface GitlabJob {
  stage: string;
  /** `default: false` in an included pipeline: the including file's `default:` stays out. */
  inherit?: { default: boolean };
  image?: string;
  services?: { name: string; alias?: string }[];
  tags?: string[];
  needs?: string[];
  /** A per-platform build job's digests, for the merge job (`artifacts:reports:dotenv`). */
  artifacts?: { reports: { dotenv: string } };
  rules: GitlabRule[];
  variables?: Record<string, string>;
  id_tokens?: Record<string, { aud: string }>;
  environment?: {
    name: string;
    action?: 'start' | 'stop';
    on_stop?: string;
    auto_stop_in?: string;
  };
  resource_group?: string;
  interruptible?: boolean;
  script: string[];
}

/**
 * The images the jobs run, pinned: one table, like the actions of the GitHub workflow. docker
 * 28.3.1's CLI image carries buildx v0.25.0 (its Dockerfile, docker-library/docker `28/cli`).
 */
export const GITLAB_IMAGES = {
  dockerCli: 'docker:28.3.1-cli',
  dind: 'docker:28.3.1-dind',
  node: 'node:22.20.0-bookworm',
  /** QEMU for emulated builds: the binfmt image both CIs pin (actions.ts, docs/actions.md). */
  binfmt: BINFMT_IMAGE,
} as const;
/** The buildx that GITLAB_IMAGES.dockerCli carries (printed by the build, not fetched). */
export const GITLAB_BUILDX_VERSION = 'v0.25.0';

/** The job variable GitLab puts the ID token in (`id_tokens`). */
export const ID_TOKEN_VARIABLE = 'AWS_ID_TOKEN';
/**
 * A pipeline variable that makes a pipeline of the main branch refresh the seed (web, api, trigger):
 * what `doctor --reseed` sets (gitlab-api/reseed.ts).
 */
export const RESEED_VARIABLE = 'CACHED_DEPLOY_RESEED';
/** Pipeline variables naming the project and its main branch, which the scripts compare with. */
export const PROJECT_VARIABLE = 'CACHED_DEPLOY_PROJECT';
export const MAIN_BRANCH_VARIABLE = 'CACHED_DEPLOY_MAIN_BRANCH';

export const GITLAB_JOBS = {
  build: 'build',
  merge: 'merge',
  deploy: 'deploy',
  prune: 'prune',
  seed: 'seed',
  apply: 'apply',
  sweep: 'sweep-branch-caches',
  stopBranchCache: 'delete-branch-cache',
} as const;

const STAGES = { build: 'build', deploy: 'deploy', cleanup: 'cleanup' } as const;

/** A heredoc of bash: the job's own shell (sh in Alpine images) expands nothing in it. */
const HEREDOC_END = 'CACHED_DEPLOY_SCRIPT';
function bash(lines: readonly string[]): string {
  return `${[`bash -euo pipefail <<'${HEREDOC_END}'`, ...lines, HEREDOC_END].join('\n')}\n`;
}

/** A GitLab `rules:if` string literal: the values used are validated to hold no `"`, `\` or `$`. */
const quoted = (text: string) => `"${text}"`;

const SCHEDULE = '$CI_PIPELINE_SOURCE == "schedule"';
const MERGE_REQUEST = '$CI_PIPELINE_SOURCE == "merge_request_event"';
const RESEED_REQUESTED = `$${RESEED_VARIABLE} == "true" && $CI_PIPELINE_SOURCE =~ /^(web|api|trigger)$/`;

// ---------------------------------------------------------------------------------------------
// Shell pieces
// ---------------------------------------------------------------------------------------------

/**
 * IS_MAIN, TRUSTED and BRANCH, decided in the shell. IS_MAIN: a pipeline of the main branch
 * itself (push, web, api, trigger, schedule), compared exactly and case-sensitively, never a
 * merge request, a tag or another project. TRUSTED: this project, and not a merge request from a
 * fork (a fork's code must never get this project's token or write a cache). BRANCH: the merge
 * request's source branch, or the pipeline's branch.
 */
export const GITLAB_DECISIONS_SCRIPT = [
  '# Whether this pipeline builds the main branch itself: exact and case-sensitive, never a merge',
  '# request, a tag or another project (docs/gitlab-ci.md).',
  'if [ "${CI_PIPELINE_SOURCE:-}" != "merge_request_event" ] && [ -z "${CI_COMMIT_TAG:-}" ] &&',
  `  [ "\${CI_COMMIT_BRANCH:-}" = "$${MAIN_BRANCH_VARIABLE}" ] && [ "\${CI_PROJECT_PATH:-}" = "$${PROJECT_VARIABLE}" ]; then`,
  '  IS_MAIN=true',
  'else',
  '  IS_MAIN=false',
  'fi',
  "# Trusted: this project's own pipeline, not a merge request from a fork.",
  `if [ "\${CI_PROJECT_PATH:-}" = "$${PROJECT_VARIABLE}" ] && { [ "\${CI_PIPELINE_SOURCE:-}" != "merge_request_event" ] ||`,
  '  [ "${CI_MERGE_REQUEST_SOURCE_PROJECT_ID:-}" = "${CI_PROJECT_ID:-}" ]; }; then',
  '  TRUSTED=true',
  'else',
  '  TRUSTED=false',
  'fi',
  'BRANCH="${CI_MERGE_REQUEST_SOURCE_BRANCH_NAME:-${CI_COMMIT_REF_NAME:-}}"',
  'echo "main branch: $IS_MAIN, trusted: $TRUSTED"',
];

/** Where a job keeps what it installs and writes: outside the checkout. */
const WORK_DIR_SCRIPT = ['CACHED_DEPLOY_TMP=$(mktemp -d)'];

/**
 * The branch scope script of the GitHub workflow (branchScopeScript), run as a function, and its
 * answers exported: CACHE_SCOPE and one CACHE_REPOSITORY_<IMAGE> per image. Only those keys are
 * read back, as `export NAME=value` (no eval).
 */
function scopeScript(config: ResolvedConfig): string[] {
  return [
    'SCOPE_OUTPUT="$CACHED_DEPLOY_TMP/scope"',
    'cache_scope() (',
    ...branchScopeScript(config.images, 'SCOPE_OUTPUT')
      .split('\n')
      .map((line) => `  ${line}`),
    ')',
    'cache_scope',
    "while IFS='=' read -r key value; do",
    '  case "$key" in',
    '    scope) export CACHE_SCOPE="$value" ;;',
    '    CACHE_REPOSITORY_*) export "$key=$value" ;;',
    '  esac',
    'done <"$SCOPE_OUTPUT"',
  ];
}

/**
 * The role a job assumes: the ID token written to a file only the job user reads, and the AWS
 * CLI and SDK pointed at it (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN): both assume the role
 * with AssumeRoleWithWebIdentity themselves. Nothing is installed after this.
 */
function assumeRoleScript(config: ResolvedConfig, roleArn: string): string[] {
  return [
    '# Credentials: from here on nothing is installed (docs/gitlab-ci.md).',
    ...webIdentityLines(config, roleArn),
  ];
}

/** The ID token in a file only the job's user can read, and the role and region pointing at it. */
function webIdentityLines(config: ResolvedConfig, roleArn: string): string[] {
  return [
    `(umask 077 && printf '%s' "$${ID_TOKEN_VARIABLE}" >"$CACHED_DEPLOY_TMP/id-token")`,
    'export AWS_WEB_IDENTITY_TOKEN_FILE="$CACHED_DEPLOY_TMP/id-token"',
    `export AWS_ROLE_ARN=${roleArn}`,
    'export AWS_ROLE_SESSION_NAME="gitlab-ci-${CI_JOB_ID:-job}"',
    `export AWS_REGION=${config.aws.region} AWS_DEFAULT_REGION=${config.aws.region}`,
  ];
}

/** `"$CACHED_DEPLOY_MAIN_ROLE"` or the branch role, by the shell's IS_MAIN. */
function roleByMainScript(): string[] {
  return [
    'if [ "$IS_MAIN" = "true" ]; then role="$CACHED_DEPLOY_MAIN_ROLE"; else role="$CACHED_DEPLOY_BRANCH_ROLE"; fi',
  ];
}

/** The two role ARNs a job may choose between, as job variables (ARNs hold no `$`). */
function roleVariables(config: ResolvedConfig, work: Work): Record<string, string> {
  return {
    CACHED_DEPLOY_MAIN_ROLE: roleArnOf(config, roleForWork(config, work, true)),
    CACHED_DEPLOY_BRANCH_ROLE: roleArnOf(config, roleForWork(config, work, false)),
  };
}

const roleArnOf = (config: ResolvedConfig, kind: RoleKind) => ciRole(config, kind).arn;

/**
 * The pruner's one dependency, from the generated lockfile (npm ci checks every integrity hash;
 * no install scripts), with the ID token out of the environment: before any credentials exist.
 */
function installPrunerScript(config: ResolvedConfig): string[] {
  const paths = prunerPaths(config);
  return [
    `cp "${paths.script}" "$CACHED_DEPLOY_TMP/prune-ecr-cache.mjs"`,
    `cp "${paths.packageJson}" "$CACHED_DEPLOY_TMP/package.json"`,
    `cp "${paths.lockfile}" "$CACHED_DEPLOY_TMP/package-lock.json"`,
    `env -u ${ID_TOKEN_VARIABLE} npm ci --prefix "$CACHED_DEPLOY_TMP" --ignore-scripts --no-audit --no-fund --loglevel=error`,
  ];
}

const PRUNER = 'node "$CACHED_DEPLOY_TMP/prune-ecr-cache.mjs"';

/** The Docker-in-Docker daemon the docker jobs talk to, over TLS (docs/gitlab-ci.md). */
const DIND_VARIABLES = {
  DOCKER_HOST: 'tcp://docker:2376',
  DOCKER_TLS_CERTDIR: '/certs',
  DOCKER_TLS_VERIFY: '1',
  DOCKER_CERT_PATH: '/certs/client',
};

/** Waits for the dind service (it starts beside the job). */
const WAIT_FOR_DOCKER =
  'for attempt in $(seq 30); do docker info >/dev/null 2>&1 && break; sleep 1; done';

/**
 * Waits for the dind service, registers QEMU when the leg builds an image for another architecture
 * than the runner's (the emulated way, with the pinned binfmt image: docs/multi-platform.md), and
 * creates a docker-container builder running the pinned BuildKit (the `docker` driver cannot
 * export a cache). A platform's own leg runs on a runner of that platform: no QEMU.
 */
function buildxScript(config: ResolvedConfig, leg: BuildLeg): string[] {
  const foreign =
    leg.platform !== undefined
      ? []
      : [
          ...new Set(
            leg.targets
              .flatMap((target) => target.platforms)
              .filter((platform) => platform !== 'linux/amd64'),
          ),
        ].map((platform) => platform.split('/')[1] ?? platform);
  return [
    WAIT_FOR_DOCKER,
    `echo "buildx $(docker buildx version) (pinned: ${GITLAB_BUILDX_VERSION})"`,
    ...(foreign.length > 0
      ? [
          `docker run --privileged --rm ${GITLAB_IMAGES.binfmt} --install ${[...new Set(foreign)].join(',')}`,
        ]
      : []),
    `docker buildx create --name cached-deploy --driver docker-container --driver-opt image=${config.buildkit.image} --use`,
  ];
}

/** What docker jobs install first, from the image's Alpine package index, ID token out of reach. */
const apkInstall = (packages: string[]) =>
  `env -u ${ID_TOKEN_VARIABLE} apk add --no-cache ${packages.join(' ')}`;

// ---------------------------------------------------------------------------------------------
// The pipeline
// ---------------------------------------------------------------------------------------------

export function gitlabPipeline(
  config: ResolvedConfig,
  version = GENERATOR_VERSION,
): GitlabPipeline {
  const gitlab = gitlabOf(config);
  // One build job per leg, as on GitHub (platforms.ts): `build` for the images built together,
  // `build-<os>-<arch>` for each platform of the images built natively per platform, on runners
  // with that platform's tags; then the merge of their digests into one manifest list per image.
  const legs = buildLegs(config);
  const jobs: Record<string, GitlabJob> = {};
  /** The runner tags of each job: its leg's for build and seed jobs, `gitlab.tags` for the rest. */
  const tags = new Map<string, string[]>();
  const environment = config.workflow.deploy?.environment;
  legs.forEach((leg, index) => {
    const id = legJobId('build', leg);
    // The first build job starts the branch's environment, whose stop job deletes its caches.
    jobs[id] = buildJob(config, leg, environment !== undefined && index === 0);
    tags.set(id, gitlabRunnerTags(config, leg));
  });
  if (hasPlatformLegs(config)) jobs[GITLAB_JOBS.merge] = mergeJob(config, legs);
  if (config.workflow.deploy) jobs[GITLAB_JOBS.deploy] = deployJob(config, legs);
  if (config.prune.sweep) jobs[GITLAB_JOBS.prune] = pruneJob(config, legs);
  if (config.seed.enabled) {
    for (const leg of legs) {
      const id = legJobId('seed', leg);
      jobs[id] = seedJob(config, leg);
      tags.set(id, gitlabRunnerTags(config, leg));
    }
  }
  jobs[GITLAB_JOBS.apply] = applyJob(config, version);
  jobs[GITLAB_JOBS.sweep] = sweepJob(config);
  if (environment !== undefined) jobs[GITLAB_JOBS.stopBranchCache] = stopJob(config, version);
  const withTags = (name: string, job: GitlabJob): GitlabJob => {
    const jobTags = tags.get(name) ?? gitlab.tags;
    return jobTags.length > 0 ? { ...job, tags: [...jobTags] } : job;
  };
  const pipeline: GitlabPipeline = {
    workflow: {
      // Branch pipelines, and merge request pipelines instead of them once a merge request is open
      // (GitLab's documented switch): never both for one push. Except on the main branch: a
      // merge request from main (into a release branch, say) must not turn main's pushes into
      // merge request pipelines, which build a branch cache and never deploy. Tags get no pipeline.
      rules: [
        { if: MERGE_REQUEST },
        {
          if: `$CI_COMMIT_BRANCH && $CI_COMMIT_BRANCH != ${quoted(config.mainBranch)} && $CI_OPEN_MERGE_REQUESTS && $CI_PIPELINE_SOURCE == "push"`,
          when: 'never',
        },
        { if: '$CI_COMMIT_BRANCH' },
      ],
    },
    stages: [STAGES.build, STAGES.deploy, STAGES.cleanup],
    variables: {
      [PROJECT_VARIABLE]: gitlab.project,
      [MAIN_BRANCH_VARIABLE]: config.mainBranch,
    },
    jobs: Object.fromEntries(
      Object.entries(jobs).map(([name, job]) => [name, withTags(name, job)]),
    ),
  };
  return isIncludedPipeline(config) ? forInclusion(pipeline) : pipeline;
}

/** What every job name of a pipeline that another `.gitlab-ci.yml` includes starts with. */
export const INCLUDED_JOB_PREFIX = 'cached-deploy-';

/**
 * Whether the pipeline goes to a file under `.gitlab/` that the repository's own `.gitlab-ci.yml`
 * includes, rather than being the `.gitlab-ci.yml` itself.
 */
export function isIncludedPipeline(config: ResolvedConfig): boolean {
  return !/^\.gitlab-ci\.ya?ml$/.test(config.workflow.file);
}

/** A job's name in the pipeline as written: prefixed when the pipeline is included. */
export function gitlabJobName(config: ResolvedConfig, job: string): string {
  return isIncludedPipeline(config) ? `${INCLUDED_JOB_PREFIX}${job}` : job;
}

/**
 * The pipeline as a file the repository's own `.gitlab-ci.yml` includes. GitLab merges an
 * included file into the including one, top-level keys and same-named jobs alike (the including
 * file's keys win), so the included pipeline must change nothing of the repository's own:
 * - every job name is prefixed: a job of the repository's named `build` or `deploy` would be
 *   merged with ours, its script running with our ID token and roles, and our job gone;
 * - no `workflow:`, which would decide the pipelines of the repository's own jobs too (with the
 *   merge request switch, its jobs without `rules` would stop running on every branch with an
 *   open merge request); our jobs never run in a merge request pipeline, so they never make GitLab
 *   create one either (a branch builds in its branch pipelines);
 * - no `stages:`, which would replace GitLab's default stages and refuse every job of the
 *   repository's in the default `test` stage: the jobs use the default `build` and `deploy`
 *   stages, and `.post` instead of `cleanup`;
 * - `inherit: default: false`: the including file's `default:` (a `before_script`, an image)
 *   would otherwise run in our jobs, with the ID token in reach.
 */
function forInclusion(pipeline: GitlabPipeline): GitlabPipeline {
  const rename = (name: string) => `${INCLUDED_JOB_PREFIX}${name}`;
  const jobs = Object.entries(pipeline.jobs).map(([name, job]): [string, GitlabJob] => {
    const { stage, rules, needs, environment, ...rest } = job;
    return [
      rename(name),
      {
        stage: stage === STAGES.cleanup ? '.post' : stage,
        inherit: { default: false },
        ...(needs ? { needs: needs.map(rename) } : {}),
        rules: [{ if: MERGE_REQUEST, when: 'never' }, ...rules],
        ...(environment
          ? {
              environment: environment.on_stop
                ? { ...environment, on_stop: rename(environment.on_stop) }
                : environment,
            }
          : {}),
        ...rest,
      },
    ];
  });
  return { variables: pipeline.variables, jobs: Object.fromEntries(jobs) };
}

const idTokens = (config: ResolvedConfig) => ({
  [ID_TOKEN_VARIABLE]: { aud: gitlabOf(config).audience },
});

/** Not in scheduled pipelines (those seed and sweep) nor in reseed pipelines. */
const ORDINARY_RULES: GitlabRule[] = [
  { if: SCHEDULE, when: 'never' },
  { if: RESEED_REQUESTED, when: 'never' },
];

/** The pipeline is of the main branch of this project (the scripts check it again, exactly). */
const mainBranchRule = (config: ResolvedConfig) =>
  `$CI_COMMIT_BRANCH == ${quoted(config.mainBranch)} && $CI_PROJECT_PATH == ${quoted(gitlabOf(config).project)} && $CI_PIPELINE_SOURCE != "merge_request_event"`;

/** This project's own pipeline, not a fork's merge request. */
const trustedRules = (config: ResolvedConfig): GitlabRule[] => [
  { if: `$CI_PROJECT_PATH != ${quoted(gitlabOf(config).project)}`, when: 'never' },
  {
    if: `${MERGE_REQUEST} && $CI_MERGE_REQUEST_SOURCE_PROJECT_ID != $CI_PROJECT_ID`,
    when: 'never',
  },
];

/**
 * A build job (and on main, its pushes): one per leg (platforms.ts). Trusted pipelines import and
 * export the registry cache with the role of their work; a fork's merge request builds with a
 * throwaway local cache and no AWS at all. A platform's job builds only its targets and passes the
 * digest of each image it pushed to the merge job in a dotenv report. With a deploy environment,
 * the first build job of a branch also starts an environment whose stop job deletes the branch's
 * cache when the branch is deleted.
 */
function buildJob(config: ResolvedConfig, leg: BuildLeg, withEnvironment: boolean): GitlabJob {
  const images = legImages(leg);
  const perPlatform = leg.platform !== undefined;
  // Only the leg's targets when the bake file has per-platform ones (its `default` group builds
  // every platform), as bake-action's `targets` on GitHub.
  const bake = [
    `docker buildx bake --file ${config.paths.bakeFile}`,
    ...(hasPlatformLegs(config) ? [leg.targets.map((target) => target.name).join(' ')] : []),
  ];
  const pushes = leg.targets.map(
    (target) => `--set "${target.name}.push=$${pushVariable(target.image.name)}"`,
  );
  const registry = registryHost(config.aws.accountId, config.aws.region);
  const checks = [
    ...images.map((image) => `decide '${pushOutput(image.name)}' '${image.repository}' &`),
    'wait',
  ];
  return {
    stage: STAGES.build,
    image: GITLAB_IMAGES.dockerCli,
    services: [{ name: GITLAB_IMAGES.dind, alias: 'docker' }],
    rules: [...ORDINARY_RULES, { when: 'on_success' }],
    variables: { ...DIND_VARIABLES, ...roleVariables(config, 'build') },
    id_tokens: idTokens(config),
    ...(withEnvironment
      ? {
          environment: {
            name: BRANCH_CACHE_ENVIRONMENT,
            action: 'start' as const,
            on_stop: GITLAB_JOBS.stopBranchCache,
            auto_stop_in: `${config.cache.branchRetentionDays} days`,
          },
        }
      : {}),
    ...(perPlatform ? { artifacts: { reports: { dotenv: digestsDotenv(leg) } } } : {}),
    script: [
      apkInstall(perPlatform ? ['bash', 'aws-cli', 'jq'] : ['bash', 'aws-cli']),
      bash([
        ...GITLAB_DECISIONS_SCRIPT,
        ...WORK_DIR_SCRIPT,
        ...(perPlatform
          ? [
              '# The digests this job pushes, for the merge job (empty when it pushes none).',
              `DIGESTS_DOTENV=${digestsDotenv(leg)}`,
              ': >"$DIGESTS_DOTENV"',
            ]
          : []),
        ...scopeScript(config),
        'PUSH_OUTPUT="$CACHED_DEPLOY_TMP/push"',
        ...buildxScript(config, leg),
        `export ${BAKE_VARIABLES.imageTag}="$CI_COMMIT_SHA"`,
        'if [ "$TRUSTED" = "true" ]; then',
        ...indent([
          ...roleByMainScript(),
          ...assumeRoleScript(config, '"$role"'),
          `aws ecr get-login-password | docker login --username AWS --password-stdin ${registry}`,
          ...(config.ecr.imageTagMutability === 'MUTABLE'
            ? images.map((image) => `echo "${pushOutput(image.name)}=$IS_MAIN" >>"$PUSH_OUTPUT"`)
            : [
                '# Push only images whose commit tag is not in ECR yet (a re-run pushes nothing twice).',
                ...imageTagCheckLines('PUSH_OUTPUT', 'WARNING: ').filter(
                  (line) => line !== 'set -euo pipefail',
                ),
                ...checks,
              ]),
          ...readPushDecisions(images),
          perPlatform
            ? '# Build with the registry cache; push by digest on the main branch.'
            : '# Build with the registry cache; push on the main branch.',
          [
            ...bake,
            ...(perPlatform ? ['--metadata-file "$CACHED_DEPLOY_TMP/bake-metadata.json"'] : []),
            ...pushes,
          ].join(' \\\n  '),
          ...(perPlatform ? passDigestsScript(config, leg) : []),
        ]),
        'else',
        ...indent([
          '# A fork: no AWS, no shared cache, a throwaway local one (outside the checkout, so',
          '# bake must be allowed to read and write it: buildx >= 0.20 refuses it otherwise).',
          [
            ...bake,
            "--allow 'fs=/tmp/cached-deploy-fork-cache'",
            "--set '*.cache-from=type=local,src=/tmp/cached-deploy-fork-cache'",
            "--set '*.cache-to=type=local,dest=/tmp/cached-deploy-fork-cache'",
          ].join(' \\\n  '),
        ]),
        'fi',
      ]),
    ],
  };
}

/** Where a platform's build job writes its digests: a dotenv report, in the project directory. */
export const digestsDotenv = (leg: BuildLeg) => `cached-deploy-digests${leg.idSuffix}.env`;

/**
 * The dotenv variable (a report of a platform's build job, a variable of the merge job) holding
 * the digest of one image on one platform: `CACHED_DEPLOY_DIGEST_<image index>_<platform index>`,
 * indexes into `images` and the image's `platforms`. Indexes, not names: image names and platforms
 * upper-cased with `_` for `-` and `/` could name two pairs alike; these cannot.
 */
export function digestVariable(config: ResolvedConfig, target: BuildTarget): string {
  const image = config.images.indexOf(target.image);
  const platform =
    target.platform === undefined ? -1 : target.image.platforms.indexOf(target.platform);
  if (image < 0 || platform < 0) throw new Error(`${target.name} is not built per platform`);
  return `CACHED_DEPLOY_DIGEST_${image}_${platform}`;
}

/**
 * After a platform's bake: the digest of each image it pushed, read from the bake's metadata file
 * (`<target>` → `containerimage.digest`, as bake-action's `metadata` output on GitHub), checked,
 * and written to the job's dotenv report for the merge. Nothing for an image it did not push.
 */
function passDigestsScript(config: ResolvedConfig, leg: BuildLeg): string[] {
  return [
    '# pass <variable> <pushed> <target>: the digest of a platform image this job pushed, for the merge.',
    'pass() {',
    '  local digest',
    '  if [ "$2" != "true" ]; then',
    '    return',
    '  fi',
    `  digest=$(jq -r --arg target "$3" '.[$target]["containerimage.digest"] // ""' "$CACHED_DEPLOY_TMP/bake-metadata.json")`,
    '  if [[ ! "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then',
    `    echo "ERROR: the build reported no digest for $3 (got '$digest')" >&2`,
    '    exit 1',
    '  fi',
    '  echo "$1=$digest" >>"$DIGESTS_DOTENV"',
    '}',
    ...leg.targets.map(
      (target) =>
        `pass ${digestVariable(config, target)} "$${pushVariable(target.image.name)}" '${target.name}'`,
    ),
  ];
}

/** The environment a branch build starts (with a deploy environment): GitLab's slug, a name only. */
const BRANCH_CACHE_ENVIRONMENT = 'cached-deploy-cache/$CI_COMMIT_REF_SLUG';

const pushOutput = (imageName: string) => `push-${imageName}`;
/** The shell variable holding an image's push decision: PUSH_<IMAGE>. */
const pushVariable = (imageName: string) => `PUSH_${imageName.toUpperCase().replaceAll('-', '_')}`;

/** The `decide` answers (`push-<image>=true|false` lines) as PUSH_<IMAGE> variables. */
function readPushDecisions(images: readonly ImageSettings[]): string[] {
  return [
    "while IFS='=' read -r key value; do",
    '  case "$key" in',
    ...images.map(
      (image) => `    ${pushOutput(image.name)}) ${pushVariable(image.name)}="$value" ;;`,
    ),
    '  esac',
    'done <"$PUSH_OUTPUT"',
  ];
}

const indent = (lines: string[]) =>
  lines.flatMap((line) => line.split('\n')).map((line) => `  ${line}`);

/**
 * The manifest list of each image built per platform (docs/multi-platform.md), on the main branch
 * once every platform's job has pushed its image by digest: `docker buildx imagetools create -t
 * <repository>:<sha> <digest>…` with the main role, the GitHub merge's own script (mergeScript).
 * The digests arrive as the platform jobs' dotenv variables; a platform that pushed nothing (its
 * commit tag exists: a re-run) passed none, and an image no platform pushed is left as it is.
 */
function mergeJob(config: ResolvedConfig, legs: readonly BuildLeg[]): GitlabJob {
  const platformLegs = legs.filter((leg) => leg.platform !== undefined);
  const targets = platformLegs.flatMap((leg) => leg.targets);
  const images = config.images.filter((image) => targets.some((target) => target.image === image));
  const registry = registryHost(config.aws.accountId, config.aws.region);
  const lines = images.map((image) => {
    // In the order the image lists its platforms: the order of the manifest list.
    const args = image.platforms.flatMap((platform) => {
      const target = targets.find(
        (each) => each.image === image && each.platform === platform,
      ) as BuildTarget;
      return [`'${platform}'`, `"\${${digestVariable(config, target)}:-}"`];
    });
    return ['merge', `'${image.repository}'`, ...args].join(' ');
  });
  return {
    stage: STAGES.build,
    image: GITLAB_IMAGES.dockerCli,
    services: [{ name: GITLAB_IMAGES.dind, alias: 'docker' }],
    needs: platformLegs.map((leg) => legJobId('build', leg)),
    rules: [...ORDINARY_RULES, { if: mainBranchRule(config) }],
    variables: { ...DIND_VARIABLES, [BAKE_VARIABLES.registry]: registry },
    id_tokens: idTokens(config),
    script: [
      apkInstall(['bash', 'aws-cli']),
      bash([
        ...GITLAB_DECISIONS_SCRIPT,
        'if [ "$IS_MAIN" != "true" ]; then',
        '  echo "ERROR: Only the main branch merges platform images." >&2',
        '  exit 1',
        'fi',
        ...WORK_DIR_SCRIPT,
        WAIT_FOR_DOCKER,
        ...assumeRoleScript(config, roleArnOf(config, roleForWork(config, 'merge', true))),
        `aws ecr get-login-password | docker login --username AWS --password-stdin ${registry}`,
        `export ${BAKE_VARIABLES.imageTag}="$CI_COMMIT_SHA"`,
        ...mergeScript(config, { error: 'ERROR: ', warning: 'WARNING: ' }).filter(
          (line) => line !== 'set -euo pipefail',
        ),
        ...lines,
      ]),
    ],
  };
}

/**
 * The deploy: after the build of main, on the main branch only, with the deploy role when an
 * environment is configured (on GitLab trusted for the main branch's subject: IAM cannot read
 * GitLab's environment claims), else the main role. The deploy command runs in the job's own
 * shell, as GitHub runs it, with REGISTRY and IMAGE_TAG set and the role's credentials configured.
 */
function deployJob(config: ResolvedConfig, legs: readonly BuildLeg[]): GitlabJob {
  const deploy = config.workflow.deploy;
  if (!deploy) throw new Error('no deploy configured');
  const role = roleArnOf(config, roleForWork(config, 'deploy', true));
  return {
    stage: STAGES.deploy,
    // The build of the images built together, and the merge of those built per platform (which
    // waits for every platform's job).
    needs: [
      ...(legs.some((leg) => leg.platform === undefined) ? [GITLAB_JOBS.build] : []),
      ...(hasPlatformLegs(config) ? [GITLAB_JOBS.merge] : []),
    ],
    rules: [...ORDINARY_RULES, { if: mainBranchRule(config) }],
    ...(deploy.environment ? { environment: { name: deploy.environment } } : {}),
    resource_group: `cached-deploy-${deploy.environment ?? 'deploy'}`.replaceAll(' ', '-'),
    variables: {
      [BAKE_VARIABLES.registry]: registryHost(config.aws.accountId, config.aws.region),
      [BAKE_VARIABLES.imageTag]: '$CI_COMMIT_SHA',
    },
    id_tokens: idTokens(config),
    script: [
      [
        '# Only the main branch itself deploys (exact, case-sensitive).',
        `if [ "\${CI_COMMIT_BRANCH:-}" != "$${MAIN_BRANCH_VARIABLE}" ] || [ "\${CI_PROJECT_PATH:-}" != "$${PROJECT_VARIABLE}" ]; then`,
        '  echo "Only the main branch deploys." >&2',
        '  exit 1',
        'fi',
        'CACHED_DEPLOY_TMP=$(mktemp -d)',
        ...webIdentityLines(config, role),
      ].join('\n'),
      deploy.command,
    ],
  };
}

/**
 * The sweep after a build, beside the deploy: untagged cache artifacts older than the grace
 * period, in the repositories this build wrote, with the role of its work. Never for a fork.
 */
function pruneJob(config: ResolvedConfig, legs: readonly BuildLeg[]): GitlabJob {
  return {
    stage: STAGES.deploy,
    image: GITLAB_IMAGES.node,
    needs: legs.map((leg) => legJobId('build', leg)),
    rules: [...ORDINARY_RULES, ...trustedRules(config), { when: 'always' }],
    variables: roleVariables(config, 'prune'),
    id_tokens: idTokens(config),
    script: [
      bash([
        ...GITLAB_DECISIONS_SCRIPT,
        'if [ "$TRUSTED" != "true" ]; then echo "A fork: nothing to prune."; exit 0; fi',
        ...WORK_DIR_SCRIPT,
        ...scopeScript(config),
        ...installPrunerScript(config),
        ...roleByMainScript(),
        ...assumeRoleScript(config, '"$role"'),
        prunerCommand(config, PRUNER, 'prune', ['--sweep', ...pruneFlags(config)]),
      ]),
    ],
  };
}

/**
 * The seed: a cold build of a leg's targets on the main branch, exporting their seed tags
 * strictly (seedBakeOverrides), with the main role, on the leg's runners (one seed job per
 * platform of the images built per platform, as on GitHub); on the schedule, or a pipeline of main
 * with CACHED_DEPLOY_RESEED=true. Any other branch is refused before anything is installed.
 */
function seedJob(config: ResolvedConfig, leg: BuildLeg): GitlabJob {
  const scope = {
    [BAKE_VARIABLES.cacheScope]: SEED_SCOPE,
    ...Object.fromEntries(
      config.images.map((image) => [
        cacheRepositoryVariable(image.name),
        ownCacheRepository(image, true),
      ]),
    ),
  };
  const registry = registryHost(config.aws.accountId, config.aws.region);
  const digests = '"$CACHED_DEPLOY_TMP/cache-digests.json"';
  const targets = hasPlatformLegs(config)
    ? ` ${leg.targets.map((target) => target.name).join(' ')}`
    : '';
  return {
    stage: STAGES.build,
    image: GITLAB_IMAGES.dockerCli,
    services: [{ name: GITLAB_IMAGES.dind, alias: 'docker' }],
    rules: [{ if: SCHEDULE }, { if: RESEED_REQUESTED }],
    variables: { ...DIND_VARIABLES, ...scope },
    id_tokens: idTokens(config),
    script: [
      apkInstall(['bash', 'aws-cli', 'nodejs', 'npm']),
      bash([
        ...GITLAB_DECISIONS_SCRIPT,
        'if [ "$IS_MAIN" != "true" ]; then',
        '  echo "ERROR: The seed cache is refreshed only from the main branch." >&2',
        '  exit 1',
        'fi',
        ...WORK_DIR_SCRIPT,
        ...installPrunerScript(config),
        ...buildxScript(config, leg),
        ...assumeRoleScript(config, roleArnOf(config, roleForWork(config, 'seed', true))),
        `aws ecr get-login-password | docker login --username AWS --password-stdin ${registry}`,
        prunerCommand(config, PRUNER, 'record', [`--state ${digests}`], leg.targets),
        `export ${BAKE_VARIABLES.imageTag}="$CI_COMMIT_SHA"`,
        '# Cold build, exporting the seed cache (a failed export fails the job).',
        `if docker buildx bake --file ${config.paths.bakeFile}${targets} \\`,
        ...seedBakeOverrides(config, leg.targets).map((line) => `  --set '${line}' \\`),
        '  --set "*.no-cache=true"; then',
        '  outcome=success',
        'else',
        '  outcome=failure',
        'fi',
        prunerCommand(
          config,
          PRUNER,
          'prune',
          [`--state ${digests}`, ...(config.prune.sweep ? ['--sweep'] : []), ...pruneFlags(config)],
          leg.targets,
        ),
        `for cache in ${leg.targets.map((target) => `${target.image.cacheRepository}:${cacheTag(SEED_SCOPE, target.tagSuffix)}`).join(' ')}; do`,
        '  if [ "$outcome" = "success" ]; then echo "Seed cache refreshed: $cache"; else echo "Seed cache NOT refreshed: $cache"; fi',
        'done',
        `[ "$outcome" = "success" ] || { echo "The cold build or its cache export failed; builds keep importing the previous seed. Run a pipeline on ${config.mainBranch} with ${RESEED_VARIABLE}=true again." >&2; exit 1; }`,
      ]),
    ],
  };
}

/**
 * Makes ECR match the committed ecr/ files when a push to the main branch changed them (or when
 * it cannot tell: apply is idempotent). The generator of the files is installed (no scripts, ID
 * token out of reach) before the main role's credentials exist, and run after.
 */
function applyJob(config: ResolvedConfig, version: string): GitlabJob {
  return {
    stage: STAGES.build,
    image: GITLAB_IMAGES.node,
    rules: [
      ...ORDINARY_RULES,
      { if: `$CI_PIPELINE_SOURCE == "push" && ${mainBranchRule(config)}` },
    ],
    variables: {
      // The whole history, to compare with the commit before the push.
      GIT_DEPTH: '0',
      ECR_DIR: config.paths.ecrDir,
    },
    id_tokens: idTokens(config),
    script: [
      bash([
        ...GITLAB_DECISIONS_SCRIPT,
        'if [ "$IS_MAIN" != "true" ]; then echo "Not the main branch: nothing to apply."; exit 0; fi',
        'BEFORE="${CI_COMMIT_BEFORE_SHA:-}"',
        '# A new branch, or a force-push whose old head is gone: cannot tell, so apply.',
        'if [ -z "$BEFORE" ] || [ "$BEFORE" = "0000000000000000000000000000000000000000" ] ||',
        '  ! git cat-file -e "$BEFORE^{commit}" 2>/dev/null; then',
        '  changed=true',
        'elif git diff --quiet "$BEFORE" HEAD -- ":(literal)$ECR_DIR" ":(literal)cached-deploy.yml"; then',
        '  changed=false',
        'else',
        '  changed=true',
        'fi',
        `if [ "$changed" != "true" ]; then echo "Neither ${config.paths.ecrDir}/ nor cached-deploy.yml changed: nothing to apply."; exit 0; fi`,
        ...WORK_DIR_SCRIPT,
        installCliScript(version),
        ...assumeRoleScript(config, roleArnOf(config, roleForWork(config, 'apply', true))),
        `"$CACHED_DEPLOY_TMP/node_modules/.bin/create-cached-deploy" apply`,
      ]),
    ],
  };
}

/** create-cached-deploy at the version that generated the files: pinned by its shrinkwrap. */
const installCliScript = (version: string) =>
  `env -u ${ID_TOKEN_VARIABLE} npm install --prefix "$CACHED_DEPLOY_TMP" --no-save --ignore-scripts --no-audit --no-fund --loglevel=error create-cached-deploy@${version}`;

/**
 * The scheduled sweep of branch caches whose branch no longer exists (GitLab runs no pipeline
 * when a branch is deleted): the project's branches, read with the job token, one raw name a
 * line, then the pruner's `sweep-branches` per branch-cache repository, with the branch role.
 */
function sweepJob(config: ResolvedConfig): GitlabJob {
  const branches = '"$CACHED_DEPLOY_TMP/branches"';
  return {
    stage: STAGES.cleanup,
    image: GITLAB_IMAGES.node,
    needs: [],
    rules: [...trustedRules(config), { if: SCHEDULE }],
    variables: {
      CACHED_DEPLOY_BRANCH_ROLE: roleArnOf(
        config,
        roleForWork(config, 'sweep-branch-caches', false),
      ),
    },
    id_tokens: idTokens(config),
    script: [
      bash([
        ...WORK_DIR_SCRIPT,
        '# Every branch of this project, one raw name a line (branch names hold no newline).',
        `git ls-remote --heads "$CI_REPOSITORY_URL" | cut -f2- | sed 's#^refs/heads/##' >${branches}`,
        `echo "$(wc -l <${branches}) branches"`,
        '# A listing without the main branch is not the whole list: sweep nothing rather than everything.',
        `grep -qxF "$${MAIN_BRANCH_VARIABLE}" ${branches} || { echo "ERROR: the branch list has no $${MAIN_BRANCH_VARIABLE}" >&2; exit 1; }`,
        ...installPrunerScript(config),
        ...assumeRoleScript(config, '"$CACHED_DEPLOY_BRANCH_ROLE"'),
        sweepBranchesCommand(config, PRUNER, branches, `"$${MAIN_BRANCH_VARIABLE}"`),
      ]),
    ],
  };
}

/**
 * The stop job of a branch build's environment: GitLab runs it when the branch is deleted (and
 * after `auto_stop_in`). The branch may be gone, so nothing is checked out: the pinned CLI runs
 * the pruner's `delete-branch`, which refuses any tag outside the branch's scope.
 */
function stopJob(config: ResolvedConfig, version: string): GitlabJob {
  return {
    stage: STAGES.cleanup,
    image: GITLAB_IMAGES.node,
    needs: [],
    rules: [...ORDINARY_RULES, { when: 'manual', allow_failure: true }],
    environment: { name: BRANCH_CACHE_ENVIRONMENT, action: 'stop' },
    variables: {
      GIT_STRATEGY: 'none',
      CACHED_DEPLOY_BRANCH_ROLE: roleArnOf(
        config,
        roleForWork(config, 'delete-branch-cache', false),
      ),
    },
    id_tokens: idTokens(config),
    script: [
      bash([
        ...GITLAB_DECISIONS_SCRIPT,
        'if [ "$TRUSTED" != "true" ] || [ "$IS_MAIN" = "true" ]; then echo "Nothing to delete here."; exit 0; fi',
        ...WORK_DIR_SCRIPT,
        ...scopeScript(config),
        installCliScript(version),
        ...assumeRoleScript(config, '"$CACHED_DEPLOY_BRANCH_ROLE"'),
        prunerCommand(
          config,
          '"$CACHED_DEPLOY_TMP/node_modules/.bin/create-cached-deploy" prune',
          'delete-branch',
          [],
        ),
      ]),
    ],
  };
}
