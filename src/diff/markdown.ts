/**
 * Text from repositories (names, paths, messages, policy descriptions) placed into markdown that a
 * PR comment renders: always literal, never markup of its own.
 */

/** Prose for one line of markdown: no line breaks, every markdown or HTML character literal. */
export function inline(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/[\\`*_[\]<>&~|]/g, '\\$&');
}

/** A code span of `text` (one line), with a fence longer than any backtick run in it. */
export function code(text: string): string {
  const oneLine = text.replace(/\s*\n\s*/g, ' ');
  const longest = Math.max(0, ...[...oneLine.matchAll(/`+/g)].map((match) => match[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = oneLine.startsWith('`') || oneLine.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${oneLine}${pad}${fence}`;
}

/** Text inside an HTML element (such as `<summary>`). */
export function escapeHtml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}
