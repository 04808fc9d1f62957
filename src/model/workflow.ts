import type { ResolvedConfig } from '../config/resolve.js';
import { GENERATOR_VERSION } from '../version.js';
import { ACTIONS, PRUNER_SDK, pinWorkflowActions } from './actions.js';
import { registryHost, roleArn } from './aws.js';
import { BAKE_VARIABLES, CACHE_EXPORT_LAYOUT } from './bake.js';
import { branchScopeScript, cacheTag, SEED_SCOPE } from './cache-tags.js';

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
 */
export const CONCURRENCY_BRANCH_EXPRESSION = `github.event_name == 'delete' && format('deleted:{0}', github.event.ref) || ${BRANCH_EXPRESSION}`;
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
    env: { MAIN_REF: `refs/heads/${config.github.mainBranch}` },
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

export function deployWorkflow(config: ResolvedConfig, version = GENERATOR_VERSION): Workflow {
  const isTrusted = "env.TRUSTED == 'true'";
  const awsCredentials = (condition?: string): Step => ({
    name: 'Configure AWS credentials (OIDC)',
    ...(condition ? { if: condition } : {}),
    uses: ACTIONS.configureAwsCredentials,
    with: {
      'role-to-assume': roleArn(config.aws.accountId, config.aws.region, config.aws.roleName),
      'aws-region': config.aws.region,
    },
  });
  const bakeInputs = { source: '.', files: config.paths.bakeFile };

  const build: Job = {
    name: 'Build',
    if: buildCondition(config),
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    env: { TRUSTED: expr(TRUSTED_EXPRESSION) },
    outputs: { 'is-main': expr('steps.main.outputs.is-main') },
    steps: [
      { name: 'Check out', uses: ACTIONS.checkout, with: { 'persist-credentials': false } },
      mainBranchStep(config),
      {
        name: 'Compute the cache scope of this branch',
        id: 'cache',
        env: { BRANCH: expr(BRANCH_EXPRESSION), IS_MAIN: expr('steps.main.outputs.is-main') },
        run: branchScopeScript(config.images.map((image) => image.name)),
      },
      awsCredentials(isTrusted),
      { name: 'Log in to Amazon ECR', if: isTrusted, uses: ACTIONS.ecrLogin },
      installPruner(config, isTrusted),
      {
        name: 'Record the cache digests this build will supersede',
        if: isTrusted,
        env: { [BAKE_VARIABLES.cacheScope]: expr('steps.cache.outputs.scope') },
        run: prunerCommand(config, 'record', [`--state "${DIGESTS_FILE}"`]),
      },
      {
        name: 'Set up Docker Buildx (pinned BuildKit)',
        uses: ACTIONS.setupBuildx,
        with: { 'driver-opts': `image=${config.buildkit.image}` },
      },
      {
        name: 'Build with the registry cache, push on the main branch',
        if: isTrusted,
        uses: ACTIONS.bake,
        env: {
          [BAKE_VARIABLES.cacheScope]: expr('steps.cache.outputs.scope'),
          [BAKE_VARIABLES.imageTag]: expr('github.sha'),
        },
        with: { ...bakeInputs, push: expr(IS_MAIN) },
      },
      {
        // Also after a failed build: whatever it exported is superseded all the same.
        name: 'Prune superseded cache artifacts',
        if: `!cancelled() && ${isTrusted}`,
        run: prunerCommand(config, 'prune', pruneFlags(config)),
      },
      {
        // Without credentials the ECR cache cannot be read, and a fork must not write one:
        // point both at a throwaway local directory instead.
        name: 'Build a fork pull request (no AWS, no shared cache)',
        if: "env.TRUSTED != 'true'",
        uses: ACTIONS.bake,
        with: {
          ...bakeInputs,
          push: false,
          set: [
            '*.cache-from=type=local,src=/tmp/cached-deploy-fork-cache',
            '*.cache-to=type=local,dest=/tmp/cached-deploy-fork-cache',
          ].join('\n'),
        },
      },
    ],
  };

  const jobs: Record<string, Job> = { build };
  const deploy = config.workflow.deploy;
  if (deploy) {
    jobs.deploy = {
      name: 'Deploy',
      needs: 'build',
      if: "needs.build.outputs.is-main == 'true'",
      'runs-on': config.workflow.runsOn,
      ...(deploy.environment ? { environment: deploy.environment } : {}),
      permissions: { contents: 'read', 'id-token': 'write' },
      steps: [
        { name: 'Check out', uses: ACTIONS.checkout, with: { 'persist-credentials': false } },
        awsCredentials(),
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

  jobs['delete-branch-cache'] = {
    name: 'Delete the cache of a deleted branch',
    if: "github.event_name == 'delete' && github.event.ref_type == 'branch'",
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      { name: 'Check out', uses: ACTIONS.checkout, with: { 'persist-credentials': false } },
      {
        name: 'Compute the cache scope of the deleted branch',
        id: 'cache',
        env: { BRANCH: expr('github.event.ref'), IS_MAIN: 'false' },
        run: branchScopeScript(config.images.map((image) => image.name)),
      },
      awsCredentials(),
      installPruner(config),
      {
        name: "Delete the branch's cache tags",
        env: { [BAKE_VARIABLES.cacheScope]: expr('steps.cache.outputs.scope') },
        run: prunerCommand(config, 'delete-branch', []),
      },
    ],
  };

  if (config.seed.enabled) jobs.seed = seedJob(config, awsCredentials);
  jobs.apply = applyJob(config, version, awsCredentials);

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
    ? `(${SEED_RUN_EXPRESSION}) && format('seed:{0}', ${BRANCH_EXPRESSION}) || ${CONCURRENCY_BRANCH_EXPRESSION}`
    : CONCURRENCY_BRANCH_EXPRESSION;

  const workflow: Workflow = {
    name: config.workflow.name,
    on,
    // Nothing by default; each job asks for exactly what it needs.
    permissions: {},
    concurrency: {
      // One run per branch at a time, so two builds never race on one cache tag. Only runs of
      // the main branch itself may share its group, since a newer run in a group cancels a
      // pending one: a fork's pull request (forks often open them from their own `main`) gets a
      // group of its own, and so does a branch deletion. Superseded runs are cancelled, except
      // in the main branch's group, where a deploy must never be cut off midway.
      group: `${expr('github.workflow')}-${expr(HEAD_REPOSITORY_EXPRESSION)}-${expr(concurrencyBranch)}`,
      'cancel-in-progress': expr(`(${concurrencyBranch}) != ${literal(config.github.mainBranch)}`),
    },
    jobs,
  };
  return pinWorkflowActions(workflow, config.workflow.pinActions);
}

function buildCondition(config: ResolvedConfig): string {
  const skip = ["github.event_name != 'delete'"];
  if (config.seed.enabled) skip.push(`!(${SEED_RUN_EXPRESSION})`);
  // With seed on, workflow_dispatch exists for reseeds only unless the config asks for manual builds.
  if (!config.workflow.on.workflowDispatch) skip.push("github.event_name != 'workflow_dispatch'");
  return skip.join(' && ');
}

/**
 * Makes ECR match the committed ecr/ files (repositories, tag mutability, lifecycle policies,
 * previewed before they are put) when a push to main changed them. When the previous commit
 * cannot be fetched, it applies anyway: apply is idempotent and writes nothing when in sync.
 */
function applyJob(
  config: ResolvedConfig,
  version: string,
  awsCredentials: (condition?: string) => Step,
): Job {
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
      awsCredentials(changed),
      {
        name: 'Apply',
        if: changed,
        // The generator that wrote the files applies them: the same version, pinned.
        run: `npx --yes create-cached-deploy@${version} apply`,
      },
    ],
  };
}

/**
 * The seed: every target built without importing any cache (so the result cannot inherit an
 * eroded cache) and exported mode=max to seed.<image>. Ordinary builds import it and never write
 * it; only this job sets CACHE_SCOPE=seed, and only on the main branch.
 */
function seedJob(config: ResolvedConfig, awsCredentials: (condition?: string) => Step): Job {
  const scope = { [BAKE_VARIABLES.cacheScope]: SEED_SCOPE };
  return {
    name: 'Refresh the seed cache (cold build)',
    if: SEED_RUN_EXPRESSION,
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    steps: [
      { name: 'Check out', uses: ACTIONS.checkout, with: { 'persist-credentials': false } },
      mainBranchStep(config),
      {
        name: 'Refuse to seed from any branch but main',
        if: "steps.main.outputs.is-main != 'true'",
        run: 'echo "::error::The seed cache is refreshed only from the main branch." && exit 1',
      },
      awsCredentials(),
      { name: 'Log in to Amazon ECR', uses: ACTIONS.ecrLogin },
      installPruner(config),
      {
        name: 'Record the seed digests this build will supersede',
        env: scope,
        run: prunerCommand(config, 'record', [`--state "${DIGESTS_FILE}"`]),
      },
      {
        name: 'Set up Docker Buildx (pinned BuildKit)',
        uses: ACTIONS.setupBuildx,
        with: { 'driver-opts': `image=${config.buildkit.image}` },
      },
      {
        name: 'Cold build, exporting the seed cache',
        id: SEED_BUILD_STEP,
        uses: ACTIONS.bake,
        env: { ...scope, [BAKE_VARIABLES.imageTag]: expr('github.sha') },
        with: {
          source: '.',
          files: config.paths.bakeFile,
          push: false,
          'no-cache': true,
          set: seedBakeOverrides(config).join('\n'),
        },
      },
      {
        // Not after the refusal: a run off main has installed no pruner and holds no credentials.
        name: 'Prune superseded seed artifacts',
        if: `!cancelled() && ${IS_MAIN}`,
        run: prunerCommand(config, 'prune', pruneFlags(config)),
      },
      {
        name: 'Say in the job summary whether the seed was refreshed',
        if: `!cancelled() && ${IS_MAIN}`,
        env: {
          OUTCOME: expr(`steps.${SEED_BUILD_STEP}.outcome`),
          SEED_CACHES: config.images
            .map((image) => `${image.cacheRepository}:${cacheTag(SEED_SCOPE, image.name)}`)
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
export function seedBakeOverrides(config: ResolvedConfig): string[] {
  const registry = registryHost(config.aws.accountId, config.aws.region);
  return [
    '*.cache-from=',
    '*.output=type=cacheonly',
    ...config.images.map(
      (image) =>
        `${image.name}.cache-to=type=registry,ref=${registry}/${image.cacheRepository}:${cacheTag(SEED_SCOPE, image.name)},${CACHE_EXPORT_LAYOUT}`,
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
const PRUNER_DIR = '$RUNNER_TEMP/cached-deploy';
const DIGESTS_FILE = `${PRUNER_DIR}/cache-digests.json`;

function installPruner(config: ResolvedConfig, condition?: string): Step {
  return {
    name: 'Install the cache pruner',
    ...(condition ? { if: condition } : {}),
    run: [
      `mkdir -p "${PRUNER_DIR}"`,
      `cp "${config.paths.pruneScript}" "${PRUNER_DIR}/prune-ecr-cache.mjs"`,
      `npm install --prefix "${PRUNER_DIR}" --no-save --no-audit --no-fund --loglevel=error ${PRUNER_SDK}`,
    ].join('\n'),
  };
}

/**
 * One pruner invocation covering every image: `--repository <cache repo> --tag <scope>.<image>`
 * per image. Tags use $CACHE_SCOPE from env; repository and image names are validated names.
 */
function prunerCommand(config: ResolvedConfig, command: string, flags: string[]): string {
  const byRepository = new Map<string, string[]>();
  for (const image of config.images) {
    const tags = byRepository.get(image.cacheRepository) ?? [];
    tags.push(cacheTag('"$CACHE_SCOPE"', image.name));
    byRepository.set(image.cacheRepository, tags);
  }
  const targets = [...byRepository].map(([repository, tags]) =>
    [
      `--repository ${repository}`,
      ...(command === 'prune' ? [] : tags.map((tag) => `--tag ${tag}`)),
    ].join(' '),
  );
  return [`node "${PRUNER_DIR}/prune-ecr-cache.mjs" ${command}`, ...targets, ...flags].join(
    ' \\\n  ',
  );
}

function pruneFlags(config: ResolvedConfig): string[] {
  return [
    `--state "${DIGESTS_FILE}"`,
    ...(config.prune.sweep ? ['--sweep'] : []),
    `--grace-hours ${config.prune.graceHours}`,
    ...(config.prune.failOnError ? ['--fail-on-error'] : []),
  ];
}
