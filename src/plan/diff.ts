import { createTwoFilesPatch } from 'diff';
import type { FileChange } from './plan.js';

/** A change as a git-style unified diff (a/ and b/ prefixes, /dev/null for created or deleted files). */
export function unifiedDiff(change: FileChange): string {
  const from = change.before === undefined ? '/dev/null' : `a/${change.path}`;
  const to = change.after === undefined ? '/dev/null' : `b/${change.path}`;
  // No headers: jsdiff would print "--- a/file<TAB>" for an empty one.
  const patch = createTwoFilesPatch(
    from,
    to,
    change.before ?? '',
    change.after ?? '',
    undefined,
    undefined,
    { context: 3 },
  );
  // Drop jsdiff's "Index:"/"=====" preamble so the output reads like `git diff`.
  return patch.replace(/^(?:Index:[^\n]*\n)?=+\n/, '');
}
