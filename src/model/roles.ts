import type { ResolvedConfig } from '../config/resolve.js';
import { roleArn } from './aws.js';

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

/** The audience configure-aws-credentials asks GitHub for. */
export const OIDC_AUDIENCE = 'sts.amazonaws.com';
export const GITHUB_OIDC_HOST = 'token.actions.githubusercontent.com';

/** The roles of a configuration: main and branch always, deploy with a deploy environment. */
export function ciRoles(config: ResolvedConfig): CiRole[] {
  const { accountId, region } = config.aws;
  const repo = config.github.repository;
  const arn = (name: string) => roleArn(accountId, region, name);
  const roles: CiRole[] = [
    {
      kind: 'main',
      name: config.aws.roleName,
      arn: arn(config.aws.roleName),
      subjects: [githubSubject.branch(repo, config.github.mainBranch)],
      subjectOperator: 'StringEquals',
      assumedBy: `the ${config.github.mainBranch} branch`,
    },
    {
      kind: 'branch',
      name: config.aws.branchRoleName,
      arn: arn(config.aws.branchRoleName),
      subjects: [githubSubject.branch(repo, '*'), githubSubject.pullRequest(repo)],
      subjectOperator: 'StringLike',
      assumedBy: 'branch builds and pull requests',
    },
  ];
  const environment = deployEnvironment(config);
  if (environment !== undefined) {
    roles.push({
      kind: 'deploy',
      name: config.aws.deployRoleName,
      arn: arn(config.aws.deployRoleName),
      subjects: [githubSubject.environment(repo, environment)],
      subjectOperator: 'StringEquals',
      assumedBy: `the deploy job (environment ${environment})`,
    });
  }
  return roles;
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
  | 'apply'
  | 'deploy'
  | 'delete-branch-cache'
  | 'sweep-branch-caches';

/**
 * The role of each kind of work: the one table every CI's jobs are built from. A build (and the
 * prune after it) writes main's cache and pushes images on the main branch, and only a branch's
 * cache anywhere else; the seed and apply run on main only; the deploy has its own role behind an
 * environment; a deleted branch's cache is in the branch-cache repositories, and so are the caches
 * of every branch the scheduled sweep finds deleted.
 */
export function roleForWork(config: ResolvedConfig, work: Work, onMainBranch: boolean): RoleKind {
  switch (work) {
    case 'build':
    case 'prune':
      return onMainBranch ? 'main' : 'branch';
    case 'seed':
    case 'apply':
      return 'main';
    case 'deploy':
      return deployRoleKind(config);
    case 'delete-branch-cache':
    case 'sweep-branch-caches':
      return 'branch';
  }
}
