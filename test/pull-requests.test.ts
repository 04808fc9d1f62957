/**
 * `fleet --open-pr` and `fleet --status` against the fake GitHub and GitLab APIs
 * (test/support/github-api, test/support/gitlab-api) driven by the real `@octokit/rest` and
 * `@gitbeaker/rest`, with real git: every fleet repository is a bare repository in a temp dir,
 * cloned by the fleet as `origin` and pushed to; the fake hosts read pull request heads and the
 * default branch's files from those same bare repositories.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { generate } from '../src/api/generate.js';
import { init } from '../src/api/init.js';
import { main } from '../src/cli/main.js';
import { formatMarkdown } from '../src/diff/format.js';
import { diffRepository } from '../src/diff/report.js';
import { parseFleetFile } from '../src/fleet/fleet-file.js';
import { CodeHosts } from '../src/fleet/hosts/connect.js';
import { GITHUB_BODY_LIMIT } from '../src/fleet/hosts/github.js';
import { GITLAB_BODY_LIMIT } from '../src/fleet/hosts/gitlab.js';
import { resolveHostTarget } from '../src/fleet/hosts/target.js';
import { type FleetResult, runFleet } from '../src/fleet/run-fleet.js';
import {
  formatSummaryJson,
  formatSummaryMarkdown,
  formatSummaryTable,
} from '../src/fleet/summary.js';
import { rateLimitWait, redact } from '../src/net/host-connection.js';
import { GENERATOR_VERSION } from '../src/version.js';
import {
  BareRepository,
  FakeGitHubApi,
  MemoryRepository,
  secondaryRateLimit,
} from './support/github-api/index.js';
import { FakeGitLabApi, tooManyRequests } from './support/gitlab-api/index.js';
import {
  commitAll,
  createSuiteTempRepo,
  createTempDir,
  git,
  snapshotChanges,
  snapshotDir,
} from './support/temp-repo.js';

const OLD = '1.0.0';
const BRANCH = 'cached-deploy/upgrade';
// Long and unusual, so a match in any output is this token and nothing else.
const GITHUB_TOKEN = 'ghp_fakeGitHubTokenNeverPrinted0123456789';
const GITLAB_TOKEN = 'glpat-fakeGitLabTokenNeverPrinted98765';

const GIT_ENV: NodeJS.ProcessEnv = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Fleet',
  GIT_AUTHOR_EMAIL: 'fleet@example.com',
  GIT_COMMITTER_NAME: 'Fleet',
  GIT_COMMITTER_EMAIL: 'fleet@example.com',
};

/** examples/node-service after `init` at OLD, committed: every repository starts as a copy. */
let template: { repo: string; remove: () => void } | undefined;

beforeAll(async () => {
  template = createSuiteTempRepo({ name: 'template' });
  await init(template.repo, {
    yes: true,
    accountId: '123456789012',
    region: 'eu-west-1',
    githubRepository: 'acme/template',
    version: OLD,
  });
  commitAll(template.repo, 'cached-deploy');
});

afterAll(() => template?.remove());

interface Fixture {
  name: string;
  /** The working copy the bare repository was made from (its main branch). */
  source: string;
  bare: string;
}

/** A copy of the template, optionally regenerated at this package's version, as a bare remote. */
async function repository(root: string, name: string, options: { inSync?: boolean } = {}) {
  if (!template) throw new Error('no template');
  const source = join(root, `${name}-src`);
  cpSync(template.repo, source, { recursive: true });
  if (options.inSync) {
    await generate(source, {});
    commitAll(source, 'regenerate');
  }
  const bare = join(root, `${name}.git`);
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', bare], { env: GIT_ENV });
  git(source, ['push', '-q', bare, 'main']);
  return { name, source, bare } satisfies Fixture;
}

function rejectPushes(bare: string): () => void {
  const hook = join(bare, 'hooks', 'pre-receive');
  writeFileSync(hook, '#!/bin/sh\necho "pushes are frozen" >&2\nexit 1\n');
  chmodSync(hook, 0o755);
  return () => rmSync(hook);
}

/** The markdown `create-cached-deploy diff` prints for the repository's main branch. */
async function markdownDiff(fixture: Fixture, maxBytes: number): Promise<string> {
  const diff = await diffRepository(fixture.source, { displayName: fixture.name });
  return formatMarkdown([diff], { maxBytes });
}

function statuses(result: FleetResult) {
  return Object.fromEntries(
    result.results.map((r) => [r.repository, [r.status, r.pullRequest?.action ?? '-']]),
  );
}

async function cli(argv: string[], env: NodeJS.ProcessEnv) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  let stdout = '';
  let stderr = '';
  try {
    const code = await main(argv, {
      stdout: (text) => {
        stdout += text;
      },
      stderr: (text) => {
        stderr += text;
      },
      interactive: false,
    });
    return { code, stdout, stderr };
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

describe("the fleet file: pullRequests and each repository's host", () => {
  const parse = (fleet: object) => parseFleetFile(stringify(fleet), '/srv/fleet/fleet.yml');

  test('a valid section, with defaults for what it leaves out', () => {
    const file = parse({
      repos: [
        {
          url: 'git@gitlab.acme.com:platform/tools/api.git',
          host: 'gitlab',
          project: 'platform/tools/api',
        },
      ],
      pullRequests: {
        branch: 'cached-deploy/upgrade',
        title: 'chore: {repository} to create-cached-deploy {generator} (was {previous})',
        labels: ['dependencies', 'ci'],
        reviewers: ['alice', 'acme/platform'],
        hosts: { 'git.acme.com': { type: 'gitlab', tokenEnv: 'ACME_GITLAB_TOKEN' } },
      },
    });
    expect(file.pullRequests).toEqual({
      branch: 'cached-deploy/upgrade',
      title: 'chore: {repository} to create-cached-deploy {generator} (was {previous})',
      labels: ['dependencies', 'ci'],
      reviewers: ['alice', 'acme/platform'],
      assignees: [],
      draft: false,
      hosts: { 'git.acme.com': { type: 'gitlab', tokenEnv: 'ACME_GITLAB_TOKEN' } },
    });
    expect(file.repos[0]).toMatchObject({ host: 'gitlab', project: 'platform/tools/api' });
  });

  test.each([
    [{ title: 'bump to {version}' }, /pullRequests\.title: unknown placeholder \{version\}/],
    [{ labels: ['a,b'] }, /pullRequests\.labels\[0\]: "a,b" is not a label name without commas/],
    [{ reviewers: ['-x'] }, /pullRequests\.reviewers\[0\]: "-x" is not a user name/],
    [{ branch: '--force' }, /pullRequests\.branch: "--force" is not a git branch name/],
    [{ draft: 'yes' }, /pullRequests\.draft: expected true or false/],
    [
      { hosts: { 'git.acme.com': { type: 'bitbucket' } } },
      /pullRequests\.hosts\.git\.acme\.com\.type: string "bitbucket" is not allowed/,
    ],
    [{ reviewer: ['alice'] }, /pullRequests\.reviewer: unknown field/],
    [{ labels: ['a', 'a'] }, /pullRequests\.labels\[1\]: "a" is listed twice/],
  ])('%j is refused with one line naming the field', (section, message) => {
    expect(() => parse({ repos: ['../a'], pullRequests: section })).toThrow(message);
    expect(() => parse({ repos: ['../a'], pullRequests: section })).toThrow(/^fleet\.yml: /);
  });

  test("a repository's host, project and apiUrl are checked", () => {
    expect(() => parse({ repos: [{ path: '../a', host: 'bitbucket' }] })).toThrow(
      /fleet\.yml: repos\[0\]\.host: string "bitbucket" is not allowed \(allowed: github, gitlab\)/,
    );
    expect(() => parse({ repos: [{ path: '../a', project: '../etc' }] })).toThrow(
      /repos\[0\]\.project: "\.\.\/etc" is not a project path/,
    );
    expect(() =>
      parse({ repos: [{ path: '../a', apiUrl: 'https://user:pw@ghe.acme.com/api/v3' }] }),
    ).toThrow(/repos\[0\]\.apiUrl: .* is not an http\(s\) URL without credentials/);
  });
});

describe("which host and project serve a repository's pull requests", () => {
  const resolve = (url: string | undefined, repo = {}, hosts = {}) =>
    resolveHostTarget(repo, url, hosts);

  test.each([
    ['https://github.com/acme/orders.git', 'github', 'https://api.github.com', 'acme/orders'],
    ['https://github.com/acme/orders', 'github', 'https://api.github.com', 'acme/orders'],
    ['git@github.com:acme/orders.git', 'github', 'https://api.github.com', 'acme/orders'],
    ['ssh://git@github.com/acme/orders.git', 'github', 'https://api.github.com', 'acme/orders'],
    [
      'https://gitlab.com/acme/platform/tools/api.git',
      'gitlab',
      'https://gitlab.com',
      'acme/platform/tools/api',
    ],
    ['git@gitlab.com:acme/platform/api.git', 'gitlab', 'https://gitlab.com', 'acme/platform/api'],
    [
      'https://gitlab.acme.com/group/sub/name',
      'gitlab',
      'https://gitlab.acme.com',
      'group/sub/name',
    ],
    [
      'ssh://git@gitlab.acme.com:2222/group/name.git',
      'gitlab',
      'https://gitlab.acme.com',
      'group/name',
    ],
    [
      'https://github.acme.com/team/app.git',
      'github',
      'https://github.acme.com/api/v3',
      'team/app',
    ],
  ])('%s → %s %s %s', (url, kind, apiUrl, project) => {
    expect(resolve(url)).toMatchObject({ kind, apiUrl, project });
  });

  test('the fleet file names hosts the url does not, and overrides per repository', () => {
    expect(
      resolve('git@code.acme.com:ops/app.git', {}, { 'code.acme.com': { type: 'gitlab' } }),
    ).toMatchObject({
      kind: 'gitlab',
      apiUrl: 'https://code.acme.com',
      project: 'ops/app',
      tokenEnv: 'GITLAB_TOKEN',
    });
    expect(
      resolve(
        'git@code.acme.com:ops/app.git',
        {},
        {
          'code.acme.com': {
            type: 'github',
            apiUrl: 'https://code.acme.com/api/v3',
            tokenEnv: 'ACME_TOKEN',
          },
        },
      ),
    ).toMatchObject({
      kind: 'github',
      apiUrl: 'https://code.acme.com/api/v3',
      tokenEnv: 'ACME_TOKEN',
      label: 'code.acme.com',
    });
    expect(
      resolve('file:///srv/git/app.git', {
        host: 'gitlab',
        project: 'a/b/c',
        apiUrl: 'http://127.0.0.1:9/api/v4',
      }),
    ).toMatchObject({ kind: 'gitlab', apiUrl: 'http://127.0.0.1:9', project: 'a/b/c' });
  });

  test('what cannot be told is one line naming what to add', () => {
    expect(() => resolve('git@code.acme.com:ops/app.git')).toThrow(
      /cannot tell which code host .* add `host: github` or `host: gitlab`/,
    );
    expect(() => resolve(undefined)).toThrow(/it has no origin remote/);
    expect(() => resolve('https://github.com/acme/a/b.git')).toThrow(/is not a GitHub repository/);
    expect(() => resolve('file:///srv/app.git', { host: 'github' })).toThrow(
      /add `project: owner\/name`/,
    );
  });
});

describe('rate limits: how long the hosts ask to wait', () => {
  const headers = (values: Record<string, string>) => new Headers(values);
  const now = Date.UTC(2026, 0, 1);

  test('GitHub: retry-after, then the primary reset, then a minute doubling; a 403 without them is no limit', () => {
    expect(rateLimitWait('github', 403, headers({ 'retry-after': '30' }), '', 0, now)).toEqual({
      ms: 30_000,
      reason: 'secondary rate limit',
    });
    const reset = String(now / 1000 + 90);
    expect(
      rateLimitWait(
        'github',
        403,
        headers({ 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': reset }),
        '',
        0,
        now,
      ),
    ).toEqual({ ms: 91_000, reason: 'primary rate limit' });
    expect(
      rateLimitWait(
        'github',
        403,
        headers({}),
        '{"message":"You have exceeded a secondary rate limit"}',
        1,
        now,
      ),
    ).toEqual({
      ms: 120_000,
      reason: 'secondary rate limit',
    });
    expect(rateLimitWait('github', 429, headers({}), '', 0, now)?.ms).toBe(60_000);
    expect(
      rateLimitWait('github', 403, headers({}), '{"message":"Resource not accessible"}', 0, now),
    ).toBeUndefined();
    expect(
      rateLimitWait('github', 500, headers({ 'retry-after': '1' }), '', 0, now),
    ).toBeUndefined();
  });

  test('GitLab: a 429 with Retry-After, else RateLimit-Reset', () => {
    expect(rateLimitWait('gitlab', 429, headers({ 'retry-after': '2' }), '', 0, now)?.ms).toBe(
      2000,
    );
    expect(
      rateLimitWait(
        'gitlab',
        429,
        headers({ 'ratelimit-reset': String(now / 1000 + 10) }),
        '',
        0,
        now,
      )?.ms,
    ).toBe(11_000);
    expect(
      rateLimitWait('gitlab', 403, headers({ 'retry-after': '2' }), '', 0, now),
    ).toBeUndefined();
  });

  test('secrets are cut out of any text, also URL-encoded', () => {
    expect(redact('token a+b/c= and a%2Bb%2Fc%3D', ['a+b/c='])).toBe('token *** and ***');
  });
});

describe('a mixed fleet on GitHub and GitLab', () => {
  let github: FakeGitHubApi;
  let gitlab: FakeGitLabApi;
  beforeAll(async () => {
    github = new FakeGitHubApi({ token: GITHUB_TOKEN });
    gitlab = new FakeGitLabApi({ token: GITLAB_TOKEN });
    await Promise.all([github.start(), gitlab.start()]);
  });
  afterAll(async () => {
    await Promise.all([github.stop(), gitlab.stop()]);
  });
  afterEach(() => {
    github.http.calls.length = 0;
    gitlab.http.calls.length = 0;
  });

  test('opened, updated, closed, failed and rate-limited; one pull request per repository after two runs; then --status', async () => {
    const root = createTempDir();
    const gh = {
      fresh: await repository(root, 'gh-fresh'),
      existing: await repository(root, 'gh-existing'),
      inSync: await repository(root, 'gh-in-sync', { inSync: true }),
      pushFails: await repository(root, 'gh-push-fails'),
      apiFails: await repository(root, 'gh-api-fails'),
      limited: await repository(root, 'gh-limited'),
    };
    const gl = {
      fresh: await repository(root, 'gl-fresh'),
      existing: await repository(root, 'gl-existing'),
      inSync: await repository(root, 'gl-in-sync', { inSync: true }),
      limited: await repository(root, 'gl-limited'),
    };
    const projects = new Map<Fixture, string>();
    for (const fixture of Object.values(gh)) {
      const project = `acme/${fixture.name}`;
      projects.set(fixture, project);
      github.addRepository(project, new BareRepository(fixture.bare));
    }
    for (const fixture of Object.values(gl)) {
      const project = `platform/services/${fixture.name}`;
      projects.set(fixture, project);
      gitlab.addProject(project, new BareRepository(fixture.bare));
    }
    gitlab.addUser('alice');
    gitlab.addUser('bob');

    // Open already: a pull request from an earlier run (its branch pushed then), and one on a
    // repository that has since been brought in sync on main.
    for (const fixture of [gh.existing, gh.inSync, gl.existing, gl.inSync]) {
      git(fixture.source, ['push', '-q', fixture.bare, `main:refs/heads/${BRANCH}`]);
    }
    const ghExisting = github.seedPull(`acme/${gh.existing.name}`, {
      head: BRANCH,
      title: 'old title',
      body: 'old body',
      labels: ['dependencies'],
    });
    const ghInSync = github.seedPull(`acme/${gh.inSync.name}`, { head: BRANCH });
    const glExisting = gitlab.seedMergeRequest(`platform/services/${gl.existing.name}`, {
      sourceBranch: BRANCH,
      title: 'old title',
    });
    const glInSync = gitlab.seedMergeRequest(`platform/services/${gl.inSync.name}`, {
      sourceBranch: BRANCH,
    });
    // Someone else's pull request from another branch is never touched.
    git(gh.fresh.source, ['push', '-q', gh.fresh.bare, 'main:refs/heads/feature']);
    const unrelated = github.seedPull(`acme/${gh.fresh.name}`, {
      head: 'feature',
      title: 'a feature',
    });

    const restorePushes = rejectPushes(gh.pushFails.bare);
    const apiFault = github.http.fault({
      method: 'POST',
      path: `/repos/acme/${gh.apiFails.name}/pulls`,
      respond: { status: 502, body: { message: 'Server Error' } },
    });
    const secondary = github.http.fault({
      method: 'GET',
      path: `/repos/acme/${gh.limited.name}/pulls`,
      respond: secondaryRateLimit(60),
    });
    const throttled = gitlab.http.fault({
      method: 'GET',
      path: `/projects/platform/services/${gl.limited.name}/merge_requests`,
      respond: tooManyRequests(3),
    });

    const fleet = join(root, 'fleet.yml');
    const entry = (fixture: Fixture, host: 'github' | 'gitlab') => ({
      url: `file://${fixture.bare}`,
      name: fixture.name,
      host,
      project: projects.get(fixture),
      apiUrl: host === 'github' ? github.url : `${gitlab.url}/api/v4`,
    });
    writeFileSync(
      fleet,
      stringify({
        concurrency: 4,
        repos: [
          ...Object.values(gh).map((fixture) => entry(fixture, 'github')),
          ...Object.values(gl).map((fixture) => entry(fixture, 'gitlab')),
        ],
        pullRequests: {
          branch: BRANCH,
          title: 'chore: create-cached-deploy {generator} (from {previous})',
          labels: ['dependencies', 'cached-deploy'],
          reviewers: ['alice'],
          assignees: ['bob'],
          writeIntervalMs: 0,
        },
      }),
    );
    const env = { GITHUB_TOKEN, GITLAB_TOKEN };
    // A clock that only moves when the run waits: the waits are recorded, not slept.
    const waits: number[] = [];
    let clock = Date.now();
    const sleep = async (ms: number) => {
      waits.push(ms);
      clock += ms;
    };
    const now = () => clock;

    // --- run 1 (the API) ---
    const first = await runFleet(fleet, {
      mode: 'write',
      push: true,
      openPr: true,
      gitEnv: GIT_ENV,
      hosts: { env, policy: { sleep, now } },
    });
    expect(statuses(first)).toEqual({
      'gh-fresh': ['changed', 'opened'],
      'gh-existing': ['changed', 'updated'],
      'gh-in-sync': ['in-sync', 'closed'],
      'gh-push-fails': ['error', '-'],
      'gh-api-fails': ['error', 'none'],
      'gh-limited': ['changed', 'opened'],
      'gl-fresh': ['changed', 'opened'],
      'gl-existing': ['changed', 'updated'],
      'gl-in-sync': ['in-sync', 'closed'],
      'gl-limited': ['changed', 'opened'],
    });
    expect(first.exitCode).toBe(1);
    const byName = new Map(first.results.map((r) => [r.repository, r]));
    expect(byName.get('gh-push-fails')?.message).toMatch(
      /^git push failed: failed to push some refs to 'file:\/\/.*gh-push-fails\.git'$/,
    );
    expect(byName.get('gh-api-fails')?.message).toMatch(
      /^committed [0-9a-f]{7} on cached-deploy\/upgrade and pushed it: .*; pull request: 127\.0\.0\.1:\d+: open a pull request in acme\/gh-api-fails failed: HTTP 502 Server Error$/,
    );
    // Waited as asked: 60 s for GitHub's secondary limit, 3 s for GitLab's 429; retried once each.
    expect(waits.sort((a, b) => a - b)).toEqual([3000, 60_000]);
    expect(secondary.fired).toBe(1);
    expect(throttled.fired).toBe(1);
    expect(apiFault.fired).toBe(1);
    expect(github.http.callsTo('GET', `/repos/acme/${gh.limited.name}/pulls`)).toHaveLength(2);
    // The push failed, so its host never heard of it.
    expect(github.http.calls.filter((call) => call.path.includes(gh.pushFails.name))).toEqual([]);

    // What the pull requests say.
    const ghFresh = github.pulls(`acme/${gh.fresh.name}`).filter((pull) => pull.head === BRANCH);
    expect(ghFresh).toHaveLength(1);
    expect(ghFresh[0]).toMatchObject({
      state: 'open',
      base: 'main',
      title: `chore: create-cached-deploy ${GENERATOR_VERSION} (from ${OLD})`,
      labels: ['dependencies', 'cached-deploy'],
      assignees: ['bob'],
      requestedReviewers: ['alice'],
      draft: false,
    });
    expect(ghFresh[0]?.body).toBe(await markdownDiff(gh.fresh, GITHUB_BODY_LIMIT));
    expect(ghFresh[0]?.body).toContain('### Files');
    expect(byName.get('gh-fresh')?.pullRequest?.url).toBe(
      `${github.url}/acme/gh-fresh/pull/${ghFresh[0]?.number}`,
    );
    expect(unrelated).toMatchObject({ state: 'open', title: 'a feature' });
    // Updated in place: title and body, the missing label added, nothing else requested.
    expect(ghExisting).toMatchObject({
      state: 'open',
      title: `chore: create-cached-deploy ${GENERATOR_VERSION} (from ${OLD})`,
      labels: ['dependencies', 'cached-deploy'],
      assignees: ['bob'],
    });
    expect(ghExisting.body).toBe(await markdownDiff(gh.existing, GITHUB_BODY_LIMIT));
    expect(ghInSync.state).toBe('closed');
    expect(ghInSync.comments).toHaveLength(1);
    expect(ghInSync.comments[0]).toMatch(/^The generated files on `main` are up to date now/);
    const glFresh = gitlab.mergeRequests(`platform/services/${gl.fresh.name}`);
    expect(glFresh).toHaveLength(1);
    expect(glFresh[0]).toMatchObject({
      state: 'opened',
      targetBranch: 'main',
      labels: ['dependencies', 'cached-deploy'],
      assigneeIds: [gitlab.userId('bob')],
      reviewerIds: [gitlab.userId('alice')],
    });
    expect(glFresh[0]?.description).toBe(await markdownDiff(gl.fresh, GITLAB_BODY_LIMIT));
    expect(glExisting.description).toBe(await markdownDiff(gl.existing, GITLAB_BODY_LIMIT));
    expect(glExisting.labels).toEqual(['dependencies', 'cached-deploy']);
    expect(glInSync).toMatchObject({
      state: 'closed',
      notes: [expect.stringMatching(/up to date now/)],
    });
    // The pushed branch is what the pull request shows.
    const head = git(gh.fresh.bare, ['rev-parse', BRANCH]).trim();
    expect(git(gh.fresh.bare, ['log', '-1', '--format=%s', head]).trim()).toBe(
      `chore(cached-deploy): upgrade generated files to create-cached-deploy ${GENERATOR_VERSION}`,
    );
    // The results record keeps every failure (git or host) for --only-failed.
    const record = JSON.parse(readFileSync(first.resultsFile, 'utf8'));
    expect(record.repositories['gh-api-fails']).toMatchObject({
      status: 'error',
      pullRequest: { action: 'none' },
    });
    expect(record.repositories['gh-fresh'].pullRequest).toMatchObject({
      action: 'opened',
      kind: 'github',
      number: ghFresh[0]?.number,
    });

    // --- run 2 (the CLI), nothing new: the same pull requests, left as they are ---
    github.http.calls.length = 0;
    gitlab.http.calls.length = 0;
    const outputs: string[] = [];
    const report = join(root, 'report.md');
    const second = await cli(
      ['fleet', fleet, '--write', '--push', '--open-pr', '--json', '--report', report],
      { ...GIT_ENV, ...env },
    );
    outputs.push(second.stdout, second.stderr, readFileSync(report, 'utf8'));
    expect(second.code).toBe(1);
    const json = JSON.parse(second.stdout);
    expect(
      Object.fromEntries(
        json.repositories.map((r: FleetResult['results'][number]) => [
          r.repository,
          [r.status, r.pullRequest?.action ?? '-'],
        ]),
      ),
    ).toEqual({
      'gh-fresh': ['in-sync', 'unchanged'],
      'gh-existing': ['in-sync', 'unchanged'],
      'gh-in-sync': ['in-sync', 'none'],
      'gh-push-fails': ['error', '-'],
      // The branch was pushed last time: only its pull request is opened now.
      'gh-api-fails': ['in-sync', 'opened'],
      'gh-limited': ['in-sync', 'unchanged'],
      'gl-fresh': ['in-sync', 'unchanged'],
      'gl-existing': ['in-sync', 'unchanged'],
      'gl-in-sync': ['in-sync', 'none'],
      'gl-limited': ['in-sync', 'unchanged'],
    });
    expect(second.stderr).toMatch(/^Failed \(1\):\n {2}gh-push-fails: git push failed: /m);
    // Exactly one pull request per repository for the branch (and its closed ones stay closed).
    for (const fixture of Object.values(gh)) {
      const forBranch = github.pulls(`acme/${fixture.name}`).filter((pull) => pull.head === BRANCH);
      expect(forBranch.length, fixture.name).toBe(fixture === gh.pushFails ? 0 : 1);
    }
    for (const fixture of Object.values(gl)) {
      expect(gitlab.mergeRequests(`platform/services/${fixture.name}`), fixture.name).toHaveLength(
        1,
      );
    }
    // Unchanged: one list call per repository, no write at all.
    expect(
      github.http.calls
        .filter((call) => call.method !== 'GET')
        .map((call) => `${call.method} ${call.path}`),
    ).toEqual([
      'POST /repos/acme/gh-api-fails/pulls',
      'PATCH /repos/acme/gh-api-fails/issues/1',
      'POST /repos/acme/gh-api-fails/pulls/1/requested_reviewers',
    ]);
    expect(gitlab.http.calls.filter((call) => call.method !== 'GET')).toEqual([]);

    // --- --only-failed: the push works again ---
    restorePushes();
    const retry = await cli(['fleet', fleet, '--write', '--push', '--open-pr', '--only-failed'], {
      ...GIT_ENV,
      ...env,
    });
    outputs.push(retry.stdout, retry.stderr);
    expect(retry.code).toBe(0);
    expect(retry.stdout).toMatch(
      /^gh-push-fails\s+changed\s+1\.0\.0\s+committed [0-9a-f]{7} on cached-deploy\/upgrade and pushed it: .*; opened pull request #1 http:\/\/127\.0\.0\.1:\d+\/acme\/gh-push-fails\/pull\/1$/m,
    );
    expect(retry.stdout).toMatch(/^1 repository \(of 10 in the fleet\): 0 in sync, 1 changed/m);

    // --- --status: state, review, checks, and the version on the default branch ---
    await github.merge(`acme/${gh.fresh.name}`, ghFresh[0]?.number as number);
    github.review(`acme/${gh.existing.name}`, ghExisting.number, 'alice', 'CHANGES_REQUESTED');
    github.review(`acme/${gh.existing.name}`, ghExisting.number, 'alice', 'APPROVED');
    github.review(`acme/${gh.existing.name}`, ghExisting.number, 'carol', 'COMMENTED');
    await github.setStatus(`acme/${gh.existing.name}`, BRANCH, 'ci/build', 'success');
    await github.setCheckRun(`acme/${gh.existing.name}`, BRANCH, 'lint', 'completed', 'success');
    github.review(`acme/${gh.limited.name}`, 1, 'alice', 'CHANGES_REQUESTED');
    await github.setCheckRun(`acme/${gh.limited.name}`, BRANCH, 'build', 'completed', 'failure');
    await github.setStatus(`acme/${gh.apiFails.name}`, BRANCH, 'ci/build', 'pending');
    gitlab.setPipeline(`platform/services/${gl.fresh.name}`, 1, 'running');
    gitlab.requestChanges(`platform/services/${gl.existing.name}`, glExisting.iid, 'alice');
    gitlab.setPipeline(`platform/services/${gl.existing.name}`, glExisting.iid, 'success');
    gitlab.approve(`platform/services/${gl.limited.name}`, 1, 'alice');
    gitlab.setPipeline(`platform/services/${gl.limited.name}`, 1, 'failed');
    await gitlab.merge(`platform/services/${gl.fresh.name}`, 1).then(() => undefined);

    const status = await cli(['fleet', fleet, '--status'], env);
    outputs.push(status.stdout, status.stderr);
    expect(status.code).toBe(2);
    const rows = status.stdout
      .trim()
      .split('\n')
      .slice(1, 11)
      .map((line) => line.split(/\s{2,}/));
    const url = (host: string, path: string) => `${host}/${path}`;
    expect(rows).toEqual([
      [
        'gh-fresh',
        'merged',
        'pending',
        'none',
        GENERATOR_VERSION,
        url(github.url, 'acme/gh-fresh/pull/2'),
      ],
      [
        'gh-existing',
        'open',
        'approved',
        'success',
        OLD,
        url(github.url, 'acme/gh-existing/pull/1'),
      ],
      [
        'gh-in-sync',
        'closed',
        'pending',
        'none',
        GENERATOR_VERSION,
        url(github.url, 'acme/gh-in-sync/pull/1'),
      ],
      [
        'gh-push-fails',
        'open',
        'pending',
        'none',
        OLD,
        url(github.url, 'acme/gh-push-fails/pull/1'),
      ],
      [
        'gh-api-fails',
        'open',
        'pending',
        'pending',
        OLD,
        url(github.url, 'acme/gh-api-fails/pull/1'),
      ],
      [
        'gh-limited',
        'open',
        'changes-requested',
        'failure',
        OLD,
        url(github.url, 'acme/gh-limited/pull/1'),
      ],
      [
        'gl-fresh',
        'merged',
        'pending',
        'pending',
        GENERATOR_VERSION,
        url(gitlab.url, 'platform/services/gl-fresh/-/merge_requests/1'),
      ],
      [
        'gl-existing',
        'open',
        'changes-requested',
        'success',
        OLD,
        url(gitlab.url, 'platform/services/gl-existing/-/merge_requests/1'),
      ],
      [
        'gl-in-sync',
        'closed',
        'pending',
        'none',
        GENERATOR_VERSION,
        url(gitlab.url, 'platform/services/gl-in-sync/-/merge_requests/1'),
      ],
      [
        'gl-limited',
        'open',
        'approved',
        'failure',
        OLD,
        url(gitlab.url, 'platform/services/gl-limited/-/merge_requests/1'),
      ],
    ]);
    expect(status.stdout).toMatch(
      /^10 repositories: 6 open, 2 merged, 2 closed, 0 without a pull request, 0 error$/m,
    );

    const statusReport = join(root, 'status.md');
    const statusJson = await cli(
      ['fleet', fleet, '--status', '--json', '--report', statusReport],
      env,
    );
    outputs.push(statusJson.stdout, statusJson.stderr, readFileSync(statusReport, 'utf8'));
    expect(statusJson.code).toBe(2);
    const parsed = JSON.parse(statusJson.stdout);
    expect(parsed).toMatchObject({
      formatVersion: 1,
      branch: BRANCH,
      total: 10,
      exitCode: 2,
      counts: { open: 6, merged: 2, closed: 2, none: 0, error: 0 },
    });
    expect(parsed.repositories[1]).toEqual({
      repository: 'gh-existing',
      kind: 'github',
      host: new URL(github.url).host,
      project: 'acme/gh-existing',
      pullRequest: {
        number: 1,
        url: url(github.url, 'acme/gh-existing/pull/1'),
        state: 'open',
        draft: false,
        title: `chore: create-cached-deploy ${GENERATOR_VERSION} (from ${OLD})`,
        review: 'approved',
        checks: 'success',
      },
      generatorOnDefaultBranch: OLD,
    });
    expect(readFileSync(statusReport, 'utf8')).toContain(
      `| gl-existing | open | changes-requested | success | ${OLD} | [!1](${url(gitlab.url, 'platform/services/gl-existing/-/merge_requests/1')}) |`,
    );

    // No token anywhere: outputs, reports, the results record, the API's own formats.
    outputs.push(readFileSync(first.resultsFile, 'utf8'));
    outputs.push(formatSummaryJson(first), formatSummaryTable(first), formatSummaryMarkdown(first));
    for (const output of outputs) {
      expect(output).not.toContain(GITHUB_TOKEN);
      expect(output).not.toContain(GITLAB_TOKEN);
    }
  }, 60_000);
});

describe('--open-pr without --write, local repositories, races and hostile hosts', () => {
  let github: FakeGitHubApi;
  let gitlab: FakeGitLabApi;
  beforeAll(async () => {
    github = new FakeGitHubApi({ token: GITHUB_TOKEN });
    gitlab = new FakeGitLabApi({ token: GITLAB_TOKEN });
    await Promise.all([github.start(), gitlab.start()]);
  });
  afterAll(async () => {
    await Promise.all([github.stop(), gitlab.stop()]);
  });

  /** A local repository whose origin is on github.com or gitlab.com (never contacted). */
  function localRepository(root: string, name: string, origin: string): string {
    if (!template) throw new Error('no template');
    const dir = join(root, name);
    cpSync(template.repo, dir, { recursive: true });
    git(dir, ['remote', 'set-url', 'origin', origin]);
    return dir;
  }

  test('for branches pushed already: host and project from origin, drafts, the host saying one exists, nothing written', async () => {
    const root = createTempDir();
    const gh = localRepository(root, 'gh-local', 'git@github.com:acme/gh-local.git');
    const gl = localRepository(root, 'gl-local', 'https://gitlab.com/platform/tools/gl-local.git');
    // What CI pushed earlier: the branch exists on the hosts (no git here: in memory).
    const ghRepo = new MemoryRepository();
    ghRepo.setBranch(BRANCH, {});
    github.addRepository('acme/gh-local', ghRepo);
    const glRepo = new MemoryRepository();
    glRepo.setBranch(BRANCH, {});
    gitlab.addProject('platform/tools/gl-local', glRepo);
    // Opened meanwhile by someone else, and the hosts' lists do not show them yet.
    const ghOpen = github.seedPull('acme/gh-local', { head: BRANCH, title: 'by hand' });
    const glOpen = gitlab.seedMergeRequest('platform/tools/gl-local', {
      sourceBranch: BRANCH,
      title: 'Draft: by hand',
    });
    const ghLag = github.http.fault({
      method: 'GET',
      path: '/repos/acme/gh-local/pulls',
      respond: { status: 200, body: [] },
    });
    const glLag = gitlab.http.fault({
      method: 'GET',
      path: '/projects/platform/tools/gl-local/merge_requests',
      respond: { status: 200, headers: { 'x-total': '0', 'x-total-pages': '1' }, body: [] },
    });
    const fleet = join(root, 'fleet.yml');
    writeFileSync(
      fleet,
      stringify({
        repos: [
          { path: 'gh-local', apiUrl: github.url },
          { path: 'gl-local', apiUrl: gitlab.url },
        ],
        pullRequests: { branch: BRANCH, draft: true, writeIntervalMs: 0 },
      }),
    );
    const before = snapshotDir(root, { includeGit: true });
    const result = await runFleet(fleet, {
      openPr: true,
      gitEnv: GIT_ENV,
      hosts: { env: { GITHUB_TOKEN, GITLAB_TOKEN } },
    });
    expect(statuses(result)).toEqual({
      'gh-local': ['changed', 'updated'],
      'gl-local': ['changed', 'updated'],
    });
    expect(result.exitCode).toBe(2);
    expect([ghLag.fired, glLag.fired]).toEqual([1, 1]);
    // The 422 and the 409 were answered by finding the open one and updating it.
    expect(github.http.calls.map((call) => `${call.method} ${call.status}`)).toEqual([
      'GET 200',
      'POST 422',
      'GET 200',
      'PATCH 200',
    ]);
    expect(gitlab.http.calls.map((call) => `${call.method} ${call.status}`)).toEqual([
      'GET 200',
      'POST 409',
      'GET 200',
      'PUT 200',
    ]);
    expect(github.pulls('acme/gh-local')).toHaveLength(1);
    expect(ghOpen.body).toBe(
      await markdownDiff({ name: 'gh-local', source: gh, bare: '' }, GITHUB_BODY_LIMIT),
    );
    // A draft stays a draft on GitLab: the prefix is kept on the new title.
    expect(glOpen.title).toBe(
      `Draft: chore(cached-deploy): upgrade generated files to create-cached-deploy ${GENERATOR_VERSION}`,
    );
    expect(glOpen.description).toBe(
      await markdownDiff({ name: 'gl-local', source: gl, bare: '' }, GITLAB_BODY_LIMIT),
    );
    // Read only: not a file, branch or ref changed (the results record lives in the work dir).
    const after = snapshotDir(root, { includeGit: true });
    const changed = snapshotChanges(before, after);
    expect(
      [...changed.added, ...changed.changed, ...changed.removed].filter(
        (path) => !path.startsWith('.cached-deploy-fleet/'),
      ),
    ).toEqual([]);

    // New ones are drafts from the start.
    github.pulls('acme/gh-local').length = 0;
    gitlab.mergeRequests('platform/tools/gl-local').length = 0;
    await runFleet(fleet, {
      openPr: true,
      gitEnv: GIT_ENV,
      hosts: { env: { GITHUB_TOKEN, GITLAB_TOKEN } },
    });
    expect(github.pulls('acme/gh-local')[0]).toMatchObject({ draft: true, base: 'main' });
    expect(gitlab.mergeRequests('platform/tools/gl-local')[0]?.title).toMatch(
      /^Draft: chore\(cached-deploy\)/,
    );
  });

  test('a local repository: written on the branch, pushed to its origin, its pull request targets the branch it was on', async () => {
    const root = createTempDir();
    const fixture = await repository(root, 'local-write');
    git(fixture.source, ['remote', 'set-url', 'origin', `file://${fixture.bare}`]);
    github.addRepository('acme/local-write', new BareRepository(fixture.bare));
    const fleet = join(root, 'fleet.yml');
    writeFileSync(
      fleet,
      stringify({
        repos: [
          {
            path: 'local-write-src',
            host: 'github',
            project: 'acme/local-write',
            apiUrl: github.url,
          },
        ],
        pullRequests: { branch: BRANCH, writeIntervalMs: 0 },
      }),
    );
    const result = await runFleet(fleet, {
      mode: 'write',
      push: true,
      openPr: true,
      gitEnv: GIT_ENV,
      hosts: { env: { GITHUB_TOKEN } },
    });
    expect(statuses(result)).toEqual({ 'local-write-src': ['changed', 'opened'] });
    // Back on the branch it was on, with a clean tree; the branch and its push are the pull request.
    expect(git(fixture.source, ['symbolic-ref', '--short', 'HEAD']).trim()).toBe('main');
    expect(git(fixture.source, ['status', '--porcelain']).trim()).toBe('');
    const [pull] = github.pulls('acme/local-write');
    expect(pull).toMatchObject({ head: BRANCH, base: 'main', state: 'open' });
    expect(git(fixture.bare, ['rev-parse', BRANCH])).toBe(
      git(fixture.source, ['rev-parse', BRANCH]),
    );
    expect(pull?.body).toBe(
      await markdownDiff({ ...fixture, name: 'local-write-src' }, GITHUB_BODY_LIMIT),
    );
  });

  test('a hostile host: its echo of the token is cut out, oversized and malformed answers are refused', async () => {
    const target = (kind: 'github' | 'gitlab') =>
      resolveHostTarget(
        {
          host: kind,
          project: kind === 'github' ? 'acme/hostile' : 'platform/hostile',
          apiUrl: kind === 'github' ? github.url : gitlab.url,
        },
        undefined,
        {},
      );
    github.addRepository('acme/hostile', new MemoryRepository());
    gitlab.addProject('platform/hostile', new MemoryRepository());
    const hosts = new CodeHosts({
      env: { GITHUB_TOKEN, GITLAB_TOKEN },
      policy: { maxResponseBytes: 4096 },
    });
    const gh = await hosts.get(target('github'));
    const gl = await hosts.get(target('gitlab'));

    github.http.fault({
      path: '/repos/acme/hostile/pulls',
      respond: (request) => ({
        status: 422,
        body: {
          message: `Validation Failed for ${request.headers.authorization}\u001b[2J`,
          errors: [{ message: `no ${GITHUB_TOKEN}` }],
        },
      }),
    });
    const echoed = await gh
      .findPullRequest('acme/hostile', BRANCH, { state: 'open' })
      .catch((error: Error) => error);
    expect(String(echoed)).toMatch(
      /HTTP 422 Validation Failed for token \*\*\*\\u\{1b\}\[2J: no \*\*\*$/,
    );
    expect(String(echoed)).not.toContain(GITHUB_TOKEN);
    gitlab.http.fault({
      path: '/merge_requests',
      respond: { status: 500, body: { message: `db error near '${GITLAB_TOKEN}'` } },
    });
    const glEcho = await gl
      .findPullRequest('platform/hostile', BRANCH, { state: 'open' })
      .catch((error: Error) => error);
    expect(String(glEcho)).toMatch(/HTTP 500 db error near '\*\*\*'/);

    github.http.fault({
      path: '/repos/acme/hostile/pulls',
      respond: { status: 200, body: [{ number: 1, padding: 'x'.repeat(5000) }] },
    });
    await expect(gh.findPullRequest('acme/hostile', BRANCH, { state: 'open' })).rejects.toThrow(
      /: GET \/repos\/acme\/hostile\/pulls: the answer is larger than 4 KiB$/,
    );
    github.http.fault({
      path: '/repos/acme/hostile/pulls',
      respond: {
        status: 200,
        body: [
          {
            number: -1,
            state: 'open',
            title: 't',
            html_url: 'https://github.com/acme/hostile/pull/1',
            head: { ref: BRANCH, sha: null },
            base: { ref: 'main' },
          },
        ],
      },
    });
    await expect(gh.findPullRequest('acme/hostile', BRANCH, { state: 'open' })).rejects.toThrow(
      /^unexpected answer: pulls\[0\]\.number is not a non-negative integer$/,
    );
    gitlab.http.fault({
      path: '/merge_requests',
      respond: {
        status: 200,
        body: [{ iid: 1, state: 'opened', title: 't', web_url: 'javascript:alert(1)' }],
      },
    });
    await expect(gl.findPullRequest('platform/hostile', BRANCH, { state: 'open' })).rejects.toThrow(
      /^unexpected answer: merge requests\[0\]\.web_url is not an http\(s\) URL$/,
    );
    // A host that never answers fails the call after the attempt's deadline, not the run.
    const slow = new CodeHosts({
      env: { GITHUB_TOKEN },
      policy: { requestTimeoutMs: 300, maxRetries: 0 },
    });
    const slowHost = await slow.get(target('github'));
    github.http.fault({
      path: '/repos/acme/hostile/pulls',
      delayMs: 2000,
      respond: { status: 200, body: [] },
    });
    await expect(
      slowHost.findPullRequest('acme/hostile', BRANCH, { state: 'open' }),
    ).rejects.toThrow(/: GET \/repos\/acme\/hostile\/pulls: no complete answer within 0\.3 s$/);

    // A redirect to another origin is followed without the token (the transport is
    // net/bounded-fetch.ts, like every other read from outside).
    const authorizations: (string | undefined)[] = [];
    const elsewhere = createServer((request, response) => {
      authorizations.push(request.headers.authorization);
      response.setHeader('content-type', 'application/json');
      response.end('[]');
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = elsewhere.address() as AddressInfo;
      github.http.fault({
        path: '/repos/acme/hostile/pulls',
        respond: { status: 302, headers: { location: `http://127.0.0.1:${port}/pulls` } },
      });
      await expect(
        gh.findPullRequest('acme/hostile', BRANCH, { state: 'open' }),
      ).resolves.toBeUndefined();
      expect(authorizations).toEqual([undefined]);
    } finally {
      await new Promise((resolve) => elsewhere.close(resolve));
    }
  });

  test('an exhausted primary limit with a reset beyond the longest wait fails at once and says when', async () => {
    const limited = new FakeGitHubApi({ token: GITHUB_TOKEN, rateLimit: 1 });
    await limited.start();
    try {
      limited.addRepository('acme/busy', new MemoryRepository());
      const hosts = new CodeHosts({ env: { GITHUB_TOKEN } });
      const host = await hosts.get(
        resolveHostTarget(
          { host: 'github', project: 'acme/busy', apiUrl: limited.url },
          undefined,
          {},
        ),
      );
      // The first answer says 0 remaining until the reset, an hour away: the second is never sent.
      await host.findPullRequest('acme/busy', BRANCH, { state: 'open' });
      await expect(host.findPullRequest('acme/busy', BRANCH, { state: 'open' })).rejects.toThrow(
        /: GET \/repos\/acme\/busy\/pulls: not sent: primary rate limit until \d{4}-\d\d-\d\dT[\d:.]+Z, more than the 120 s a run waits: rerun with --only-failed after then$/,
      );
      expect(limited.http.calls).toHaveLength(1);
    } finally {
      await limited.stop();
    }
  });

  test('usage: tokens, --push, modes and the branch are checked before anything runs', async () => {
    const root = createTempDir();
    const fixture = await repository(root, 'usage');
    const fleet = join(root, 'fleet.yml');
    writeFileSync(
      fleet,
      stringify({
        repos: [
          {
            url: `file://${fixture.bare}`,
            host: 'github',
            project: 'acme/usage',
            apiUrl: github.url,
          },
        ],
        pullRequests: { branch: BRANCH },
      }),
    );
    const run = (options: Parameters<typeof runFleet>[1]) =>
      runFleet(fleet, { gitEnv: GIT_ENV, hosts: { env: {} }, ...options });
    await expect(run({ mode: 'write', push: true, openPr: true })).rejects.toThrow(
      /^GITHUB_TOKEN is not set: the pull requests on 127\.0\.0\.1:\d+ need a token in it$/,
    );
    expect(git(fixture.bare, ['branch', '--list']).trim()).toBe('* main');
    await expect(run({ mode: 'write', openPr: true })).rejects.toThrow(
      /--open-pr with --write needs --push/,
    );
    await expect(run({ mode: 'diff', openPr: true })).rejects.toThrow(
      /--open-pr goes with --write \(and --push\) or --check/,
    );
    const noBranch = join(root, 'no-branch.yml');
    writeFileSync(
      noBranch,
      stringify({
        repos: [{ url: `file://${fixture.bare}`, host: 'github', project: 'acme/usage' }],
      }),
    );
    await expect(runFleet(noBranch, { openPr: true })).rejects.toThrow(
      /--open-pr needs --branch NAME \(or pullRequests\.branch/,
    );
    const status = await cli(['fleet', noBranch, '--status'], { GITHUB_TOKEN });
    expect(status).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/--status needs --branch NAME/),
    });
    const mixed = await cli(['fleet', fleet, '--status', '--write'], { GITHUB_TOKEN });
    expect(mixed.stderr).toMatch(
      /choose one of --check, --diff, --write and --status \(got --write, --status\)/,
    );
    const push = await cli(['fleet', fleet, '--status', '--push'], { GITHUB_TOKEN });
    expect(push.stderr).toMatch(/--push does not go with --status/);
  });
});

describe('the fake hosts paginate as the real ones do', () => {
  test('GitHub: Link headers, followed by octokit.paginate; GitLab: Link and x-next-page, followed by gitbeaker', async () => {
    const github = new FakeGitHubApi({ token: GITHUB_TOKEN });
    const gitlab = new FakeGitLabApi({ token: GITLAB_TOKEN });
    await Promise.all([github.start(), gitlab.start()]);
    try {
      github.addRepository('acme/many', new MemoryRepository());
      gitlab.addProject('group/sub/many', new MemoryRepository());
      for (let i = 0; i < 45; i++) {
        github.seedPull('acme/many', { head: `b${i}` });
        gitlab.seedMergeRequest('group/sub/many', { sourceBranch: `b${i}` });
      }
      const { Octokit } = await import('@octokit/rest');
      const octokit = new Octokit({ auth: GITHUB_TOKEN, baseUrl: github.url });
      const pulls = await octokit.paginate(octokit.rest.pulls.list, {
        owner: 'acme',
        repo: 'many',
        per_page: 20,
      });
      expect(pulls.map((pull) => pull.number)).toEqual(
        Array.from({ length: 45 }, (_, i) => 45 - i),
      );
      expect(
        github.http.calls.map((call) => new URLSearchParams(call.query).get('page') ?? '1'),
      ).toEqual(['1', '2', '3']);
      const { Gitlab } = await import('@gitbeaker/rest');
      const api = new Gitlab({ host: gitlab.url, token: GITLAB_TOKEN });
      const { data, paginationInfo } = await api.MergeRequests.all({
        projectId: 'group/sub/many',
        perPage: 20,
        showExpanded: true,
      });
      expect(data).toHaveLength(45);
      expect(paginationInfo).toMatchObject({ total: 45, totalPages: 3, perPage: 20 });
      expect(gitlab.http.calls.map((call) => call.path)).toEqual(
        Array(3).fill('/api/v4/projects/group%2Fsub%2Fmany/merge_requests'),
      );
      expect(gitlab.http.calls.at(-1)?.query).toMatch(/page=3/);
      // Unauthenticated: 401, as the real ones answer.
      const anonymous = new Octokit({ baseUrl: github.url });
      await expect(
        anonymous.rest.pulls.list({ owner: 'acme', repo: 'many' }),
      ).rejects.toMatchObject({ status: 401 });
    } finally {
      await Promise.all([github.stop(), gitlab.stop()]);
    }
  });
});
