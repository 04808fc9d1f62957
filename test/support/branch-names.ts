import fc from 'fast-check';

/**
 * Arbitrary branch names for the slug properties (test/cache-matrix.test.ts compares the workflow's
 * shell step with cacheScope(), test/sweep-branches.test.ts the shipped pruner's slug with it):
 * any Unicode text, path-like names with the usual troublemakers, long names around the
 * truncation point, and tag-safe names around the length limits.
 */

export const noNul = (text: string) => text.replaceAll('\0', '');
/** Any Unicode text (no lone surrogates: a branch name is UTF-8). */
const unicodeName = fc.string({ unit: 'binary', minLength: 1, maxLength: 150 }).map(noNul);
const segment = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 16 }),
  fc.string({ unit: 'grapheme-ascii', maxLength: 16 }),
  fc.constantFrom(
    'feat',
    'main',
    'Main',
    'seed',
    'seed.api',
    'local',
    'local-0000000000000000',
    '0000000000000000',
    '1234abcd5678ef90',
    '1234abcd',
    '-',
    '.',
    '..',
    '_',
    'ü',
    '🚀',
    '',
  ),
);
/** Names built from path segments joined with '/'. */
const pathName = fc
  .array(segment, { minLength: 1, maxLength: 10 })
  .map((parts) => noNul(parts.join('/')));
/** Long names around the truncation point. */
const longName = fc
  .tuple(fc.integer({ min: 80, max: 320 }), fc.string({ unit: 'grapheme-ascii', maxLength: 8 }))
  .map(([length, tail]) => `${'L/'.repeat(length).slice(0, length)}${tail}`);
/** Names that need no change, around the slug length limits. */
const tagSafeName = fc.string({
  unit: fc.constantFrom(...'abcxyzABC0189_.'),
  minLength: 85,
  maxLength: 130,
});
export const anyName = fc.oneof(unicodeName, pathName, longName, tagSafeName);
