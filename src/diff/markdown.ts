import { printable } from '../text.js';

/**
 * Text from repositories (names, paths, messages, policy descriptions) placed into markdown that a
 * PR comment renders: always literal, never markup of its own.
 */

/**
 * Prose for one line of markdown: no line breaks, every markdown or HTML character literal, no
 * control character. A URL, `www.` host or e-mail address becomes a code span: GitHub links those
 * by themselves in text (escaping does not stop it), never inside code.
 */
export function inline(text: string): string {
  const line = printable(text.replace(/\s*\n\s*/g, ' '));
  let out = '';
  let last = 0;
  for (const match of line.matchAll(LINK_LIKE)) {
    out += escapeInline(line.slice(last, match.index)) + code(match[0]);
    last = match.index + match[0].length;
  }
  return out + escapeInline(line.slice(last));
}

const LINK_LIKE = /(?:\b[a-z][a-z0-9+.-]*:\/\/|\bwww\.)[^\s|`<>]*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+/gi;

function escapeInline(text: string): string {
  return text.replace(/[\\`*_[\]<>&~|]/g, '\\$&');
}

/** A code span of `text` (one line), with a fence longer than any backtick run in it. */
export function code(text: string): string {
  const oneLine = printable(text.replace(/\s*\n\s*/g, ' '));
  const longest = Math.max(0, ...[...oneLine.matchAll(/`+/g)].map((match) => match[0].length));
  const fence = '`'.repeat(longest + 1);
  const pad = oneLine.startsWith('`') || oneLine.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${oneLine}${pad}${fence}`;
}

/** Text inside an HTML element (such as `<summary>`). */
export function escapeHtml(text: string): string {
  return printable(text).replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}
