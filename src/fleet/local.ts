import type { FleetLayers } from '../config/merge.js';
import { CONFIG_FILE } from '../config/resolve.js';
import { explainChanges } from '../diff/explain.js';
import type { RepoDiff } from '../diff/report.js';
import { isCachedDeployError } from '../errors.js';
import { conflictReason, type FileAction, type FileChange } from '../plan/plan.js';
import { printable } from '../text.js';
import { writePlan } from '../write/write-files.js';
import { type Evaluation, evaluateRepository } from './evaluate.js';
import type { FleetRepo } from './fleet-file.js';
import type { RepoStatus } from './progress.js';

/**
 * What happens to one repository once it is on disk, without git: evaluate, classify, and (with
 * `write`) apply. Synchronous and self-contained, so it runs the same in the main thread or in a
 * worker thread (worker.ts); its input and output are plain, cloneable data.
 */

export type FleetMode = 'check' | 'diff' | 'write';

/** A file the run found out of date (or wrote), without its contents. */
export interface FileSummary {
  path: string;
  action: FileAction;
  reason?: FileChange['reason'];
}

export interface RepoResult {
  repository: string;
  status: RepoStatus;
  /** The generator version of the repository's files before this run (from its state file). */
  generatorBefore: string | undefined;
  generatorAfter: string;
  /** One line: what is out of date, what was written, or the error. */
  message: string;
  /** Every file that is (or was) not in sync; unchanged files are left out. */
  changes: FileSummary[];
  /** Where the repository was read (for URL repositories, the clone in the work directory). */
  dir?: string;
  branch?: string;
  commit?: string;
  pushed?: boolean;
  /** With `--open-pr`: what happened to its pull request. */
  pullRequest?: PullRequestOutcome;
}

/** What `--open-pr` did to a repository's pull request (GitLab: merge request). */
export interface PullRequestOutcome {
  /** `none`: no pull request is needed and none was open. */
  action: 'opened' | 'updated' | 'unchanged' | 'closed' | 'none';
  kind: 'github' | 'gitlab';
  /** The host (github.com, gitlab.acme.com) and the project there. */
  host: string;
  project: string;
  number?: number;
  url?: string;
}

export interface Outcome {
  result: RepoResult;
  /** With `diff`: the repository's changes with their contents. */
  diff?: RepoDiff;
}

export interface LocalTask {
  repo: FleetRepo;
  dir: string;
  layers: FleetLayers;
  mode: FleetMode;
  version: string;
  force: boolean;
}

/** Evaluates (and with `write`, writes) one repository; every failure becomes its result. */
export function localOutcome(task: LocalTask): Outcome {
  try {
    const evaluation = evaluateRepository(task.dir, task.layers, task);
    const result = classify(task.repo, task.dir, evaluation, task.version);
    if (task.mode === 'write') {
      const needsWrite =
        result.status === 'changed' || (result.status === 'in-sync' && stateChanged(evaluation));
      if (needsWrite) {
        writePlan(task.dir, evaluation.plan);
        return { result: wroteResult(result, evaluation) };
      }
      return { result };
    }
    return task.mode === 'diff' ? { result, diff: toRepoDiff(result, evaluation) } : { result };
  } catch (error) {
    return errorOutcome(task.repo, task.mode, task.version, error, task.dir);
  }
}

export function errorOutcome(
  repo: FleetRepo,
  mode: FleetMode,
  version: string,
  error: unknown,
  dir?: string,
): Outcome {
  const result: RepoResult = {
    repository: repo.repository,
    status: 'error',
    generatorBefore: undefined,
    generatorAfter: version,
    message: errorMessage(error),
    changes: [],
    ...(dir ? { dir } : {}),
  };
  return mode === 'diff' ? { result, diff: toRepoDiff(result, undefined) } : { result };
}

export function classify(
  repo: FleetRepo,
  dir: string,
  evaluation: Evaluation,
  version: string,
): RepoResult {
  const pending = evaluation.plan.changes.filter((change) => change.action !== 'unchanged');
  const conflicting = pending.filter((change) => change.action === 'conflict');
  const base = {
    repository: repo.repository,
    generatorBefore: evaluation.generatorBefore,
    generatorAfter: version,
    changes: pending.map(summarize),
    dir,
  };
  if (conflicting.length > 0) {
    const first = conflicting[0] as FileChange;
    const why = conflictReason(first).sentence;
    const others = conflicting.length > 1 ? ` (and ${conflicting.length - 1} more)` : '';
    return {
      ...base,
      status: 'conflict',
      message: `${first.path} ${why}${others}: not overwritten (move the change into ${CONFIG_FILE} or the fleet file, or rerun with --force)`,
    };
  }
  if (pending.length === 0) return { ...base, status: 'in-sync', message: '' };
  const upgrade = upgradeNote(evaluation.generatorBefore, version);
  return {
    ...base,
    status: 'changed',
    message: `${count(pending.length, 'file')} out of date: ${listPaths(pending)}${upgrade}`,
  };
}

export function wroteResult(result: RepoResult, evaluation: Evaluation): RepoResult {
  const written = result.changes.length;
  const upgrade = upgradeNote(evaluation.generatorBefore, result.generatorAfter);
  return {
    ...result,
    status: 'changed',
    message:
      written === 0
        ? `recorded ${evaluation.plan.state.path}`
        : `wrote ${count(written, 'file')}: ${listPaths(result.changes)}${upgrade}`,
  };
}

/** Whether writing would change the state file (even when every generated file is in sync). */
export function stateChanged(evaluation: Evaluation): boolean {
  return evaluation.stateBefore !== evaluation.plan.state.content;
}

/**
 * The diff report's model for one repository (see diff/report.ts), built from the fleet's own
 * evaluation because the fleet's layers change the effective configuration. Policy changes are
 * explained in words as `create-cached-deploy diff` does. Unchanged files keep their path and
 * action but not their contents (which no report prints): on a large fleet that is most of the
 * memory a diff run would hold.
 */
export function toRepoDiff(result: RepoResult, evaluation: Evaluation | undefined): RepoDiff {
  if (!evaluation) {
    return {
      repository: result.repository,
      generatorBefore: result.generatorBefore,
      generatorAfter: result.generatorAfter,
      changes: [],
      explanations: [],
      ...(result.status === 'error' ? { error: result.message } : {}),
    };
  }
  // Unchanged files keep their path and action, not their contents.
  const changes = evaluation.plan.changes.map(
    (change): FileChange =>
      change.action === 'unchanged'
        ? { path: change.path, action: change.action, before: undefined, after: undefined }
        : change,
  );
  return {
    repository: result.repository,
    generatorBefore: result.generatorBefore,
    generatorAfter: result.generatorAfter,
    changes,
    explanations: explainChanges(evaluation.config, evaluation.plan.changes),
  };
}

/** The subject of the commit (and the default title of the pull request) for a result. */
export function commitSubject(result: Pick<RepoResult, 'generatorBefore' | 'generatorAfter'>) {
  const before = result.generatorBefore;
  const after = result.generatorAfter;
  return before !== undefined && before !== after
    ? `chore(cached-deploy): upgrade generated files to create-cached-deploy ${after}`
    : `chore(cached-deploy): regenerate files with create-cached-deploy ${after}`;
}

function summarize(change: FileChange): FileSummary {
  return change.reason
    ? { path: change.path, action: change.action, reason: change.reason }
    : { path: change.path, action: change.action };
}

function upgradeNote(before: string | undefined, after: string): string {
  return before !== undefined && before !== after ? ` (generator ${before} -> ${after})` : '';
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function listPaths(changes: { path: string }[]): string {
  const shown = changes.slice(0, 3).map((change) => change.path);
  return changes.length > 3 ? `${shown.join(', ')}, …` : shown.join(', ');
}

/**
 * A repository's error as its result says it: one line, at most 500 characters, control
 * characters escaped (it may quote a remote's or a file's text), in every table, report and the
 * results file.
 */
export function errorMessage(error: unknown): string {
  const raw = isCachedDeployError(error)
    ? error.message
    : `unexpected error: ${(error instanceof Error ? error.message : String(error)).split('\n')[0]}`;
  const line = printable(raw);
  return line.length > 500 ? `${line.slice(0, 500)}… (${line.length} characters)` : line;
}
