import type { ImageSettings, ResolvedConfig } from '../config/resolve.js';
import { GENERATOR_VERSION } from '../version.js';
import { ACTIONS, BINFMT_IMAGE, pinWorkflowActions } from './actions.js';
import { registryHost } from './aws.js';
import { BAKE_VARIABLES, CACHE_EXPORT_LAYOUT } from './bake.js';
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
  buildTargets,
  githubRunner,
  hasPlatformLegs,
} from './platforms.js';
import { pruneFlags, prunerCommand, prunerPaths, sweepBranchesCommand } from './pruner.js';
import { ciRole, type RoleKind, roleForWork, type Work } from './roles.js';

/**
 * The GitHub Actions workflow as a typed object; render/ serialises it with `yaml`. GitHub
 * expressions are plain strings here, so no template engine can mangle `${{ … }}`.
 *
 * Untrusted text (branch names, anything under github.event) only ever reaches a shell through
 * `env:`; `run:` blocks contain no expressions at all.
 */
export interface Workflow {
  name: string;
  on: Record<string, unknown>;
  permissions: Record<string, string>;
  concurrency: { group: string; 'cancel-in-progress': string };
  jobs: Record<string, Job>;
}

export interface Job {
  name?: string;
  outputs?: Record<string, string>;
  needs?: string | string[];
  if?: string;
  'runs-on': string;
  environment?: string;
  permissions: Record<string, string>;
  env?: Record<string, string>;
  steps: Step[];
}

export interface Step {
  name: string;
  id?: string;
  if?: string;
  uses?: string;
  with?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
  run?: string;
}

/** `${{ … }}` around a GitHub expression. */
export const expr = (expression: string) => `\${{ ${expression} }}`;

/** A string literal inside a GitHub expression ('' escapes a quote). */
export const literal = (text: string) => `'${text.replaceAll("'", "''")}'`;

/** The branch being built: the PR's head branch, or the pushed branch (ref_name is N/merge on PRs). */
export const BRANCH_EXPRESSION = 'github.head_ref || github.ref_name';
/** The repository the built branch lives in: the fork's for a fork's pull request. */
export const HEAD_REPOSITORY_EXPRESSION =
  'github.event.pull_request.head.repo.full_name || github.repository';
/**
 * The branch a run is grouped by. A `delete` event's ref_name is the default branch, so its run
 * is keyed on the deleted ref instead (`deleted:` cannot start a branch name: ':' is not allowed).
 * A pull request from the main branch itself (main into a release branch, say) is keyed `pr:<main>`:
 * it builds a branch cache, not main's, and a push to main that is the head of an open pull request
 * starts a push run and a pull_request run, so in main's group the one queued last would displace
 * the other's pending run, the deploy of main included.
 */
export function concurrencyBranchExpression(mainBranch: string): string {
  return `github.event_name == 'delete' && format('deleted:{0}', github.event.ref) || github.event_name == 'pull_request' && github.head_ref == ${literal(mainBranch)} && format('pr:{0}', github.head_ref) || ${BRANCH_EXPRESSION}`;
}
/**
 * Fork pull requests get no OIDC token (so no AWS) and must never write a cache. Pushes,
 * dispatches and same-repository pull requests are trusted.
 */
export const TRUSTED_EXPRESSION =
  "github.event_name != 'pull_request' || github.event.pull_request.head.repo.full_name == github.repository";

/**
 * Whether a run builds the main branch (a push or dispatch, never a pull request) is decided in
 * the shell, because GitHub expressions compare strings case-insensitively: `github.ref ==
 * 'refs/heads/main'` is true for a branch named `Main`, which would then write main's cache, push
 * and deploy. Everything that must happen only on main reads this step's `is-main` output.
 */
export function mainBranchStep(config: ResolvedConfig): Step {
  return {
    name: 'Decide whether this is a build of the main branch',
    id: 'main',
    env: { MAIN_REF: `refs/heads/${config.mainBranch}` },
    run: MAIN_BRANCH_SCRIPT,
  };
}

export const MAIN_BRANCH_SCRIPT = [
  'set -euo pipefail',
  '# Exact, case-sensitive comparison (GitHub expressions ignore case).',
  'if [ "$GITHUB_REF" = "$MAIN_REF" ] && [ "$GITHUB_EVENT_NAME" != "pull_request" ]; then',
  '  echo "is-main=true" >> "$GITHUB_OUTPUT"',
  'else',
  '  echo "is-main=false" >> "$GITHUB_OUTPUT"',
  'fi',
].join('\n');

const IS_MAIN = "steps.main.outputs.is-main == 'true'";

/** The scheduled (or requested) cold build that refreshes the seed cache. */
export const SEED_RUN_EXPRESSION =
  "github.event_name == 'schedule' || (github.event_name == 'workflow_dispatch' && inputs.reseed)";

// ---------------------------------------------------------------------------------------------
// Building blocks. Each job is assembled from these, so that other job shapes (a build job per
// platform, another CI) reuse the same role choice, scope computation and bake invocation.
// ---------------------------------------------------------------------------------------------

/** Whose token a job carries decides nothing by itself: the job asks for the role of its work. */
export function roleArnOf(config: ResolvedConfig, kind: RoleKind): string {
  return ciRole(config, kind).arn;
}

/**
 * The role of a build: the main role for a build of the main branch (it pushes images and writes
 * main.*), the branch role for any other (it writes only the branch-cache repositories). The
 * choice reads the shell's exact `is-main` answer; the trust policies then refuse a token whose
 * subject does not match, so a branch that changed this expression still gets no main role.
 */
export function buildRoleExpression(
  config: ResolvedConfig,
  work: Extract<Work, 'build' | 'prune'> = 'build',
  isMain = IS_MAIN,
): string {
  const onMain = roleArnOf(config, roleForWork(config, work, true));
  const elsewhere = roleArnOf(config, roleForWork(config, work, false));
  return expr(`${isMain} && ${literal(onMain)} || ${literal(elsewhere)}`);
}

export function credentialsStep(
  config: ResolvedConfig,
  roleToAssume: string,
  condition?: string,
): Step {
  return {
    name: 'Configure AWS credentials (OIDC)',
    ...(condition ? { if: condition } : {}),
    uses: ACTIONS.configureAwsCredentials,
    with: { 'role-to-assume': roleToAssume, 'aws-region': config.aws.region },
  };
}

/**
 * The step (id `cache`) that computes a build's cache scope and, per image, the repository its
 * own scope lives in (`CACHE_REPOSITORY_<IMAGE>`): see branchScopeScript.
 */
export function cacheScopeStep(
  config: ResolvedConfig,
  branch: string,
  isMain: string,
  name = 'Compute the cache scope of this branch',
): Step {
  return {
    name,
    id: 'cache',
    env: { BRANCH: branch, IS_MAIN: isMain },
    run: branchScopeScript(config.images),
  };
}

/** The bake variables of a build's own cache, from the `cache` step's outputs. */
export function cacheEnv(config: ResolvedConfig): Record<string, string> {
  return {
    [BAKE_VARIABLES.cacheScope]: expr('steps.cache.outputs.scope'),
    ...cacheRepositoryEnv(config),
  };
}

/** Only the repositories (CACHE_REPOSITORY_<IMAGE>), from the `cache` step's outputs. */
export function cacheRepositoryEnv(config: ResolvedConfig): Record<string, string> {
  return Object.fromEntries(
    config.images.map((image) => {
      const variable = cacheRepositoryVariable(image.name);
      return [variable, expr(`steps.cache.outputs.${variable}`)];
    }),
  );
}

/** The same variables as literals, for a job that always writes the main cache repository. */
function mainCacheEnv(config: ResolvedConfig, scope: string): Record<string, string> {
  return {
    [BAKE_VARIABLES.cacheScope]: scope,
    ...Object.fromEntries(
      config.images.map((image) => [
        cacheRepositoryVariable(image.name),
        ownCacheRepository(image, true),
      ]),
    ),
  };
}

const setupBuildx = (config: ResolvedConfig): Step => ({
  name: 'Set up Docker Buildx (pinned BuildKit)',
  uses: ACTIONS.setupBuildx,
  with: { 'driver-opts': `image=${config.buildkit.image}` },
});

/**
 * The `push` step's output for an image: `push-<image>`, a name a GitHub expression can read
 * (an image name may start with a digit, which `steps.push.outputs.1api` could not).
 */
export const pushOutput = (imageName: string) => `push-${imageName}`;

/**
 * Whether each image is pushed: only on the main branch, and not when `<repository>:<sha>`
 * already exists. An IMMUTABLE repository refuses a second push of a tag with a new digest (a
 * re-run of the same commit builds new timestamps), so a re-run skips the push and deploys the
 * image the first run pushed. Outputs one `true`/`false` per image (`pushOutput`).
 */
export function imageTagCheckStep(
  config: ResolvedConfig,
  condition?: string,
  images: readonly ImageSettings[] = config.images,
): Step {
  const step = {
    name: 'Push only images whose commit tag is not in ECR yet (a re-run pushes nothing twice)',
    id: 'push',
    ...(condition ? { if: condition } : {}),
  };
  if (config.ecr.imageTagMutability === 'MUTABLE') {
    // A re-run may push over a MUTABLE tag: nothing to ask ECR, nothing added before the bake.
    return {
      ...step,
      name: 'Push every image on the main branch (commit tags are MUTABLE)',
      env: { IS_MAIN: expr('steps.main.outputs.is-main') },
      run: [
        'set -euo pipefail',
        ...images.map((image) => `echo "${pushOutput(image.name)}=$IS_MAIN" >> "$GITHUB_OUTPUT"`),
      ].join('\n'),
    };
  }
  // One awscli start per image (~0.45 s each): all at once, then wait. Each writes one short line
  // to GITHUB_OUTPUT (an append, so they do not interleave).
  const checks = [
    ...images.map((image) => `decide '${pushOutput(image.name)}' '${image.repository}' &`),
    'wait',
  ];
  return {
    ...step,
    env: { IS_MAIN: expr('steps.main.outputs.is-main'), IMAGE_TAG: expr('github.sha') },
    run: [...IMAGE_TAG_CHECK_SCRIPT, ...checks].join('\n'),
  };
}

export const IMAGE_TAG_CHECK_SCRIPT = imageTagCheckLines();

/**
 * The `decide <output> <repository>` function of the image tag check, writing `<output>=true|false`
 * lines to the file `outputVariable` names and warnings with `warning` (GitHub's `::warning::`
 * annotation; the GitLab pipeline prints `WARNING: `).
 */
export function imageTagCheckLines(outputVariable = 'GITHUB_OUTPUT', warning = '::warning::') {
  const output = `"$${outputVariable}"`;
  return [
    'set -euo pipefail',
    '# decide <output> <repository>: writes <output>=true when the commit tag must be pushed.',
    'decide() {',
    '  if [ "$IS_MAIN" != "true" ]; then',
    `    echo "$1=false" >> ${output}`,
    '    return',
    '  fi',
    '  if ! command -v aws >/dev/null 2>&1; then',
    `    echo "${warning}no aws CLI on this runner: pushing $2:$IMAGE_TAG without checking whether it exists"`,
    `    echo "$1=true" >> ${output}`,
    '    return',
    '  fi',
    '  local error',
    '  if error=$(aws ecr describe-images --repository-name "$2" --image-ids "imageTag=$IMAGE_TAG" \\',
    '      --query "imageDetails[0].imageDigest" --output text 2>&1 >/dev/null); then',
    '    echo "$2:$IMAGE_TAG exists already (a re-run of this commit): not pushing it again"',
    `    echo "$1=false" >> ${output}`,
    '  elif [[ "$error" == *ImageNotFoundException* ]]; then',
    `    echo "$1=true" >> ${output}`,
    '  else',
    `    echo "${warning}could not tell whether $2:$IMAGE_TAG exists, pushing it: $(printf '%s' "$error" | tr '\\n' ' ')"`,
    `    echo "$1=true" >> ${output}`,
    '  fi',
    '}',
  ];
}

/**
 * The bake invocation of a build with the registry cache: the generated bake file from the working
 * tree (`source: .`, so uncommitted generated files count), the cache variables from the `cache`
 * step, and one `<target>.push=` per image from the `push` step.
 */
export function registryBakeStep(
  config: ResolvedConfig,
  condition?: string,
  leg: BuildLeg = sharedLeg(config),
): Step {
  return {
    name: 'Build with the registry cache, push on the main branch',
    ...(leg.platform === undefined ? {} : { id: PLATFORM_BAKE_STEP }),
    ...(condition ? { if: condition } : {}),
    uses: ACTIONS.bake,
    env: { ...cacheEnv(config), [BAKE_VARIABLES.imageTag]: expr('github.sha') },
    with: {
      source: '.',
      files: config.paths.bakeFile,
      ...bakeTargetsInput(config, leg),
      set: leg.targets
        .map(
          (target) =>
            `${target.name}.push=${expr(`steps.push.outputs.${pushOutput(target.image.name)}`)}`,
        )
        .join('\n'),
    },
  };
}

/** The id of a per-platform job's bake step, whose `metadata` output holds the pushed digests. */
const PLATFORM_BAKE_STEP = 'bake';

/**
 * The bake-action `targets` input of a leg: only when the bake file has per-platform targets,
 * which a job of another platform must not build (without it, bake builds the `default` group).
 */
function bakeTargetsInput(config: ResolvedConfig, leg: BuildLeg): { targets?: string } {
  return hasPlatformLegs(config)
    ? { targets: leg.targets.map((target) => target.name).join(',') }
    : {};
}

/** The one leg of a configuration without per-platform builds: every image, on runsOn. */
function sharedLeg(config: ResolvedConfig): BuildLeg {
  const [first, ...more] = buildLegs(config);
  if (!first || more.length > 0 || first.platform !== undefined) {
    throw new Error('this configuration builds per platform: name the leg');
  }
  return first;
}

/** The images a leg builds, each once. */
export function legImages(leg: BuildLeg): ImageSettings[] {
  return [...new Set(leg.targets.map((target) => target.image))];
}

/** A job id of a leg: `build`, `build-linux-arm64`; `seed`, `seed-linux-arm64`. */
export function legJobId(kind: 'build' | 'seed', leg: BuildLeg): string {
  return `${kind}${leg.idSuffix}`;
}

/**
 * QEMU, registered before buildx (Docker's multi-platform guide): a job that builds an image
 * `emulated`, or an image on one platform that is not its runner's, builds platforms its runner
 * cannot run. Only those platforms are installed (BuildLeg.emulatedPlatforms), from the pinned
 * binfmt image. It runs before the job's credentials step: that image runs privileged.
 */
export function setupQemuStep(leg: BuildLeg): Step {
  return {
    name: 'Set up QEMU (emulated platforms)',
    uses: ACTIONS.setupQemu,
    // The binfmt image pinned (docs/actions.md), not the action's default `latest`.
    with: { image: BINFMT_IMAGE, platforms: leg.emulatedPlatforms.join(',') },
  };
}

/** The output of a per-platform job that passes on one image's pushed digest. */
export const digestOutput = (imageName: string) => `digest-${imageName}`;

/** The environment variable of a per-platform job's digest step, or the merge step, for an image. */
const imageVariable = (prefix: string, imageName: string) =>
  `${prefix}_${imageName.toUpperCase().replaceAll('-', '_')}`;

/**
 * A per-platform job's last step: the digest of each image it pushed, from the bake's metadata
 * (`containerimage.digest` of its target), as the job's `digest-<image>` output for the merge.
 * Nothing for an image it did not push. The metadata reaches the shell through env only.
 */
export function platformDigestsStep(leg: BuildLeg, condition: string): Step {
  const metadata = `steps.${PLATFORM_BAKE_STEP}.outputs.metadata`;
  return {
    name: 'Pass on the digests of the platform images pushed',
    id: 'digests',
    if: condition,
    env: Object.fromEntries(
      leg.targets.flatMap((target) => [
        [
          imageVariable('PUSH', target.image.name),
          expr(`steps.push.outputs.${pushOutput(target.image.name)}`),
        ],
        [
          imageVariable('DIGEST', target.image.name),
          expr(
            `${metadata} && fromJSON(${metadata})[${literal(target.name)}]['containerimage.digest'] || ''`,
          ),
        ],
      ]),
    ),
    run: [
      ...PLATFORM_DIGESTS_SCRIPT,
      ...leg.targets.map(
        (target) =>
          `pass '${digestOutput(target.image.name)}' "$${imageVariable('PUSH', target.image.name)}" "$${imageVariable('DIGEST', target.image.name)}"`,
      ),
    ].join('\n'),
  };
}

export const PLATFORM_DIGESTS_SCRIPT = [
  'set -euo pipefail',
  '# pass <output> <pushed> <digest>: the digest of a platform image this job pushed, for the merge.',
  'pass() {',
  '  if [ "$2" != "true" ]; then',
  '    return',
  '  fi',
  '  if [[ ! "$3" =~ ^sha256:[0-9a-f]{64}$ ]]; then',
  `    echo "::error::the build reported no digest for $1 (got '$3')"`,
  '    exit 1',
  '  fi',
  '  echo "$1=$3" >> "$GITHUB_OUTPUT"',
  '}',
];

const checkout = (): Step => ({
  name: 'Check out',
  uses: ACTIONS.checkout,
  with: { 'persist-credentials': false },
});

// ---------------------------------------------------------------------------------------------
// The workflow
// ---------------------------------------------------------------------------------------------

export function deployWorkflow(config: ResolvedConfig, version = GENERATOR_VERSION): Workflow {
  // One build job per leg: `build` for the images built together, `build-<platform>` for each
  // platform of the images built natively per platform (docs/multi-platform.md), then the merge.
  const legs = buildLegs(config);
  const jobs: Record<string, Job> = {};
  for (const leg of legs) jobs[legJobId('build', leg)] = buildJob(config, leg);
  if (hasPlatformLegs(config)) jobs.merge = mergeJob(config, legs);
  if (config.workflow.deploy) jobs.deploy = deployJob(config, legs);
  if (config.prune.sweep) jobs.prune = pruneJob(config, legs);
  jobs['delete-branch-cache'] = deleteBranchCacheJob(config);
  if (config.seed.enabled) {
    jobs['sweep-branch-caches'] = sweepBranchCachesJob(config);
    for (const leg of legs) jobs[legJobId('seed', leg)] = seedJob(config, leg);
  }
  jobs.apply = applyJob(config, version);

  const on: Record<string, unknown> = {};
  if (config.workflow.on.push.length > 0) on.push = { branches: config.workflow.on.push };
  if (config.workflow.on.pullRequest) on.pull_request = {};
  if (config.workflow.on.workflowDispatch || config.seed.enabled) {
    on.workflow_dispatch = config.seed.enabled
      ? {
          inputs: {
            reseed: {
              description: 'Refresh the seed cache with a cold build instead of a normal build',
              type: 'boolean',
              default: false,
            },
          },
        }
      : {};
  }
  if (config.seed.enabled) on.schedule = [{ cron: config.seed.schedule }];
  on.delete = {};

  // A seed run gets a group of its own ('seed:' cannot start a branch name either): in main's
  // group, a scheduled cold build would hold up a deploy of main, or cancel a pending one while
  // deploying nothing itself.
  const concurrencyBranch = config.seed.enabled
    ? `(${SEED_RUN_EXPRESSION}) && format('seed:{0}', ${BRANCH_EXPRESSION}) || ${concurrencyBranchExpression(config.mainBranch)}`
    : concurrencyBranchExpression(config.mainBranch);

  const workflow: Workflow = {
    name: config.workflow.name,
    on,
    // Nothing by default; each job asks for exactly what it needs.
    permissions: {},
    concurrency: {
      // One run per branch at a time, so two builds never race on one cache tag. Only runs of
      // the main branch itself may share its group, since a newer run in a group cancels a
      // pending one: a fork's pull request (forks often open them from their own `main`) gets a
      // group of its own, and so do a pull request from main and a branch deletion. Superseded
      // runs are cancelled, except in the main branch's group, where a deploy must never be cut
      // off midway.
      group: `${expr('github.workflow')}-${expr(HEAD_REPOSITORY_EXPRESSION)}-${expr(concurrencyBranch)}`,
      'cancel-in-progress': expr(`(${concurrencyBranch}) != ${literal(config.mainBranch)}`),
    },
    jobs,
  };
  return pinWorkflowActions(workflow, config.workflow.pinActions);
}

/**
 * Build (and on main, push): what the deploy waits for, and nothing else. No install and no
 * pruner run here; pruning is the prune job's, which the deploy does not wait for.
 */
function buildJob(config: ResolvedConfig, leg: BuildLeg): Job {
  const isTrusted = "env.TRUSTED == 'true'";
  const perPlatform = leg.platform !== undefined;
  return {
    name: perPlatform ? `Build (${leg.platform})` : 'Build',
    if: buildCondition(config),
    'runs-on': githubRunner(config, leg),
    permissions: { contents: 'read', 'id-token': 'write' },
    env: { TRUSTED: expr(TRUSTED_EXPRESSION) },
    outputs: {
      'is-main': expr('steps.main.outputs.is-main'),
      // The digest of each image this platform pushed, for the merge job.
      ...(perPlatform
        ? Object.fromEntries(
            leg.targets.map((target) => {
              const output = digestOutput(target.image.name);
              return [output, expr(`steps.digests.outputs.${output}`)];
            }),
          )
        : {}),
    },
    steps: [
      checkout(),
      mainBranchStep(config),
      cacheScopeStep(config, expr(BRANCH_EXPRESSION), expr('steps.main.outputs.is-main')),
      ...(leg.emulate ? [setupQemuStep(leg)] : []),
      credentialsStep(config, buildRoleExpression(config), isTrusted),
      { name: 'Log in to Amazon ECR', if: isTrusted, uses: ACTIONS.ecrLogin },
      imageTagCheckStep(config, isTrusted, legImages(leg)),
      setupBuildx(config),
      registryBakeStep(config, isTrusted, leg),
      {
        // Without credentials the ECR cache cannot be read, and a fork must not write one:
        // point both at a throwaway local directory instead.
        name: 'Build a fork pull request (no AWS, no shared cache)',
        if: "env.TRUSTED != 'true'",
        uses: ACTIONS.bake,
        with: {
          source: '.',
          files: config.paths.bakeFile,
          ...bakeTargetsInput(config, leg),
          push: false,
          set: [
            '*.cache-from=type=local,src=/tmp/cached-deploy-fork-cache',
            '*.cache-to=type=local,dest=/tmp/cached-deploy-fork-cache',
          ].join('\n'),
        },
      },
      ...(perPlatform ? [platformDigestsStep(leg, isTrusted)] : []),
    ],
  };
}

/**
 * The manifest list of each image built per platform (docs/multi-platform.md), on the main branch
 * once every platform's job has pushed its image by digest: `docker buildx imagetools create -t
 * <repository>:<sha> <digest>…`, with the main role. An image none of the jobs pushed (its commit
 * tag exists: a re-run) is left as it is, and so is a tag that exists by the time the merge runs
 * (IMMUTABLE; with MUTABLE tags nothing is asked, and the tag moves to the new list).
 */
function mergeJob(config: ResolvedConfig, legs: readonly BuildLeg[]): Job {
  const platformLegs = legs.filter((leg) => leg.platform !== undefined);
  const [first] = platformLegs as [BuildLeg];
  const isMain = `needs.${legJobId('build', first)}.outputs.is-main`;
  const images = config.images.filter((image) =>
    platformLegs.some((leg) => leg.targets.some((target) => target.image === image)),
  );
  // One variable per image and platform: DIGEST_1, DIGEST_2, … in the order of the merge lines.
  const env: Record<string, string> = {
    [BAKE_VARIABLES.registry]: registryHost(config.aws.accountId, config.aws.region),
    [BAKE_VARIABLES.imageTag]: expr('github.sha'),
  };
  const lines = images.map((image) => {
    // In the order the image lists its platforms: the order of the manifest list.
    const args = image.platforms.flatMap((platform) => {
      const leg = platformLegs.find((each) => each.platform === platform) as BuildLeg;
      const variable = `DIGEST_${Object.keys(env).length - 1}`;
      env[variable] = expr(`needs.${legJobId('build', leg)}.outputs.${digestOutput(image.name)}`);
      return [`'${platform}'`, `"$${variable}"`];
    });
    return ['merge', `'${image.repository}'`, ...args].join(' ');
  });
  return {
    name: 'Merge the platform images into one manifest list per image',
    needs: platformLegs.map((leg) => legJobId('build', leg)),
    if: `${isMain} == 'true'`,
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    outputs: { 'is-main': expr(isMain) },
    steps: [
      credentialsStep(config, roleArnOf(config, roleForWork(config, 'merge', true))),
      { name: 'Log in to Amazon ECR', uses: ACTIONS.ecrLogin },
      setupBuildx(config),
      {
        name: 'Create each image tag from its platform digests',
        env,
        run: [...mergeScript(config), ...lines].join('\n'),
      },
    ],
  };
}

/**
 * The merge step's shell function (see mergeJob); the tag check only with IMMUTABLE tags. Errors
 * and warnings are GitHub's annotations (`::error::`, `::warning::`); the GitLab pipeline runs the
 * same function with plain `ERROR: ` and `WARNING: ` prefixes.
 */
export function mergeScript(
  config: ResolvedConfig,
  annotations: { error: string; warning: string } = { error: '::error::', warning: '::warning::' },
): string[] {
  const immutable = config.ecr.imageTagMutability === 'IMMUTABLE';
  const { error, warning } = annotations;
  return [
    'set -euo pipefail',
    '# merge <repository> <platform> <digest> [<platform> <digest>]...: makes <repository>:$IMAGE_TAG',
    '# the manifest list of the platform images the build jobs pushed by digest.',
    'merge() {',
    '  local repository=$1 platform digest error',
    '  local sources=() missing=()',
    '  shift',
    '  while [ $# -gt 0 ]; do',
    '    platform=$1 digest=$2',
    '    shift 2',
    '    if [ -z "$digest" ]; then',
    '      missing+=("$platform")',
    '    elif [[ "$digest" =~ ^sha256:[0-9a-f]{64}$ ]]; then',
    '      sources+=("$REGISTRY/$repository@$digest")',
    '    else',
    `      echo "${error}$repository: the $platform build passed on '$digest', not a digest"`,
    '      return 1',
    '    fi',
    '  done',
    `  if [ "\${#sources[@]}" -eq 0 ]; then`,
    '    echo "$repository:$IMAGE_TAG: no platform pushed (a re-run of this commit): nothing to merge"',
    '    return 0',
    '  fi',
    `  if [ "\${#missing[@]}" -gt 0 ]; then`,
    `    echo "${error}$repository: no digest from the \${missing[*]} build: refusing a manifest list without every platform"`,
    '    return 1',
    '  fi',
    ...(immutable
      ? [
          '  # IMMUTABLE: a tag that exists by now (a re-run of the merge alone) is left as it is.',
          '  if ! command -v aws >/dev/null 2>&1; then',
          `    echo "${warning}no aws CLI on this runner: creating $repository:$IMAGE_TAG without checking whether it exists"`,
          '  elif error=$(aws ecr describe-images --repository-name "$repository" --image-ids "imageTag=$IMAGE_TAG" \\',
          '      --query "imageDetails[0].imageDigest" --output text 2>&1 >/dev/null); then',
          '    echo "$repository:$IMAGE_TAG exists already (a re-run of this commit): not replacing it"',
          '    return 0',
          '  elif [[ "$error" != *ImageNotFoundException* ]]; then',
          `    echo "${warning}could not tell whether $repository:$IMAGE_TAG exists, creating it: $(printf '%s' "$error" | tr '\\n' ' ')"`,
          '  fi',
        ]
      : []),
    `  docker buildx imagetools create --tag "$REGISTRY/$repository:$IMAGE_TAG" "\${sources[@]}"`,
    '}',
  ];
}

/**
 * The deploy: right after the build of main, with the deploy role when an environment gates it
 * (the token's subject is then `environment:<name>`, which only that role trusts), else the main
 * role.
 */
function deployJob(config: ResolvedConfig, legs: readonly BuildLeg[]): Job {
  const deploy = config.workflow.deploy;
  if (!deploy) throw new Error('no deploy configured');
  // The build of the images built together, and the merge of those built per platform (which
  // waits for every platform's job).
  const needs = [
    ...(legs.some((leg) => leg.platform === undefined) ? ['build'] : []),
    ...(hasPlatformLegs(config) ? ['merge'] : []),
  ];
  const [gate] = needs as [string];
  return {
    name: 'Deploy',
    needs: needs.length === 1 ? gate : needs,
    if: `needs.${gate}.outputs.is-main == 'true'`,
    'runs-on': config.workflow.runsOn,
    ...(deploy.environment ? { environment: deploy.environment } : {}),
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      checkout(),
      credentialsStep(config, roleArnOf(config, roleForWork(config, 'deploy', true))),
      {
        name: 'Deploy',
        env: {
          [BAKE_VARIABLES.registry]: registryHost(config.aws.accountId, config.aws.region),
          [BAKE_VARIABLES.imageTag]: expr('github.sha'),
        },
        run: deploy.command,
      },
    ],
  };
}

/**
 * The sweep after a build, beside the deploy rather than before it: deletes untagged cache
 * artifacts older than the grace period from the repositories this build wrote (the cache
 * repositories with the main role on main, the branch-cache repositories with the branch role
 * elsewhere). Every digest a build supersedes becomes such an artifact, so no `record` before the
 * build is needed. Also after a failed build; never for a fork (no credentials).
 */
function pruneJob(config: ResolvedConfig, legs: readonly BuildLeg[]): Job {
  const builds = legs.map((leg) => legJobId('build', leg));
  const [first] = builds as [string];
  // Every build job has the same `if:`, so the first one's result says whether they ran.
  return {
    name: 'Prune superseded cache artifacts',
    needs: builds.length === 1 ? first : builds,
    if: `!cancelled() && needs.${first}.result != 'skipped' && (${TRUSTED_EXPRESSION})`,
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      checkout(),
      mainBranchStep(config),
      cacheScopeStep(config, expr(BRANCH_EXPRESSION), expr('steps.main.outputs.is-main')),
      installPrunerStep(config),
      credentialsStep(config, buildRoleExpression(config, 'prune')),
      {
        name: 'Sweep untagged cache artifacts older than the grace period',
        env: cacheRepositoryEnv(config),
        run: prunerCommand(config, PRUNER, 'prune', ['--sweep', ...pruneFlags(config)]),
      },
    ],
  };
}

/** A deleted branch's cache tags, deleted from the branch-cache repositories with the branch role. */
function deleteBranchCacheJob(config: ResolvedConfig): Job {
  return {
    name: 'Delete the cache of a deleted branch',
    if: "github.event_name == 'delete' && github.event.ref_type == 'branch'",
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      checkout(),
      cacheScopeStep(
        config,
        expr('github.event.ref'),
        'false',
        'Compute the cache scope of the deleted branch',
      ),
      installPrunerStep(config),
      credentialsStep(config, roleArnOf(config, roleForWork(config, 'delete-branch-cache', false))),
      {
        name: "Delete the branch's cache tags",
        env: cacheEnv(config),
        run: prunerCommand(config, PRUNER, 'delete-branch', []),
      },
    ],
  };
}

function buildCondition(config: ResolvedConfig): string {
  const skip = ["github.event_name != 'delete'"];
  if (config.seed.enabled) skip.push(`!(${SEED_RUN_EXPRESSION})`);
  // With seed on, workflow_dispatch exists for reseeds only unless the config asks for manual builds.
  if (!config.workflow.on.workflowDispatch) skip.push("github.event_name != 'workflow_dispatch'");
  return skip.join(' && ');
}

/** Where the CLI is installed for the apply job: outside the checkout. */
const CLI_DIR = '$RUNNER_TEMP/cached-deploy-cli';

/**
 * Makes ECR match the committed ecr/ files (repositories, tag mutability, lifecycle policies,
 * previewed before they are put) when a push to main changed them. When the previous commit
 * cannot be fetched, it applies anyway: apply is idempotent and writes nothing when in sync. The
 * pinned CLI is installed (scripts off) before the credentials exist, and run after.
 */
function applyJob(config: ResolvedConfig, version: string): Job {
  const changed = "steps.changed.outputs.changed == 'true'";
  return {
    name: 'Apply the ECR settings and lifecycle policies',
    if: "github.event_name == 'push'",
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      {
        name: 'Check out (with history, to compare with the commit before the push)',
        uses: ACTIONS.checkout,
        // The whole history instead of a fetch of `before` later: that fetch needs credentials in
        // a private repository, and none are kept.
        with: { 'persist-credentials': false, 'fetch-depth': 0 },
      },
      mainBranchStep(config),
      {
        name: `Did this push change ${config.paths.ecrDir}/ or cached-deploy.yml?`,
        id: 'changed',
        if: "steps.main.outputs.is-main == 'true'",
        env: { BEFORE: expr('github.event.before'), ECR_DIR: config.paths.ecrDir },
        run: [
          'set -euo pipefail',
          '# A new branch, or a force-push whose old head is gone: cannot tell, so apply (it is',
          '# idempotent and writes nothing when ECR already matches).',
          'if [ -z "$BEFORE" ] || [ "$BEFORE" = "0000000000000000000000000000000000000000" ] ||',
          '  ! git cat-file -e "$BEFORE^{commit}" 2>/dev/null; then',
          '  echo "changed=true" >> "$GITHUB_OUTPUT"',
          'elif git diff --quiet "$BEFORE" HEAD -- ":(literal)$ECR_DIR" ":(literal)cached-deploy.yml"; then',
          '  echo "changed=false" >> "$GITHUB_OUTPUT"',
          'else',
          '  echo "changed=true" >> "$GITHUB_OUTPUT"',
          'fi',
        ].join('\n'),
      },
      {
        // The generator that wrote the files applies them: the same version, pinned (its
        // npm-shrinkwrap.json pins its dependencies), installed before any credentials exist.
        name: `Install create-cached-deploy ${version} (no install scripts)`,
        if: changed,
        run: `npm install --prefix "${CLI_DIR}" --no-save --ignore-scripts --no-audit --no-fund --loglevel=error create-cached-deploy@${version}`,
      },
      credentialsStep(config, roleArnOf(config, roleForWork(config, 'apply', true)), changed),
      {
        name: 'Apply',
        if: changed,
        run: `"${CLI_DIR}/node_modules/.bin/create-cached-deploy" apply`,
      },
    ],
  };
}

/**
 * The seed: every target built without importing any cache (so the result cannot inherit an
 * eroded cache) and exported mode=max to seed.<image> in the cache repository, with the main
 * role. Ordinary builds import it and never write it; only this job sets CACHE_SCOPE=seed, and
 * only on the main branch.
 */
function seedJob(config: ResolvedConfig, leg: BuildLeg): Job {
  const scope = mainCacheEnv(config, SEED_SCOPE);
  return {
    name: `Refresh the seed cache (cold build${leg.platform === undefined ? '' : `, ${leg.platform}`})`,
    if: SEED_RUN_EXPRESSION,
    'runs-on': githubRunner(config, leg),
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      checkout(),
      mainBranchStep(config),
      {
        name: 'Refuse to seed from any branch but main',
        if: "steps.main.outputs.is-main != 'true'",
        run: 'echo "::error::The seed cache is refreshed only from the main branch." && exit 1',
      },
      installPrunerStep(config),
      ...(leg.emulate ? [setupQemuStep(leg)] : []),
      credentialsStep(config, roleArnOf(config, roleForWork(config, 'seed', true))),
      { name: 'Log in to Amazon ECR', uses: ACTIONS.ecrLogin },
      {
        name: 'Record the seed digests this build will supersede',
        env: scope,
        run: prunerCommand(config, PRUNER, 'record', [`--state "${DIGESTS_FILE}"`], leg.targets),
      },
      setupBuildx(config),
      {
        name: 'Cold build, exporting the seed cache',
        id: SEED_BUILD_STEP,
        uses: ACTIONS.bake,
        env: { ...scope, [BAKE_VARIABLES.imageTag]: expr('github.sha') },
        with: {
          source: '.',
          files: config.paths.bakeFile,
          ...bakeTargetsInput(config, leg),
          push: false,
          'no-cache': true,
          set: seedBakeOverrides(config, leg.targets).join('\n'),
        },
      },
      {
        // Not after the refusal: a run off main has installed no pruner and holds no credentials.
        name: 'Prune superseded seed artifacts',
        if: `!cancelled() && ${IS_MAIN}`,
        env: scope,
        run: prunerCommand(
          config,
          PRUNER,
          'prune',
          [
            `--state "${DIGESTS_FILE}"`,
            ...(config.prune.sweep ? ['--sweep'] : []),
            ...pruneFlags(config),
          ],
          leg.targets,
        ),
      },
      {
        name: 'Say in the job summary whether the seed was refreshed',
        if: `!cancelled() && ${IS_MAIN}`,
        env: {
          OUTCOME: expr(`steps.${SEED_BUILD_STEP}.outcome`),
          SEED_CACHES: leg.targets
            .map(
              (target) =>
                `${target.image.cacheRepository}:${cacheTag(SEED_SCOPE, target.tagSuffix)}`,
            )
            .join(' '),
        },
        run: SEED_SUMMARY_SCRIPT,
      },
    ],
  };
}

const SEED_BUILD_STEP = 'seed-build';

/**
 * The seed job's `--set` overrides of the bake file (docs/doctor.md):
 * - `*.cache-from=` (an empty value) clears every import: no registry lookup, and no "local cache
 *   import … not found" warning, which a placeholder local directory printed;
 * - `*.output=type=cacheonly`: the result stays in the cache on purpose, which buildx's "No output
 *   specified" warning otherwise reports (buildx docs/bake-reference.md, `target.output`);
 * - per image, `cache-to` the seed tag without `ignore-error=true`: the seed is this job's only
 *   output, so a failed export must fail the job instead of passing unnoticed.
 */
export function seedBakeOverrides(
  config: ResolvedConfig,
  targets: readonly BuildTarget[] = buildTargets(config),
): string[] {
  const registry = registryHost(config.aws.accountId, config.aws.region);
  return [
    '*.cache-from=',
    '*.output=type=cacheonly',
    ...targets.map(
      (target) =>
        `${target.name}.cache-to=type=registry,ref=${registry}/${target.image.cacheRepository}:${cacheTag(SEED_SCOPE, target.tagSuffix)},${CACHE_EXPORT_LAYOUT}`,
    ),
  ];
}

/** The seed job's last word, in the run's summary page: refreshed, or not and why to look. */
export const SEED_SUMMARY_SCRIPT = [
  'set -euo pipefail',
  'if [ "$OUTCOME" = "success" ]; then',
  "  title='### Seed cache refreshed'",
  `  lead="A cold build exported every image's seed cache:"`,
  'else',
  "  title='### Seed cache NOT refreshed'",
  '  lead="The cold build or its cache export did not succeed (outcome: $OUTCOME), so these caches were not rewritten:"',
  'fi',
  '{',
  `  printf '%s\\n\\n%s\\n' "$title" "$lead"`,
  '  # Cache repositories and tags hold no spaces or glob characters.',
  // \x60 is a backquote: Markdown code, and nothing for the shell (or shellcheck) to expand.
  '  for cache in $SEED_CACHES; do printf -- \'- \\x60%s\\x60\\n\' "$cache"; done',
  '  if [ "$OUTCOME" != "success" ]; then',
  `    printf '\\n%s\\n' 'Builds keep importing the previous seed. See the step "Cold build, exporting the seed cache", then run this workflow again with reseed.'`,
  '  fi',
  '} >>"$GITHUB_STEP_SUMMARY"',
].join('\n');

/** Where the pruner runs on the runner: outside the checkout, so nothing is added to the repo. */
export const PRUNER_DIR = '$RUNNER_TEMP/cached-deploy';
const PRUNER = `node "${PRUNER_DIR}/prune-ecr-cache.mjs"`;
const DIGESTS_FILE = `${PRUNER_DIR}/cache-digests.json`;

/**
 * Installs the pruner's one dependency from the generated lockfile (integrity hashes checked by
 * `npm ci`, install scripts off). Every job runs it before its credentials step, so nothing
 * unpinned ever runs with AWS credentials in its environment.
 */
export function installPrunerStep(config: ResolvedConfig, condition?: string): Step {
  const paths = prunerPaths(config);
  return {
    name: 'Install the cache pruner from its lockfile (no install scripts)',
    ...(condition ? { if: condition } : {}),
    run: [
      'set -euo pipefail',
      `mkdir -p "${PRUNER_DIR}"`,
      `cp "${paths.script}" "${PRUNER_DIR}/prune-ecr-cache.mjs"`,
      `cp "${paths.packageJson}" "${PRUNER_DIR}/package.json"`,
      `cp "${paths.lockfile}" "${PRUNER_DIR}/package-lock.json"`,
      `npm ci --prefix "${PRUNER_DIR}" --ignore-scripts --no-audit --no-fund --loglevel=error`,
    ].join('\n'),
  };
}

// ---------------------------------------------------------------------------------------------
// The scheduled branch sweep
// ---------------------------------------------------------------------------------------------

/**
 * The scheduled branch sweep (docs/ecr-api-and-pruning.md, "The branch sweep"): on the seed's
 * schedule, the cache tags of every branch that no longer exists, with the branch role. It
 * catches what the delete-branch-cache job missed (a branch deleted while the workflow was
 * broken, or before it existed). The branches are listed through the API with the job's own
 * token (contents: read): the checkout keeps no credentials, so `git ls-remote` could not read
 * a private repository. Listed before the AWS credentials exist, and the token is not in the
 * environment of any step after.
 */
function sweepBranchCachesJob(config: ResolvedConfig): Job {
  return {
    name: 'Sweep the caches of deleted branches',
    if: "github.event_name == 'schedule'",
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      checkout(),
      installPrunerStep(config),
      {
        name: 'List the branches that exist',
        env: { GH_TOKEN: expr('github.token') },
        run: LIST_BRANCHES_SCRIPT,
      },
      credentialsStep(config, roleArnOf(config, roleForWork(config, 'sweep-branch-caches', false))),
      {
        name: 'Delete the cache tags of branches that no longer exist',
        env: { MAIN_BRANCH: config.mainBranch },
        run: sweepBranchesCommand(config, PRUNER, `"${BRANCHES_FILE}"`, '"$MAIN_BRANCH"'),
      },
    ],
  };
}

/** The branch listing the sweep reads: one raw branch name a line. */
export const BRANCHES_FILE = `${PRUNER_DIR}/branches.txt`;

/**
 * Every branch of the repository, through the REST API ("List branches", 100 a page, every page):
 * `gh` is on GitHub-hosted runners and reads GH_TOKEN. A failed listing fails the step, and the
 * pruner refuses a listing that is empty or lacks the main branch anyway.
 */
export const LIST_BRANCHES_SCRIPT = [
  'set -euo pipefail',
  `mkdir -p "${PRUNER_DIR}"`,
  `gh api --paginate "repos/$GITHUB_REPOSITORY/branches?per_page=100" --jq '.[].name' >"${BRANCHES_FILE}"`,
  `echo "$(wc -l <"${BRANCHES_FILE}") branches exist"`,
].join('\n');
