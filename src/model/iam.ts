import type { ResolvedConfig } from '../config/resolve.js';
import { repositoryArn } from './aws.js';
import { ciRole, oidcIssuer, type RoleKind } from './roles.js';

export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: PolicyStatement[];
}

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: Record<string, string>;
  Action: string | string[];
  Resource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

/** What a registry client needs to pull (docker pull, BuildKit's cache import). */
export const PULL_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
];

/** What a registry client needs to pull and push (docker push, BuildKit's cache export). */
export const PUSH_PULL_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:CompleteLayerUpload',
  'ecr:GetDownloadUrlForLayer',
  'ecr:InitiateLayerUpload',
  'ecr:PutImage',
  'ecr:UploadLayerPart',
];

/** What the pruner needs, on cache repositories only: it can never touch images. */
export const PRUNE_ACTIONS = ['ecr:BatchDeleteImage', 'ecr:DescribeImages', 'ecr:ListImages'];

/**
 * What the build of the main branch needs on an image repository besides push: whether
 * `<image>:<sha>` already exists (a re-run must not push it again into an IMMUTABLE repository).
 */
export const IMAGE_TAG_CHECK_ACTIONS = ['ecr:DescribeImages'];

/**
 * What `create-cached-deploy apply` needs (the workflow's apply job): create the repositories,
 * set their tag mutability and scanning, preview and put lifecycle policies, and list images to
 * check a preview against the tags the config protects.
 */
export const APPLY_ACTIONS = [
  'ecr:CreateRepository',
  'ecr:DescribeImages',
  'ecr:DescribeRepositories',
  'ecr:GetLifecyclePolicy',
  'ecr:GetLifecyclePolicyPreview',
  'ecr:PutImageScanningConfiguration',
  'ecr:PutImageTagMutability',
  'ecr:PutLifecyclePolicy',
  'ecr:StartLifecyclePolicyPreview',
];

/** The repositories of a configuration by kind, each list without duplicates. */
export function repositoryNames(config: ResolvedConfig) {
  const unique = (names: string[]) => [...new Set(names)];
  return {
    images: unique(config.images.map((image) => image.repository)),
    caches: unique(config.images.map((image) => image.cacheRepository)),
    branchCaches: unique(config.images.map((image) => image.branchCacheRepository)),
  };
}

/** The permissions of one role (`<ecrDir>/<kind>-role-policy.json`). */
export function rolePolicy(config: ResolvedConfig, kind: RoleKind): PolicyDocument {
  const { accountId, region } = config.aws;
  const arns = (names: string[]) =>
    [...new Set(names)].sort().map((name) => repositoryArn(accountId, region, name));
  const repos = repositoryNames(config);
  const statement = (Sid: string, Action: string[], names: string[]): PolicyStatement => ({
    Sid,
    Effect: 'Allow',
    Action,
    Resource: arns(names),
  });
  const login: PolicyStatement = {
    Sid: 'EcrLogin',
    Effect: 'Allow',
    // GetAuthorizationToken has no resource-level permissions: "*" is the only valid resource.
    Action: 'ecr:GetAuthorizationToken',
    Resource: '*',
  };
  const statements: PolicyStatement[] = [login];
  switch (kind) {
    case 'main':
      statements.push(
        statement(
          'PushImages',
          [...PUSH_PULL_ACTIONS, ...IMAGE_TAG_CHECK_ACTIONS].sort(),
          repos.images,
        ),
        statement('WriteMainAndSeedCaches', PUSH_PULL_ACTIONS, repos.caches),
        statement('PruneMainAndSeedCaches', PRUNE_ACTIONS, repos.caches),
        statement('ApplyRepositorySettings', APPLY_ACTIONS, [
          ...repos.images,
          ...repos.caches,
          ...repos.branchCaches,
        ]),
      );
      break;
    case 'branch':
      statements.push(
        statement('ReadMainAndSeedCaches', PULL_ACTIONS, repos.caches),
        statement('WriteBranchCaches', PUSH_PULL_ACTIONS, repos.branchCaches),
        statement('PruneBranchCaches', PRUNE_ACTIONS, repos.branchCaches),
      );
      break;
    case 'deploy':
      statements.push(statement('PullImages', PULL_ACTIONS, repos.images));
      break;
  }
  return { Version: '2012-10-17', Statement: statements };
}

/**
 * Who may assume a role (`<ecrDir>/<kind>-role-trust-policy.json`): the CI's OIDC provider of
 * this account (GitHub's, or the GitLab instance's), for this repository's subjects of that role
 * only, and only with the audience the jobs request.
 */
export function roleTrustPolicy(config: ResolvedConfig, kind: RoleKind): PolicyDocument {
  const role = ciRole(config, kind);
  const issuer = oidcIssuer(config);
  const subjects = role.subjects.length === 1 ? (role.subjects[0] as string) : role.subjects;
  const audience = { [`${issuer.host}:aud`]: issuer.audience };
  const subject = { [`${issuer.host}:sub`]: subjects };
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: issuer.sid,
        Effect: 'Allow',
        Principal: { Federated: issuer.providerArn },
        Action: 'sts:AssumeRoleWithWebIdentity',
        Condition:
          role.subjectOperator === 'StringEquals'
            ? { StringEquals: { ...audience, ...subject } }
            : { StringEquals: audience, StringLike: subject },
      },
    ],
  };
}
