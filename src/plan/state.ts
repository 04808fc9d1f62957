import { createHash } from 'node:crypto';
import { CachedDeployError } from '../errors.js';
import { quoteForMessage } from '../text.js';

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
  if (
    state?.formatVersion !== 1 ||
    typeof state.files !== 'object' ||
    state.files === null ||
    Array.isArray(state.files)
  ) {
    throw new CachedDeployError(
      'IO',
      `${source}: not a create-cached-deploy state file (formatVersion 1)`,
    );
  }
  // Reports print the version and compare the hashes: both must be what this tool writes.
  const generator = state.generator ?? 'unknown';
  if (typeof generator !== 'string' || !/^[\w.+-]{1,64}$/.test(generator)) {
    throw new CachedDeployError(
      'STATE_INVALID',
      `${source}: generator: ${quoteForMessage(String(generator))} is not a version`,
    );
  }
  const files = new Map<string, string>();
  for (const [path, hash] of Object.entries(state.files)) {
    if (typeof hash !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(hash)) {
      throw new CachedDeployError(
        'STATE_INVALID',
        `${source}: files[${quoteForMessage(path)}] is not a sha256 hash`,
      );
    }
    files.set(path, hash);
  }
  return { formatVersion: 1, generator, files: Object.fromEntries(files) };
}

export function renderState(state: GeneratorState): string {
  const files = Object.fromEntries(
    Object.entries(state.files).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  return `${JSON.stringify({ ...state, files }, null, 2)}\n`;
}
