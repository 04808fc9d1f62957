import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { ACTIONS } from '../src/model/actions.js';
import { ciRolePolicy, ciTrustPolicy, type PolicyStatement } from '../src/model/iam.js';
import type { Job, Workflow } from '../src/model/workflow.js';
import { generatedPaths, renderFiles } from '../src/render/render-files.js';

/**
 * The CI role (ecr/iam-policy.json) and who may assume it (ecr/trust-policy.json): least
 * privilege, checked per repository ARN, and derived from the configuration independently of the
 * model (the ARNs are spelled out here, not built with src/model/aws.ts).
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
const PUSH_PULL_ACTIONS = [
  'ecr:BatchCheckLayerAvailability',
  'ecr:BatchGetImage',
  'ecr:CompleteLayerUpload',
  'ecr:GetDownloadUrlForLayer',
  'ecr:InitiateLayerUpload',
  'ecr:PutImage',
  'ecr:UploadLayerPart',
];
const PRUNE_ACTIONS = ['ecr:BatchDeleteImage', 'ecr:DescribeImages', 'ecr:ListImages'];
/** The pruner's actions that apply does not also need: they must never reach an image repository. */
const PRUNE_ONLY_ACTIONS = PRUNE_ACTIONS.filter((action) => !APPLY_ACTIONS.includes(action));

type Raw = Record<string, unknown>;

const CASES: { name: string; raw: Raw; partition: string; region: string }[] = [
  {
    name: 'one image (eu-west-1)',
    raw: { images: [{ name: 'api', repository: 'acme/api' }] },
    partition: 'aws',
    region: 'eu-west-1',
  },
  {
    name: 'three images, one custom cache repository',
    raw: {
      images: [
        { name: 'api', repository: 'acme/api' },
        { name: 'web', repository: 'acme/web', context: 'web' },
        { name: 'worker', repository: 'acme/worker', cacheRepository: 'acme/build-cache-worker' },
      ],
    },
    partition: 'aws',
    region: 'eu-west-1',
  },
  {
    name: 'two images sharing one cache repository',
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
    name: 'China partition',
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
    name: 'deploy without environment, seed off',
    raw: {
      images: [{ name: 'api', repository: 'acme/api' }],
      workflow: { deploy: { command: 'make deploy' } },
      seed: { enabled: false },
    },
    partition: 'aws',
    region: 'us-east-1',
  },
];

function configOf(each: (typeof CASES)[number]): ResolvedConfig {
  return parseConfig(
    stringify({
      aws: { accountId: ACCOUNT, region: each.region },
      github: { repository: REPOSITORY },
      ...each.raw,
    }),
  );
}

const list = (value: string | string[] | undefined) =>
  value === undefined ? [] : [value].flat().slice();

/** IAM's StringLike: `*` is any run of characters (`/` and `:` included), `?` any one. */
function stringLike(pattern: string, value: string): boolean {
  const source = pattern
    .split('')
    .map((char) =>
      char === '*' ? '.*' : char === '?' ? '.' : char.replace(/[.+^${}()|[\]\\/]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${source}$`, 's').test(value);
}

describe.each(CASES)('the CI role: $name', (each) => {
  const config = configOf(each);
  const policy = ciRolePolicy(config);
  const arn = (repository: string) =>
    `arn:${each.partition}:ecr:${each.region}:${ACCOUNT}:repository/${repository}`;
  const imageArns = [...new Set(config.images.map((image) => arn(image.repository)))].sort();
  const cacheArns = [...new Set(config.images.map((image) => arn(image.cacheRepository)))].sort();
  const bySid = (sid: string) => policy.Statement.find((statement) => statement.Sid === sid);

  it('has exactly the four statements, each an Allow with plain Action and Resource', () => {
    expect(policy.Version).toBe('2012-10-17');
    expect(policy.Statement.map((statement) => statement.Sid)).toEqual([
      'EcrLogin',
      'PushPullImagesAndCache',
      'PruneCache',
      'ApplyRepositorySettings',
    ]);
    for (const statement of policy.Statement) {
      expect(Object.keys(statement).sort(), statement.Sid).toEqual(
        ['Action', 'Effect', 'Resource', 'Sid'].sort(),
      );
      expect(statement.Effect).toBe('Allow');
    }
  });

  it('grants apply exactly what it calls, on exactly the image and cache repositories', () => {
    const apply = bySid('ApplyRepositorySettings') as PolicyStatement;
    expect(apply.Action).toEqual(APPLY_ACTIONS);
    expect(apply.Resource).toEqual([...new Set([...imageArns, ...cacheArns])].sort());
    // Partition-aware: the ARNs are the region's partition's.
    for (const resource of list(apply.Resource)) {
      expect(resource.startsWith(`arn:${each.partition}:ecr:${each.region}:${ACCOUNT}:`)).toBe(
        true,
      );
    }
  });

  it('grants push/pull on images and caches, and the pruner only on cache repositories', () => {
    const pushPull = bySid('PushPullImagesAndCache') as PolicyStatement;
    expect(pushPull.Action).toEqual(PUSH_PULL_ACTIONS);
    expect(pushPull.Resource).toEqual([...new Set([...imageArns, ...cacheArns])].sort());
    const prune = bySid('PruneCache') as PolicyStatement;
    expect(prune.Action).toEqual(PRUNE_ACTIONS);
    expect(prune.Resource).toEqual(cacheArns);
  });

  it('per repository: images get push/pull + apply, caches also the pruner, nothing else anything', () => {
    const granted = new Map<string, Set<string>>();
    for (const statement of policy.Statement) {
      for (const resource of list(statement.Resource)) {
        const actions = granted.get(resource) ?? new Set<string>();
        for (const action of list(statement.Action)) actions.add(action);
        granted.set(resource, actions);
      }
    }
    const sorted = (actions: Iterable<string>) => [...new Set(actions)].sort();
    const expected = new Map<string, string[]>([['*', ['ecr:GetAuthorizationToken']]]);
    for (const image of imageArns)
      expected.set(image, sorted([...PUSH_PULL_ACTIONS, ...APPLY_ACTIONS]));
    for (const cache of cacheArns) {
      expected.set(cache, sorted([...PUSH_PULL_ACTIONS, ...APPLY_ACTIONS, ...PRUNE_ACTIONS]));
    }
    expect(
      Object.fromEntries([...granted].map(([resource, actions]) => [resource, sorted(actions)])),
    ).toEqual(Object.fromEntries(expected));
    // No image repository (that is not also a cache) can have an image deleted or listed.
    for (const image of imageArns.filter((each) => !cacheArns.includes(each))) {
      for (const action of PRUNE_ONLY_ACTIONS) {
        expect(granted.get(image)?.has(action), `${action} on ${image}`).toBe(false);
      }
    }
  });

  it('has no wildcard action, and "*" only as the resource of GetAuthorizationToken', () => {
    for (const statement of policy.Statement) {
      for (const action of list(statement.Action)) {
        expect(action, statement.Sid).toMatch(/^ecr:[A-Za-z]+$/);
      }
      const resources = list(statement.Resource);
      if (resources.includes('*')) {
        expect(statement.Sid).toBe('EcrLogin');
        expect(resources).toEqual(['*']);
        expect(list(statement.Action)).toEqual(['ecr:GetAuthorizationToken']);
      } else {
        for (const resource of resources) {
          expect(resource, statement.Sid).not.toContain('*');
          expect(resource, statement.Sid).toMatch(
            new RegExp(
              `^arn:${each.partition}:ecr:${each.region}:${ACCOUNT}:repository/[a-z0-9/._-]+$`,
            ),
          );
        }
      }
    }
    const tokenStatements = policy.Statement.filter((statement) =>
      list(statement.Action).includes('ecr:GetAuthorizationToken'),
    );
    expect(tokenStatements.map((statement) => statement.Sid)).toEqual(['EcrLogin']);
  });

  it('is what generate writes to <ecrDir>/iam-policy.json', () => {
    const paths = generatedPaths(config);
    const file = renderFiles(config, '0.0.0-test').find((f) => f.path === paths.iamPolicy);
    expect(paths.iamPolicy).toBe(`${config.paths.ecrDir}/iam-policy.json`);
    expect(JSON.parse(file?.content ?? 'null')).toEqual(policy);
  });
});

describe.each(CASES)('who may assume the CI role: $name', (each) => {
  const config = configOf(each);
  const trust = ciTrustPolicy(config);
  const environment = config.workflow.deploy?.environment;
  const [statement, ...more] = trust.Statement;
  const subjects = list(
    statement?.Condition?.StringLike?.['token.actions.githubusercontent.com:sub'],
  );
  const admits = (subject: string) => subjects.some((pattern) => stringLike(pattern, subject));

  it("trusts GitHub's OIDC provider of this account and partition, for sts.amazonaws.com", () => {
    expect(more).toEqual([]);
    expect(statement).toEqual({
      Sid: 'GitHubActionsOidc',
      Effect: 'Allow',
      Principal: {
        Federated: `arn:${each.partition}:iam::${ACCOUNT}:oidc-provider/token.actions.githubusercontent.com`,
      },
      Action: 'sts:AssumeRoleWithWebIdentity',
      Condition: {
        StringEquals: { 'token.actions.githubusercontent.com:aud': 'sts.amazonaws.com' },
        StringLike: { 'token.actions.githubusercontent.com:sub': expect.any(Array) },
      },
    });
  });

  it(`admits only ${REPOSITORY}'s branches, pull requests${environment ? ` and environment "${environment}"` : ''}`, () => {
    expect(subjects).toEqual([
      `repo:${REPOSITORY}:ref:refs/heads/*`,
      `repo:${REPOSITORY}:pull_request`,
      ...(environment ? [`repo:${REPOSITORY}:environment:${environment}`] : []),
    ]);
    for (const subject of [
      `repo:${REPOSITORY}:ref:refs/heads/main`,
      `repo:${REPOSITORY}:ref:refs/heads/feat/x`,
      `repo:${REPOSITORY}:pull_request`,
      ...(environment ? [`repo:${REPOSITORY}:environment:${environment}`] : []),
    ]) {
      expect(admits(subject), subject).toBe(true);
    }
    for (const subject of [
      `repo:${REPOSITORY}:ref:refs/tags/v1.0.0`,
      `repo:${REPOSITORY}:environment:${environment ? `${environment}-2` : 'production'}`,
      `repo:${REPOSITORY}:environment:staging`,
      'repo:mallory/shop:ref:refs/heads/main',
      'repo:mallory/shop:pull_request',
      `repo:${REPOSITORY}-fork:ref:refs/heads/main`,
      `repo:${REPOSITORY}x:pull_request`,
      `repo:ACME/SHOP:ref:refs/heads/main`,
      `repo:${REPOSITORY}`,
      '',
    ]) {
      expect(admits(subject), subject).toBe(false);
    }
  });

  it('admits every job of the generated workflow that assumes the role, on the runs that do', () => {
    const paths = generatedPaths(config);
    const files = renderFiles(config, '0.0.0-test');
    expect(JSON.parse(files.find((f) => f.path === paths.trustPolicy)?.content ?? 'null')).toEqual(
      trust,
    );
    const workflow = parse(
      files.find((f) => f.path === config.workflow.file)?.content ?? '',
    ) as Workflow;
    const main = `refs/heads/${config.github.mainBranch}`;
    // The token's subject: the job's environment if it has one, else the run's ref or
    // pull_request (https://docs.github.com/actions/reference/security/oidc).
    const subjectOf = (job: Job, ref: string) =>
      job.environment
        ? `repo:${REPOSITORY}:environment:${job.environment}`
        : `repo:${REPOSITORY}:${ref === 'pull_request' ? 'pull_request' : `ref:${ref}`}`;
    const runsOf: Record<string, string[]> = {
      build: [main, 'refs/heads/feat/x', 'pull_request'],
      deploy: [main],
      seed: [main],
      apply: [main],
      // A delete event runs on the default branch.
      'delete-branch-cache': [main],
    };
    const assuming = Object.entries(workflow.jobs).filter(([, job]) =>
      job.steps.some((step) => step.uses === ACTIONS.configureAwsCredentials),
    );
    expect(assuming.map(([id]) => id)).toContain('apply');
    for (const [id, job] of assuming) {
      const refs = runsOf[id];
      expect(refs, `${id} is not modelled`).toBeDefined();
      for (const ref of refs ?? []) {
        expect(admits(subjectOf(job, ref)), `${id} on ${ref}`).toBe(true);
      }
    }
  });
});
