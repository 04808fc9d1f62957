import type { ResolvedConfig } from '../config/resolve.js';
import { githubOidcProviderArn, repositoryArn } from './aws.js';

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

/** What a registry client needs to pull and push (docker login + BuildKit's registry cache). */
const PUSH_PULL_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:CompleteLayerUpload',
  'ecr:GetDownloadUrlForLayer',
  'ecr:InitiateLayerUpload',
  'ecr:PutImage',
  'ecr:UploadLayerPart',
];

/** What the pruner needs, granted on the cache repositories only: it can never touch images. */
const PRUNE_ACTIONS = ['ecr:BatchDeleteImage', 'ecr:DescribeImages', 'ecr:ListImages'];

/**
 * What `create-cached-deploy apply` needs (the workflow's apply job): create the repositories,
 * set their tag mutability and scanning, preview and put lifecycle policies, and list images to
 * check a preview against the tags the config protects.
 */
const APPLY_ACTIONS = [
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

export function ciRolePolicy(config: ResolvedConfig): PolicyDocument {
  const { accountId, region } = config.aws;
  const arns = (names: string[]) =>
    [...new Set(names)].sort().map((name) => repositoryArn(accountId, region, name));
  const imageRepos = config.images.map((image) => image.repository);
  const cacheRepos = config.images.map((image) => image.cacheRepository);
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'EcrLogin',
        Effect: 'Allow',
        // GetAuthorizationToken has no resource-level permissions: "*" is the only valid resource.
        Action: 'ecr:GetAuthorizationToken',
        Resource: '*',
      },
      {
        Sid: 'PushPullImagesAndCache',
        Effect: 'Allow',
        Action: PUSH_PULL_ACTIONS,
        Resource: arns([...imageRepos, ...cacheRepos]),
      },
      {
        Sid: 'PruneCache',
        Effect: 'Allow',
        Action: PRUNE_ACTIONS,
        Resource: arns(cacheRepos),
      },
      {
        Sid: 'ApplyRepositorySettings',
        Effect: 'Allow',
        Action: APPLY_ACTIONS,
        Resource: arns([...imageRepos, ...cacheRepos]),
      },
    ],
  };
}

/**
 * The CI role trusts GitHub's OIDC provider for this repository only: branch builds
 * (refs/heads/*) and pull requests from branches of this repository. Fork pull requests get no
 * token at all; tags and other repositories cannot assume it.
 */
export function ciTrustPolicy(config: ResolvedConfig): PolicyDocument {
  const repo = config.github.repository;
  const subjects = [`repo:${repo}:ref:refs/heads/*`, `repo:${repo}:pull_request`];
  const environment = config.workflow.deploy?.environment;
  if (environment) subjects.push(`repo:${repo}:environment:${environment}`);
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'GitHubActionsOidc',
        Effect: 'Allow',
        Principal: { Federated: githubOidcProviderArn(config.aws.accountId, config.aws.region) },
        Action: 'sts:AssumeRoleWithWebIdentity',
        Condition: {
          StringEquals: { 'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com' },
          StringLike: { 'token.actions.githubusercontent.com:sub': subjects },
        },
      },
    ],
  };
}
