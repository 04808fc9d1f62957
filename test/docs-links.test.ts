/**
 * The documentation holds together: every relative link in the README and docs/ reaches a file of
 * the repository (and a heading of it, when it names one), and docs/README.md indexes every page
 * of docs/. A section renamed or moved without its links fails here, not in a reader's browser.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { describe, expect, test } from 'vitest';
import { PROJECT_ROOT } from './support/temp-repo.js';

interface MarkdownNode {
  type: string;
  value?: string;
  url?: string;
  depth?: number;
  children?: MarkdownNode[];
}

const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: PROJECT_ROOT, encoding: 'utf8' })
  .split('\0')
  .filter(Boolean);
const trackedSet = new Set(tracked);
const trackedDirs = new Set(
  tracked.flatMap((file) =>
    file
      .split('/')
      .slice(0, -1)
      .map((_, index, parts) => parts.slice(0, index + 1).join('/')),
  ),
);

const DOCUMENTS = [
  'README.md',
  'CHANGELOG.md',
  'test/fixtures/buildkit/README.md',
  ...tracked.filter((file) => /^docs\/[^/]+\.md$/.test(file)),
];

const parsed = new Map<string, MarkdownNode>();

function parse(file: string): MarkdownNode {
  const known = parsed.get(file);
  if (known) return known;
  const tree = fromMarkdown(readFileSync(join(PROJECT_ROOT, file), 'utf8'), {
    extensions: [gfm()],
    mdastExtensions: [gfmFromMarkdown()],
  }) as MarkdownNode;
  parsed.set(file, tree);
  return tree;
}

function nodes(tree: MarkdownNode, type: string): MarkdownNode[] {
  const found: MarkdownNode[] = [];
  const walk = (node: MarkdownNode) => {
    if (node.type === type) found.push(node);
    for (const child of node.children ?? []) walk(child);
  };
  walk(tree);
  return found;
}

function text(node: MarkdownNode): string {
  return node.value ?? (node.children ?? []).map(text).join('');
}

/**
 * GitHub's heading anchors (github-slugger): lowercase, punctuation and symbols dropped, each
 * space a hyphen; a repeated heading gets `-1`, `-2`.
 */
function slugOf(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const heading of nodes(parse(file), 'heading')) {
    const slug = slugOf(text(heading));
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    result.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return result;
}

describe('documentation links', () => {
  test.each(DOCUMENTS)(
    '%s: every relative link reaches a file and heading of the repository',
    (file) => {
      const broken: string[] = [];
      for (const link of nodes(parse(file), 'link')) {
        const url = link.url ?? '';
        if (/^[a-z][a-z0-9+.-]*:/i.test(url)) continue; // https:, mailto:
        const [path = '', anchor] = url.split('#');
        const target = path === '' ? file : normalize(join(dirname(file), decodeURI(path)));
        const clean = target.replace(/\/$/, '');
        if (!trackedSet.has(clean) && !trackedDirs.has(clean)) {
          broken.push(`${url}: no such file`);
          continue;
        }
        if (anchor !== undefined && !anchors(clean).has(anchor)) {
          broken.push(`${url}: no heading #${anchor} in ${clean}`);
        }
      }
      expect(broken).toEqual([]);
    },
  );

  test('docs/README.md indexes every page of docs/', () => {
    const linked = new Set(
      nodes(parse('docs/README.md'), 'link').map((link) => (link.url ?? '').split('#')[0]),
    );
    const pages = tracked
      .filter((file) => /^docs\/[^/]+\.md$/.test(file) && file !== 'docs/README.md')
      .map((file) => file.slice('docs/'.length));
    expect(pages.filter((page) => !linked.has(page))).toEqual([]);
  });

  test('anchors are made as GitHub makes them, for the kinds of heading used here', () => {
    expect(slugOf('create-cached-deploy apply [dir]')).toBe('create-cached-deploy-apply-dir');
    expect(slugOf('Trust separation: who can write what')).toBe(
      'trust-separation-who-can-write-what',
    );
    expect(slugOf('"failed to configure registry cache importer: … not found"')).toBe(
      'failed-to-configure-registry-cache-importer--not-found',
    );
    expect(slugOf('cached-deploy.yml')).toBe('cached-deployyml');
    expect(slugOf('multi_platform builds')).toBe('multi_platform-builds');
  });
});
