import { jsonSetsOf } from '../render/layout.js';
import { carriesMarker } from '../render/marker.js';
import type { GeneratedFile } from '../render/render-files.js';
import { type GeneratorState, hashContent, renderState } from './state.js';

/**
 * What regeneration would do to each file, decided from three inputs only: the desired content,
 * what is on disk, and the hash the state file recorded when we last wrote it.
 *
 *   on disk == desired                      unchanged
 *   missing                                 create
 *   on disk == what we last wrote           update
 *   otherwise (edited, or never ours)       conflict: never overwritten without --force
 *   recorded, no longer desired, untouched  delete (an orphan, e.g. a renamed file)
 *
 * The state file is data from the repository, not proof: an orphan is only ever deleted (or
 * shown) when the file also carries our marker, or, for the policy JSON (which cannot carry one),
 * when it belongs to a whole earlier ecrDir exactly as recorded; and the keys were checked before
 * planning (plan-repository.ts).
 */
export type FileAction = 'create' | 'update' | 'unchanged' | 'conflict' | 'delete';

export interface FileChange {
  path: string;
  action: FileAction;
  /** Current content on disk (undefined when missing). */
  before: string | undefined;
  /** Desired content (undefined for a delete). */
  after: string | undefined;
  /** Why a conflict is one, for the message. */
  reason?: 'edited' | 'not-generated' | 'edited-orphan';
}

export interface Plan {
  changes: FileChange[];
  /** The state file to write when the plan is applied. */
  state: { path: string; content: string };
  /** The state file as it was: its text and the generator version it records. */
  before: { stateText: string | undefined; generator: string | undefined };
}

export interface PlanInput {
  desired: GeneratedFile[];
  /** Reads a repository-relative file; undefined when it does not exist. */
  readFile: (path: string) => string | undefined;
  previousState: GeneratorState | undefined;
  /** The previous state file's text, to tell whether the new one differs. */
  previousStateText?: string;
  statePath: string;
  generatorVersion: string;
  /** Treat conflicts as updates (and edited orphans as deletes). */
  force?: boolean;
}

export function planChanges(input: PlanInput): Plan {
  const recorded = input.previousState?.files ?? {};
  const changes: FileChange[] = [];
  const files: Record<string, string> = {};

  for (const file of input.desired) {
    const before = input.readFile(file.path);
    const base = { path: file.path, before, after: file.content };
    files[file.path] = hashContent(file.content);
    if (before === file.content) {
      changes.push({ ...base, action: 'unchanged' });
    } else if (before === undefined) {
      changes.push({ ...base, action: 'create' });
    } else if (recorded[file.path] === hashContent(before) || input.force) {
      changes.push({ ...base, action: 'update' });
    } else {
      const reason = recorded[file.path] === undefined ? 'not-generated' : 'edited';
      changes.push({ ...base, action: 'conflict', reason });
    }
  }

  const desiredPaths = new Set(input.desired.map((file) => file.path));
  const orphans: { path: string; before: string; untouched: boolean }[] = [];
  for (const [path, hash] of Object.entries(recorded)) {
    if (desiredPaths.has(path)) continue;
    const before = input.readFile(path);
    if (before !== undefined)
      orphans.push({ path, before, untouched: hashContent(before) === hash });
  }
  // Ours only with evidence beyond the state file's word: our marker, or, for JSON (which cannot
  // carry one), the whole set of JSON files it was generated with (render/layout.ts), every one
  // recorded, on disk and exactly as recorded, whether still generated or not: a whole earlier
  // `paths.ecrDir`, the single CI role's files beside the same lifecycle policies, or the pruner's
  // package.json and lockfile. Anything else is never deleted, never shown.
  const asRecorded = (path: string) => {
    if (recorded[path] === undefined) return false;
    const text = input.readFile(path);
    return text !== undefined && hashContent(text) === recorded[path];
  };
  const wholeSet = (path: string) =>
    jsonSetsOf(path).some((set) => set.every((member) => asRecorded(member)));
  for (const { path, before, untouched } of orphans) {
    if (!carriesMarker(before) && !(untouched && wholeSet(path))) continue;
    if (untouched || input.force) {
      changes.push({ path, action: 'delete', before, after: undefined });
    } else {
      changes.push({ path, action: 'conflict', before, after: undefined, reason: 'edited-orphan' });
    }
  }

  const state: GeneratorState = { formatVersion: 1, generator: input.generatorVersion, files };
  return {
    changes,
    state: { path: input.statePath, content: renderState(state) },
    before: { stateText: input.previousStateText, generator: input.previousState?.generator },
  };
}

/**
 * Why a conflict is one, in the words every command uses: the sentence ("… was edited by hand
 * since it was generated") and the short label ("edited by hand").
 */
export function conflictReason(change: FileChange): { sentence: string; label: string } {
  switch (change.reason) {
    case 'not-generated':
      return {
        sentence: 'exists and was not written by create-cached-deploy',
        label: 'not written by create-cached-deploy',
      };
    case 'edited-orphan':
      return {
        sentence: 'is no longer generated but was edited by hand, so it is not deleted',
        label: 'edited by hand, no longer generated',
      };
    default:
      return { sentence: 'was edited by hand since it was generated', label: 'edited by hand' };
  }
}

export function pendingChanges(plan: Plan): FileChange[] {
  return plan.changes.filter((change) => change.action !== 'unchanged');
}

export function conflicts(plan: Plan): FileChange[] {
  return plan.changes.filter((change) => change.action === 'conflict');
}
