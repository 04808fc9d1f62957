import { stringify } from 'yaml';

/**
 * Every single-platform configuration the test suite generates files for (gathered from
 * test/workflow.test.ts, cache-matrix, iam, terraform, action-pins, projen and
 * untrusted-repository), plus single-platform variants of the suite's two multi-platform
 * configurations. test/single-platform-identity.test.ts renders each and compares every file,
 * byte for byte, with test/fixtures/single-platform.json.gz, which the generator wrote before images
 * could be built per platform (scripts/single-platform-fixtures.ts): multi-platform support must
 * change nothing for them.
 */

type Raw = Record<string, unknown>;

const ACCOUNT = '123456789012';

function base(patch: {
  mainBranch?: string;
  images?: Raw[];
  region?: string;
  rest?: Raw;
  repository?: string;
}): Raw {
  return {
    aws: { accountId: ACCOUNT, region: patch.region ?? 'eu-west-1' },
    github: {
      repository: patch.repository ?? 'acme/shop',
      ...(patch.mainBranch === undefined ? {} : { mainBranch: patch.mainBranch }),
    },
    images: patch.images ?? [{ name: 'api', repository: 'acme/api' }],
    ...patch.rest,
  };
}

const DEPLOY_COMMAND = './scripts/deploy.sh "$REGISTRY" "$IMAGE_TAG"';

/** test/workflow.test.ts's THREE_IMAGES, with api on one platform. */
const THREE_IMAGES_SINGLE: Raw[] = [
  { name: 'api', repository: 'acme/api', target: 'runtime' },
  { name: 'web', repository: 'acme/web', context: 'web' },
  {
    name: 'worker-jobs',
    repository: 'acme/worker',
    context: 'services/worker',
    dockerfile: 'docker/worker.Dockerfile',
    cacheRepository: 'acme/build-cache-worker',
  },
];

export const SINGLE_PLATFORM_CONFIGS: { name: string; raw: Raw }[] = [
  // test/workflow.test.ts
  { name: 'workflow-defaults', raw: base({}) },
  { name: 'workflow-three-images-single-platform', raw: base({ images: THREE_IMAGES_SINGLE }) },
  { name: 'workflow-main-master', raw: base({ mainBranch: 'master' }) },
  { name: 'workflow-main-release-prod', raw: base({ mainBranch: 'release/prod' }) },
  { name: 'workflow-main-quote', raw: base({ mainBranch: "it's" }) },
  { name: 'workflow-main-plus', raw: base({ mainBranch: 'v2+hotfix' }) },
  { name: 'workflow-no-push', raw: base({ rest: { workflow: { on: { push: [] } } } }) },
  {
    name: 'workflow-push-globs',
    raw: base({
      rest: {
        workflow: {
          on: { push: ['main', 'release/**', 'feature/*', 'v[0-9].x', '!feature/wip*'] },
        },
      },
    }),
  },
  {
    name: 'workflow-pull-request-false',
    raw: base({ rest: { workflow: { on: { pullRequest: false } } } }),
  },
  {
    name: 'workflow-dispatch-false',
    raw: base({ rest: { workflow: { on: { workflowDispatch: false } } } }),
  },
  {
    name: 'workflow-dispatch-only',
    raw: base({ rest: { workflow: { on: { push: [], pullRequest: false } } } }),
  },
  {
    name: 'workflow-deploy-environment',
    raw: base({
      rest: { workflow: { deploy: { command: DEPLOY_COMMAND, environment: 'production' } } },
    }),
  },
  {
    name: 'workflow-deploy-no-environment',
    raw: base({
      rest: { workflow: { deploy: { command: 'make deploy\necho "deployed $IMAGE_TAG"' } } },
    }),
  },
  { name: 'workflow-self-hosted', raw: base({ rest: { workflow: { runsOn: 'self-hosted' } } }) },
  { name: 'workflow-ubuntu-22', raw: base({ rest: { workflow: { runsOn: 'ubuntu-22.04' } } }) },
  {
    name: 'workflow-custom-paths',
    raw: base({
      rest: {
        workflow: { file: '.github/workflows/cached-deploy.yaml', name: 'Build & deploy' },
        paths: { bakeFile: 'build/docker-bake.hcl', ecrDir: 'infra/ecr' },
      },
    }),
  },
  {
    name: 'workflow-china-buildkit',
    raw: base({ region: 'cn-north-1', rest: { buildkit: { image: 'moby/buildkit:v0.21.1' } } }),
  },
  { name: 'workflow-seed-disabled', raw: base({ rest: { seed: { enabled: false } } }) },
  {
    name: 'workflow-digit-names',
    raw: base({
      images: [
        { name: '2fa', repository: 'acme/two-factor' },
        { name: 'web_v2-x', repository: 'acme/web', context: 'web' },
      ],
    }),
  },
  {
    name: 'workflow-mutable-no-sweep',
    raw: base({ rest: { ecr: { imageTagMutability: 'MUTABLE' }, prune: { sweep: false } } }),
  },
  {
    name: 'workflow-seed-disabled-deploy-no-dispatch',
    raw: base({
      rest: {
        seed: { enabled: false },
        workflow: { on: { workflowDispatch: false }, deploy: { command: DEPLOY_COMMAND } },
      },
    }),
  },
  {
    name: 'workflow-custom-seed-schedule',
    raw: base({
      rest: {
        seed: { enabled: true, schedule: '*/20 3-5 1,15 * 1-5' },
        workflow: { deploy: { command: DEPLOY_COMMAND, environment: 'production' } },
      },
    }),
  },
  {
    name: 'workflow-everything-single-platform',
    raw: base({
      mainBranch: 'release/prod',
      images: THREE_IMAGES_SINGLE,
      rest: {
        workflow: {
          file: '.github/workflows/ship.yml',
          runsOn: 'ubuntu-22.04',
          on: { push: ['release/prod', 'hotfix/**'], workflowDispatch: false },
          deploy: { command: DEPLOY_COMMAND, environment: 'prod eu' },
        },
        seed: { schedule: '15 1 * * 0' },
        paths: { bakeFile: 'ci/bake.hcl' },
      },
    }),
  },
  // test/cache-matrix.test.ts
  {
    name: 'cache-matrix-three-images-longest-name',
    raw: base({
      images: [
        { name: 'api', repository: 'acme/api', target: 'runtime' },
        { name: 'web', repository: 'acme/web', context: 'web', cacheRepository: 'acme/cache-web' },
        {
          name: 'a-very-long-image-name-for-tests',
          repository: 'acme/worker',
          branchCacheRepository: 'acme/branch-caches/worker',
        },
      ],
    }),
  },
  // test/iam.test.ts
  {
    name: 'iam-three-images-custom-repositories',
    raw: base({
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
    }),
  },
  {
    name: 'iam-shared-cache-repository',
    raw: base({
      images: [
        { name: 'api', repository: 'acme/api', cacheRepository: 'acme/cache' },
        { name: 'web', repository: 'acme/web', context: 'web', cacheRepository: 'acme/cache' },
      ],
    }),
  },
  {
    name: 'iam-china-release-prod',
    raw: base({ region: 'cn-north-1', mainBranch: 'release/prod' }),
  },
  {
    name: 'iam-govcloud-deploy-environment',
    raw: base({
      region: 'us-gov-west-1',
      rest: { workflow: { deploy: { command: 'make deploy', environment: 'production' } } },
    }),
  },
  {
    name: 'iam-custom-role-names',
    raw: {
      ...base({
        region: 'us-east-1',
        rest: { workflow: { deploy: { command: 'make deploy' } }, seed: { enabled: false } },
      }),
      aws: {
        accountId: ACCOUNT,
        region: 'us-east-1',
        roleName: 'shop-ci',
        branchRoleName: 'shop-ci-untrusted',
      },
    },
  },
  // test/terraform.test.ts
  {
    name: 'terraform-two-images',
    raw: base({
      images: [
        { name: 'api', repository: 'shop' },
        { name: 'worker', dockerfile: 'worker/Dockerfile', repository: 'shop-worker' },
      ],
      rest: { iac: 'terraform' },
    }),
  },
  // test/action-pins.test.ts
  {
    name: 'pins-shipped',
    raw: base({
      rest: {
        workflow: {
          deploy: { command: './deploy.sh', environment: 'production' },
          pinActions: true,
        },
      },
    }),
  },
  {
    name: 'pins-own-commit',
    raw: base({
      rest: {
        workflow: {
          deploy: { command: './deploy.sh', environment: 'production' },
          pinActions: { 'actions/checkout': '0123456789abcdef0123456789abcdef01234567' },
        },
      },
    }),
  },
  // test/projen.test.ts (its multi-platform "every section" configuration, on one platform)
  {
    name: 'projen-minimal',
    raw: base({
      repository: 'acme/node-service',
      images: [{ name: 'api', target: 'runtime', repository: 'node-service' }],
    }),
  },
  {
    name: 'projen-every-section-single-platform',
    raw: {
      aws: { accountId: '000000000042', region: 'us-gov-west-1', roleName: 'deployer' },
      github: { repository: 'acme/node-service', mainBranch: 'trunk' },
      images: [
        {
          name: 'api',
          context: '.',
          dockerfile: 'Dockerfile',
          target: 'runtime',
          platforms: ['linux/amd64'],
          repository: 'acme/node-service',
          cacheRepository: 'build-cache/node-service',
        },
        { name: 'worker', context: 'worker', repository: 'acme/worker' },
      ],
      cache: { branchRetentionDays: 7, untaggedRetentionDays: 2 },
      deployImages: { keep: 10, untaggedRetentionDays: 3 },
      buildkit: { image: 'moby/buildkit:v0.26.0' },
      workflow: {
        file: '.github/workflows/ship.yml',
        name: 'ship',
        runsOn: 'ubuntu-24.04',
        on: { push: ['trunk', 'release/*'], pullRequest: false, workflowDispatch: true },
        deploy: { command: './deploy.sh "$IMAGE_TAG"', environment: 'production' },
        pinActions: { 'actions/checkout': '08c6903cd8c0fde910a37f88322edcfb5dd907a8' },
      },
      seed: { schedule: '30 2 * * 0' },
      prune: { sweep: false, graceHours: 12, failOnError: true },
      ecr: { imageTagMutability: 'MUTABLE', cacheTagMutability: 'IMMUTABLE_WITH_EXCLUSION' },
      iac: 'terraform',
      paths: {
        bakeFile: 'build/docker-bake.hcl',
        ecrDir: 'infra/ecr',
        pruneScript: 'tools/prune.mjs',
      },
    },
  },
  {
    name: 'projen-worker-root-policies',
    raw: {
      aws: { accountId: '210987654321', region: 'ap-southeast-2' },
      github: { repository: 'acme/node-service', mainBranch: 'release+1' },
      images: [
        {
          name: 'worker_1',
          dockerfile: 'worker/Dockerfile',
          context: 'worker',
          repository: 'worker-repo',
        },
      ],
      workflow: { deploy: { command: 'make deploy' }, pinActions: true },
      seed: { enabled: false },
      ecr: { scanOnPush: false },
      paths: { ecrDir: '.' },
    },
  },
  // test/untrusted-repository.test.ts
  {
    name: 'untrusted-app',
    raw: base({ repository: 'acme/app', images: [{ name: 'app', repository: 'acme/app' }] }),
  },
  // One platform that is not the runner's (still the one build job, with QEMU since it could not
  // run there), and one named explicitly.
  {
    name: 'one-arm64-platform',
    raw: base({ images: [{ name: 'api', repository: 'acme/api', platforms: ['linux/arm64'] }] }),
  },
  {
    name: 'explicit-amd64-sweep-settings',
    raw: base({
      images: [{ name: 'api', repository: 'acme/api', platforms: ['linux/amd64'] }],
      rest: {
        prune: { graceHours: 2, failOnError: true },
        cache: { branchRetentionDays: 3 },
        ecr: { cacheTagMutability: 'IMMUTABLE_WITH_EXCLUSION', scanOnPush: false },
        iac: 'terraform',
      },
    }),
  },
];

/** A configuration as cached-deploy.yml text. */
export const configYaml = (raw: Raw): string => stringify(raw);

/** The generator version the fixtures were rendered with (it appears in every marker comment). */
export const FIXTURE_GENERATOR_VERSION = '0.0.0-single-platform';

/** Where the rendered files are kept (repository-relative). */
export const FIXTURE_PATH = 'test/fixtures/single-platform.json.gz';

export interface SinglePlatformFixture {
  /** The commit whose generator rendered them. */
  renderedAt: string;
  version: string;
  /** Configuration name → generated path → SHA-256 of its content. */
  configs: Record<string, Record<string, string>>;
  /** SHA-256 → content. */
  blobs: Record<string, string>;
}
