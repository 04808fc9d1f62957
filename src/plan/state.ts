import { createHash } from 'node:crypto';
import { CachedDeployError } from '../errors.js';

/**
 * The state file records the hash of every file the generator wrote. That is how a regeneration
 * tells "still as we wrote it" (safe to update) from "edited by a person" (a conflict), and how a
 * fleet report knows which generator version a repository was on. Deleting it is the whole eject.
 */
export interface GeneratorState {
  formatVersion: 1;
  generator: string;
  files: Record<string, string>;
}

export function hashContent(content: string): string {
  return `sha256:${createHash('sha256').update(content, 'utf8').digest('hex')}`;
}

export function parseState(text: string, source: string): GeneratorState {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new CachedDeployError(
      'IO',
      `${source}: not valid JSON (delete it to treat every existing file as hand-written)`,
    );
  }
  const state = value as Partial<GeneratorState>;
  if (state?.formatVersion !== 1 || typeof state.files !== 'object' || state.files === null) {
    throw new CachedDeployError(
      'IO',
      `${source}: not a create-cached-deploy state file (formatVersion 1)`,
    );
  }
  return {
    formatVersion: 1,
    generator: String(state.generator ?? 'unknown'),
    files: { ...state.files },
  };
}

export function renderState(state: GeneratorState): string {
  const files = Object.fromEntries(
    Object.entries(state.files).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  return `${JSON.stringify({ ...state, files }, null, 2)}\n`;
}
