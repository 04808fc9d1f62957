import type { CiKind, ResolvedConfig } from '../config/resolve.js';
import { oidcProviderArn, roleArn } from './aws.js';

/**
 * The IAM roles the CI assumes, and who may assume each (docs/trust-separation.md). ECR's IAM has
 * no condition on image tags, so a role that may push to a repository may write every tag in it:
 * the only boundaries IAM can enforce are repositories and roles. Hence one role per level of
 * trust, each trusted only for the OIDC subjects of the jobs that need it:
 *
 *   main    the main branch (exactly `ref:refs/heads/<main>`): pushes images, writes main.* and
 *           seed.* to the cache repositories, prunes them, runs `apply`; also the deploy job's
 *           role when no deploy environment is configured
 *   branch  every branch and same-repository pull request: reads the cache repositories, reads,
 *           writes and deletes only in the branch-cache repositories
 *   deploy  the deploy job, trusted only through `environment:<name>`, so the environment's
 *           protection rules gate AWS access; pulls images (the deploy command's own permissions
 *           are added to it by hand)
 *
 * Fork pull requests get no OIDC token at all (GitHub's rule), so they reach none of them.
 *
 * On GitLab (docs/gitlab-ci.md) the subjects are `project_path:<project>:ref_type:branch:ref:<b>`;
 * a merge request pipeline presents its source branch's. IAM reads only `sub` and `aud` of a
 * GitLab token (its `environment` claims are no condition keys), so the deploy role is trusted for
 * the main branch's subject there, and GitLab's protected environments gate the job, not AWS.
 */

export type RoleKind = 'main' | 'branch' | 'deploy';

export interface CiRole {
  kind: RoleKind;
  name: string;
  arn: string;
  /** The `sub` claims the trust policy accepts. */
  subjects: string[];
  /** StringEquals for exact subjects, StringLike when one holds a wildcard. */
  subjectOperator: 'StringEquals' | 'StringLike';
  /** Who assumes it, for explanations and comments. */
  assumedBy: string;
}

/** GitHub's OIDC `sub` claim forms (GitHub docs, "About security hardening with OpenID Connect"). */
export const githubSubject = {
  ref: (repository: string, ref: string) => `repo:${repository}:ref:${ref}`,
  branch: (repository: string, branch: string) => `repo:${repository}:ref:refs/heads/${branch}`,
  pullRequest: (repository: string) => `repo:${repository}:pull_request`,
  environment: (repository: string, name: string) => `repo:${repository}:environment:${name}`,
};

/**
 * GitLab's default OIDC `sub` claim (GitLab docs, "OpenID Connect (OIDC) Authentication Using ID
 * Tokens"): no `refs/heads/`; a merge request pipeline's ref is its source branch.
 */
export const gitlabSubject = {
  branch: (project: string, branch: string) =>
    `project_path:${project}:ref_type:branch:ref:${branch}`,
};

/** The audience configure-aws-credentials asks GitHub for. */
export const OIDC_AUDIENCE = 'sts.amazonaws.com';
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';

/**
 * Who issues the CI's tokens, as a trust policy names it: the IAM OIDC provider (one per account
 * and issuer host), the prefix of its condition keys (`<host>:sub`, `<host>:aud`) and the audience.
 */
export interface OidcIssuer {
  ci: CiKind;
  host: string;
  audience: string;
  providerArn: string;
  /** The trust statement's Sid. */
  sid: string;
}

export function oidcIssuer(config: ResolvedConfig): OidcIssuer {
  const { accountId, region } = config.aws;
  if (config.ci === 'gitlab') {
    const gitlab = gitlabOf(config);
    return {
      ci: 'gitlab',
      host: gitlab.host,
      audience: gitlab.audience,
      providerArn: oidcProviderArn(accountId, region, gitlab.host),
      sid: 'GitLabCiOidc',
    };
  }
  return {
    ci: 'github',
    host: GITHUB_OIDC_HOST,
    audience: OIDC_AUDIENCE,
    providerArn: oidcProviderArn(accountId, region, GITHUB_OIDC_HOST),
    sid: 'GitHubActionsOidc',
  };
}

/** The GitHub settings of a `ci: github` configuration. */
export function githubOf(config: ResolvedConfig): NonNullable<ResolvedConfig['github']> {
  if (!config.github) throw new Error('not a GitHub Actions configuration (ci: gitlab)');
  return config.github;
}

/** The GitLab settings of a `ci: gitlab` configuration. */
export function gitlabOf(config: ResolvedConfig): NonNullable<ResolvedConfig['gitlab']> {
  if (!config.gitlab) throw new Error('not a GitLab CI configuration (ci: github)');
  return config.gitlab;
}

/** How reports name the repository: GitHub's owner/name, or GitLab's project path. */
export function repositoryName(config: ResolvedConfig): string {
  return config.github?.repository ?? config.gitlab?.project ?? '';
}

/** The roles of a configuration: main and branch always, deploy with a deploy environment. */
export function ciRoles(config: ResolvedConfig): CiRole[] {
  const trust = config.ci === 'gitlab' ? gitlabTrust(config) : githubTrust(config);
  const arn = (name: string) => roleArn(config.aws.accountId, config.aws.region, name);
  const roles: CiRole[] = [
    {
      kind: 'main',
      name: config.aws.roleName,
      arn: arn(config.aws.roleName),
      subjects: [trust.main],
      subjectOperator: 'StringEquals',
      assumedBy: `the ${config.mainBranch} branch`,
    },
    {
      kind: 'branch',
      name: config.aws.branchRoleName,
      arn: arn(config.aws.branchRoleName),
      subjects: trust.branch,
      subjectOperator: 'StringLike',
      assumedBy: trust.branchAssumedBy,
    },
  ];
  const environment = deployEnvironment(config);
  if (environment !== undefined) {
    roles.push({
      kind: 'deploy',
      name: config.aws.deployRoleName,
      arn: arn(config.aws.deployRoleName),
      subjects: [trust.deploy(environment)],
      subjectOperator: 'StringEquals',
      assumedBy: trust.deployAssumedBy(environment),
    });
  }
  return roles;
}

/** Which OIDC subjects each role trusts, per CI: the one place the two CIs differ. */
interface CiTrust {
  main: string;
  branch: string[];
  branchAssumedBy: string;
  deploy: (environment: string) => string;
  deployAssumedBy: (environment: string) => string;
}

/**
 * GitHub: main for exactly the main branch's subject, branch for every branch and every pull
 * request, deploy only through the environment's subject (its protection rules gate AWS).
 */
function githubTrust(config: ResolvedConfig): CiTrust {
  const repo = githubOf(config).repository;
  return {
    main: githubSubject.branch(repo, config.mainBranch),
    branch: [githubSubject.branch(repo, '*'), githubSubject.pullRequest(repo)],
    branchAssumedBy: 'branch builds and pull requests',
    deploy: (environment) => githubSubject.environment(repo, environment),
    deployAssumedBy: (environment) => `the deploy job (environment ${environment})`,
  };
}

/**
 * GitLab: main for exactly the main branch's subject, branch for every branch's (merge requests
 * included: their subject is the source branch's), deploy for the main branch's subject too (IAM
 * cannot condition on GitLab's environment claim; docs/gitlab-ci.md). Other projects and tags
 * (`ref_type:tag`) match none of them.
 */
function gitlabTrust(config: ResolvedConfig): CiTrust {
  const project = gitlabOf(config).project;
  const main = gitlabSubject.branch(project, config.mainBranch);
  return {
    main,
    branch: [gitlabSubject.branch(project, '*')],
    branchAssumedBy: 'branch builds and merge requests',
    deploy: () => main,
    deployAssumedBy: (environment) =>
      `the deploy job (environment ${environment}, on the ${config.mainBranch} branch)`,
  };
}

export function ciRole(config: ResolvedConfig, kind: RoleKind): CiRole {
  const role = ciRoles(config).find((each) => each.kind === kind);
  if (!role) throw new Error(`no ${kind} role in this configuration`);
  return role;
}

/** The deploy job's environment, when there is a deploy job and it names one. */
export function deployEnvironment(config: ResolvedConfig): string | undefined {
  return config.workflow.deploy?.environment;
}

/** The role of the deploy job: its own when an environment gates it, else the main role. */
export function deployRoleKind(config: ResolvedConfig): RoleKind {
  return deployEnvironment(config) === undefined ? 'main' : 'deploy';
}

/** The kinds of work a CI job does, each of which needs exactly one role. */
export type Work =
  | 'build'
  | 'prune'
  | 'seed'
  | 'merge'
  | 'apply'
  | 'deploy'
  | 'delete-branch-cache'
  | 'sweep-branch-caches';

/**
 * The role of each kind of work: the one table every CI's jobs are built from. A build (and the
 * prune after it) writes main's cache and pushes images on the main branch, and only a branch's
 * cache anywhere else; the seed, the merge of platform images into a manifest list (it pushes the
 * image's tag) and apply run on main only; the deploy has its own role behind an environment; a
 * deleted branch's cache is in the branch-cache repositories, and so are the caches of every
 * branch the scheduled sweep finds deleted.
 */
export function roleForWork(config: ResolvedConfig, work: Work, onMainBranch: boolean): RoleKind {
  switch (work) {
    case 'build':
    case 'prune':
      return onMainBranch ? 'main' : 'branch';
    case 'seed':
    case 'merge':
    case 'apply':
      return 'main';
    case 'deploy':
      return deployRoleKind(config);
    case 'delete-branch-cache':
    case 'sweep-branch-caches':
      return 'branch';
  }
}
