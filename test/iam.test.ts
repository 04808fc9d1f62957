import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { rolePolicy, roleTrustPolicy } from '../src/model/iam.js';
import { generatedPaths, renderFiles } from '../src/render/render-files.js';
import { allows, type Policy, trustAccepts } from './support/iam-evaluator.js';

/**
 * The CI roles (ecr/<kind>-role-policy.json) and who may assume them
 * (ecr/<kind>-role-trust-policy.json), read from the files `generate` writes and judged with the
 * test IAM evaluator (itself checked against AWS's examples in iam-evaluator.test.ts). The ARNs
 * and subjects are spelled out here, not built with src/model/aws.ts or roles.ts.
 */

const ACCOUNT = '123456789012';
const REPOSITORY = 'acme/shop';

/** What `create-cached-deploy apply` calls (src/ecr/port.ts), and nothing else. */
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
const PULL_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:GetDownloadUrlForLayer',
];
const WRITE_ACTIONS = [
  'ecr:CompleteLayerUpload',
  'ecr:InitiateLayerUpload',
  'ecr:PutImage',
  'ecr:UploadLayerPart',
];
const PUSH_PULL_ACTIONS = [...PULL_ACTIONS, ...WRITE_ACTIONS].sort();
const PRUNE_ACTIONS = ['ecr:BatchDeleteImage', 'ecr:DescribeImages', 'ecr:ListImages'];
/**
 * Every ECR action that changes a repository's policies, settings or existence, or the registry's:
 * none may ever be reachable from a branch or a pull request.
 */
const ADMIN_ACTIONS = [
  'ecr:CreateRepository',
  'ecr:DeleteRepository',
  'ecr:DeleteLifecyclePolicy',
  'ecr:DeleteRepositoryPolicy',
  'ecr:DeleteRegistryPolicy',
  'ecr:PutImageScanningConfiguration',
  'ecr:PutImageTagMutability',
  'ecr:PutLifecyclePolicy',
  'ecr:PutRegistryPolicy',
  'ecr:PutRegistryScanningConfiguration',
  'ecr:PutReplicationConfiguration',
  'ecr:SetRepositoryPolicy',
  'ecr:StartLifecyclePolicyPreview',
  'ecr:TagResource',
  'ecr:UntagResource',
  'ecr:CreatePullThroughCacheRule',
  'ecr:CreateRepositoryCreationTemplate',
];

type Raw = Record<string, unknown>;

const CASES: { name: string; raw: Raw; partition: string; region: string }[] = [
  {
    name: 'one image (eu-west-1)',
    raw: { images: [{ name: 'api', repository: 'acme/api' }] },
    partition: 'aws',
    region: 'eu-west-1',
  },
  {
    name: 'three images, custom cache and branch-cache repositories',
    raw: {
      images: [
        { name: 'api', repository: 'acme/api' },
        { name: 'web', repository: 'acme/web', context: 'web' },
        {
          name: 'worker',
          repository: 'acme/worker',
          cacheRepository: 'acme/build-cache-worker',
          branchCacheRepository: 'branch-caches/worker',
        },
      ],
    },
    partition: 'aws',
    region: 'eu-west-1',
  },
  {
    name: 'two images sharing one cache repository (and so one branch-cache repository)',
    raw: {
      images: [
        { name: 'api', repository: 'acme/api', cacheRepository: 'acme/cache' },
        { name: 'web', repository: 'acme/web', context: 'web', cacheRepository: 'acme/cache' },
      ],
    },
    partition: 'aws',
    region: 'eu-west-1',
  },
  {
    name: 'China partition, main branch "release/prod"',
    raw: { images: [{ name: 'api', repository: 'acme/api' }] },
    partition: 'aws-cn',
    region: 'cn-north-1',
  },
  {
    name: 'GovCloud partition, deploy environment',
    raw: {
      images: [{ name: 'api', repository: 'acme/api' }],
      workflow: { deploy: { command: 'make deploy', environment: 'production' } },
    },
    partition: 'aws-us-gov',
    region: 'us-gov-west-1',
  },
  {
    name: 'deploy without environment, seed off, custom role names',
    raw: {
      aws: { roleName: 'shop-ci', branchRoleName: 'shop-ci-untrusted' },
      images: [{ name: 'api', repository: 'acme/api' }],
      workflow: { deploy: { command: 'make deploy' } },
      seed: { enabled: false },
    },
    partition: 'aws',
    region: 'us-east-1',
  },
];

function configOf(each: (typeof CASES)[number]): ResolvedConfig {
  const { aws, ...rest } = each.raw as { aws?: Raw };
  return parseConfig(
    stringify({
      aws: { accountId: ACCOUNT, region: each.region, ...aws },
      github: {
        repository: REPOSITORY,
        ...(each.name.includes('release/prod') ? { mainBranch: 'release/prod' } : {}),
      },
      ...rest,
    }),
  );
}

interface RoleFiles {
  kind: 'main' | 'branch' | 'deploy';
  name: string;
  arn: string;
  policy: Policy;
  trust: Policy;
}

/** The roles as generate writes them: read back from the rendered files. */
function rolesOf(config: ResolvedConfig, partition: string): RoleFiles[] {
  const files = new Map(renderFiles(config, '0.0.0-test').map((file) => [file.path, file.content]));
  const paths = generatedPaths(config);
  const names = {
    main: config.aws.roleName,
    branch: config.aws.branchRoleName,
    deploy: config.aws.deployRoleName,
  };
  return (['main', 'branch', 'deploy'] as const).flatMap((kind) => {
    const policy = files.get(paths.roles[kind].policy);
    const trust = files.get(paths.roles[kind].trust);
    if (policy === undefined || trust === undefined) {
      expect(policy).toBe(trust);
      return [];
    }
    return [
      {
        kind,
        name: names[kind],
        arn: `arn:${partition}:iam::${ACCOUNT}:role/${names[kind]}`,
        policy: JSON.parse(policy),
        trust: JSON.parse(trust),
      },
    ];
  });
}

const list = (value: string | string[] | undefined) =>
  value === undefined ? [] : [value].flat().slice();

describe.each(CASES)('the CI roles: $name', (each) => {
  const config = configOf(each);
  const roles = rolesOf(config, each.partition);
  const role = (kind: string) => roles.find((r) => r.kind === kind) as RoleFiles;
  const arn = (repository: string) =>
    `arn:${each.partition}:ecr:${each.region}:${ACCOUNT}:repository/${repository}`;
  const unique = (names: string[]) => [...new Set(names)];
  const images = unique(config.images.map((image) => image.repository));
  const caches = unique(config.images.map((image) => image.cacheRepository));
  const branchCaches = unique(config.images.map((image) => image.branchCacheRepository));
  const provider = `arn:${each.partition}:iam::${ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`;
  const main = config.mainBranch;
  const environment = config.workflow.deploy?.environment;
  const sub = {
    branch: (name: string) => `repo:${REPOSITORY}:ref:refs/heads/${name}`,
    pr: `repo:${REPOSITORY}:pull_request`,
    environment: (name: string) => `repo:${REPOSITORY}:environment:${name}`,
  };
  const accepts = (r: RoleFiles, subject: string, aud?: string) =>
    trustAccepts(r.trust, { providerArn: provider, roleArn: r.arn, sub: subject, aud });
  const may = (r: RoleFiles, action: string, resource: string) =>
    allows([r.policy], { action, resource });

  it('writes a main and a branch role, and a deploy role exactly when a deploy environment is set', () => {
    expect(roles.map((r) => r.kind)).toEqual([
      'main',
      'branch',
      ...(environment ? ['deploy'] : []),
    ]);
    expect(generatedPaths(config).roles.main).toEqual({
      policy: `${config.paths.ecrDir}/main-role-policy.json`,
      trust: `${config.paths.ecrDir}/main-role-trust-policy.json`,
    });
    expect(new Set(roles.map((r) => r.name)).size).toBe(roles.length);
    // JSON as rolePolicy/roleTrustPolicy build it.
    for (const r of roles) {
      expect(r.policy).toEqual(rolePolicy(config, r.kind));
      expect(r.trust).toEqual(roleTrustPolicy(config, r.kind));
    }
  });

  it('each role trusts only GitHub OIDC of this account, for the sts.amazonaws.com audience', () => {
    for (const r of roles) {
      const statements = list(r.trust.Statement as never) as unknown as Record<string, unknown>[];
      expect(statements).toHaveLength(1);
      expect(statements[0]).toMatchObject({
        Effect: 'Allow',
        Principal: { Federated: provider },
        Action: 'sts:AssumeRoleWithWebIdentity',
      });
      const subject = r.kind === 'main' ? sub.branch(main) : r.kind === 'branch' ? sub.pr : '';
      if (subject) {
        expect(accepts(r, subject)).toBe(true);
        expect(accepts(r, subject, 'sigstore')).toBe(false);
        // Another account's (or partition's) provider is not trusted.
        expect(
          trustAccepts(r.trust, {
            providerArn: provider.replace(ACCOUNT, '210987654321'),
            roleArn: r.arn,
            sub: subject,
          }),
        ).toBe(false);
      }
    }
  });

  it(`the main role: exactly refs/heads/${main}, nothing else`, () => {
    const r = role('main');
    expect(accepts(r, sub.branch(main))).toBe(true);
    for (const subject of [
      sub.branch(`${main}-old`),
      sub.branch(`${main}/x`),
      sub.branch(main.toUpperCase()),
      sub.branch(main.charAt(0).toUpperCase() + main.slice(1)),
      sub.branch('*'),
      sub.branch(''),
      sub.pr,
      sub.environment('production'),
      `repo:${REPOSITORY}:ref:refs/tags/${main}`,
      `repo:mallory/shop:ref:refs/heads/${main}`,
      `repo:${REPOSITORY}x:ref:refs/heads/${main}`,
    ]) {
      expect(accepts(r, subject), subject).toBe(false);
    }
  });

  it('the branch role: every branch and pull request of this repository, nothing of any other', () => {
    const r = role('branch');
    for (const subject of [sub.branch('feat/x'), sub.branch(main), sub.branch('a'), sub.pr]) {
      expect(accepts(r, subject), subject).toBe(true);
    }
    for (const subject of [
      `repo:${REPOSITORY}:ref:refs/tags/v1.0.0`,
      sub.environment(environment ?? 'production'),
      'repo:mallory/shop:pull_request',
      'repo:mallory/shop:ref:refs/heads/main',
      `repo:${REPOSITORY}-fork:ref:refs/heads/main`,
      `repo:${REPOSITORY}x:pull_request`,
      'repo:ACME/SHOP:pull_request',
      `repo:${REPOSITORY}`,
      '',
    ]) {
      expect(accepts(r, subject), subject).toBe(false);
    }
  });

  if (environment !== undefined)
    it('the deploy role: only through the deploy environment', () => {
      const r = role('deploy');
      expect(accepts(r, sub.environment(environment as string))).toBe(true);
      for (const subject of [
        sub.branch(main),
        sub.branch('feat/x'),
        sub.pr,
        sub.environment(`${environment}-2`),
        sub.environment('staging'),
        `repo:mallory/shop:environment:${environment}`,
      ]) {
        expect(accepts(r, subject), subject).toBe(false);
      }
    });

  /** Every `sub` a branch or a pull request can present, some of them made to look like main. */
  const untrustedSubjects = [
    sub.branch('feat/x'),
    sub.branch(`${main}-old`),
    sub.branch(`${main}/x`),
    sub.branch(main.toUpperCase()),
    sub.branch(`${main}.api`),
    sub.branch('seed'),
    sub.pr,
  ];

  it('proves: no sub a branch or pull request presents reaches a write to an image or main-cache repository, a delete there, or any administrative action anywhere', () => {
    const everyResource = [
      ...[...images, ...caches, ...branchCaches].map(arn),
      arn('some-other-repository'),
      `arn:${each.partition}:ecr:${each.region}:${ACCOUNT}:repository/*`,
      '*',
    ];
    let checked = 0;
    for (const subject of untrustedSubjects) {
      const reachable = roles.filter((r) => accepts(r, subject));
      // Only the branch role (never main's or the deploy role).
      expect(
        reachable.map((r) => r.kind),
        subject,
      ).toEqual(['branch']);
      for (const r of reachable) {
        for (const repository of [...images, ...caches]) {
          for (const action of [...WRITE_ACTIONS, 'ecr:BatchDeleteImage']) {
            expect(may(r, action, arn(repository)), `${subject}: ${action} ${repository}`).toBe(
              false,
            );
            checked++;
          }
        }
        for (const resource of everyResource) {
          for (const action of ADMIN_ACTIONS) {
            expect(may(r, action, resource), `${subject}: ${action} ${resource}`).toBe(false);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(untrustedSubjects.length * ADMIN_ACTIONS.length);
  });

  it('the branch role can do a branch build: pull the main and seed caches, write and prune only branch caches', () => {
    const r = role('branch');
    expect(may(r, 'ecr:GetAuthorizationToken', '*')).toBe(true);
    for (const repository of caches) {
      for (const action of PULL_ACTIONS) expect(may(r, action, arn(repository))).toBe(true);
      expect(may(r, 'ecr:ListImages', arn(repository))).toBe(false);
    }
    for (const repository of branchCaches) {
      for (const action of [...PUSH_PULL_ACTIONS, ...PRUNE_ACTIONS]) {
        expect(may(r, action, arn(repository)), `${action} ${repository}`).toBe(true);
      }
    }
    // Nothing at all on a deployable image.
    for (const repository of images) {
      for (const action of [...PUSH_PULL_ACTIONS, ...PRUNE_ACTIONS, ...APPLY_ACTIONS]) {
        expect(may(r, action, arn(repository)), `${action} ${repository}`).toBe(false);
      }
    }
  });

  it('the main role can do everything main does, and nothing to branch caches but apply', () => {
    const r = role('main');
    expect(may(r, 'ecr:GetAuthorizationToken', '*')).toBe(true);
    for (const repository of images) {
      for (const action of [...PUSH_PULL_ACTIONS, 'ecr:DescribeImages', ...APPLY_ACTIONS]) {
        expect(may(r, action, arn(repository)), `${action} ${repository}`).toBe(true);
      }
      // Images are never deleted by CI: lifecycle policies do that.
      expect(may(r, 'ecr:BatchDeleteImage', arn(repository))).toBe(false);
    }
    for (const repository of caches) {
      for (const action of [...PUSH_PULL_ACTIONS, ...PRUNE_ACTIONS, ...APPLY_ACTIONS]) {
        expect(may(r, action, arn(repository)), `${action} ${repository}`).toBe(true);
      }
    }
    for (const repository of branchCaches) {
      for (const action of APPLY_ACTIONS) expect(may(r, action, arn(repository))).toBe(true);
      for (const action of [...WRITE_ACTIONS, 'ecr:BatchDeleteImage']) {
        expect(may(r, action, arn(repository))).toBe(false);
      }
    }
    for (const action of [
      'ecr:DeleteRepository',
      'ecr:SetRepositoryPolicy',
      'ecr:PutRegistryPolicy',
    ]) {
      for (const repository of [...images, ...caches, ...branchCaches]) {
        expect(may(r, action, arn(repository))).toBe(false);
      }
    }
  });

  if (environment !== undefined)
    it('the deploy role can pull the images, and nothing else', () => {
      const r = role('deploy');
      expect(may(r, 'ecr:GetAuthorizationToken', '*')).toBe(true);
      for (const repository of images) {
        for (const action of PULL_ACTIONS) expect(may(r, action, arn(repository))).toBe(true);
        for (const action of [...WRITE_ACTIONS, ...PRUNE_ACTIONS, ...APPLY_ACTIONS]) {
          expect(may(r, action, arn(repository)), action).toBe(false);
        }
      }
      for (const repository of [...caches, ...branchCaches]) {
        expect(may(r, 'ecr:BatchGetImage', arn(repository))).toBe(false);
      }
    });

  it('has no wildcard action, "*" only as the resource of GetAuthorizationToken, and partition-aware ARNs', () => {
    for (const r of roles) {
      for (const statement of list(r.policy.Statement as never) as unknown as {
        Sid: string;
        Effect: string;
        Action: string | string[];
        Resource: string | string[];
      }[]) {
        expect(statement.Effect).toBe('Allow');
        for (const action of list(statement.Action)) expect(action).toMatch(/^ecr:[A-Za-z]+$/);
        const resources = list(statement.Resource);
        if (resources.includes('*')) {
          expect(statement.Sid).toBe('EcrLogin');
          expect(list(statement.Action)).toEqual(['ecr:GetAuthorizationToken']);
        } else {
          for (const resource of resources) {
            expect(resource).toMatch(
              new RegExp(
                `^arn:${each.partition}:ecr:${each.region}:${ACCOUNT}:repository/[a-z0-9/._-]+$`,
              ),
            );
          }
        }
      }
    }
  });
});

describe('the CI roles on GitLab (ci: gitlab)', () => {
  const PROJECT = 'acme/platform/shop';
  const HOST = 'gitlab.com';
  const config = parseConfig(
    stringify({
      ci: 'gitlab',
      aws: { accountId: ACCOUNT, region: 'eu-west-1' },
      gitlab: { project: PROJECT },
      images: [{ name: 'api', repository: 'acme/api' }],
      workflow: { deploy: { command: './deploy.sh', environment: 'production' } },
    }),
  );
  const roles = rolesOf(config, 'aws');
  const role = (kind: string) => roles.find((r) => r.kind === kind) as RoleFiles;
  const provider = `arn:aws:iam::${ACCOUNT}:oidc-provider/${HOST}`;
  const sub = (project: string, type: string, ref: string) =>
    `project_path:${project}:ref_type:${type}:ref:${ref}`;
  const accepts = (
    r: RoleFiles,
    subject: string,
    options: { aud?: string; providerArn?: string } = {},
  ) =>
    trustAccepts(r.trust, {
      providerArn: options.providerArn ?? provider,
      roleArn: r.arn,
      sub: subject,
      aud: options.aud ?? `https://${HOST}`,
      issuer: HOST,
    });
  // A merge request pipeline presents its source branch's subject, so these are branches and
  // merge requests alike.
  const notMain = ['Main', 'MAIN', 'main-old', 'main/x', 'seed', 'main.api', 'feat/x', 'x:main'];

  it('trusts the main role for exactly the main branch of this project', () => {
    expect(accepts(role('main'), sub(PROJECT, 'branch', 'main'))).toBe(true);
    for (const branch of notMain) {
      expect(accepts(role('main'), sub(PROJECT, 'branch', branch)), branch).toBe(false);
    }
    // A tag named main, another project (one sharing a prefix, a fork), another audience or
    // another instance's provider: none.
    expect(accepts(role('main'), sub(PROJECT, 'tag', 'main'))).toBe(false);
    for (const project of [
      'acme/platform/shop-x',
      'acme/platform',
      'fork/shop',
      'acme/platform/shop/x',
    ]) {
      expect(accepts(role('main'), sub(project, 'branch', 'main')), project).toBe(false);
    }
    expect(
      accepts(role('main'), sub(PROJECT, 'branch', 'main'), { aud: 'sts.amazonaws.com' }),
    ).toBe(false);
    expect(
      accepts(role('main'), sub(PROJECT, 'branch', 'main'), {
        providerArn: `arn:aws:iam::${ACCOUNT}:oidc-provider/gitlab.example.com`,
      }),
    ).toBe(false);
  });

  it('trusts the branch role for every branch and merge request of this project, never a tag or another project', () => {
    for (const branch of ['main', ...notMain]) {
      expect(accepts(role('branch'), sub(PROJECT, 'branch', branch)), branch).toBe(true);
    }
    expect(accepts(role('branch'), sub(PROJECT, 'tag', 'v1'))).toBe(false);
    expect(accepts(role('branch'), sub('acme/platform/shop-x', 'branch', 'x'))).toBe(false);
    expect(accepts(role('branch'), sub('fork/shop', 'branch', 'main'))).toBe(false);
  });

  it('trusts the deploy role for the main branch only (IAM cannot read GitLab environment claims)', () => {
    expect(accepts(role('deploy'), sub(PROJECT, 'branch', 'main'))).toBe(true);
    for (const branch of notMain) {
      expect(accepts(role('deploy'), sub(PROJECT, 'branch', branch)), branch).toBe(false);
    }
  });

  it('gives no branch or merge request a push or delete on an image or cache repository', () => {
    const branchRole = role('branch');
    for (const action of [...WRITE_ACTIONS, ...PRUNE_ACTIONS]) {
      for (const repository of ['acme/api', 'acme/api-buildcache']) {
        const resource = `arn:aws:ecr:eu-west-1:${ACCOUNT}:repository/${repository}`;
        if (action === 'ecr:DescribeImages' || action === 'ecr:ListImages') continue;
        expect(allows([branchRole.policy], { action, resource }), `${action} ${repository}`).toBe(
          false,
        );
      }
    }
  });
});
