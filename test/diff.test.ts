import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { describe, expect, onTestFinished, test } from 'vitest';
import { generate } from '../src/api/generate.js';
import {
  explainIamChange,
  explainLifecycleChange,
  explainTrustChange,
} from '../src/diff/explain.js';
import { formatJson, formatMarkdown, formatUnified } from '../src/diff/format.js';
import { diffRepository, type RepoDiff } from '../src/diff/report.js';
import type { LifecyclePolicy } from '../src/model/lifecycle.js';
import type { FileChange } from '../src/plan/plan.js';
import { runMain } from './support/run-main.js';

const NOW = new Date('2025-06-01T12:00:00Z');
const DAY = 24 * 3600 * 1000;

interface Settings {
  days?: number;
  keep?: number;
  worker?: boolean;
  environment?: string;
}

function configText(settings: Settings = {}): string {
  const lines = [
    'aws:',
    '  accountId: "123456789012"',
    '  region: us-east-1',
    'github:',
    '  repository: acme/app',
    'images:',
    '  - name: app',
    '    repository: acme/app',
  ];
  if (settings.worker) lines.push('  - name: worker', '    repository: acme/worker');
  lines.push('cache:', `  branchRetentionDays: ${settings.days ?? 14}`);
  lines.push('deployImages:', `  keep: ${settings.keep ?? 30}`);
  if (settings.environment) {
    lines.push('workflow:', '  deploy:', '    command: ./deploy.sh');
    lines.push(`    environment: ${settings.environment}`);
  }
  return `${lines.join('\n')}\n`;
}

/** A repository generated with the defaults, then its config changed to `settings`. */
async function makeRepo(settings?: Settings): Promise<string> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'diff-test-')));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'Dockerfile'), 'FROM scratch\n');
  writeFileSync(join(dir, 'cached-deploy.yml'), configText());
  await generate(dir);
  if (settings) writeFileSync(join(dir, 'cached-deploy.yml'), configText(settings));
  return dir;
}

const run = runMain;

// --- explanations ---

const cachePolicy = (days: number, keepMain = true): LifecyclePolicy => ({
  rules: [
    ...(keepMain
      ? [
          {
            rulePriority: 1,
            description: 'Keep the main branch cache (tags main.*) forever',
            selection: {
              tagStatus: 'tagged' as const,
              tagPrefixList: ['main.'],
              countType: 'imageCountMoreThan' as const,
              countNumber: 9999,
            },
            action: { type: 'expire' as const },
          },
        ]
      : []),
    {
      rulePriority: 2,
      description: 'Expire branch caches',
      selection: {
        tagStatus: 'tagged',
        tagPrefixList: ['br-'],
        countType: 'sinceImagePushed',
        countUnit: 'days',
        countNumber: days,
      },
      action: { type: 'expire' },
    },
  ],
});

describe('explanations', () => {
  test('lifecycle: retention, count, added, removed and reordered rules', () => {
    expect(explainLifecycleChange(cachePolicy(14), cachePolicy(7), 'cache')).toEqual([
      'cache lifecycle policy: branch caches now expire after 7 days instead of 14',
    ]);
    expect(explainLifecycleChange(cachePolicy(14), cachePolicy(14, false), 'cache')).toEqual([
      'cache lifecycle policy: rule "Keep the main branch cache (tags main.*) forever" was removed: the main branch cache is no longer kept forever: lower-priority rules can now expire it',
    ]);
    expect(explainLifecycleChange(cachePolicy(14, false), cachePolicy(14), 'cache')).toEqual([
      'cache lifecycle policy: new rule "Keep the main branch cache (tags main.*) forever" (priority 1): the main branch cache is kept forever',
    ]);
    const count = (n: number): LifecyclePolicy => ({
      rules: [
        {
          rulePriority: 1,
          description: 'Keep deployable images',
          selection: {
            tagStatus: 'tagged',
            tagPatternList: ['*'],
            countType: 'imageCountMoreThan',
            countNumber: n,
          },
          action: { type: 'expire' },
        },
      ],
    });
    expect(explainLifecycleChange(count(30), count(50), 'image')).toEqual([
      'image lifecycle policy: the newest 50 deployable images are kept instead of 30',
    ]);
    const toAge = structuredClone(count(30));
    Object.assign(toAge.rules[0]?.selection ?? {}, {
      countType: 'sinceImagePushed',
      countNumber: 90,
    });
    expect(explainLifecycleChange(count(30), toAge, 'image')).toEqual([
      'image lifecycle policy: deployable images expire 90 days after their last push (instead of being kept as the newest 30)',
    ]);
    // Renumbering alone explains as nothing; swapping the order does not.
    const renumbered = structuredClone(cachePolicy(14));
    for (const rule of renumbered.rules) rule.rulePriority *= 10;
    expect(explainLifecycleChange(cachePolicy(14), renumbered, 'cache')).toEqual([]);
    const swapped = structuredClone(cachePolicy(14));
    for (const rule of swapped.rules) rule.rulePriority = 3 - rule.rulePriority;
    expect(explainLifecycleChange(cachePolicy(14), swapped, 'cache')[0]).toMatch(
      /^cache lifecycle policy: rules now apply in the order "Expire branch caches", "Keep the main/,
    );
  });

  test('IAM: grants added and removed, grouped by resources; reformatting is no change', () => {
    const arn = (name: string) => `arn:aws:ecr:us-east-1:123456789012:repository/${name}`;
    const before = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'ecr:GetAuthorizationToken', Resource: '*' },
        { Effect: 'Allow', Action: ['ecr:ListImages', 'ecr:DescribeImages'], Resource: [arn('a')] },
      ],
    };
    const after = {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: ['ecr:GetAuthorizationToken'], Resource: ['*'] },
        {
          Effect: 'Allow',
          Action: ['ecr:DescribeImages', 'ecr:BatchDeleteImage'],
          Resource: [arn('a'), arn('b')],
        },
      ],
    };
    expect(explainIamChange(before, after)).toEqual([
      'the CI role can now ecr:DescribeImages on repository b',
      'the CI role can now ecr:BatchDeleteImage on repositories a, b',
      'the CI role can no longer ecr:ListImages on repository a',
    ]);
    expect(explainIamChange(before, structuredClone(before))).toEqual([]);
  });

  test('trust: subjects added and removed', () => {
    const trust = (subjects: string[]) => ({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Federated: 'arn:aws:iam::123456789012:oidc-provider/x' },
          Action: 'sts:AssumeRoleWithWebIdentity',
          Condition: { StringLike: { 'token.actions.githubusercontent.com:sub': subjects } },
        },
      ],
    });
    expect(
      explainTrustChange(
        trust(['repo:acme/app:ref:refs/heads/*', 'repo:acme/app:pull_request']),
        trust(['repo:acme/app:ref:refs/heads/*', 'repo:acme/app:environment:prod']),
      ),
    ).toEqual([
      'the CI role now also trusts token.actions.githubusercontent.com:sub (StringLike) = repo:acme/app:environment:prod',
      'the CI role no longer trusts token.actions.githubusercontent.com:sub (StringLike) = repo:acme/app:pull_request',
    ]);
  });
});

// --- diffRepository on disk ---

describe('diffRepository', () => {
  test('in sync: every change unchanged, no explanations; diff exits 0 and prints nothing', async () => {
    const dir = await makeRepo();
    const diff = await diffRepository(dir);
    expect(diff.changes.length).toBeGreaterThan(5);
    expect(diff.changes.every((change) => change.action === 'unchanged')).toBe(true);
    expect(diff.explanations).toEqual([]);
    expect(diff.generatorBefore).toBe(diff.generatorAfter);
    const result = await run(['diff', dir]);
    expect(result).toEqual({ code: 0, stdout: '', stderr: '' });
    const md = await run(['diff', dir, '--format', 'markdown']);
    expect(md.code).toBe(0);
    expect(md.stdout).toContain('No changes: all');
  });

  test('policy changes are explained in words, and diff exits 2 with the patch', async () => {
    const dir = await makeRepo({ days: 7, keep: 50, worker: true, environment: 'production' });
    const diff = await diffRepository(dir, { displayName: 'acme/app' });
    expect(diff.explanations).toEqual(
      expect.arrayContaining([
        'cache lifecycle policy: branch caches now expire after 7 days instead of 14',
        'branch-cache lifecycle policy: branch caches now expire after 7 days instead of 14',
        'branch-cache lifecycle policy: other tagged images now expire after 7 days instead of 14',
        'image lifecycle policy: the newest 50 deployable images are kept instead of 30',
        expect.stringMatching(
          /^the main role can now ecr:BatchCheckLayerAvailability, .*ecr:PutImage.* on repositories acme\/worker, acme\/worker-buildcache$/,
        ),
        'the main role can now ecr:BatchDeleteImage, ecr:ListImages on repository acme/worker-buildcache',
        'the branch role can now ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer on repositories acme/worker-buildcache, acme/worker-buildcache-branches',
        expect.stringMatching(
          /^the deploy role can now be assumed by Federated .* when .*:sub \(StringEquals\) = repo:acme\/app:environment:production$/,
        ),
        // Who can now do what, over every role's documents.
        'the main branch can now push images to acme/worker',
        'the main branch can now write main.worker, seed.worker (in acme/worker-buildcache)',
        'branch builds and pull requests can now write branch caches in acme/worker-buildcache-branches',
        'the deploy environment production can now pull images from acme/app, acme/worker',
      ]),
    );
    // The new worker is out of every branch's and pull request's reach, except its branch caches.
    expect(diff.explanations.join('\n')).not.toMatch(
      /branch builds and pull requests can now (push images|write main|change)/,
    );
    const result = await run(['diff', dir]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(2);
    expect(result.stdout).toMatch(
      /^# cache lifecycle policy: branch caches now expire after 7 days instead of 14\n/,
    );
    expect(result.stdout).toContain(
      '--- a/ecr/cache-lifecycle-policy.json\n+++ b/ecr/cache-lifecycle-policy.json',
    );
    expect(result.stdout).toContain('-        "countNumber": 14\n+        "countNumber": 7');
    // diff writes nothing.
    expect(readFileSync(join(dir, 'ecr/cache-lifecycle-policy.json'), 'utf8')).toContain(
      '"countNumber": 14',
    );
  });

  test('with a listing, the impact: images the new policy expires that the old one kept', async () => {
    const dir = await makeRepo({ days: 7 });
    const pushed = (days: number) => new Date(NOW.getTime() - days * DAY).toISOString();
    const listing = JSON.stringify({
      imageDetails: [
        {
          repositoryName: 'acme/app-buildcache',
          imageDigest: 'sha256:main',
          imageTags: ['main.app'],
          imagePushedAt: pushed(300),
          imageSizeInBytes: 1,
        },
        {
          repositoryName: 'acme/app-buildcache',
          imageDigest: 'sha256:ten',
          imageTags: ['br-x.app'],
          imagePushedAt: pushed(10),
          imageSizeInBytes: 2_000_000,
        },
        {
          repositoryName: 'acme/app-buildcache',
          imageDigest: 'sha256:old',
          imageTags: ['br-y.app'],
          imagePushedAt: pushed(20),
          imageSizeInBytes: 5,
        },
        {
          repositoryName: 'acme/app-buildcache',
          imageDigest: 'sha256:new',
          imageTags: ['br-z.app'],
          imagePushedAt: pushed(2),
          imageSizeInBytes: 5,
        },
      ],
    });
    const diff = await diffRepository(dir, {
      listings: { 'acme/app-buildcache': listing },
      now: NOW,
    });
    expect(diff.impact).toHaveLength(1);
    const [impact] = diff.impact ?? [];
    expect(impact?.policyFile).toBe('ecr/cache-lifecycle-policy.json');
    expect(impact?.newlyExpired.map((image) => image.digest)).toEqual(['sha256:ten']);
    expect(impact?.newlyExpired[0]?.rule).toMatch(/Expire branch caches/);
    expect(impact?.newlyExpiredBytes).toBe(2_000_000);
    expect(impact?.noLongerExpired).toEqual([]);

    // The same through the CLI, with the listing file's repositoryName deciding the policy.
    const file = join(dir, 'listing.json');
    writeFileSync(file, listing);
    const result = await run([
      'diff',
      dir,
      '--listing',
      file,
      '--now',
      NOW.toISOString(),
      '--format',
      'markdown',
    ]);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('### Impact on images in ECR');
    expect(result.stdout).toContain(
      'acme/app-buildcache (4 images): the new ecr/cache-lifecycle-policy.json expires 1 images (2 MB) that the current one keeps',
    );

    await expect(
      diffRepository(dir, { listings: { 'acme/elsewhere': listing }, now: NOW }),
    ).rejects.toThrow(/"acme\/elsewhere", which is none of this configuration's/);
  });

  test('a hand-edited file is a conflict: exit 2, flagged in every format', async () => {
    const dir = await makeRepo({ days: 7 });
    const path = join(dir, 'docker-bake.hcl');
    writeFileSync(path, `${readFileSync(path, 'utf8')}# mine\n`);
    const diff = await diffRepository(dir);
    expect(diff.changes.find((change) => change.path === 'docker-bake.hcl')?.action).toBe(
      'conflict',
    );
    const unified = await run(['diff', dir]);
    expect(unified.code).toBe(2);
    expect(unified.stdout).toContain('# conflict: docker-bake.hcl was edited by hand');
    expect(formatMarkdown([diff])).toContain('⚠️ `docker-bake.hcl` was edited by hand');
    const json = JSON.parse(formatJson([diff]));
    expect(json.summary.files.conflict).toBe(1);
    expect(formatMarkdown([diff])).toContain('</code>: conflict (edited by hand)');
    // A file at a generated path that this tool never wrote is not called a hand edit.
    const stranger = join(dir, 'ecr', 'main.tf');
    writeFileSync(stranger, '# mine\n');
    const withTerraform = configText({ days: 7 }).concat('iac: terraform\n');
    writeFileSync(join(dir, 'cached-deploy.yml'), withTerraform);
    const foreign = await diffRepository(dir);
    expect(foreign.changes.find((c) => c.path === 'ecr/main.tf')?.reason).toBe('not-generated');
    expect(formatMarkdown([foreign])).toContain(
      '<code>ecr/main.tf</code>: conflict (not written by create-cached-deploy)',
    );
  });

  test('errors exit 1 with one line', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'diff-test-')));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const missing = await run(['diff', dir]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    const dir2 = await makeRepo();
    const format = await run(['diff', dir2, '--format', 'html']);
    expect(format.code).toBe(1);
    expect(format.stderr).toContain('--format html: expected unified, markdown or json');
  });
});

// --- formats ---

/** A repository that failed, as a fleet reports it. */
function failedRepoDiff(repository: string, error: string): RepoDiff {
  return {
    repository,
    generatorBefore: undefined,
    generatorAfter: '0.2.0',
    changes: [],
    explanations: [],
    error,
  };
}

function change(path: string, before: string | undefined, after: string | undefined): FileChange {
  const action = before === undefined ? 'create' : after === undefined ? 'delete' : 'update';
  return { path, action, before, after };
}

/** A big synthetic fleet: `repos` repositories with `files` changed files of `lines` lines each. */
function fleet(repos: number, files: number, lines: number, seed = 1): RepoDiff[] {
  const body = (n: number, salt: number) =>
    Array.from(
      { length: lines },
      (_, i) => `line ${i} of ${n} ${i % 7 === salt % 7 ? 'x' : ''}`,
    ).join('\n');
  return Array.from({ length: repos }, (_, r) => ({
    repository: `acme/service-${r}`,
    generatorBefore: '0.1.0',
    generatorAfter: '0.2.0',
    changes: [
      ...Array.from({ length: files }, (_, f) =>
        change(`dir/file-${f}.txt`, `${body(f, seed)}\n`, `${body(f, seed + 1)}\n`),
      ),
      { path: 'same.txt', action: 'unchanged' as const, before: 'a\n', after: 'a\n' },
    ],
    explanations: [
      `cache lifecycle policy: branch caches now expire after ${r + 1} days instead of 14`,
    ],
  }));
}

// mdast node types, without a dependency on @types/mdast.
type Root = ReturnType<typeof fromMarkdown>;
type Node = Root['children'][number] | Root;
type Parent = Node & { children: Node[] };
type Html = Node & { type: 'html'; value: string };

function parse(markdown: string): Root {
  return fromMarkdown(markdown, { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] });
}

function all(node: Node, type: string): Node[] {
  const found: Node[] = node.type === type ? [node] : [];
  for (const child of (node as Parent).children ?? []) found.push(...all(child, type));
  return found;
}

function text(node: Node): string {
  if ('value' in node && typeof node.value === 'string') return node.value;
  return ((node as Parent).children ?? []).map(text).join('');
}

describe('formatMarkdown (parsed as GitHub-flavoured markdown)', () => {
  test('summary heading first, a table of counts, explanations, one <details> per changed file', () => {
    const diffs = fleet(2, 3, 20);
    const literal = 'rule "Keep (tags main.*) forever" and br-* <b>x</b> [a](b) `c` a|b & _d_';
    diffs[0]?.explanations.push(literal);
    const markdown = formatMarkdown(diffs);
    const tree = parse(markdown);
    const [first, second] = tree.children;
    expect(first?.type).toBe('heading');
    expect(first && text(first)).toBe('create-cached-deploy diff');
    expect((first as { depth: number }).depth).toBe(2);
    expect(second && text(second)).toBe('6 generated files would change in 2 of 2 repositories.');

    const [table] = all(tree, 'table') as Parent[];
    expect(table).toBeDefined();
    const rows = (table?.children ?? []).map((row) => (row as Parent).children.map(text));
    expect(rows[0]).toEqual([
      'repository',
      'generator',
      'created',
      'updated',
      'deleted',
      'conflicts',
      'unchanged',
    ]);
    expect(rows[1]).toEqual(['acme/service-0', '0.1.0 → 0.2.0', '0', '3', '0', '0', '1']);
    expect(rows).toHaveLength(3);

    const headings = all(tree, 'heading').map(text);
    expect(headings).toEqual(['create-cached-deploy diff', 'What changes', 'Files']);
    const items = all(tree, 'listItem').map(text);
    expect(items).toContain(
      'acme/service-1: cache lifecycle policy: branch caches now expire after 2 days instead of 14',
    );
    // Explanations are literal text: no emphasis, links, code or HTML out of policy descriptions.
    expect(items).toContain(`acme/service-0: ${literal}`);

    const opens = (all(tree, 'html') as Html[]).filter((node) =>
      node.value.startsWith('<details>'),
    );
    const closes = (all(tree, 'html') as Html[]).filter((node) => node.value === '</details>');
    expect(opens).toHaveLength(6);
    expect(closes).toHaveLength(6);
    expect(opens[0]?.value).toContain(
      '<summary>acme/service-0: <code>dir/file-0.txt</code>: updated (+',
    );
    const code = all(tree, 'code') as { lang?: string; value: string }[];
    expect(code).toHaveLength(6);
    expect(code.every((block) => block.lang === 'diff')).toBe(true);
    expect(code[0]?.value.startsWith('--- a/dir/file-0.txt\n+++ b/dir/file-0.txt\n@@')).toBe(true);
    expect(all(tree, 'blockquote')).toHaveLength(0);
    expect(Buffer.byteLength(markdown)).toBeLessThanOrEqual(60_000);
  });

  test('over the bound: file diffs are cut in order, with a note of what was cut', () => {
    const diffs = fleet(3, 10, 200);
    const markdown = formatMarkdown(diffs, { maxBytes: 20_000 });
    expect(Buffer.byteLength(markdown)).toBeLessThanOrEqual(20_000);
    const tree = parse(markdown);
    expect(tree.children[0]?.type).toBe('heading');
    const opens = (all(tree, 'html') as Html[]).filter((node) =>
      node.value.startsWith('<details>'),
    );
    expect(opens.length).toBeGreaterThan(0);
    expect(opens.length).toBeLessThan(30);
    const [note] = all(tree, 'blockquote');
    expect(note && text(note)).toMatch(
      /Cut to stay within 20000 bytes: (the end of 1 file diff, )?\d+ file diffs \([\d.]+ KB\) left out\. Run npx create-cached-deploy diff for the full diff\./,
    );
    // The note is the last thing in the comment.
    expect(tree.children.at(-1)?.type).toBe('blockquote');
    // The default bound holds for GitHub's 65,536-character comments.
    const big = formatMarkdown(fleet(5, 40, 300));
    expect(Buffer.byteLength(big)).toBeLessThanOrEqual(60_000);
    expect(big).toContain('Cut to stay within 60000 bytes');
  });

  test('the bound holds and the structure parses for any size of report', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2_000, max: 40_000 }),
        fc.integer({ min: 1, max: 30 }),
        fc.integer({ min: 0, max: 8 }),
        fc.integer({ min: 1, max: 120 }),
        fc.boolean(),
        (maxBytes, repos, files, lines, failing) => {
          const diffs = fleet(repos, files, lines);
          if (failing) diffs.push(failedRepoDiff('acme/broken | repo', 'clone failed\nfatal: x'));
          const markdown = formatMarkdown(diffs, { maxBytes });
          expect(Buffer.byteLength(markdown)).toBeLessThanOrEqual(maxBytes);
          const tree = parse(markdown);
          expect(tree.children[0]?.type).toBe('heading');
          const html = all(tree, 'html') as Html[];
          const opens = html.filter((node) => node.value.startsWith('<details>')).length;
          const closes = html.filter((node) => node.value === '</details>').length;
          expect(opens).toBe(closes);
          expect(all(tree, 'code')).toHaveLength(opens);
          const total = repos * files;
          if (opens < total) expect(markdown).toContain(`Cut to stay within ${maxBytes} bytes`);
        },
      ),
      { numRuns: 40 },
    );
  });

  test('the bound holds when not even a cut-short block fits (a very long repository name)', () => {
    for (const name of ['a'.repeat(3_000), '&'.repeat(700)]) {
      const diffs = fleet(2, 1, 400).map((diff, index) => ({
        ...diff,
        repository: `${name}${index}`,
      }));
      for (const maxBytes of [2_000, 4_000, 8_000]) {
        const markdown = formatMarkdown(diffs, { maxBytes });
        expect(Buffer.byteLength(markdown), `${name.length} ${maxBytes}`).toBeLessThanOrEqual(
          maxBytes,
        );
        expect(markdown).toContain(`Cut to stay within ${maxBytes} bytes`);
      }
    }
  });

  test('a patch containing code fences cannot break out of its block', () => {
    const diff: RepoDiff = {
      repository: 'acme/app',
      generatorBefore: undefined,
      generatorAfter: '0.1.0',
      changes: [change('README.md', undefined, '```\n````\n<details>\n')],
      explanations: [],
    };
    const tree = parse(formatMarkdown([diff]));
    const code = all(tree, 'code') as { value: string }[];
    expect(code).toHaveLength(1);
    expect(code[0]?.value).toContain('+````');
    expect(all(tree, 'table')).toHaveLength(1);
  });
});

describe('formatJson and formatUnified', () => {
  test('json: formatVersion 1, summary, per-repository files with diffs, errors', () => {
    const diffs = [...fleet(1, 1, 3), failedRepoDiff('acme/broken', 'boom')];
    const report = JSON.parse(formatJson(diffs));
    expect(report.formatVersion).toBe(1);
    // The version the files would be generated with: the repositories' generatorAfter.
    expect(report.generator).toBe('0.2.0');
    expect(report.generator).toBe(report.repositories[0].generatorAfter);
    expect(report.summary).toEqual({
      repositories: 2,
      changed: 1,
      failed: 1,
      files: { create: 0, update: 1, delete: 0, conflict: 0, unchanged: 1 },
    });
    const [ok, broken] = report.repositories;
    expect(ok).toMatchObject({
      repository: 'acme/service-0',
      status: 'changed',
      generatorBefore: '0.1.0',
    });
    expect(ok.files[0].diff).toMatch(/^--- a\/dir\/file-0\.txt/);
    expect(ok.files[1]).toEqual({ path: 'same.txt', action: 'unchanged' });
    expect(broken).toMatchObject({ status: 'error', error: 'boom' });
  });

  test('unified: one section per repository, explanations as # lines, errors named', () => {
    const text = formatUnified([...fleet(2, 1, 3), failedRepoDiff('acme/broken', 'boom')]);
    expect(text).toContain(
      '# acme/service-0\n# generator 0.1.0 -> 0.2.0\n# cache lifecycle policy',
    );
    expect(text).toContain('--- a/dir/file-0.txt');
    expect(text).toContain('# acme/broken\n# error: boom');
  });
});
