import type { ResolvedConfig } from '../config/resolve.js';
import { ACTIONS, PRUNER_SDK } from './actions.js';
import { registryHost, roleArn } from './aws.js';
import { BAKE_VARIABLES } from './bake.js';
import { branchScopeScript, cacheTag } from './cache-tags.js';

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
  with?: Record<string, string | boolean>;
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

export function isMainExpression(config: ResolvedConfig): string {
  return `github.ref == ${literal(`refs/heads/${config.github.mainBranch}`)}`;
}

/** A build that may push deployable images and deploy: a push or dispatch on the main branch. */
export function isMainPushExpression(config: ResolvedConfig): string {
  return `${isMainExpression(config)} && github.event_name != 'pull_request'`;
}

export function deployWorkflow(config: ResolvedConfig): Workflow {
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
    if: "github.event_name != 'delete'",
    'runs-on': config.workflow.runsOn,
    permissions: { contents: 'read', 'id-token': 'write' },
    env: { TRUSTED: expr(TRUSTED_EXPRESSION) },
    steps: [
      { name: 'Check out', uses: ACTIONS.checkout, with: { 'persist-credentials': false } },
      {
        name: 'Compute the cache scope of this branch',
        id: 'cache',
        env: { BRANCH: expr(BRANCH_EXPRESSION), IS_MAIN: expr(isMainExpression(config)) },
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
        with: { ...bakeInputs, push: expr(isMainPushExpression(config)) },
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
      if: isMainPushExpression(config),
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

  const on: Record<string, unknown> = {};
  if (config.workflow.on.push.length > 0) on.push = { branches: config.workflow.on.push };
  if (config.workflow.on.pullRequest) on.pull_request = {};
  if (config.workflow.on.workflowDispatch) on.workflow_dispatch = {};
  on.delete = {};

  return {
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
      group: `${expr('github.workflow')}-${expr(HEAD_REPOSITORY_EXPRESSION)}-${expr(CONCURRENCY_BRANCH_EXPRESSION)}`,
      'cancel-in-progress': expr(
        `(${CONCURRENCY_BRANCH_EXPRESSION}) != ${literal(config.github.mainBranch)}`,
      ),
    },
    jobs,
  };
}

/** Where the pruner runs on the runner: outside the checkout, so nothing is added to the repo. */
const PRUNER_DIR = '$RUNNER_TEMP/cached-deploy';
const DIGESTS_FILE = `${PRUNER_DIR}/cache-digests.json`;

function installPruner(config: ResolvedConfig, condition?: string): Step {
  return {
    name: 'Install the cache pruner',
    ...(condition ? { if: condition } : {}),
    run: [
      `mkdir -p "${PRUNER_DIR}"`,
      `cp ${config.paths.pruneScript} "${PRUNER_DIR}/prune-ecr-cache.mjs"`,
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
