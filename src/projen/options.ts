/**
 * The projen component's options: cached-deploy.yml as a typed object. This module does not import
 * projen, so the CLI (`init --projen`) can use it without projen installed.
 */
import { validateRawConfig } from '../config/load.js';
import { type ResolvedConfig, resolveConfig } from '../config/resolve.js';
import { fail } from '../config/validate.js';
import type { ActionRepository } from '../model/actions.js';

/** Where option errors say they come from: `CachedDeploy options: images[0].name: ...`. */
export const OPTIONS_SOURCE = 'CachedDeploy options';

/** The AWS account and region of the ECR registry, and the roles the workflow assumes. */
export interface CachedDeployAwsOptions {
  /** The 12-digit id of the AWS account that holds the ECR repositories (a string: keep the leading zeros). */
  readonly accountId: string;
  /** The region of the ECR registry, such as `eu-west-1`. */
  readonly region: string;
  /**
   * The main role, trusted only for the main branch: pushes images, writes the main and seed
   * caches, runs apply (`ecr/main-role-policy.json` and `ecr/main-role-trust-policy.json`).
   *
   * @default - `<repository name>-cached-deploy`, from `github.repository` (at most 64 characters)
   */
  readonly roleName?: string;
  /**
   * The branch role, trusted for every branch and same-repository pull request: reads the main
   * and seed caches, writes only the branch-cache repositories (`ecr/branch-role-*.json`).
   *
   * @default - `<roleName>-branches`
   */
  readonly branchRoleName?: string;
  /**
   * The deploy job's role when a deploy environment is set, trusted only through that environment
   * (`ecr/deploy-role-*.json`).
   *
   * @default - `<roleName>-deploy`
   */
  readonly deployRoleName?: string;
}

/** The GitHub repository the workflow runs in. */
export interface CachedDeployGithubOptions {
  /** `owner/name` of the GitHub repository; the OIDC trust policy is scoped to it. */
  readonly repository: string;
  /**
   * The branch that deploys and owns the main cache (every other branch imports it).
   *
   * @default 'main'
   */
  readonly mainBranch?: string;
}

/** The GitLab project the pipeline runs in (with `ci: 'gitlab'`). */
export interface CachedDeployGitlabOptions {
  /** The project's full path, `group/subgroup/project`; the OIDC trust policies are scoped to it. */
  readonly project: string;
  /**
   * The GitLab instance's host name (self-managed instances too): the IAM OIDC provider.
   *
   * @default 'gitlab.com'
   */
  readonly host?: string;
  /**
   * The branch that deploys and owns the main cache (every other branch imports it).
   *
   * @default 'main'
   */
  readonly mainBranch?: string;
  /**
   * The `aud` the jobs' ID tokens ask for, and the trust policies require.
   *
   * @default - `https://<host>`
   */
  readonly audience?: string;
  /**
   * Runner tags every job carries (the build and seed jobs need a runner that allows privileged
   * Docker-in-Docker).
   *
   * @default - none
   */
  readonly tags?: string[];
  /**
   * The runner tags each platform's native build and seed jobs add to `tags`, such as
   * `{ 'linux/arm64': ['arm64'] }`: how GitLab picks a runner of that architecture.
   *
   * @default - on gitlab.com without `tags`, GitLab's hosted runners: linux/amd64 on `saas-linux-small-amd64`, linux/arm64 on `saas-linux-small-arm64`; none elsewhere
   */
  readonly runnerTags?: { readonly [platform: string]: string[] };
}

/** One image: a bake target, the ECR repository it is pushed to, and its cache repository. */
export interface CachedDeployImageOptions {
  /**
   * The bake target name, also the last part of its cache tags: `[a-z0-9][a-z0-9_-]*`, at most 32
   * characters, no dots.
   */
  readonly name: string;
  /**
   * The build context, relative to the project directory.
   *
   * @default '.'
   */
  readonly context?: string;
  /**
   * The Dockerfile, relative to the project directory.
   *
   * @default - `<context>/Dockerfile`
   */
  readonly dockerfile?: string;
  /**
   * The Dockerfile stage to build and deploy.
   *
   * @default - the last stage
   */
  readonly target?: string;
  /**
   * The platforms to build, such as `linux/arm64`.
   *
   * @default ['linux/amd64']
   */
  readonly platforms?: string[];
  /**
   * How the platforms are built: `native`, one job per platform on a runner of that platform
   * (`workflow.runners`, on GitLab `gitlab.runnerTags`), each with its own cache, merged into one
   * manifest list; `emulated`, all of them in the one build job, with QEMU.
   *
   * @default - `native` with more than one platform; with one, the one build job on `runsOn`
   */
  readonly build?: 'native' | 'emulated';
  /** The ECR repository of the deployable image. */
  readonly repository: string;
  /**
   * The ECR repository that holds this image's main and seed caches, apart from deployable images;
   * only the main role writes it.
   *
   * @default - `<repository>-buildcache`
   */
  readonly cacheRepository?: string;
  /**
   * The ECR repository that holds the caches of every other branch and pull request: the only one
   * the branch role can write. Everything in it expires.
   *
   * @default - `<cacheRepository>-branches`
   */
  readonly branchCacheRepository?: string;
}

/** The lifecycle of the cache repositories (`ecr/cache-lifecycle-policy.json`). */
export interface CachedDeployCacheOptions {
  /**
   * Days a branch's cache is kept after it was last pushed. The main branch's cache is kept forever.
   *
   * @default 14
   */
  readonly branchRetentionDays?: number;
  /**
   * Days untagged cache artifacts are kept.
   *
   * @default 1
   */
  readonly untaggedRetentionDays?: number;
}

/** The lifecycle of the image repositories (`ecr/image-lifecycle-policy.json`). */
export interface CachedDeployDeployImagesOptions {
  /**
   * How many of the newest deployable images to keep.
   *
   * @default 30
   */
  readonly keep?: number;
  /**
   * Days untagged images are kept.
   *
   * @default 1
   */
  readonly untaggedRetentionDays?: number;
}

/** The BuildKit the workflow runs. */
export interface CachedDeployBuildkitOptions {
  /**
   * The BuildKit image, pinned: a version tag or a digest, never `latest`.
   *
   * @default 'moby/buildkit:v0.27.0'
   */
  readonly image?: string;
}

/** When the workflow runs. */
export interface CachedDeployWorkflowTriggerOptions {
  /**
   * Branches (or GitHub branch filters) whose pushes run the workflow.
   *
   * @default - the main branch only
   */
  readonly push?: string[];
  /**
   * Run on pull requests (fork pull requests build without ECR credentials or cache).
   *
   * @default true
   */
  readonly pullRequest?: boolean;
  /**
   * Allow running the workflow by hand.
   *
   * @default true
   */
  readonly workflowDispatch?: boolean;
}

/** The deploy job, run on the main branch after the images were pushed. */
export interface CachedDeployDeployOptions {
  /**
   * The shell command that deploys. It reads `REGISTRY` and `IMAGE_TAG` from the environment;
   * GitHub `${{ }}` expressions are refused (they are how script injection happens).
   */
  readonly command: string;
  /**
   * The GitHub environment of the deploy job.
   *
   * @default - none
   */
  readonly environment?: string;
}

/**
 * Your own commit SHA for some of the actions, by action (`actions/checkout`): each a full,
 * lowercase 40-hex SHA. Actions not named are pinned to the release this package ships.
 */
export type CachedDeployActionPins = { readonly [Action in ActionRepository]?: string };

/** The CI pipeline: the GitHub Actions workflow, or the GitLab CI file. */
export interface CachedDeployWorkflowOptions {
  /**
   * The generated CI file, relative to the project directory.
   *
   * @default - '.github/workflows/deploy.yml', or '.gitlab-ci.yml' with `ci: 'gitlab'`
   */
  readonly file?: string;
  /**
   * The workflow's name (GitHub Actions only).
   *
   * @default 'deploy'
   */
  readonly name?: string;
  /**
   * The runner label of the build job (GitHub Actions only; on GitLab, `gitlab.tags`).
   *
   * @default 'ubuntu-latest'
   */
  readonly runsOn?: string;
  /**
   * The runner label of each platform a native build runs on, such as
   * `{ 'linux/arm64': 'ubuntu-24.04-arm' }` (GitHub Actions only; on GitLab, `gitlab.runnerTags`).
   *
   * @default - linux/amd64 on `ubuntu-24.04`, linux/arm64 on `ubuntu-24.04-arm`
   */
  readonly runners?: { readonly [platform: string]: string };
  /**
   * When the workflow runs (GitHub Actions only).
   *
   * @default - pushes to the main branch, pull requests and manual runs
   */
  readonly on?: CachedDeployWorkflowTriggerOptions;
  /**
   * The deploy job.
   *
   * @default - no deploy job
   */
  readonly deploy?: CachedDeployDeployOptions;
  /**
   * GitHub Actions only. Pin every action by full commit SHA instead of its `@vN` tag: `true` pins each to the release
   * this package ships (written `uses: owner/name@<sha> # vX.Y.Z`; the README lists them), a mapping
   * pins the actions it names to your own commits and the others to the shipped releases.
   *
   * @default false
   */
  readonly pinActions?: boolean | CachedDeployActionPins;
}

/** The seed cache: a scheduled cold build on the main branch, which every build imports. */
export interface CachedDeploySeedOptions {
  /**
   * Refresh the seed cache on a schedule (and on a manual run with `reseed`).
   *
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * When, as the five cron fields of GitHub's `schedule` (UTC).
   *
   * @default '0 4 * * 1'
   */
  readonly schedule?: string;
}

/** Settings of the ECR repositories themselves (`create-cached-deploy apply`, and Terraform). */
export interface CachedDeployEcrOptions {
  /**
   * Tag mutability of the image repositories. With IMMUTABLE, `<image>:<commit sha>` can never be
   * replaced; a re-run of the same commit skips the push of a tag that exists.
   *
   * @default 'IMMUTABLE'
   */
  readonly imageTagMutability?: 'IMMUTABLE' | 'MUTABLE';
  /**
   * Tag mutability of the cache repositories; every build rewrites its cache tags, so
   * `IMMUTABLE_WITH_EXCLUSION` excludes all of them.
   *
   * @default 'MUTABLE'
   */
  readonly cacheTagMutability?: 'MUTABLE' | 'IMMUTABLE_WITH_EXCLUSION';
  /**
   * Scan images on push.
   *
   * @default true
   */
  readonly scanOnPush?: boolean;
}

/** The prune job of the workflow (the shipped prune script). */
export interface CachedDeployPruneOptions {
  /**
   * After each build, delete the untagged cache artifacts older than the grace period (every
   * artifact a build supersedes becomes one). Off: no prune job; the lifecycle policies' untagged
   * rule removes them after `cache.untaggedRetentionDays`.
   *
   * @default true
   */
  readonly sweep?: boolean;
  /**
   * Hours an artifact must be old before it may be deleted (longer than any job runs).
   *
   * @default 6
   */
  readonly graceHours?: number;
  /**
   * Fail the build when pruning fails (by default a failed prune only warns).
   *
   * @default false
   */
  readonly failOnError?: boolean;
}

/**
 * Where the other files go, relative to the project directory. (`stateFile` of cached-deploy.yml
 * has no equivalent: projen tracks the files it writes in `.projen/files.json`.)
 */
export interface CachedDeployPathsOptions {
  /**
   * The buildx bake file.
   *
   * @default 'docker-bake.hcl'
   */
  readonly bakeFile?: string;
  /**
   * The directory of the lifecycle and IAM policies; '.' for the project directory itself.
   *
   * @default 'ecr'
   */
  readonly ecrDir?: string;
  /**
   * The shipped prune script.
   *
   * @default 'scripts/prune-ecr-cache.mjs'
   */
  readonly pruneScript?: string;
}

/**
 * Options of the `CachedDeploy` projen component: the settings of cached-deploy.yml (without
 * `version` and `generator`), validated by the same schema with the same messages.
 */
export interface CachedDeployOptions {
  /** The AWS account and region of the ECR registry. */
  readonly aws: CachedDeployAwsOptions;
  /**
   * Which CI runs the builds: GitHub Actions (the `github` section) or GitLab CI (`gitlab`).
   *
   * @default 'github'
   */
  readonly ci?: 'github' | 'gitlab';
  /** The GitHub repository the workflow runs in (required with `ci: 'github'`, the default). */
  readonly github?: CachedDeployGithubOptions;
  /** The GitLab project the pipeline runs in (required with `ci: 'gitlab'`). */
  readonly gitlab?: CachedDeployGitlabOptions;
  /** The images to build, cache and push: at least one, at most 20. */
  readonly images: CachedDeployImageOptions[];
  /**
   * The lifecycle of the cache repositories.
   *
   * @default - branch caches expire 14 days after their last push, untagged artifacts after 1 day
   */
  readonly cache?: CachedDeployCacheOptions;
  /**
   * The lifecycle of the image repositories.
   *
   * @default - keep the newest 30 images, expire untagged ones after 1 day
   */
  readonly deployImages?: CachedDeployDeployImagesOptions;
  /**
   * The BuildKit the workflow runs.
   *
   * @default - moby/buildkit:v0.27.0
   */
  readonly buildkit?: CachedDeployBuildkitOptions;
  /**
   * The GitHub Actions workflow.
   *
   * @default - `.github/workflows/deploy.yml`, named deploy, on ubuntu-latest, without a deploy job
   */
  readonly workflow?: CachedDeployWorkflowOptions;
  /**
   * The seed cache.
   *
   * @default - a cold build refreshes it every Monday at 04:00 UTC
   */
  readonly seed?: CachedDeploySeedOptions;
  /**
   * The prune step.
   *
   * @default - sweep, 6 hours of grace, a failed prune only warns
   */
  readonly prune?: CachedDeployPruneOptions;
  /**
   * Where the bake file, the policies and the prune script go.
   *
   * @default - docker-bake.hcl, ecr/ and scripts/prune-ecr-cache.mjs
   */
  readonly paths?: CachedDeployPathsOptions;
  /**
   * Settings of the ECR repositories themselves.
   *
   * @default - immutable image tags, mutable cache tags, scan on push
   */
  readonly ecr?: CachedDeployEcrOptions;
  /**
   * `terraform` also writes `<ecrDir>/main.tf` (the repositories, their lifecycle policies and the
   * CI roles).
   *
   * @default 'none'
   */
  readonly iac?: 'none' | 'terraform';
  /**
   * Check the images against the project directory as the CLI does: every Dockerfile and build
   * context exists, every target is a stage of its Dockerfile, and no path leaves the project
   * (through symlinks too). Turn it off only when the Dockerfiles do not exist when projen runs,
   * for example in a unit test that synthesizes into an empty directory.
   *
   * @default true
   */
  readonly checkRepository?: boolean;
}

/** Keys of the options that are the component's own, not cached-deploy.yml's. */
const COMPONENT_KEYS = ['checkRepository'] as const;

/**
 * Validates the options exactly as the CLI validates cached-deploy.yml (same schema, same
 * cross-field checks, same messages after the source prefix) and fills in the defaults.
 */
export function resolveCachedDeployOptions(
  options: CachedDeployOptions,
  source = OPTIONS_SOURCE,
): ResolvedConfig {
  return resolveConfig(validateRawConfig(configPart(options, source), source));
}

/** The options without the component's own keys: what cached-deploy.yml would hold. */
function configPart(options: unknown, source: string): unknown {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) return options;
  const config: Record<string, unknown> = { ...options };
  for (const key of COMPONENT_KEYS) delete config[key];
  // Settings of cached-deploy.yml that mean nothing here; refused rather than silently ignored.
  if (config.generator !== undefined) {
    fail(source, 'generator', 'not used by the projen component (it writes its own version)');
  }
  const paths = config.paths as Record<string, unknown> | undefined;
  if (paths !== null && typeof paths === 'object' && paths.stateFile !== undefined) {
    fail(
      source,
      'paths.stateFile',
      'not used by the projen component (projen tracks the files it writes in .projen/files.json)',
    );
  }
  return config;
}
