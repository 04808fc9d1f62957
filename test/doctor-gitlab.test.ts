/**
 * `doctor --reseed` on a `ci: gitlab` repository: a pipeline on the main branch with
 * CACHED_DEPLOY_RESEED=true through the fake GitLab API (the real @gitbeaker/rest), only when the
 * advice is a reseed; the recommendation names GitLab's commands; the token is never printed. The
 * caches are the real BuildKit seed artifact (test/fixtures/buildkit), served by an in-memory
 * registry adapter.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generate } from '../src/api/generate.js';
import { type DoctorReport, doctor } from '../src/doctor/doctor.js';
import { formatDoctorReport } from '../src/doctor/format.js';
import type { CacheRegistry } from '../src/doctor/registry-client.js';
import { FakeGitLabApi, MemoryRepository } from './support/gitlab-api/index.js';
import { runMain } from './support/run-main.js';
import { createTempDir, PROJECT_ROOT } from './support/temp-repo.js';

const TOKEN = 'glpat-doctor-secret-1';
const PROJECT = 'acme/shop';
const CACHE_REPO = 'shop-buildcache';
/** The real seed's newest result, and ten minutes after it. */
const SEED_BUILT = '2026-11-27T17:48:20.482Z';
const FRESH = new Date(Date.parse(SEED_BUILT) + 10 * 60_000);
const STALE = new Date(Date.parse(SEED_BUILT) + 15 * 24 * 3_600_000);

const DATA_DIR = join(PROJECT_ROOT, 'test', 'fixtures', 'buildkit');
const recorded = JSON.parse(readFileSync(join(DATA_DIR, 'cache-seed.manifest.json'), 'utf8')) as {
  manifest: { mediaType: string; config: { digest: string } };
};
const cacheconfig = readFileSync(join(DATA_DIR, 'cache-seed.cacheconfig.json'));
const manifestText = JSON.stringify(recorded.manifest);
const sha256 = (bytes: string | Uint8Array) =>
  `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/** main.api and seed.api: the cold seed build, as ECR would serve it. */
function registry(tags: string[]): CacheRegistry {
  return {
    description: 'in-memory',
    async getManifest(repository, tag) {
      if (repository !== CACHE_REPO || !tags.includes(tag)) return undefined;
      return {
        digest: sha256(manifestText),
        mediaType: recorded.manifest.mediaType,
        text: manifestText,
      };
    },
    async getBlob(_repository, digest) {
      if (digest !== recorded.manifest.config.digest) throw new Error(`no blob ${digest}`);
      return cacheconfig;
    },
  };
}

let gitlab: FakeGitLabApi;
let dir: string;

beforeAll(async () => {
  gitlab = new FakeGitLabApi({ token: TOKEN });
  await gitlab.start();
  gitlab.addProject(PROJECT, new MemoryRepository('main'));
  gitlab.addProject('acme/locked', new MemoryRepository('main'), {
    pipelineVariables: 'no_one_allowed',
  });
});
afterAll(() => gitlab.stop());

async function repo(project = PROJECT) {
  const path = createTempDir();
  writeFileSync(join(path, 'Dockerfile'), 'FROM alpine:3.20\n');
  writeFileSync(
    join(path, 'cached-deploy.yml'),
    `version: 1
aws:
  accountId: "123456789012"
  region: eu-west-1
images:
  - name: api
    repository: shop
ci: gitlab
gitlab:
  project: ${project}
`,
  );
  await generate(path);
  return path;
}

beforeEach(async () => {
  dir = await repo();
  gitlab.pipelines(PROJECT).length = 0;
});

const options = (extra: Record<string, unknown> = {}) => ({
  registry: registry(['main.api', 'seed.api']),
  reseed: true,
  gitlabToken: TOKEN,
  gitlabUrl: gitlab.url,
  now: STALE,
  ...extra,
});

describe('doctor --reseed on GitLab', () => {
  it('a stale seed starts one pipeline on main with CACHED_DEPLOY_RESEED=true', async () => {
    const report = await doctor(dir, options());
    expect(report.status).toBe('degraded');
    expect(report.recommendations.map((each) => each.action)).toEqual(['reseed']);
    const [pipeline, ...more] = gitlab.pipelines(PROJECT);
    expect(more).toEqual([]);
    expect(pipeline).toMatchObject({
      ref: 'main',
      variables: [{ key: 'CACHED_DEPLOY_RESEED', value: 'true', variable_type: 'env_var' }],
    });
    expect(report.reseed).toEqual({
      status: 'triggered',
      url: `${gitlab.url}/${PROJECT}/-/pipelines/${pipeline?.id}`,
    });
    expect(report.recommendations[0]?.text).toMatch(
      /with `create-cached-deploy doctor --reseed` \(token in GITLAB_TOKEN\), or `glab ci run --repo acme\/shop --branch main --variables CACHED_DEPLOY_RESEED:true`$/,
    );
    const calls = gitlab.http.callsTo('POST', `/api/v4/projects/${PROJECT}/pipeline`);
    expect(calls).toHaveLength(1);
  });

  it('a fresh seed starts nothing', async () => {
    const report = await doctor(dir, options({ now: FRESH }));
    expect(report.status).toBe('healthy');
    expect(report.reseed).toEqual({ status: 'not-needed' });
    expect(gitlab.pipelines(PROJECT)).toEqual([]);
  });

  it('main missing is a build of main, not a reseed: nothing started', async () => {
    const report = await doctor(dir, options({ registry: registry(['seed.api']), now: FRESH }));
    expect(report.recommendations.map((each) => each.action)).toEqual(['build-main']);
    expect(report.reseed).toEqual({ status: 'not-needed' });
    expect(gitlab.pipelines(PROJECT)).toEqual([]);
  });

  it('a project that allows no one to set pipeline variables: failed, with what to change', async () => {
    const locked = await repo('acme/locked');
    const report: DoctorReport = await doctor(locked, options());
    expect(report.status).toBe('error');
    expect(report.reseed?.status).toBe('failed');
    expect(report.reseed?.error).toMatch(
      /^reseed: 127\.0\.0\.1:\d+: start a pipeline on main in acme\/locked failed: HTTP 400 \{"base":\["Insufficient permissions to set pipeline variables"\]\} \(GitLab refused the pipeline: main must exist, and the token's user must be allowed to set pipeline variables/,
    );
    expect(gitlab.pipelines('acme/locked')).toEqual([]);
    expect(formatDoctorReport(report)).toContain('Reseed failed: reseed: 127.0.0.1');
  });

  it("a GitLab that does not answer fails the reseed within doctor's --timeout", async () => {
    const fault = gitlab.http.fault({
      method: 'POST',
      path: '/pipeline',
      delayMs: 3000,
      respond: { status: 201, body: {} },
    });
    const started = Date.now();
    const report = await doctor(dir, options({ timeoutMs: 500 }));
    fault.remove();
    expect(Date.now() - started).toBeLessThan(2500);
    expect(report.reseed?.status).toBe('failed');
    expect(report.reseed?.error).toMatch(/: out of time \(0\.5 s for the whole run\)$/);
    expect(gitlab.pipelines(PROJECT)).toEqual([]);
  });

  it('the token is never printed, even when GitLab echoes it', async () => {
    const fault = gitlab.http.fault({
      method: 'POST',
      path: '/pipeline',
      respond: { status: 500, body: { message: `bad token ${TOKEN}` } },
    });
    const report = await doctor(dir, options());
    fault.remove();
    expect(report.reseed?.error).toContain('bad token ***');
    expect(`${JSON.stringify(report)}${formatDoctorReport(report)}`).not.toContain(TOKEN);
  });

  it('the CLI reads GITLAB_TOKEN, and without one refuses before reading anything', async () => {
    const saved = process.env.GITLAB_TOKEN;
    delete process.env.GITLAB_TOKEN;
    try {
      const result = await runMain(['doctor', dir, '--reseed', '--gitlab-url', gitlab.url]);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        'create-cached-deploy: --reseed needs a GitLab token with the api scope: pass --gitlab-token or set GITLAB_TOKEN\n',
      );
      expect(gitlab.pipelines(PROJECT)).toEqual([]);
    } finally {
      if (saved !== undefined) process.env.GITLAB_TOKEN = saved;
    }
  });
});
