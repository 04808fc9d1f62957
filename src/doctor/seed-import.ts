/**
 * Whether ordinary builds import an image's seed cache: the seed must be enabled, and the bake
 * file's `cache-from` for the image's target must list `seed.<image>` (for one platform of an image
 * built per platform: its target `<image>-<platform>` must list `seed.<image>.<platform>`). Every build imports the
 * seed in the generated file; a hand-edited one, or one from an older generator, may not, and then
 * nothing restores what main loses on fresh runners (docs/doctor.md). Pure.
 *
 * The bake file is HCL. This is not an HCL parser: it tokenises just enough (strings, comments,
 * brackets) to find `target "<image>" { … cache-from = [ … ] … }` and read the strings in that
 * list. When it cannot find them it says so rather than guessing.
 */
import type { ResolvedConfig } from '../config/resolve.js';
import { bakeFile } from '../model/bake.js';
import { cacheTag, SEED_SCOPE } from '../model/cache-tags.js';

export type SeedImport =
  /** The bake file lists seed.<image> in the target's cache-from (or, unread, the model does). */
  | { imported: true; evidence: 'bake file' | 'generated' }
  /** The seed is disabled in cached-deploy.yml. */
  | { imported: false; reason: 'disabled' }
  /** The target's cache-from does not list seed.<image>. */
  | { imported: false; reason: 'not listed' }
  /** The bake file has no target of that name, or no cache-from list doctor could read. */
  | { imported: 'unknown'; reason: string };

/**
 * `bakeText`: the repository's bake file, or undefined when it was not read (an API caller
 * without a checkout): then the generated model answers, which imports the seed when enabled.
 */
export function seedImportOf(
  config: ResolvedConfig,
  targetOrImage: { name: string; tagSuffix: string } | string,
  bakeText: string | undefined,
): SeedImport {
  if (!config.seed.enabled) return { imported: false, reason: 'disabled' };
  // An image name: its one target, whose tags end in the name.
  const target =
    typeof targetOrImage === 'string'
      ? { name: targetOrImage, tagSuffix: targetOrImage }
      : targetOrImage;
  const seedTag = cacheTag(SEED_SCOPE, target.tagSuffix);
  if (bakeText === undefined) {
    const generated = bakeFile(config).targets.find((each) => each.name === target.name);
    const listed = generated?.cacheFrom.some((ref) => refNamesTag(ref, seedTag)) ?? false;
    return listed
      ? { imported: true, evidence: 'generated' }
      : { imported: false, reason: 'not listed' };
  }
  const list = cacheFromStrings(bakeText, target.name);
  if (typeof list === 'string') return { imported: 'unknown', reason: list };
  return list.some((ref) => refNamesTag(ref, seedTag))
    ? { imported: true, evidence: 'bake file' }
    : { imported: false, reason: 'not listed' };
}

/** `type=registry,ref=<registry>/<repo>:<tag>[,…]` (or a bare ref) naming `tag`. */
function refNamesTag(entry: string, tag: string): boolean {
  return entry.split(',').some((field) => {
    const ref = field.startsWith('ref=') ? field.slice(4) : field.includes('=') ? '' : field;
    return ref.endsWith(`:${tag}`);
  });
}

type Token = { kind: 'string'; text: string } | { kind: 'word' | 'punct'; text: string };

/** Strings (with `\` escapes), words and the brackets; comments and whitespace dropped. */
function tokens(text: string): Token[] | string {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const char = text[i] as string;
    if (/\s/.test(char)) {
      i++;
    } else if (char === '#' || text.startsWith('//', i)) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? text.length : end + 1;
    } else if (text.startsWith('/*', i)) {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) return 'an unterminated comment';
      i = end + 2;
    } else if (char === '"') {
      let value = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\n') return 'a string that runs past the end of its line';
        value += text[i] === '\\' ? (text[++i] ?? '') : text[i];
        i++;
      }
      if (i >= text.length) return 'an unterminated string';
      i++;
      out.push({ kind: 'string', text: value });
    } else if ('{}[]=,()'.includes(char)) {
      out.push({ kind: 'punct', text: char });
      i++;
    } else {
      const match = /^[^\s"{}[\]=,()#]+/.exec(text.slice(i, i + 200));
      const word = match?.[0] ?? char;
      out.push({ kind: 'word', text: word });
      i += word.length;
    }
  }
  return out;
}

/** The strings of `target "<image>" { cache-from = [ … ] }`, or why they could not be read. */
function cacheFromStrings(text: string, image: string): string[] | string {
  const all = tokens(text);
  if (typeof all === 'string') return `the bake file has ${all}`;
  let depth = 0;
  for (let i = 0; i < all.length; i++) {
    const token = all[i] as Token;
    if (token.kind === 'punct' && (token.text === '{' || token.text === '[')) depth++;
    if (token.kind === 'punct' && (token.text === '}' || token.text === ']')) depth--;
    const name = all[i + 1];
    const open = all[i + 2];
    if (
      depth !== 0 ||
      token.kind !== 'word' ||
      token.text !== 'target' ||
      name?.kind !== 'string' ||
      name.text !== image ||
      open?.text !== '{'
    ) {
      continue;
    }
    // Inside the target's block: its own attributes sit at depth 1.
    let inner = 0;
    for (let j = i + 2; j < all.length; j++) {
      const each = all[j] as Token;
      if (each.kind === 'punct' && (each.text === '{' || each.text === '[')) inner++;
      if (each.kind === 'punct' && (each.text === '}' || each.text === ']')) inner--;
      if (inner === 0) break;
      if (
        inner === 1 &&
        each.kind === 'word' &&
        each.text === 'cache-from' &&
        all[j + 1]?.text === '=' &&
        all[j + 2]?.text === '['
      ) {
        const strings: string[] = [];
        for (let k = j + 3; k < all.length; k++) {
          const item = all[k] as Token;
          if (item.kind === 'punct' && item.text === ']') return strings;
          if (item.kind === 'string') strings.push(item.text);
          else if (item.text !== ',')
            return `the cache-from of target "${image}" is not a list of strings`;
        }
        return `the cache-from of target "${image}" is not closed`;
      }
    }
    return `target "${image}" has no cache-from list`;
  }
  return `the bake file has no target "${image}"`;
}
