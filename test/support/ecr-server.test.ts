import { execFile } from 'node:child_process';
import {
  BatchDeleteImageCommand,
  BatchGetImageCommand,
  CreateRepositoryCommand,
  DeleteLifecyclePolicyCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  ECRClient,
  GetLifecyclePolicyCommand,
  ImageAlreadyExistsException,
  ImageDigestDoesNotMatchException,
  type ImageIdentifier,
  ImageNotFoundException,
  ImageTagAlreadyExistsException,
  InvalidParameterException,
  LifecyclePolicyNotFoundException,
  ListImagesCommand,
  type ListImagesCommandInput,
  PutImageCommand,
  PutImageTagMutabilityCommand,
  PutLifecyclePolicyCommand,
  paginateDescribeImages,
  paginateListImages,
  ReferencedImagesNotFoundException,
  RepositoryAlreadyExistsException,
  RepositoryNotFoundException,
  ServerException,
} from '@aws-sdk/client-ecr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  buildCacheManifest,
  buildImageManifest,
  buildIndexManifest,
  type EcrTestServer,
  Faults,
  MediaTypes,
  sha256Digest,
  startEcrServer,
} from './ecr-server.js';
import { needSystemTool } from './system-tools.js';

const REPO = 'app';

let server: EcrTestServer;
let client: ECRClient;

beforeEach(async () => {
  server = await startEcrServer();
  server.state.createRepository(REPO);
  client = new ECRClient(server.clientConfig());
});

afterEach(async () => {
  client.destroy();
  await server.close();
  expect(server.unexpectedErrors).toEqual([]);
});

/** Seeds `count` distinct image manifests, tagged by `tagsFor(i)`. */
function seed(count: number, tagsFor: (i: number) => string[] = () => []): string[] {
  return Array.from({ length: count }, (_, i) =>
    server.state.putImage(REPO, {
      manifest: buildImageManifest({ salt: `img-${i}` }),
      tags: tagsFor(i),
    }),
  );
}

const ids = (count: number): ImageIdentifier[] =>
  Array.from({ length: count }, (_, i) => ({ imageDigest: sha256Digest(`missing-${i}`) }));

async function rawCall(target: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(server.endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': target,
      authorization: 'AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/ecr/aws4_request',
      ...headers,
    },
    body,
  });
  const json = (await response.json()) as Record<string, unknown>;
  return { status: response.status, headers: response.headers, body: json };
}

describe('wire protocol', () => {
  it('answers errors as awsJson1_1 does: 400, __type, message, x-amzn-ErrorType', async () => {
    const response = await rawCall(
      'AmazonEC2ContainerRegistry_V20150921.ListImages',
      JSON.stringify({ repositoryName: 'nope' }),
    );
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toBe('application/x-amz-json-1.1');
    expect(response.headers.get('x-amzn-errortype')).toBe('RepositoryNotFoundException');
    expect(response.body).toEqual({
      __type: 'RepositoryNotFoundException',
      message: expect.stringContaining("'nope'"),
    });
  });

  it('rejects unknown operations, foreign targets and unsigned requests', async () => {
    const unknown = await rawCall('AmazonEC2ContainerRegistry_V20150921.FlyToTheMoon', '{}');
    expect(unknown).toMatchObject({ status: 400, body: { __type: 'UnknownOperationException' } });
    const foreign = await rawCall('DynamoDB_20120810.ListTables', '{}');
    expect(foreign.body.__type).toBe('UnknownOperationException');
    const unsigned = await rawCall('AmazonEC2ContainerRegistry_V20150921.ListImages', '{}', {
      authorization: '',
    });
    expect(unsigned.body.__type).toBe('MissingAuthenticationTokenException');
    const garbled = await rawCall('AmazonEC2ContainerRegistry_V20150921.ListImages', '{nope');
    expect(garbled.body.__type).toBe('SerializationException');
  });

  it('surfaces errors as the SDK typed exceptions and timestamps as Date', async () => {
    await expect(
      client.send(new ListImagesCommand({ repositoryName: 'nope' })),
    ).rejects.toBeInstanceOf(RepositoryNotFoundException);

    const pushedAt = new Date('2024-05-01T12:34:56.789Z');
    server.state.putImage(REPO, { tags: ['v1'], pushedAt, lastRecordedPullTime: pushedAt });
    const { imageDetails } = await client.send(new DescribeImagesCommand({ repositoryName: REPO }));
    expect(imageDetails?.[0]?.imagePushedAt).toEqual(pushedAt);
    expect(imageDetails?.[0]?.lastRecordedPullTime).toEqual(pushedAt);
  });
});

describe('repositories', () => {
  it('creates, describes and refuses duplicates', async () => {
    const { repository } = await client.send(
      new CreateRepositoryCommand({
        repositoryName: 'team/service',
        imageTagMutability: 'IMMUTABLE',
        imageScanningConfiguration: { scanOnPush: true },
      }),
    );
    expect(repository).toMatchObject({
      repositoryName: 'team/service',
      registryId: '123456789012',
      repositoryUri: '123456789012.dkr.ecr.us-east-1.amazonaws.com/team/service',
      repositoryArn: 'arn:aws:ecr:us-east-1:123456789012:repository/team/service',
      imageTagMutability: 'IMMUTABLE',
      imageScanningConfiguration: { scanOnPush: true },
    });
    expect(repository?.createdAt).toBeInstanceOf(Date);
    await expect(
      client.send(new CreateRepositoryCommand({ repositoryName: 'team/service' })),
    ).rejects.toBeInstanceOf(RepositoryAlreadyExistsException);
    await expect(
      client.send(new CreateRepositoryCommand({ repositoryName: 'Bad Name' })),
    ).rejects.toBeInstanceOf(InvalidParameterException);

    const all = await client.send(new DescribeRepositoriesCommand({}));
    expect(all.repositories?.map((r) => r.repositoryName)).toEqual(['app', 'team/service']);
    await expect(
      client.send(new DescribeRepositoriesCommand({ repositoryNames: ['app', 'missing'] })),
    ).rejects.toBeInstanceOf(RepositoryNotFoundException);
  });

  it('changes tag mutability', async () => {
    const out = await client.send(
      new PutImageTagMutabilityCommand({ repositoryName: REPO, imageTagMutability: 'IMMUTABLE' }),
    );
    expect(out.imageTagMutability).toBe('IMMUTABLE');
    expect(server.state.repository(REPO)?.imageTagMutability).toBe('IMMUTABLE');
  });
});

describe('pagination', () => {
  it('returns each of 2,500 images exactly once at maxResults 1000', async () => {
    // Every third image untagged, every fifth with two tags.
    const digests = seed(2500, (i) =>
      i % 3 === 0 ? [] : i % 5 === 0 ? [`t${i}`, `u${i}`] : [`t${i}`],
    );

    const described: string[] = [];
    for await (const page of paginateDescribeImages(
      { client, pageSize: 1000 },
      { repositoryName: REPO },
    )) {
      described.push(...(page.imageDetails ?? []).map((d) => d.imageDigest as string));
    }
    expect(described).toHaveLength(2500);
    expect(new Set(described)).toEqual(new Set(digests));
    expect(server.callCount('DescribeImages')).toBe(3);

    const listed: ImageIdentifier[] = [];
    for await (const page of paginateListImages(
      { client, pageSize: 1000 },
      { repositoryName: REPO },
    )) {
      expect(page.imageIds?.length).toBeLessThanOrEqual(1000);
      listed.push(...(page.imageIds ?? []));
    }
    const expected = digests.flatMap((digest) => {
      const tags = server.state.image(REPO, digest)?.tags ?? new Set<string>();
      return tags.size === 0
        ? [{ imageDigest: digest }]
        : [...tags].map((imageTag) => ({ imageDigest: digest, imageTag }));
    });
    expect(listed).toHaveLength(expected.length);
    expect(new Set(listed.map((id) => `${id.imageDigest}/${id.imageTag ?? ''}`)).size).toBe(
      expected.length,
    );
  });

  it('filters by tag status', async () => {
    seed(10, (i) => (i < 4 ? [`v${i}`] : []));
    const list = (tagStatus: 'TAGGED' | 'UNTAGGED' | 'ANY') =>
      client.send(new ListImagesCommand({ repositoryName: REPO, filter: { tagStatus } }));
    expect((await list('TAGGED')).imageIds).toHaveLength(4);
    expect((await list('UNTAGGED')).imageIds?.every((id) => id.imageTag === undefined)).toBe(true);
    expect((await list('UNTAGGED')).imageIds).toHaveLength(6);
    expect((await list('ANY')).imageIds).toHaveLength(10);
    const untagged = await client.send(
      new DescribeImagesCommand({ repositoryName: REPO, filter: { tagStatus: 'UNTAGGED' } }),
    );
    expect(untagged.imageDetails).toHaveLength(6);
    expect(untagged.imageDetails?.every((d) => d.imageTags === undefined)).toBe(true);
  });

  it('defaults to 100 per page and rejects maxResults outside 1..1000 or a bad token', async () => {
    seed(150);
    const first = await client.send(new ListImagesCommand({ repositoryName: REPO }));
    expect(first.imageIds).toHaveLength(100);
    expect(first.nextToken).toBeDefined();
    const second = await client.send(
      new ListImagesCommand({ repositoryName: REPO, nextToken: first.nextToken }),
    );
    expect(second.imageIds).toHaveLength(50);
    expect(second.nextToken).toBeUndefined();

    const bad: ListImagesCommandInput[] = [
      { repositoryName: REPO, maxResults: 1001 },
      { repositoryName: REPO, maxResults: 0 },
      { repositoryName: REPO, nextToken: 'not-a-token' },
    ];
    for (const input of bad) {
      await expect(client.send(new ListImagesCommand(input))).rejects.toBeInstanceOf(
        InvalidParameterException,
      );
    }
    await expect(
      client.send(new DescribeImagesCommand({ repositoryName: REPO, maxResults: 1001 })),
    ).rejects.toBeInstanceOf(InvalidParameterException);
    // A token is bound to the operation and repository that issued it.
    await expect(
      client.send(new DescribeImagesCommand({ repositoryName: REPO, nextToken: first.nextToken })),
    ).rejects.toBeInstanceOf(InvalidParameterException);
  });

  it('neither skips nor repeats images when images are deleted between pages', async () => {
    const digests = seed(30);
    // Between page 1 and page 2, a concurrent pruner deletes images from both pages.
    server.onCall((op, request) => {
      if (op === 'DescribeImages' && request.nextToken) {
        for (const digest of [digests[2], digests[12], digests[13]]) {
          server.state.deleteImage(REPO, digest as string);
        }
      }
    });
    const seen: string[] = [];
    for await (const page of paginateDescribeImages(
      { client, pageSize: 10 },
      { repositoryName: REPO },
    )) {
      seen.push(...(page.imageDetails ?? []).map((d) => d.imageDigest as string));
    }
    const expected = digests.filter((d) => d !== digests[12] && d !== digests[13]);
    expect(seen).toEqual(expected);
  });
});

describe('DescribeImages', () => {
  it('reports the image fields ECR reports, artifactMediaType being the config media type', async () => {
    const cache = server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'c', layerSizes: [100, 200] }),
      tags: ['cache-main'],
    });
    const [detail] =
      (await client.send(new DescribeImagesCommand({ repositoryName: REPO }))).imageDetails ?? [];
    expect(detail).toEqual({
      registryId: '123456789012',
      repositoryName: REPO,
      imageDigest: cache,
      imageTags: ['cache-main'],
      imageSizeInBytes: 300,
      imagePushedAt: expect.any(Date),
      imageManifestMediaType: MediaTypes.ociManifest,
      artifactMediaType: MediaTypes.buildkitCacheConfig,
    });
  });

  it('looks up imageIds without pagination and throws ImageNotFoundException for unknown ones', async () => {
    const [a] = seed(3, (i) => [`v${i}`]);
    const found = await client.send(
      new DescribeImagesCommand({
        repositoryName: REPO,
        imageIds: [{ imageTag: 'v0' }, { imageDigest: a }],
      }),
    );
    expect(found.imageDetails?.map((d) => d.imageDigest)).toEqual([a]);
    await expect(
      client.send(
        new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'nope' }] }),
      ),
    ).rejects.toBeInstanceOf(ImageNotFoundException);
    await expect(
      client.send(
        new DescribeImagesCommand({
          repositoryName: REPO,
          imageIds: [{ imageTag: 'v0' }],
          maxResults: 5,
        }),
      ),
    ).rejects.toBeInstanceOf(InvalidParameterException);
  });
});

describe('BatchGetImage', () => {
  it('returns manifests and reports unknown ids in failures[]', async () => {
    const manifest = buildCacheManifest({ salt: 'get' });
    const digest = server.state.putImage(REPO, { manifest, tags: ['cache'] });
    const missing = sha256Digest('missing');
    const out = await client.send(
      new BatchGetImageCommand({
        repositoryName: REPO,
        imageIds: [{ imageTag: 'cache' }, { imageDigest: missing }],
      }),
    );
    expect(out.images).toEqual([
      {
        registryId: '123456789012',
        repositoryName: REPO,
        imageId: { imageDigest: digest, imageTag: 'cache' },
        imageManifest: manifest,
        imageManifestMediaType: MediaTypes.ociManifest,
      },
    ]);
    expect(out.failures).toEqual([
      {
        imageId: { imageDigest: missing },
        failureCode: 'ImageNotFound',
        failureReason: 'Requested image not found',
      },
    ]);
    await expect(
      client.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: ids(101) })),
    ).rejects.toBeInstanceOf(InvalidParameterException);
  });
});

describe('BatchDeleteImage', () => {
  it('takes 1..100 ids', async () => {
    for (const count of [0, 101]) {
      await expect(
        client.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: ids(count) })),
      ).rejects.toBeInstanceOf(InvalidParameterException);
    }
    const out = await client.send(
      new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: ids(100) }),
    );
    expect(out.imageIds).toEqual([]);
    expect(out.failures).toHaveLength(100);
  });

  it('reports unknown ids as ImageNotFound failures without throwing', async () => {
    const [kept] = seed(1, () => ['v1']);
    const missing = sha256Digest('gone');
    const out = await client.send(
      new BatchDeleteImageCommand({
        repositoryName: REPO,
        imageIds: [{ imageDigest: missing }, { imageTag: 'no-such-tag' }],
      }),
    );
    expect(out.imageIds).toEqual([]);
    expect(out.failures).toEqual([
      {
        imageId: { imageDigest: missing },
        failureCode: 'ImageNotFound',
        failureReason: expect.any(String),
      },
      {
        imageId: { imageTag: 'no-such-tag' },
        failureCode: 'ImageNotFound',
        failureReason: expect.any(String),
      },
    ]);
    expect(server.state.image(REPO, kept as string)).toBeDefined();
  });

  it('by tag removes only that tag; removing the last tag deletes the image', async () => {
    const [digest] = seed(1, () => ['a', 'b']);
    const first = await client.send(
      new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'a' }] }),
    );
    expect(first.imageIds).toEqual([{ imageDigest: digest, imageTag: 'a' }]);
    expect(server.state.image(REPO, digest as string)?.tags).toEqual(new Set(['b']));

    const last = await client.send(
      new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'b' }] }),
    );
    expect(last.imageIds).toEqual([{ imageDigest: digest, imageTag: 'b' }]);
    expect(server.state.images(REPO)).toEqual([]);
  });

  it('by digest removes the image and all its tags', async () => {
    const [digest, other] = seed(2, (i) => (i === 0 ? ['a', 'b'] : ['c']));
    const out = await client.send(
      new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageDigest: digest }] }),
    );
    expect(out.imageIds).toEqual([
      { imageDigest: digest, imageTag: 'a' },
      { imageDigest: digest, imageTag: 'b' },
    ]);
    expect(out.failures).toEqual([]);
    expect(server.state.images(REPO).map((i) => i.digest)).toEqual([other]);
    expect(server.state.image(REPO, 'a')).toBeUndefined();
  });

  it('refuses to delete a child of an index that still exists', async () => {
    const [amd64, arm64] = seed(2);
    const index = server.state.putImage(REPO, {
      manifest: buildIndexManifest([amd64 as string, arm64 as string]),
      tags: ['latest'],
    });
    const refused = await client.send(
      new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageDigest: amd64 }] }),
    );
    expect(refused.imageIds).toEqual([]);
    expect(refused.failures).toEqual([
      {
        imageId: { imageDigest: amd64 },
        failureCode: 'ImageReferencedByManifestList',
        failureReason: expect.stringContaining(index),
      },
    ]);

    // Once the index is gone its children can go too.
    const out = await client.send(
      new BatchDeleteImageCommand({
        repositoryName: REPO,
        imageIds: [{ imageDigest: index }, { imageDigest: amd64 }],
      }),
    );
    expect(out.failures).toEqual([]);
    expect(server.state.images(REPO).map((i) => i.digest)).toEqual([arm64]);
  });
});

describe('PutImage', () => {
  it('moving a tag leaves the old digest untagged', async () => {
    const v1 = buildCacheManifest({ salt: 'v1' });
    const v2 = buildCacheManifest({ salt: 'v2' });
    await client.send(
      new PutImageCommand({ repositoryName: REPO, imageManifest: v1, imageTag: 'cache' }),
    );
    const out = await client.send(
      new PutImageCommand({
        repositoryName: REPO,
        imageManifest: v2,
        imageTag: 'cache',
        imageManifestMediaType: MediaTypes.ociManifest,
      }),
    );
    expect(out.image?.imageId).toEqual({ imageDigest: sha256Digest(v2), imageTag: 'cache' });
    expect(server.state.image(REPO, sha256Digest(v1))?.tags.size).toBe(0);
    expect(server.state.image(REPO, 'cache')?.digest).toBe(sha256Digest(v2));

    const untagged = await client.send(
      new ListImagesCommand({ repositoryName: REPO, filter: { tagStatus: 'UNTAGGED' } }),
    );
    expect(untagged.imageIds).toEqual([{ imageDigest: sha256Digest(v1) }]);
  });

  it('adds a tag to an existing digest, but refuses a push that changes nothing', async () => {
    const manifest = buildImageManifest({ salt: 'same' });
    await client.send(
      new PutImageCommand({ repositoryName: REPO, imageManifest: manifest, imageTag: 'a' }),
    );
    await client.send(
      new PutImageCommand({ repositoryName: REPO, imageManifest: manifest, imageTag: 'b' }),
    );
    expect(server.state.image(REPO, 'a')?.tags).toEqual(new Set(['a', 'b']));
    await expect(
      client.send(
        new PutImageCommand({ repositoryName: REPO, imageManifest: manifest, imageTag: 'a' }),
      ),
    ).rejects.toBeInstanceOf(ImageAlreadyExistsException);
  });

  it('checks the digest, the index children and tag immutability', async () => {
    const manifest = buildImageManifest({ salt: 'x' });
    await expect(
      client.send(
        new PutImageCommand({
          repositoryName: REPO,
          imageManifest: manifest,
          imageDigest: sha256Digest('y'),
        }),
      ),
    ).rejects.toBeInstanceOf(ImageDigestDoesNotMatchException);
    await expect(
      client.send(
        new PutImageCommand({
          repositoryName: REPO,
          imageManifest: buildIndexManifest([sha256Digest('nope')]),
        }),
      ),
    ).rejects.toBeInstanceOf(ReferencedImagesNotFoundException);
    await expect(
      client.send(new PutImageCommand({ repositoryName: REPO, imageManifest: '{not json' })),
    ).rejects.toBeInstanceOf(InvalidParameterException);

    server.state.createRepository('frozen', { imageTagMutability: 'IMMUTABLE' });
    server.state.putImage('frozen', { tags: ['v1'] });
    await expect(
      client.send(
        new PutImageCommand({ repositoryName: 'frozen', imageManifest: manifest, imageTag: 'v1' }),
      ),
    ).rejects.toBeInstanceOf(ImageTagAlreadyExistsException);
  });

  it('pushes an index whose children exist, sized as its largest child', async () => {
    const small = server.state.putImage(REPO, {
      manifest: buildImageManifest({ salt: 's', layerSizes: [10] }),
    });
    const big = server.state.putImage(REPO, {
      manifest: buildImageManifest({ salt: 'b', layerSizes: [99] }),
    });
    const out = await client.send(
      new PutImageCommand({
        repositoryName: REPO,
        imageManifest: buildIndexManifest([small, big]),
        imageTag: 'latest',
      }),
    );
    expect(out.image?.imageManifestMediaType).toBe(MediaTypes.ociIndex);
    const index = server.state.image(REPO, 'latest');
    expect(index?.children).toEqual([small, big]);
    expect(index?.sizeInBytes).toBe(99);
  });
});

describe('lifecycle policies', () => {
  it('stores, returns and deletes the policy text', async () => {
    const text = JSON.stringify({
      rules: [
        {
          rulePriority: 1,
          selection: {
            tagStatus: 'untagged',
            countType: 'sinceImagePushed',
            countUnit: 'days',
            countNumber: 14,
          },
          action: { type: 'expire' },
        },
      ],
    });
    await expect(
      client.send(new GetLifecyclePolicyCommand({ repositoryName: REPO })),
    ).rejects.toBeInstanceOf(LifecyclePolicyNotFoundException);
    const put = await client.send(
      new PutLifecyclePolicyCommand({ repositoryName: REPO, lifecyclePolicyText: text }),
    );
    expect(put).toMatchObject({ repositoryName: REPO, lifecyclePolicyText: text });
    const got = await client.send(new GetLifecyclePolicyCommand({ repositoryName: REPO }));
    expect(got.lifecyclePolicyText).toBe(text);
    await expect(
      client.send(
        new PutLifecyclePolicyCommand({ repositoryName: REPO, lifecyclePolicyText: '{}' }),
      ),
    ).rejects.toBeInstanceOf(InvalidParameterException);
    await client.send(new DeleteLifecyclePolicyCommand({ repositoryName: REPO }));
    expect(server.state.repository(REPO)?.lifecyclePolicyText).toBeUndefined();
  });
});

describe('faults', () => {
  const listApp = () => client.send(new ListImagesCommand({ repositoryName: REPO }));

  it('throttling is retried by the SDK and succeeds when transient', async () => {
    // One throttle only: the SDK's throttling backoff starts at up to 1 s.
    server.faults.throttleNext(1);
    await expect(listApp()).resolves.toMatchObject({ imageIds: [] });
    expect(server.calls.map((c) => c.errorType ?? c.status)).toEqual(['ThrottlingException', 200]);
  });

  it('persistent throttling surfaces as ThrottlingException after maxAttempts', async () => {
    const oneShot = new ECRClient({ ...server.clientConfig(), maxAttempts: 1 });
    server.faults.throttleNext(1);
    await expect(
      oneShot.send(new ListImagesCommand({ repositoryName: REPO })),
    ).rejects.toMatchObject({ name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    oneShot.destroy();
  });

  it('500s are retried by the SDK; persistent ones surface as ServerException', async () => {
    server.faults.serverErrorNext(2);
    await expect(listApp()).resolves.toBeDefined();
    expect(server.calls.map((c) => c.errorType ?? c.status)).toEqual([
      'ServerException',
      'ServerException',
      200,
    ]);

    server.faults.serverErrorNext(3);
    await expect(listApp()).rejects.toBeInstanceOf(ServerException);
  });

  it('fails every call after the Nth', async () => {
    const oneShot = new ECRClient({ ...server.clientConfig(), maxAttempts: 1 });
    server.faults.failAfter(2);
    const send = () => oneShot.send(new ListImagesCommand({ repositoryName: REPO }));
    await send();
    await send();
    await expect(send()).rejects.toBeInstanceOf(ServerException);
    await expect(send()).rejects.toBeInstanceOf(ServerException);
    oneShot.destroy();
  });

  it('targets operations', async () => {
    const oneShot = new ECRClient({ ...server.clientConfig(), maxAttempts: 1 });
    server.faults.add({ ops: ['BatchDeleteImage'], error: 'throttle' });
    await expect(
      oneShot.send(new ListImagesCommand({ repositoryName: REPO })),
    ).resolves.toBeDefined();
    await expect(
      oneShot.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: ids(1) })),
    ).rejects.toMatchObject({ name: 'ThrottlingException' });
    oneShot.destroy();
  });

  it('adds latency', async () => {
    server.faults.latency(150, 'ListImages');
    const started = performance.now();
    await listApp();
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('fails a seeded, reproducible fraction of calls', () => {
    const run = (seed: number) => {
      const faults = new Faults(seed);
      faults.throttleRate(0.3);
      return Array.from({ length: 1000 }, () => faults.decide('ListImages').error !== undefined);
    };
    const a = run(7);
    expect(run(7)).toEqual(a);
    expect(run(8)).not.toEqual(a);
    const rate = a.filter(Boolean).length / a.length;
    expect(rate).toBeGreaterThan(0.25);
    expect(rate).toBeLessThan(0.35);
  });

  it('onCall hooks can change the registry between calls, like a concurrent build', async () => {
    const [old, fresh] = seed(2, (i) => (i === 0 ? ['cache-main'] : []));
    const stop = server.onCall((op) => {
      if (op === 'BatchDeleteImage') server.state.tagImage(REPO, 'cache-main', fresh as string);
    });
    // The pruner read `old` as tagged, but by the time it deletes by tag the tag has moved.
    const out = await client.send(
      new BatchDeleteImageCommand({
        repositoryName: REPO,
        imageIds: [{ imageDigest: old, imageTag: 'cache-main' }],
      }),
    );
    expect(out.failures?.[0]?.failureCode).toBe('ImageTagDoesNotMatchDigest');
    stop();
    expect(server.state.image(REPO, 'cache-main')?.digest).toBe(fresh);
  });
});

describe('hostile answers', () => {
  it('nextTokenLoop: the first page again and again, always with the same token', async () => {
    seed(5);
    server.faults.nextTokenLoop('DescribeImages', 'SAME');
    const first = await client.send(
      new DescribeImagesCommand({ repositoryName: REPO, maxResults: 2 }),
    );
    const again = await client.send(
      new DescribeImagesCommand({ repositoryName: REPO, maxResults: 2, nextToken: 'SAME' }),
    );
    expect(first.nextToken).toBe('SAME');
    expect(again.nextToken).toBe('SAME');
    expect(again.imageDetails?.map((d) => d.imageDigest)).toEqual(
      first.imageDetails?.map((d) => d.imageDigest),
    );
  });

  it('endlessPages: a fresh token on every page, never the end', async () => {
    seed(1);
    server.faults.endlessPages('ListImages');
    const tokens: (string | undefined)[] = [];
    let nextToken: string | undefined;
    for (let i = 0; i < 3; i++) {
      const page = await client.send(new ListImagesCommand({ repositoryName: REPO, nextToken }));
      nextToken = page.nextToken;
      tokens.push(nextToken);
    }
    expect(tokens).toEqual(['endless-1', 'endless-2', 'endless-3']);
  });

  it('omitFromBatchGet: an id in neither images nor failures', async () => {
    const [kept, omitted] = seed(2);
    server.faults.omitFromBatchGet([omitted as string]);
    const out = await client.send(
      new BatchGetImageCommand({
        repositoryName: REPO,
        imageIds: [{ imageDigest: kept }, { imageDigest: omitted }, ...ids(1)],
      }),
    );
    expect(out.images?.map((image) => image.imageId?.imageDigest)).toEqual([kept]);
    expect(out.failures?.map((failure) => failure.failureCode)).toEqual(['ImageNotFound']);
  });

  it('hugePage: one answer with more entries than maxResults allows', async () => {
    seed(2);
    server.faults.hugePage(5_000);
    const page = await client.send(
      new DescribeImagesCommand({ repositoryName: REPO, maxResults: 1000 }),
    );
    expect(page.imageDetails).toHaveLength(5_002);
    const last = page.imageDetails?.at(-1);
    expect(last?.imageTags).toBeUndefined();
    expect(last?.artifactMediaType).toBe('application/vnd.oci.image.config.v1+json');
    // Only once: the next answer is honest.
    const next = await client.send(new DescribeImagesCommand({ repositoryName: REPO }));
    expect(next.imageDetails).toHaveLength(2);
  });
});

describe('awscli', () => {
  async function aws(
    cli: string,
    args: string[],
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        cli,
        [
          'ecr',
          ...args,
          '--endpoint-url',
          server.endpoint,
          '--region',
          'us-east-1',
          '--output',
          'json',
        ],
        {
          // Only what the CLI needs: no profiles or credentials from the developer's machine.
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            AWS_ACCESS_KEY_ID: 'test',
            AWS_SECRET_ACCESS_KEY: 'test',
            AWS_CONFIG_FILE: '/nonexistent/aws-config',
            AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
            AWS_EC2_METADATA_DISABLED: 'true',
            AWS_PAGER: '',
          },
          timeout: 20_000,
        },
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  /** awscli v2 prints ISO 8601; v1 passes the wire's epoch seconds through. */
  const cliTimestamp = (value: string | number): Date =>
    new Date(typeof value === 'number' ? value * 1000 : value);

  async function awsJson(cli: string, args: string[]) {
    const result = await aws(cli, args);
    if (result.code !== 0)
      throw new Error(`aws ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
    return JSON.parse(result.stdout);
  }

  // awscli is the independent client that proves this server speaks ECR's real wire protocol.
  it('speaks the wire protocol awscli speaks: describe-images, list-images, batch-delete-image', async (context) => {
    const cli = needSystemTool(context, 'aws');
    const pushedAt = new Date('2024-03-01T10:00:00.250Z');
    const tagged = server.state.putImage(REPO, {
      manifest: buildImageManifest({ salt: 'cli-1' }),
      tags: ['v1', 'latest'],
      pushedAt,
    });
    const cache = server.state.putImage(REPO, {
      manifest: buildCacheManifest({ salt: 'cli-2', layerSizes: [4096] }),
      pushedAt,
    });
    const untagged = server.state.putImage(REPO, {
      manifest: buildImageManifest({ salt: 'cli-3' }),
    });

    const [described, listed, missingRepo] = await Promise.all([
      // --page-size 2 makes the CLI follow nextToken across two pages.
      awsJson(cli, ['describe-images', '--repository-name', REPO, '--page-size', '2']),
      awsJson(cli, ['list-images', '--repository-name', REPO, '--filter', 'tagStatus=UNTAGGED']),
      aws(cli, ['describe-images', '--repository-name', 'missing']),
    ]);

    expect(described.imageDetails).toHaveLength(3);
    expect(described.imageDetails[0]).toMatchObject({
      imageDigest: tagged,
      imageTags: ['latest', 'v1'],
      imageManifestMediaType: MediaTypes.ociManifest,
    });
    expect(cliTimestamp(described.imageDetails[0].imagePushedAt)).toEqual(pushedAt);
    expect(described.imageDetails[1]).toMatchObject({
      imageDigest: cache,
      imageSizeInBytes: 4096,
      artifactMediaType: MediaTypes.buildkitCacheConfig,
    });
    expect(described.imageDetails[1].imageTags).toBeUndefined();
    const pages = server.callsTo('DescribeImages').filter((c) => c.request.repositoryName === REPO);
    expect(pages.map((c) => [c.request.maxResults, typeof c.request.nextToken])).toEqual([
      [2, 'undefined'],
      [2, 'string'],
    ]);

    expect(listed.imageIds).toEqual([{ imageDigest: cache }, { imageDigest: untagged }]);

    expect(missingRepo.code).not.toBe(0);
    expect(missingRepo.stderr).toContain('RepositoryNotFoundException');

    const deleted = await awsJson(cli, [
      'batch-delete-image',
      '--repository-name',
      REPO,
      '--image-ids',
      `imageDigest=${cache}`,
      'imageTag=v1',
      'imageTag=nope',
    ]);
    expect(deleted.imageIds).toEqual([
      { imageDigest: cache },
      { imageDigest: tagged, imageTag: 'v1' },
    ]);
    expect(deleted.failures).toEqual([
      {
        imageId: { imageTag: 'nope' },
        failureCode: 'ImageNotFound',
        failureReason: expect.any(String),
      },
    ]);
    expect(server.state.images(REPO).map((i) => [i.digest, [...i.tags]])).toEqual([
      [tagged, ['latest']],
      [untagged, []],
    ]);
  });
});
