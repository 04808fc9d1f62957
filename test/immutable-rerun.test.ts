/**
 * Image tags are IMMUTABLE by default, and a re-run of the build of a commit must still work.
 * Against the ECR test server (which refuses an overwrite of an immutable tag the way ECR does,
 * ImageTagAlreadyExistsException), with the real awscli: the generated workflow's `push` step
 * answers, per image, whether `<repository>:<sha>` must be pushed, so a re-run pushes nothing
 * that exists and ECR has nothing to refuse. The same step against the workflow simulator's `aws`
 * stand-in gives the same answers, which is what makes the simulator's runs trustworthy.
 */
import { spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ECRClient,
  ImageAlreadyExistsException,
  ImageTagAlreadyExistsException,
  PutImageCommand,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findSystemTool, needSystemTool } from './support/system-tools.js';

/** Debian's awscli, when installed (the tests that run it say what to install when it is not). */
const awsCli = findSystemTool('aws');

import { parse } from 'yaml';
import { apply } from '../src/api/apply.js';
import { generate } from '../src/api/generate.js';
import type { Workflow } from '../src/model/workflow.js';
import { AWS_STANDIN } from './support/aws-standin.js';
import { buildImageManifest, type EcrTestServer, startEcrServer } from './support/ecr-server.js';

const SHA = 'c0ffee'.padEnd(40, '7');
const CONFIG = `version: 1
aws:
  accountId: "123456789012"
  region: us-east-1
github:
  repository: acme/app
images:
  - name: api
    repository: acme/api
  - name: worker
    context: worker
    repository: acme/worker
`;

let server: EcrTestServer;
let dir: string;
let script: string;
let bin: { real: string; standin: string; none: string };

beforeAll(async () => {
  server = await startEcrServer();
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'cached-deploy-rerun-')));
  writeFileSync(join(dir, 'cached-deploy.yml'), CONFIG);
  writeFileSync(join(dir, 'Dockerfile'), 'FROM alpine:3.20\n');
  mkdirSync(join(dir, 'worker'));
  writeFileSync(join(dir, 'worker/Dockerfile'), 'FROM alpine:3.20\n');
  await generate(dir);
  const workflow = parse(
    readFileSync(join(dir, '.github/workflows/deploy.yml'), 'utf8'),
  ) as Workflow;
  const step = workflow.jobs.build?.steps.find((each) => each.id === 'push');
  if (!step?.run) throw new Error('the build job has no push step');
  script = join(dir, 'push-step.sh');
  writeFileSync(script, step.run);
  // Three PATH heads: the real awscli reaching the test server (awscli before 2.13 ignores
  // AWS_ENDPOINT_URL_ECR, so a one-line wrapper adds --endpoint-url; the call is the real CLI's),
  // the simulator's stand-in, and no aws at all.
  const root = join(dir, 'bin');
  bin = { real: join(root, 'real'), standin: join(root, 'standin'), none: join(root, 'none') };
  for (const path of Object.values(bin)) mkdirSync(path, { recursive: true });
  writeFileSync(
    join(bin.real, 'aws'),
    `#!/bin/bash\nexec ${awsCli ?? '/usr/bin/aws'} "$@" --endpoint-url "$TEST_ECR_ENDPOINT"\n`,
    { mode: 0o755 },
  );
  writeFileSync(join(bin.standin, 'aws'), AWS_STANDIN, { mode: 0o755 });
  for (const tool of ['tr', 'sha256sum', 'cut'])
    symlinkSync(`/usr/bin/${tool}`, join(bin.none, tool));
});
afterAll(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface StepResult {
  code: number | null;
  outputs: Record<string, string>;
  log: string;
}

/** The step as the runner runs it: bash -eo pipefail, its env, credentials after the OIDC step. */
function runPushStep(
  pathHead: string,
  options: { isMain?: boolean; standinImages?: string[] } = {},
): Promise<StepResult> {
  const output = join(dir, `output-${Math.random().toString(36).slice(2)}`);
  writeFileSync(output, '');
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/bash', ['--noprofile', '--norc', '-eo', 'pipefail', script], {
      env: {
        PATH: pathHead === bin.none ? bin.none : `${pathHead}:/usr/bin:/bin`,
        HOME: dir,
        IS_MAIN: String(options.isMain ?? true),
        IMAGE_TAG: SHA,
        GITHUB_OUTPUT: output,
        // What configure-aws-credentials exports.
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_REGION: 'us-east-1',
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_CONFIG_FILE: '/nonexistent/aws-config',
        AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_PAGER: '',
        TEST_ECR_ENDPOINT: server.endpoint,
        STANDIN_ECR_IMAGES: (options.standinImages ?? []).join(' '),
      },
    });
    const log: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => log.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => log.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const outputs: Record<string, string> = {};
      for (const line of readFileSync(output, 'utf8').split('\n')) {
        const eq = line.indexOf('=');
        if (eq > 0) outputs[line.slice(0, eq)] = line.slice(eq + 1);
      }
      resolve({ code, outputs, log: Buffer.concat(log).toString('utf8') });
    });
  });
}

describe('a re-run of the build of one commit, with IMMUTABLE image tags', () => {
  it('ECR (the test server) refuses a second push of app:<sha> with a new digest, as ECR does', async () => {
    expect(
      (await apply(dir, { endpoint: server.endpoint, clientOptions: server.clientConfig() })).report
        .status,
    ).toBe('applied');
    // apply's default: commit tags are immutable.
    expect(server.state.repository('acme/api')?.imageTagMutability).toBe('IMMUTABLE');
    const client = new ECRClient(server.clientConfig());
    try {
      const push = (salt: string) =>
        client.send(
          new PutImageCommand({
            repositoryName: 'acme/api',
            imageTag: SHA,
            imageManifest: buildImageManifest({ salt }),
          }),
        );
      await push('first run'); // the first run's push
      // A re-run builds new timestamps, so a new digest: refused.
      await expect(push('re-run')).rejects.toBeInstanceOf(ImageTagAlreadyExistsException);
      await expect(push('re-run')).rejects.toThrow(
        /cannot be overwritten because the tag is immutable/,
      );
      // The same manifest again is refused too (ImageAlreadyExistsException).
      await expect(push('first run')).rejects.toBeInstanceOf(ImageAlreadyExistsException);
    } finally {
      client.destroy();
    }
  });

  it('so the push step (real awscli) skips the tag that exists and pushes the one that does not', async (context) => {
    needSystemTool(context, 'aws');
    const before = server.callCount('DescribeImages');
    const result = await runPushStep(bin.real);
    expect(result.code, result.log).toBe(0);
    expect(result.outputs).toEqual({ 'push-api': 'false', 'push-worker': 'true' });
    expect(result.log).toContain(`acme/api:${SHA} exists already (a re-run of this commit)`);
    expect(result.log).not.toContain('::warning::');
    // One DescribeImages per image, by tag (all at once, so in any order).
    const calls = server.callsTo('DescribeImages').slice(before);
    expect(
      calls.map((call) => [call.request.repositoryName, call.request.imageIds]).sort(),
    ).toEqual([
      ['acme/api', [{ imageTag: SHA }]],
      ['acme/worker', [{ imageTag: SHA }]],
    ]);
  });

  it("the simulator's aws stand-in answers exactly as the real awscli does", async (context) => {
    needSystemTool(context, 'aws');
    const standin = await runPushStep(bin.standin, { standinImages: [`acme/api:${SHA}`] });
    const real = await runPushStep(bin.real);
    expect(standin.code).toBe(0);
    expect(standin.outputs).toEqual(real.outputs);
  });

  it('a branch build asks ECR nothing and pushes nothing', async () => {
    const before = server.calls.length;
    for (const path of [bin.real, bin.standin]) {
      const result = await runPushStep(path, { isMain: false });
      expect(result.outputs).toEqual({ 'push-api': 'false', 'push-worker': 'false' });
    }
    expect(server.calls.length).toBe(before);
  });

  it('when it cannot tell (no aws CLI, another error), it warns and pushes: the registry decides', async () => {
    const none = await runPushStep(bin.none);
    expect(none.code, none.log).toBe(0);
    expect(none.outputs).toEqual({ 'push-api': 'true', 'push-worker': 'true' });
    expect(none.log).toMatch(/::warning::no aws CLI on this runner/);

    server.state.deleteRepository('acme/worker');
    const missing = await runPushStep(bin.real);
    expect(missing.code, missing.log).toBe(0);
    expect(missing.outputs).toEqual({ 'push-api': 'false', 'push-worker': 'true' });
    expect(missing.log).toMatch(
      /::warning::could not tell whether acme\/worker:\w+ exists, pushing it: .*RepositoryNotFoundException/,
    );
  });
});
