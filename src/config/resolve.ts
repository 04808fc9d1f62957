import { createHash } from 'node:crypto';
import { type ActionPins, resolveActionPins } from '../model/actions.js';
import type { PLATFORM_BUILDS, RawConfig } from './schema.js';

export type PlatformBuild = (typeof PLATFORM_BUILDS)[number];

/**
 * The GitHub-hosted runner of each platform a native build runs on, unless `workflow.runners`
 * says otherwise (docs/multi-platform.md): x64 and arm64 Ubuntu 24.04.
 */
export const DEFAULT_PLATFORM_RUNNERS: Readonly<Record<string, string>> = {
  'linux/amd64': 'ubuntu-24.04',
  'linux/arm64': 'ubuntu-24.04-arm',
};

/** The BuildKit image the workflow pins when the config does not say (docs/cache-strategy.md). */
export const DEFAULT_BUILDKIT_IMAGE = 'moby/buildkit:v0.27.0';
export const CONFIG_FILE = 'cached-deploy.yml';

export interface ImageSettings {
  /** The bake target name; also the suffix of its cache tags. */
  name: string;
  context: string;
  dockerfile: string;
  /** The Dockerfile stage to build, or undefined for the last stage. */
  target: string | undefined;
  platforms: string[];
  /**
   * How the platforms are built (docs/multi-platform.md): `native`, one build job per platform on a
   * runner of that platform, each with its own cache tag, merged into one manifest list; `emulated`,
   * every platform in the one build job, with QEMU, and one cache tag. `native` by default when there
   * is more than one platform; with one and no setting, undefined: the image is built in the one
   * build job on `workflow.runsOn`, as before there was a choice.
   */
  build: PlatformBuild | undefined;
  repository: string;
  /** Where the main branch's and the seed's caches live: written only by the main role. */
  cacheRepository: string;
  /** Where branch builds and pull requests keep their own caches: the branch role's to write. */
  branchCacheRepository: string;
}

/** cached-deploy.yml with every default filled in: what the model is built from. */
export interface ResolvedConfig {
  aws: {
    accountId: string;
    region: string;
    /** The main role: builds and deploys of the main branch, the seed, apply. */
    roleName: string;
    /** The branch role: builds of other branches and same-repository pull requests. */
    branchRoleName: string;
    /** The deploy job's role, trusted through the deploy environment (used only with one). */
    deployRoleName: string;
  };
  /** Which CI runs the builds (docs/gitlab-ci.md for GitLab). */
  ci: CiKind;
  /** The branch that deploys and owns the main cache: `github.mainBranch` or `gitlab.mainBranch`. */
  mainBranch: string;
  /** The GitHub repository, with `ci: github` only. */
  github: { repository: string; mainBranch: string } | undefined;
  /** The GitLab project and instance, with `ci: gitlab` only. */
  gitlab: GitlabSettings | undefined;
  images: ImageSettings[];
  cache: { branchRetentionDays: number; untaggedRetentionDays: number };
  deployImages: { keep: number; untaggedRetentionDays: number };
  buildkit: { image: string };
  workflow: {
    file: string;
    name: string;
    runsOn: string;
    /** The runner label of each platform a native build runs on (the defaults, then the config's). */
    runners: Record<string, string>;
    on: { push: string[]; pullRequest: boolean; workflowDispatch: boolean };
    deploy: { command: string; environment: string | undefined } | undefined;
    /** The commit each action is pinned to; `false` (the default) keeps the `@vN` tags. */
    pinActions: ActionPins;
  };
  seed: { enabled: boolean; schedule: string };
  prune: { sweep: boolean; graceHours: number; failOnError: boolean };
  paths: { bakeFile: string; ecrDir: string; stateFile: string; pruneScript: string };
  /** Settings of the ECR repositories themselves (`apply`, and ecr/main.tf). */
  ecr: {
    /**
     * IMMUTABLE by default: `app:<commit sha>` names one build, so what a deploy or a rollback
     * pulls cannot be replaced. The build job skips the push of a tag that already exists, so a
     * re-run of the same commit still works.
     */
    imageTagMutability: 'IMMUTABLE' | 'MUTABLE';
    /** Cache tags are rewritten by every build; IMMUTABLE_WITH_EXCLUSION excludes all of them. */
    cacheTagMutability: 'MUTABLE' | 'IMMUTABLE_WITH_EXCLUSION';
    scanOnPush: boolean;
  };
  /** `terraform`: also generate <ecrDir>/main.tf. */
  iac: 'none' | 'terraform';
}

export type CiKind = 'github' | 'gitlab';

export interface GitlabSettings {
  /** `group/subgroup/project`: the `project_path` of the OIDC subject. */
  project: string;
  /** The instance's host name: the IAM OIDC provider and the condition keys' prefix. */
  host: string;
  mainBranch: string;
  /** The `aud` the jobs' ID tokens ask for and the trust policies require. */
  audience: string;
  /** Runner tags every job carries (none: any runner that takes untagged jobs). */
  tags: string[];
  /**
   * The runner tags each platform's native build and seed jobs add to `tags` (the defaults, then
   * the config's): how GitLab picks a runner of that architecture.
   */
  runnerTags: Record<string, string[]>;
}

export const DEFAULT_GITLAB_HOST = 'gitlab.com';
/**
 * The runner tags of each platform's native jobs on gitlab.com when the config names no runner
 * tags of its own (`gitlab.tags` empty: the jobs run on GitLab's hosted runners): the small hosted
 * runners of each architecture, both privileged for Docker-in-Docker (docs/multi-platform.md).
 * With tags of its own (its own runners) or on another instance, each native platform needs
 * `gitlab.runnerTags`.
 */
export const GITLAB_HOSTED_RUNNER_TAGS: Readonly<Record<string, readonly string[]>> = {
  'linux/amd64': ['saas-linux-small-amd64'],
  'linux/arm64': ['saas-linux-small-arm64'],
};
/** Where the pipeline is written for GitLab, unless `workflow.file` says otherwise. */
export const GITLAB_CI_FILE = '.gitlab-ci.yml';
export const GITHUB_WORKFLOW_FILE = '.github/workflows/deploy.yml';

export const DEFAULTS = {
  cache: { branchRetentionDays: 14, untaggedRetentionDays: 1 },
  deployImages: { keep: 30, untaggedRetentionDays: 1 },
  buildkit: { image: DEFAULT_BUILDKIT_IMAGE },
  // Weekly, early Monday (UTC): a cold build of every target refreshes the seed cache.
  seed: { enabled: true, schedule: '0 4 * * 1' },
  // 6 h: longer than any GitHub-hosted job may run, so no build can still be importing what the
  // sweep deletes.
  prune: { sweep: true, graceHours: 6, failOnError: false },
  paths: {
    bakeFile: 'docker-bake.hcl',
    ecrDir: 'ecr',
    stateFile: '.cached-deploy/state.json',
    pruneScript: 'scripts/prune-ecr-cache.mjs',
  },
  // A commit SHA names one build: an immutable tag makes "what runs in production" unforgeable.
  ecr: {
    imageTagMutability: 'IMMUTABLE',
    cacheTagMutability: 'MUTABLE',
    scanOnPush: true,
  },
  iac: 'none',
} as const;

export function resolveConfig(raw: RawConfig): ResolvedConfig {
  const ci: CiKind = raw.ci ?? 'github';
  const github =
    ci === 'github' && raw.github
      ? { repository: raw.github.repository, mainBranch: raw.github.mainBranch ?? 'main' }
      : undefined;
  const gitlab = ci === 'gitlab' && raw.gitlab ? resolveGitlab(raw.gitlab) : undefined;
  const mainBranch = github?.mainBranch ?? gitlab?.mainBranch ?? 'main';
  const repoName =
    (github ? github.repository.split('/')[1] : gitlab?.project.split('/').at(-1)) ?? 'app';
  const workflow = raw.workflow ?? {};
  const roleName = raw.aws.roleName ?? `${repoName}-cached-deploy`.slice(0, 64);
  return {
    aws: {
      accountId: raw.aws.accountId,
      region: raw.aws.region,
      roleName,
      branchRoleName: raw.aws.branchRoleName ?? derivedRoleName(roleName, BRANCH_ROLE_SUFFIX),
      deployRoleName: raw.aws.deployRoleName ?? derivedRoleName(roleName, DEPLOY_ROLE_SUFFIX),
    },
    ci,
    mainBranch,
    github,
    gitlab,
    images: raw.images.map((image) => ({
      name: image.name,
      context: normalizePath(image.context ?? '.'),
      dockerfile: normalizePath(image.dockerfile ?? joinPath(image.context ?? '.', 'Dockerfile')),
      target: image.target,
      platforms: image.platforms ?? ['linux/amd64'],
      build: image.build ?? ((image.platforms?.length ?? 1) > 1 ? 'native' : undefined),
      repository: image.repository,
      cacheRepository: defaultCacheRepository(image),
      branchCacheRepository: defaultBranchCacheRepository(image),
    })),
    cache: { ...DEFAULTS.cache, ...raw.cache },
    deployImages: { ...DEFAULTS.deployImages, ...raw.deployImages },
    buildkit: { ...DEFAULTS.buildkit, ...raw.buildkit },
    workflow: {
      file: normalizePath(
        workflow.file ?? (ci === 'gitlab' ? GITLAB_CI_FILE : GITHUB_WORKFLOW_FILE),
      ),
      name: workflow.name ?? 'deploy',
      runsOn: workflow.runsOn ?? 'ubuntu-latest',
      runners: { ...DEFAULT_PLATFORM_RUNNERS, ...workflow.runners },
      on: {
        push: workflow.on?.push ?? [branchFilterFor(mainBranch)],
        pullRequest: workflow.on?.pullRequest ?? true,
        workflowDispatch: workflow.on?.workflowDispatch ?? true,
      },
      deploy: workflow.deploy
        ? { command: workflow.deploy.command, environment: workflow.deploy.environment }
        : undefined,
      pinActions: resolveActionPins(workflow.pinActions),
    },
    seed: { ...DEFAULTS.seed, ...raw.seed },
    prune: { ...DEFAULTS.prune, ...raw.prune },
    paths: {
      pruneScript: normalizePath(raw.paths?.pruneScript ?? DEFAULTS.paths.pruneScript),
      bakeFile: normalizePath(raw.paths?.bakeFile ?? DEFAULTS.paths.bakeFile),
      ecrDir: normalizePath(raw.paths?.ecrDir ?? DEFAULTS.paths.ecrDir),
      stateFile: normalizePath(raw.paths?.stateFile ?? DEFAULTS.paths.stateFile),
    },
    ecr: { ...DEFAULTS.ecr, ...raw.ecr },
    iac: raw.iac ?? DEFAULTS.iac,
  };
}

function resolveGitlab(raw: NonNullable<RawConfig['gitlab']>): GitlabSettings {
  const host = raw.host ?? DEFAULT_GITLAB_HOST;
  const tags = raw.tags ?? [];
  return {
    project: raw.project,
    host,
    mainBranch: raw.mainBranch ?? 'main',
    // GitLab's documentation for AWS uses the instance URL as the audience.
    audience: raw.audience ?? `https://${host}`,
    tags,
    runnerTags: {
      ...(host === DEFAULT_GITLAB_HOST && tags.length === 0
        ? Object.fromEntries(
            Object.entries(GITLAB_HOSTED_RUNNER_TAGS).map(([platform, each]) => [
              platform,
              [...each],
            ]),
          )
        : {}),
      ...raw.runnerTags,
    },
  };
}

export const BRANCH_ROLE_SUFFIX = '-branches';
export const DEPLOY_ROLE_SUFFIX = '-deploy';
/** IAM allows 64 characters in a role name. */
const MAX_ROLE_NAME = 64;

/**
 * `<main role name><suffix>`. When that is longer than IAM allows, the main role's name is cut
 * and 8 hex digits of its SHA-256 keep two long names that share a prefix apart.
 */
export function derivedRoleName(roleName: string, suffix: string): string {
  const name = `${roleName}${suffix}`;
  if (name.length <= MAX_ROLE_NAME) return name;
  const hash = createHash('sha256').update(roleName, 'utf8').digest('hex').slice(0, 8);
  return `${roleName.slice(0, MAX_ROLE_NAME - suffix.length - hash.length - 1)}-${hash}${suffix}`;
}

export function defaultCacheRepository(image: {
  repository: string;
  cacheRepository?: string | undefined;
}): string {
  return image.cacheRepository ?? `${image.repository}-buildcache`;
}

export function defaultBranchCacheRepository(image: {
  repository: string;
  cacheRepository?: string | undefined;
  branchCacheRepository?: string | undefined;
}): string {
  return image.branchCacheRepository ?? `${defaultCacheRepository(image)}-branches`;
}

/**
 * A GitHub branch filter that matches exactly this branch: `+` (one or more of the preceding
 * character) and a leading `!` (negation) are filter syntax, so they are escaped with `\`.
 * (`*`, `?` and `[` cannot occur in a valid mainBranch.)
 */
export function branchFilterFor(branch: string): string {
  return branch.replaceAll('+', '\\+').replace(/^!/, '\\!');
}

/** POSIX-style, without "./" segments or a trailing slash; "." for the root. */
export function normalizePath(path: string): string {
  const parts = path.split(/[\\/]+/).filter((part) => part !== '' && part !== '.');
  return parts.length === 0 ? '.' : parts.join('/');
}

export function joinPath(dir: string, file: string): string {
  return normalizePath(`${dir}/${file}`);
}
