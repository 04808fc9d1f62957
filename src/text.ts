/** Small wording helpers shared by every command's human-readable output. */

/** Bytes in decimal units, as ECR's console shows them: 512 B, 1.5 MB, 284 MB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const shown = unit === 0 || value >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
  return `${shown} ${units[unit]}`;
}

/** "1 image", "3 images"; `many` for irregular plurals ("repositories"). */
export function plural(count: number, word: string, many = `${word}s`): string {
  return `${count} ${count === 1 ? word : many}`;
}

/**
 * Text from outside (a registry's error message, a file name from a cloned repository, an API's
 * answer) made safe to print on a terminal: C0/C1 control characters (ESC starts terminal escape
 * sequences; CR rewrites a line) and Unicode bidi overrides (which reorder what a reader sees)
 * become `\u{…}` escapes, so nothing can move the cursor, recolour or hide text. Newlines are kept
 * only when `multiline` is set.
 */
export function printable(text: string, options: { multiline?: boolean } = {}): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly what we escape
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (char) =>
      options.multiline && char === '\n' ? char : `\\u{${char.codePointAt(0)?.toString(16)}}`,
  );
}

/**
 * A value quoted into a one-line message, cut to `max` characters (an error must stay one line
 * and must not echo a megabyte of someone else's input back).
 */
export function quoteForMessage(value: string, max = 120): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  // JSON escapes C0 controls; printable() the rest (DEL, C1, bidi overrides).
  const quoted = printable(JSON.stringify(cut));
  return value.length > max ? `${quoted} (${value.length} characters)` : quoted;
}
