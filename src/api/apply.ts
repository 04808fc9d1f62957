import { loadConfig } from '../config/load.js';
import { CONFIG_FILE, type ResolvedConfig } from '../config/resolve.js';
import {
  type ApplyEcrOptions,
  type ApplyReport,
  applyEcr,
  type DesiredRepository,
} from '../ecr/apply-ecr.js';
import type { EcrApplyPort } from '../ecr/port.js';
import { CachedDeployError } from '../errors.js';
import { type GitLabProject, gitlabProject } from '../gitlab-api/project.js';
import { MAIN_SCOPE, SEED_SCOPE } from '../model/cache-tags.js';
import { repositorySettings } from '../model/ecr-repositories.js';
import type { LifecyclePolicy } from '../model/lifecycle.js';
import { keptCacheTags } from '../model/lifecycle.js';
import {
  formatViolation,
  validateKeepsTags,
  validateLifecyclePolicy,
} from '../policy/validate-lifecycle.js';
import { generatedPaths, renderFiles } from '../render/render-files.js';
import { RepoFiles } from '../repo-files.js';

export interface ApplyOptions extends ApplyEcrOptions {
  /**
   * With `ci: gitlab`: a token (api scope, Maintainer) to keep the seed's pipeline schedule;
   * without one the report says what to do by hand.
   */
  gitlabToken?: string;
  /** The GitLab instance, instead of gitlab.host of cached-deploy.yml. */
  gitlabUrl?: string;
  /** Overrides of the GitLab transport policy (tests). */
  gitlabPolicy?: Partial<import('../net/host-connection.js').HostPolicy>;
  /** The ECR calls; default: @aws-sdk/client-ecr in the config's region. */
  port?: EcrApplyPort;
  /** The ECR endpoint of the default port (default: the SDK's, which reads AWS_ENDPOINT_URL_ECR). */
  endpoint?: string;
  /** Extra `ECRClient` options of the default port (credentials, retryStrategy...). */
  clientOptions?: Record<string, unknown>;
}

export interface ApplyResult {
  config: ResolvedConfig;
  report: ApplyReport;
}

/**
 * Makes ECR match the repository at `dir`: its cached-deploy.yml (which repositories, their tag
 * mutability and scan-on-push) and its committed lifecycle policy files, put as they are on disk.
 * A missing or invalid policy file is an error before any ECR call; one that differs from what
 * `generate` would write now is applied as committed, with a warning.
 */
export async function apply(dir: string, options: ApplyOptions = {}): Promise<ApplyResult> {
  const config = loadConfig(dir);
  // Read before anything is written: a GitLab configuration without a project, or an instance a
  // token must not go to, fails here.
  const project = gitlabProject(config, { instanceUrl: options.gitlabUrl });
  const paths = generatedPaths(config);
  const rendered = new Map(renderFiles(config).map((file) => [file.path, file.content]));
  const keepTags = keptCacheTags(config);
  const warnings: string[] = [];
  const policies = new Map<string, string>();
  for (const [path, keep] of [
    [paths.imagePolicy, []],
    [paths.cachePolicy, keepTags],
    [paths.branchCachePolicy, []],
  ] as const) {
    const text = readPolicyFile(dir, path, keep);
    policies.set(path, text);
    if (rendered.get(path) !== text) {
      warnings.push(
        `${path} differs from what \`generate\` makes of ${CONFIG_FILE}; applying it as committed (run \`create-cached-deploy generate\` to update it)`,
      );
    }
  }
  const repositories: DesiredRepository[] = repositorySettings(config, paths).map((settings) => ({
    ...settings,
    policyText: policies.get(settings.policyFile) as string,
  }));

  let port = options.port;
  let destroy: (() => void) | undefined;
  if (!port) {
    const { sdkPort } = await import('../ecr/port.js');
    const sdk = await sdkPort({
      region: config.aws.region,
      endpoint: options.endpoint,
      clientOptions: options.clientOptions,
    });
    port = sdk;
    destroy = () => sdk.destroy();
  }
  try {
    const report = await applyEcr(
      port,
      {
        registryId: config.aws.accountId,
        region: config.aws.region,
        repositories,
        protection: {
          cacheTagPrefixes: [`${MAIN_SCOPE}.`, `${SEED_SCOPE}.`],
          keepNewestImages: config.deployImages.keep,
        },
      },
      options,
    );
    report.warnings.unshift(...warnings);
    if (project) await applyPipelineSchedule(config, project, report, options);
    return { config, report };
  } finally {
    destroy?.();
  }
}

/**
 * With `ci: gitlab`, after the repositories: the seed's pipeline schedule, read and (without
 * `dryRun`) created or updated, and folded into the report's status. Not after a failed or refused
 * ECR part: one thing at a time.
 */
async function applyPipelineSchedule(
  config: ResolvedConfig,
  project: GitLabProject,
  report: ApplyReport,
  options: ApplyOptions,
): Promise<void> {
  const { applySeedSchedule, manualSeedSchedule } = await import('../gitlab-api/seed-schedule.js');
  if (report.status === 'failed' || report.status === 'refused') {
    report.pipelineSchedule = { ...manualSeedSchedule(config, project), status: 'not-run' };
    delete report.pipelineSchedule.instructions;
    return;
  }
  if (!options.gitlabToken) {
    report.pipelineSchedule = manualSeedSchedule(config, project);
    return;
  }
  const { connectGitLab } = await import('../gitlab-api/client.js');
  const api = await connectGitLab({
    instanceUrl: project.instanceUrl,
    token: options.gitlabToken,
    policy: options.gitlabPolicy,
  });
  const schedule = await applySeedSchedule(api, config, project, { dryRun: options.dryRun });
  report.pipelineSchedule = schedule;
  if (schedule.status === 'failed') {
    report.status = 'failed';
    report.error = schedule.error;
  } else if (schedule.status === 'pending' && report.status === 'in-sync') {
    report.status = 'pending';
  } else if (schedule.status === 'done' && report.status === 'in-sync') {
    report.status = 'applied';
  }
}

/** The committed policy file: it must exist, be JSON, and pass every check the generator makes. */
function readPolicyFile(dir: string, path: string, keepTags: readonly string[]): string {
  const text = new RepoFiles(dir).read(path);
  if (text === undefined) {
    throw new CachedDeployError(
      'IO',
      `${path}: not found; run \`create-cached-deploy generate\` and commit it before apply`,
    );
  }
  let policy: unknown;
  try {
    policy = JSON.parse(text);
  } catch (error) {
    throw new CachedDeployError(
      'POLICY_INVALID',
      `${path}: not valid JSON (${(error as Error).message})`,
    );
  }
  const violations = validateLifecyclePolicy(policy, text);
  if (violations.length === 0) {
    violations.push(...validateKeepsTags(policy as LifecyclePolicy, [...keepTags]));
  }
  if (violations.length > 0) {
    throw new CachedDeployError(
      'POLICY_INVALID',
      `${violations.map((violation) => formatViolation(path, violation)).join('; ')} (nothing was applied)`,
    );
  }
  return text;
}
