import { describe, expect, test, vi } from 'vitest';
import {
  conflictReason,
  conflicts,
  type FileChange,
  type PlanInput,
  pendingChanges,
  planChanges,
} from '../src/plan/plan.js';
import { type GeneratorState, hashContent, parseState } from '../src/plan/state.js';

// planChanges is pure: it sees the repository only through `readFile`. Any file-system call made
// while these tests run (by plan.ts or anything it imports) fails the test.
vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<Record<string, unknown>>();
  const guarded = Object.fromEntries(
    Object.entries(actual).map(([name, value]) => [
      name,
      typeof value === 'function'
        ? () => {
            throw new Error(`planChanges touched the file system: fs.${name}`);
          }
        : value,
    ]),
  );
  return { ...guarded, default: guarded };
});
vi.mock('node:fs/promises', async () => {
  throw new Error('planChanges imported node:fs/promises');
});

const STATE_PATH = '.cached-deploy/state.json';

/** A repository in memory: path → content, plus the state the generator last recorded. */
function setup(options: {
  desired: Record<string, string>;
  disk?: Record<string, string>;
  /** path → content the generator wrote last time (recorded as its hash). */
  recorded?: Record<string, string>;
  force?: boolean;
}) {
  const disk = options.disk ?? {};
  const reads: string[] = [];
  const previousState: GeneratorState | undefined = options.recorded && {
    formatVersion: 1,
    generator: '0.0.1',
    files: Object.fromEntries(
      Object.entries(options.recorded).map(([path, content]) => [path, hashContent(content)]),
    ),
  };
  const input: PlanInput = {
    desired: Object.entries(options.desired).map(([path, content]) => ({ path, content })),
    readFile: (path) => {
      reads.push(path);
      return disk[path];
    },
    previousState,
    statePath: STATE_PATH,
    generatorVersion: '1.2.3',
    force: options.force,
  };
  return { input, reads, plan: planChanges(input) };
}

const actions = (changes: FileChange[]) =>
  Object.fromEntries(changes.map((change) => [change.path, change.action]));

describe('planChanges', () => {
  test('create: a desired file that does not exist', () => {
    const { plan } = setup({ desired: { 'a.yml': 'new\n' } });
    expect(plan.changes).toEqual([
      { path: 'a.yml', action: 'create', before: undefined, after: 'new\n' },
    ]);
    expect(pendingChanges(plan)).toHaveLength(1);
    expect(conflicts(plan)).toEqual([]);
  });

  test('unchanged: the file on disk is already the desired content (with or without state)', () => {
    for (const recorded of [undefined, {}, { 'a.yml': 'older\n' }] as (
      | Record<string, string>
      | undefined
    )[]) {
      const { plan } = setup({
        desired: { 'a.yml': 'same\n' },
        disk: { 'a.yml': 'same\n' },
        recorded,
      });
      expect(plan.changes).toEqual([
        { path: 'a.yml', action: 'unchanged', before: 'same\n', after: 'same\n' },
      ]);
      expect(pendingChanges(plan)).toEqual([]);
    }
  });

  test('update: the file is still what the generator last wrote', () => {
    const { plan } = setup({
      desired: { 'a.yml': 'v2\n' },
      disk: { 'a.yml': 'v1\n' },
      recorded: { 'a.yml': 'v1\n' },
    });
    expect(plan.changes).toEqual([
      { path: 'a.yml', action: 'update', before: 'v1\n', after: 'v2\n' },
    ]);
  });

  test('conflict (edited): the file was changed by hand since it was generated', () => {
    const { plan } = setup({
      desired: { 'a.yml': 'v2\n' },
      disk: { 'a.yml': 'v1\n# my edit\n' },
      recorded: { 'a.yml': 'v1\n' },
    });
    expect(plan.changes).toEqual([
      {
        path: 'a.yml',
        action: 'conflict',
        reason: 'edited',
        before: 'v1\n# my edit\n',
        after: 'v2\n',
      },
    ]);
    expect(conflicts(plan).map((change) => change.path)).toEqual(['a.yml']);
  });

  test('conflict (edited) even when the hand edit happens to equal an older generation', () => {
    const { plan } = setup({
      desired: { 'a.yml': 'v3\n' },
      disk: { 'a.yml': 'v1\n' },
      recorded: { 'a.yml': 'v2\n' },
    });
    expect(plan.changes[0]).toMatchObject({ action: 'conflict', reason: 'edited' });
  });

  test('conflict (not-generated): a file that exists but was never ours', () => {
    for (const recorded of [undefined, { 'other.yml': 'x' }] as (
      | Record<string, string>
      | undefined
    )[]) {
      const { plan } = setup({
        desired: { '.github/workflows/deploy.yml': 'ours\n' },
        disk: { '.github/workflows/deploy.yml': 'theirs\n' },
        recorded,
      });
      expect(plan.changes[0]).toEqual({
        path: '.github/workflows/deploy.yml',
        action: 'conflict',
        reason: 'not-generated',
        before: 'theirs\n',
        after: 'ours\n',
      });
    }
  });

  test('delete: a file we generated that is no longer desired (an orphan) and is untouched', () => {
    const { plan } = setup({
      desired: { 'b.yml': 'b\n' },
      disk: { 'a.json': 'old a\n', 'b.yml': 'b\n' },
      recorded: { 'a.json': 'old a\n', 'b.yml': 'b\n' },
    });
    expect(plan.changes).toEqual([
      { path: 'b.yml', action: 'unchanged', before: 'b\n', after: 'b\n' },
      { path: 'a.json', action: 'delete', before: 'old a\n', after: undefined },
    ]);
  });

  test('an orphan that is already gone is not mentioned', () => {
    const { plan } = setup({
      desired: { 'b.yml': 'b\n' },
      disk: { 'b.yml': 'b\n' },
      recorded: { 'a.yml': 'a\n' },
    });
    expect(plan.changes.map((change) => change.path)).toEqual(['b.yml']);
  });

  test('conflict (edited-orphan): an orphan edited by hand is never deleted', () => {
    const { plan } = setup({
      desired: {},
      disk: { 'a.json': 'a\n# kept by a person\n' },
      recorded: { 'a.json': 'a\n' },
    });
    expect(plan.changes).toEqual([
      {
        path: 'a.json',
        action: 'conflict',
        reason: 'edited-orphan',
        before: 'a\n# kept by a person\n',
        after: undefined,
      },
    ]);
  });

  test('force: every conflict becomes an update, an edited orphan a delete', () => {
    const options = {
      desired: { 'edited.yml': 'v2\n', 'foreign.yml': 'ours\n', 'fresh.yml': 'new\n' },
      disk: { 'edited.yml': 'v1 edited\n', 'foreign.yml': 'theirs\n', 'orphan.json': 'o edited\n' },
      recorded: { 'edited.yml': 'v1\n', 'orphan.json': 'o\n' },
    };
    expect(actions(setup(options).plan.changes)).toEqual({
      'edited.yml': 'conflict',
      'foreign.yml': 'conflict',
      'fresh.yml': 'create',
      'orphan.json': 'conflict',
    });
    const { plan } = setup({ ...options, force: true });
    expect(actions(plan.changes)).toEqual({
      'edited.yml': 'update',
      'foreign.yml': 'update',
      'fresh.yml': 'create',
      'orphan.json': 'delete',
    });
    expect(conflicts(plan)).toEqual([]);
    expect(plan.changes.find((change) => change.path === 'edited.yml')).toEqual({
      path: 'edited.yml',
      action: 'update',
      before: 'v1 edited\n',
      after: 'v2\n',
    });
  });

  test('an orphan without our marker is not ours: never deleted, never shown, even with force', () => {
    const marker = '# Generated by create-cached-deploy 0.0.1. Do not edit.\n';
    const { plan } = setup({
      desired: {},
      disk: { 'ours.hcl': `${marker}x\n`, 'theirs.mjs': 'export {}\n' },
      recorded: { 'ours.hcl': `${marker}x\n`, 'theirs.mjs': 'export {}\n' },
      force: true,
    });
    expect(actions(plan.changes)).toEqual({ 'ours.hcl': 'delete' });
  });

  test('force does not touch files that are unchanged', () => {
    const { plan } = setup({ desired: { 'a.yml': 'a\n' }, disk: { 'a.yml': 'a\n' }, force: true });
    expect(actions(plan.changes)).toEqual({ 'a.yml': 'unchanged' });
  });

  test('the new state records the hash of every desired file, sorted, and nothing else', () => {
    const { plan } = setup({
      desired: { 'z.yml': 'z\n', 'a.json': '{}\n', 'm/n.hcl': 'n\n' },
      disk: { 'gone.yml': 'g\n', 'z.yml': 'hand edit\n' },
      recorded: { 'gone.yml': 'g\n', 'z.yml': 'z0\n' },
    });
    expect(plan.state.path).toBe(STATE_PATH);
    const state = parseState(plan.state.content, STATE_PATH);
    expect(state).toEqual({
      formatVersion: 1,
      generator: '1.2.3',
      files: {
        'a.json': hashContent('{}\n'),
        'm/n.hcl': hashContent('n\n'),
        'z.yml': hashContent('z\n'),
      },
    });
    expect(Object.keys(JSON.parse(plan.state.content).files)).toEqual([
      'a.json',
      'm/n.hcl',
      'z.yml',
    ]);
    expect(plan.state.content.endsWith('}\n')).toBe(true);
    expect(hashContent('z\n')).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  test('changes come in desired order, then orphans', () => {
    const { plan } = setup({
      desired: { 'c.yml': 'c', 'a.yml': 'a', 'b.yml': 'b' },
      disk: { 'x.json': 'x' },
      recorded: { 'x.json': 'x' },
    });
    expect(plan.changes.map((change) => change.path)).toEqual([
      'c.yml',
      'a.yml',
      'b.yml',
      'x.json',
    ]);
  });

  test('pure: reads only desired and recorded paths, once each, and never mutates its input', () => {
    const recorded = { 'old.json': 'o\n', 'a.yml': 'a0\n' };
    const { input, reads } = setup({
      desired: { 'a.yml': 'a1\n', 'b.yml': 'b\n' },
      disk: { 'a.yml': 'a0\n', 'old.json': 'o\n', 'unrelated.txt': 'u' },
      recorded,
    });
    expect(reads).toEqual(['a.yml', 'b.yml', 'old.json']);
    const frozen = structuredClone({ desired: input.desired, previousState: input.previousState });
    const again = planChanges(input);
    const third = planChanges(input);
    expect(again).toEqual(third);
    expect({ desired: input.desired, previousState: input.previousState }).toEqual(frozen);
    expect(actions(again.changes)).toEqual({
      'a.yml': 'update',
      'b.yml': 'create',
      'old.json': 'delete',
    });
  });

  test('the file-system guard is live (so "pure" above means something)', async () => {
    const fs = await import('node:fs');
    expect(() => fs.readFileSync('package.json')).toThrow(/touched the file system/);
  });
});

describe('conflictReason', () => {
  test('names each kind of conflict, in one wording for every command', () => {
    const base = { path: 'x', action: 'conflict' as const, before: 'a', after: undefined };
    expect(conflictReason({ ...base, reason: 'edited' }).label).toBe('edited by hand');
    expect(conflictReason({ ...base, reason: 'not-generated' }).sentence).toBe(
      'exists and was not written by create-cached-deploy',
    );
    // An edited file that is no longer generated is kept, and the message says why.
    expect(conflictReason({ ...base, reason: 'edited-orphan' }).sentence).toMatch(
      /no longer generated .* not deleted/,
    );
  });
});
