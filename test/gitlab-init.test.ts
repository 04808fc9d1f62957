import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generate } from '../src/api/generate.js';
import { init } from '../src/api/init.js';
import { parseGithubRemote, parseGitlabRemote } from '../src/detect/detect-repo.js';
import { diffRepository } from '../src/diff/report.js';
import { createTempRepo, git } from './support/temp-repo.js';

/**
 * init and generate for GitLab: `ci: gitlab` detected from the origin remote (or `--ci`), the
 * project and a self-managed host with it, and a repository's own `.gitlab-ci.yml` left alone
 * (the pipeline goes to a file it includes).
 */

const AWS = { accountId: '123456789012', region: 'eu-west-1' };

const config = (repo: string) =>
  parse(readFileSync(join(repo, 'cached-deploy.yml'), 'utf8')) as Record<string, unknown>;

describe('the GitLab remote', () => {
  it.each([
    [
      'git@gitlab.com:acme/platform/shop.git',
      { host: 'gitlab.com', project: 'acme/platform/shop' },
    ],
    ['https://gitlab.com/acme/shop.git', { host: 'gitlab.com', project: 'acme/shop' }],
    [
      'ssh://git@gitlab.acme.example:2222/team/shop.git',
      { host: 'gitlab.acme.example', project: 'team/shop' },
    ],
    [
      'https://oauth2:token@gitlab-ci.acme.example/team/shop',
      { host: 'gitlab-ci.acme.example', project: 'team/shop' },
    ],
    ['git@github.com:acme/shop.git', undefined],
    ['https://git.acme.example/team/shop.git', undefined],
    ['git@gitlab.com:shop.git', undefined],
    ['git@gitlab.com:acme/$(id)/shop.git', undefined],
  ])('%s', (url, expected) => {
    expect(parseGitlabRemote(url)).toEqual(expected);
  });
});

describe('the GitHub remote', () => {
  it.each([
    ['git@github.com:acme/shop.git', 'acme/shop'],
    ['https://github.com/acme/shop', 'acme/shop'],
    ['ssh://git@github.com/acme/shop.git', 'acme/shop'],
    ['https://x-access-token:t@github.com/acme/shop.git/', 'acme/shop'],
    // Another host whose name merely ends in github.com, and GitHub Enterprise Server (its OIDC
    // issuer is not the one the generated trust policies name).
    ['https://evilgithub.com/acme/shop', undefined],
    ['git@github.acme.example:acme/shop.git', undefined],
    ['git@github.com:acme/shop/extra.git', undefined],
    ['git@gitlab.com:acme/shop.git', undefined],
  ])('%s', (url, expected) => {
    expect(parseGithubRemote(url)).toBe(expected);
  });
});

describe('init for GitLab', () => {
  it('detects GitLab from origin: ci, project and a self-managed host, and writes .gitlab-ci.yml', async () => {
    const repo = createTempRepo();
    git(repo, ['remote', 'set-url', 'origin', 'git@gitlab.acme.example:team/sub/shop.git']);
    const result = await init(repo, { yes: true, ...AWS });
    expect(config(repo)).toMatchObject({
      ci: 'gitlab',
      gitlab: { project: 'team/sub/shop', host: 'gitlab.acme.example', mainBranch: 'main' },
    });
    expect(config(repo).github).toBeUndefined();
    expect(result.gitlabInclude).toBeUndefined();
    const pipeline = parse(readFileSync(join(repo, '.gitlab-ci.yml'), 'utf8'));
    expect(pipeline.build.id_tokens).toEqual({
      AWS_ID_TOKEN: { aud: 'https://gitlab.acme.example' },
    });
    const trust = JSON.parse(readFileSync(join(repo, 'ecr/main-role-trust-policy.json'), 'utf8'));
    expect(trust.Statement[0].Condition.StringEquals).toEqual({
      'gitlab.acme.example:aud': 'https://gitlab.acme.example',
      'gitlab.acme.example:sub': 'project_path:team/sub/shop:ref_type:branch:ref:main',
    });
    // No GitHub workflow for a GitLab project.
    expect(() => readFileSync(join(repo, '.github/workflows/deploy.yml'))).toThrow();
    expect(
      (await generate(repo, { check: true })).plan.changes.every((c) => c.action === 'unchanged'),
    ).toBe(true);
    // diff names the project.
    expect((await diffRepository(repo)).repository).toBe('team/sub/shop');
  });

  it('leaves a .gitlab-ci.yml of the repository alone: the pipeline goes to a file to include', async () => {
    const repo = createTempRepo();
    git(repo, ['remote', 'set-url', 'origin', 'https://gitlab.com/acme/shop.git']);
    const theirs = 'stages: [test]\ntest:\n  script: [make test]\n';
    writeFileSync(join(repo, '.gitlab-ci.yml'), theirs);
    const result = await init(repo, { yes: true, ...AWS });
    expect(readFileSync(join(repo, '.gitlab-ci.yml'), 'utf8')).toBe(theirs);
    expect(config(repo)).toMatchObject({ workflow: { file: '.gitlab/cached-deploy.yml' } });
    expect(result.gitlabInclude).toBe('include: [{ local: .gitlab/cached-deploy.yml }]');
    expect(
      parse(readFileSync(join(repo, '.gitlab/cached-deploy.yml'), 'utf8'))['cached-deploy-build'],
    ).toBeDefined();
    // Running init again keeps it there.
    await init(repo, { yes: true, ...AWS });
    expect(readFileSync(join(repo, '.gitlab-ci.yml'), 'utf8')).toBe(theirs);
  });

  it('--ci gitlab with --gitlab-project on a GitHub origin; --ci is checked', async () => {
    const repo = createTempRepo();
    await init(repo, { yes: true, ...AWS, ci: 'gitlab', gitlabProject: 'acme/shop' });
    expect(config(repo)).toMatchObject({ ci: 'gitlab', gitlab: { project: 'acme/shop' } });
    await expect(init(createTempRepo(), { yes: true, ...AWS, ci: 'circleci' })).rejects.toThrow(
      '--ci: "circleci" is not allowed (allowed: github, gitlab)',
    );
    await expect(
      init(createTempRepo(), { yes: true, ...AWS, ci: 'gitlab', gitlabProject: 'acme' }),
    ).rejects.toThrow('--gitlab-project');
  });

  it('keeps a GitHub repository on GitHub', async () => {
    const repo = createTempRepo();
    await init(repo, { yes: true, ...AWS });
    expect(config(repo).ci).toBeUndefined();
    expect(config(repo)).toMatchObject({ github: { repository: 'acme/node-service' } });
  });
});
