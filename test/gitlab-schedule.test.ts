/**
 * `apply` on a `ci: gitlab` repository keeps the seed's pipeline schedule, against the fake GitLab
 * API through the real @gitbeaker/rest (and the ECR part against the ECR test server): dry run
 * first (exit 2), then create, then nothing (idempotent), an update of only what changed, other
 * schedules never touched, a schedule owned by someone else, no token (what to do by hand),
 * pagination, duplicates, rate limits, and the token never printed.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type ApplyOptions, apply } from '../src/api/apply.js';
import { generate } from '../src/api/generate.js';
import { type ApplyReport, exitCodeOf } from '../src/ecr/apply-ecr.js';
import { formatApplyReport } from '../src/ecr/format.js';
import { gitlabInstanceUrl } from '../src/gitlab-api/project.js';
import {
  desiredSeedSchedule,
  planSeedSchedule,
  SEED_SCHEDULE_DESCRIPTION,
} from '../src/gitlab-api/seed-schedule.js';
import { type EcrTestServer, startEcrServer } from './support/ecr-server.js';
import { FakeGitLabApi, MemoryRepository, tooManyRequests } from './support/gitlab-api/index.js';
import { runMain } from './support/run-main.js';
import { createTempDir } from './support/temp-repo.js';

const TOKEN = 'glpat-s3cret-token-value';
const PROJECT = 'acme/platform/shop';

let ecr: EcrTestServer;
let gitlab: FakeGitLabApi;

beforeAll(async () => {
  ecr = await startEcrServer();
  gitlab = new FakeGitLabApi({ token: TOKEN, username: 'cd-bot' });
  await gitlab.start();
});
afterAll(async () => {
  await ecr.close();
  await gitlab.stop();
});

let projectCount = 0;
let project = PROJECT;
beforeEach(() => {
  ecr.reset();
  // A fresh project per test (the fake keeps its projects).
  project = `${PROJECT}-${++projectCount}`;
  const source = new MemoryRepository('main');
  source.setBranch('release/prod', {});
  gitlab.addProject(project, source);
  gitlab.addUser('alice');
});
afterEach(() => {
  expect(ecr.unexpectedErrors).toEqual([]);
});

function fastRetry(maxAttempts: number) {
  const token = (count: number) => ({ getRetryCount: () => count, getRetryDelay: () => 1 });
  return {
    acquireInitialRetryToken: async () => token(0),
    refreshRetryTokenForRetry: async (
      previous: { getRetryCount(): number },
      info: { errorType: string },
    ) => {
      const count = previous.getRetryCount() + 1;
      if (info.errorType === 'CLIENT_ERROR' || count >= maxAttempts) throw new Error('no retry');
      return token(count);
    },
    recordSuccess: () => {},
  };
}

/** Waits the transport would do, recorded instead of slept. */
let waits: number[] = [];
let clock = Date.now();
function options(extra: ApplyOptions = {}): ApplyOptions {
  return {
    endpoint: ecr.endpoint,
    clientOptions: {
      credentials: ecr.clientConfig().credentials,
      maxAttempts: 4,
      retryStrategy: fastRetry(4),
    },
    sleep: async () => {},
    pollIntervalMs: 0,
    gitlabToken: TOKEN,
    gitlabUrl: gitlab.url,
    gitlabPolicy: {
      // A clock that moves only when the transport waits.
      now: () => clock,
      sleep: async (ms) => {
        waits.push(ms);
        clock += ms;
      },
    },
    ...extra,
  };
}

function config(extra = '') {
  return `version: 1
aws:
  accountId: "123456789012"
  region: us-east-1
images:
  - name: api
    repository: shop
ci: gitlab
gitlab:
  host: gitlab.example.com
  project: ${project}
  mainBranch: release/prod
${extra}`;
}

async function repo(text = config()): Promise<string> {
  const dir = createTempDir();
  writeFileSync(join(dir, 'Dockerfile'), 'FROM alpine:3.20\n');
  writeFileSync(join(dir, 'cached-deploy.yml'), text);
  await generate(dir);
  return dir;
}

/** Calls to the GitLab API that change something. */
const gitlabWrites = () =>
  gitlab.http.calls.filter((call) => call.method !== 'GET').map((c) => `${c.method} ${c.path}`);
let before = 0;
const newWrites = () => gitlabWrites().slice(before);
const mark = () => {
  before = gitlabWrites().length;
};

const schedule = (report: ApplyReport) => report.pipelineSchedule;

describe('apply keeps the seed pipeline schedule on GitLab', () => {
  it('dry run first (exit 2, nothing written), then creates it, then changes nothing', async () => {
    waits = [];
    const dir = await repo();
    mark();
    const dry = await apply(dir, options({ dryRun: true }));
    expect(dry.report.status).toBe('pending');
    expect(exitCodeOf(dry.report)).toBe(2);
    expect(schedule(dry.report)).toMatchObject({
      status: 'pending',
      action: 'create',
      project,
      description: SEED_SCHEDULE_DESCRIPTION,
      desired: { ref: 'release/prod', cron: '0 4 * * 1', cronTimezone: 'UTC', active: true },
    });
    expect(newWrites()).toEqual([]);
    expect(gitlab.schedules(project)).toEqual([]);
    expect(formatApplyReport(dry.report)).toMatch(
      /pipeline schedule "create-cached-deploy: seed cache refresh and branch-cache sweep" of acme\/platform\/shop-\d+ \(http:\/\/127\.0\.0\.1:\d+\)\n {4}would {3}create it: ref release\/prod, cron 0 4 \* \* 1 \(UTC\), active/,
    );

    const applied = await apply(dir, options());
    expect(applied.report.status).toBe('applied');
    expect(schedule(applied.report)?.status).toBe('done');
    const [created, ...more] = gitlab.schedules(project);
    expect(more).toEqual([]);
    expect(created).toMatchObject({
      description: SEED_SCHEDULE_DESCRIPTION,
      // Newer GitLab answers the full ref: still the same branch.
      ref: 'refs/heads/release/prod',
      cron: '0 4 * * 1',
      cronTimezone: 'UTC',
      active: true,
      ownerId: gitlab.userId('cd-bot'),
    });
    expect(schedule(applied.report)).toMatchObject({ id: created?.id, owner: 'cd-bot' });

    mark();
    const again = await apply(dir, options());
    expect(again.report.status).toBe('in-sync');
    expect(exitCodeOf(again.report)).toBe(0);
    expect(schedule(again.report)).toMatchObject({ status: 'in-sync', id: created?.id });
    expect(newWrites()).toEqual([]);
    expect(formatApplyReport(again.report)).toMatch(
      /: in sync #\d+, owned by cd-bot\n\nIn sync: 3 repositories match the committed files, and the pipeline schedule its config\.\n$/,
    );
    expect(waits).toEqual([]);
  });

  it('updates only what changed in its own schedule, and never touches another', async () => {
    const mine = gitlab.seedSchedule(project, {
      description: SEED_SCHEDULE_DESCRIPTION,
      ref: 'refs/heads/release/prod',
      cron: '0 4 * * 1',
    });
    const nightly = gitlab.seedSchedule(project, { description: 'nightly e2e', cron: '0 2 * * *' });
    const theirs = gitlab.seedSchedule(project, {
      description: 'release train',
      ownerId: gitlab.userId('alice'),
      active: false,
    });
    const others = structuredClone([nightly, theirs]);
    const dir = await repo(config('seed:\n  schedule: "30 5 * * 0"\n'));
    await apply(dir, options());
    mark();
    // Someone changes the schedule by hand (another time zone, deactivated).
    mine.active = false;
    mine.cronTimezone = 'Europe/Berlin';
    const dry = await apply(dir, options({ dryRun: true }));
    expect(schedule(dry.report)).toMatchObject({
      status: 'pending',
      action: 'update',
      id: mine.id,
      changes: [
        { field: 'cronTimezone', from: 'Europe/Berlin', to: 'UTC' },
        { field: 'active', from: 'false', to: 'true' },
      ],
    });
    expect(newWrites()).toEqual([]);
    const applied = await apply(dir, options());
    expect(schedule(applied.report)?.status).toBe('done');
    expect(newWrites()).toEqual([
      `PUT /api/v4/projects/${encodeURIComponent(project)}/pipeline_schedules/${mine.id}`,
    ]);
    expect(gitlab.schedules(project)).toEqual([
      { ...mine, cron: '30 5 * * 0', cronTimezone: 'UTC', active: true },
      ...others,
    ]);
  });

  it('says whose schedule it is when only its owner may change it', async () => {
    const mine = gitlab.seedSchedule(project, {
      description: SEED_SCHEDULE_DESCRIPTION,
      ref: 'main',
      cron: '0 4 * * 1',
      ownerId: gitlab.userId('alice'),
    });
    const dir = await repo();
    const { report } = await apply(dir, options());
    expect(report.status).toBe('failed');
    expect(exitCodeOf(report)).toBe(1);
    expect(schedule(report)).toMatchObject({
      status: 'failed',
      owner: 'alice',
      changes: [{ field: 'ref', from: 'main', to: 'release/prod' }],
    });
    expect(report.error).toMatch(
      /update pipeline schedule \d+ of acme\/platform\/shop-\d+ failed: HTTP 403 403 Forbidden \(only the schedule's owner \(alice\) may change it: take ownership/,
    );
    expect(gitlab.schedules(project)).toEqual([mine]);
  });

  it('finds its schedule on a later page, and updates the oldest of duplicates only', async () => {
    for (let i = 0; i < 130; i++) gitlab.seedSchedule(project, { description: `other ${i}` });
    const first = gitlab.seedSchedule(project, {
      description: SEED_SCHEDULE_DESCRIPTION,
      ref: 'release/prod',
      cron: '0 3 * * 1',
    });
    const second = gitlab.seedSchedule(project, {
      description: SEED_SCHEDULE_DESCRIPTION,
      ref: 'release/prod',
      cron: '0 9 * * 1',
    });
    const dir = await repo();
    const { report } = await apply(dir, options());
    expect(schedule(report)).toMatchObject({
      status: 'done',
      action: 'update',
      id: first.id,
      duplicates: [second.id],
    });
    expect(
      gitlab.schedules(project).filter((s) => s.description === SEED_SCHEDULE_DESCRIPTION),
    ).toEqual([{ ...first, cron: '0 4 * * 1' }, second]);
    expect(gitlab.schedules(project)).toHaveLength(132);
    const listed = gitlab.http.callsTo('GET', `/api/v4/projects/${project}/pipeline_schedules`);
    expect(listed.map((call) => new URLSearchParams(call.query).get('page'))).toEqual(['1', '2']);
    expect(formatApplyReport(report)).toMatch(
      /note: 1 other schedule with this description \(#\d+\) left as they are/,
    );
  });

  it('waits out a rate limit as GitLab asks (Retry-After), then goes on', async () => {
    waits = [];
    const dir = await repo();
    gitlab.http.fault({ method: 'GET', path: 'pipeline_schedules', respond: tooManyRequests(7) });
    const { report } = await apply(dir, options());
    expect(schedule(report)?.status).toBe('done');
    expect(waits).toEqual([7000]);
  });

  it("without a token: says what to do by hand, asks GitLab nothing, and the exit code is the ECR part's", async () => {
    const dir = await repo();
    await apply(dir, options());
    const calls = gitlab.http.calls.length;
    const { report } = await apply(dir, options({ gitlabToken: undefined }));
    expect(gitlab.http.calls.length).toBe(calls);
    expect(report.status).toBe('in-sync');
    expect(exitCodeOf(report)).toBe(0);
    expect(schedule(report)?.status).toBe('manual');
    expect(schedule(report)?.instructions?.[0]).toBe(
      `glab schedule create --repo ${project} --description 'create-cached-deploy: seed cache refresh and branch-cache sweep' --ref release/prod --cron '0 4 * * 1' --cronTimeZone UTC`,
    );
    expect(formatApplyReport(report)).toMatch(
      /not checked: no GitLab token\. It must exist with ref release\/prod, cron 0 4 \* \* 1 \(UTC\), active; create it once:\n {6}glab schedule create/,
    );
  });

  it('never prints the token, even when GitLab echoes it', async () => {
    const dir = await repo();
    gitlab.http.fault({
      method: 'POST',
      path: 'pipeline_schedules',
      respond: { status: 422, body: { message: `token ${TOKEN} is not allowed here` } },
    });
    const { report } = await apply(dir, options());
    expect(report.status).toBe('failed');
    expect(report.error).toContain('token *** is not allowed here');
    const text = `${formatApplyReport(report)}${JSON.stringify(report)}`;
    expect(text).not.toContain(TOKEN);
  });

  it('a GitLab instance over plain http fails before any ECR call (the token would travel in clear)', async () => {
    const good = await repo();
    await expect(apply(good, options({ gitlabUrl: 'http://gitlab.example.com' }))).rejects.toThrow(
      /must be an https URL \(a token is sent there\)/,
    );
    expect(ecr.calls).toEqual([]);
  });

  it('refuses to send the token anywhere but https (or loopback)', () => {
    expect(gitlabInstanceUrl('gitlab.example.com')).toBe('https://gitlab.example.com');
    expect(gitlabInstanceUrl('https://git.example.com/gitlab/')).toBe(
      'https://git.example.com/gitlab',
    );
    expect(gitlabInstanceUrl('http://127.0.0.1:8080')).toBe('http://127.0.0.1:8080');
    expect(() => gitlabInstanceUrl('http://gitlab.example.com')).toThrow(/must be an https URL/);
    expect(() => gitlabInstanceUrl('https://user:pw@gitlab.example.com')).toThrow(/no credentials/);
  });

  it('plans from what GitLab answered: a changed ref, cron, time zone or state, nothing else', () => {
    const project = { instanceUrl: 'https://gitlab.com', path: 'a/b', mainBranch: 'main' };
    const desired = desiredSeedSchedule(
      { seed: { enabled: true, schedule: '0 4 * * 1' } } as Parameters<
        typeof desiredSeedSchedule
      >[0],
      project,
    );
    const existing = {
      id: 3,
      description: SEED_SCHEDULE_DESCRIPTION,
      ref: 'refs/heads/main',
      cron: '0 4 * * 1',
      cronTimezone: 'UTC',
      active: true,
    };
    expect(planSeedSchedule([existing], desired)).toEqual({
      action: 'in-sync',
      id: 3,
      changes: [],
      duplicates: [],
    });
    expect(
      planSeedSchedule([{ ...existing, cronTimezone: 'Europe/Berlin', ref: 'dev' }], desired),
    ).toMatchObject({
      action: 'update',
      changes: [
        { field: 'ref', from: 'dev', to: 'main' },
        { field: 'cronTimezone', from: 'Europe/Berlin', to: 'UTC' },
      ],
    });
    // Another description is another schedule.
    expect(
      planSeedSchedule([{ ...existing, description: 'create-cached-deploy' }], desired),
    ).toEqual({ action: 'create', duplicates: [] });
  });
});

describe('the apply command on GitLab', () => {
  async function cli(args: string[], env: Record<string, string>) {
    const saved = { ...process.env };
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_ECR: ecr.endpoint,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      ...env,
    });
    try {
      return await runMain(args);
    } finally {
      for (const key of [
        'AWS_ENDPOINT_URL_ECR',
        'AWS_ACCESS_KEY_ID',
        'AWS_SECRET_ACCESS_KEY',
        ...Object.keys(env),
      ]) {
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
      }
    }
  }

  it('reads GITLAB_TOKEN; dry run exits 2, apply 0, then in sync; --json has the schedule; the token is never printed', async () => {
    const dir = await repo();
    const env = { GITLAB_TOKEN: TOKEN };
    const dry = await cli(['apply', dir, '--dry-run', '--gitlab-url', gitlab.url], env);
    expect(dry.code).toBe(2);
    expect(dry.stdout).toMatch(/Changes pending in 3 repositories and the pipeline schedule/);
    const applied = await cli(['apply', dir, '--gitlab-url', gitlab.url], env);
    expect(applied).toMatchObject({ code: 0, stderr: '' });
    expect(applied.stdout).toMatch(
      /Applied: 3 repositories updated, the pipeline schedule made to match\./,
    );
    const json = await cli(['apply', dir, '--json', '--gitlab-url', gitlab.url], env);
    expect(json.code).toBe(0);
    expect((JSON.parse(json.stdout) as ApplyReport).pipelineSchedule).toMatchObject({
      status: 'in-sync',
      project,
    });
    for (const run of [dry, applied, json])
      expect(`${run.stdout}${run.stderr}`).not.toContain(TOKEN);
    // --gitlab-token wins over the environment.
    const wrong = await cli(
      ['apply', dir, '--gitlab-url', gitlab.url, '--gitlab-token', 'nope-nope'],
      env,
    );
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/HTTP 401 .*the token is invalid or expired/);
  });
});
