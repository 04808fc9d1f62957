/**
 * The repository explains itself: no tracked file refers to documents that live outside it, or to
 * a path of somebody's development machine. A fresh clone with nothing beside it must hold every
 * fact its code cites (docs/) and every file its tests read (test/fixtures/).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { PROJECT_ROOT } from './support/temp-repo.js';

/**
 * What no tracked file may contain. Written as patterns, not literal text, so this file itself is
 * checked like every other one.
 */
const FORBIDDEN: { what: string; pattern: RegExp }[] = [
  { what: 'a folder beside the repository', pattern: /\.\.\/shared\b/ },
  {
    what: 'a reference document outside the repository',
    pattern: /\b(?:DOMAIN|DESIGN|STYLE)\.md\b/,
  },
  { what: 'a path of a development machine', pattern: /(?<![\w.-])\/(?:work|home|Users|root)\// },
];

/**
 * Where a match is not a reference to anything outside the repository. Keep this list short, and
 * say why each entry must be here.
 */
const ALLOWED: { file: RegExp; pattern: RegExp; why: string }[] = [
  {
    // A cache mount's target in a RUN instruction: root's home inside the build container.
    file: /(?:^|\/)Dockerfile[^/]*$/,
    pattern: /\/root\//,
    why: "a path inside the image being built, not on anyone's machine",
  },
];

/** Every forbidden reference in `text`, as `line: what (match)`, minus the allowed ones. */
function forbiddenReferences(file: string, text: string): string[] {
  const found: string[] = [];
  text.split('\n').forEach((line, index) => {
    for (const { what, pattern } of FORBIDDEN) {
      const match = pattern.exec(line);
      if (!match) continue;
      const allowed = ALLOWED.some(
        (entry) => entry.file.test(file) && entry.pattern.test(match[0]),
      );
      if (!allowed) found.push(`${file}:${index + 1}: ${what} (${match[0]})`);
    }
  });
  return found;
}

function trackedFiles(): string[] {
  return execFileSync('git', ['ls-files', '-z'], { cwd: PROJECT_ROOT, encoding: 'utf8' })
    .split('\0')
    .filter(Boolean);
}

describe('the repository is self-contained', () => {
  test('no tracked file refers outside the repository', () => {
    const files = trackedFiles();
    // The checkout is a git repository holding at least the sources and the docs.
    expect(files).toContain('src/index.ts');
    expect(files).toContain('docs/README.md');
    const found = files.flatMap((file) => {
      const bytes = readFileSync(join(PROJECT_ROOT, file));
      if (bytes.includes(0)) return []; // binary
      return forbiddenReferences(file, bytes.toString('utf8'));
    });
    expect(found).toEqual([]);
  });

  test('the check finds each kind of reference, and allows only what it lists', () => {
    // Assembled from pieces, so that this file does not contain what it looks for.
    const glue = (...parts: string[]) => parts.join('');
    const samples = [
      ['src/a.ts', glue('// see ..', '/shared/data/buildkit')],
      ['src/a.ts', glue('// (DOMAIN', '.md §9)')],
      ['README.md', glue('as DESIGN', '.md says')],
      ['docs/x.md', glue('STYLE', '.md')],
      ['test/a.test.ts', glue("const dir = '/wo", "rk/main/test';")],
      ['test/a.test.ts', glue("readFileSync('/ho", "me/dev/fixtures/x.json')")],
      ['bench/a.ts', glue('/Us', 'ers/someone/project')],
      ['scripts/a.ts', glue('cp x /ro', 'ot/project/')],
      ['examples/app/Dockerfile.not-really/notes.md', glue('/ro', 'ot/x')],
    ];
    for (const [file = '', text = ''] of samples) {
      expect(forbiddenReferences(file, text), `${file}: ${text}`).toHaveLength(1);
    }
    const clean = [
      ['examples/node-service/Dockerfile', glue('RUN --mount=type=cache,target=/ro', 'ot/.npm')],
      ['src/a.ts', '// docs/erosion-and-seed.md'],
      ['test/a.test.ts', "'/fleets/fleet.yml', '/usr/bin/aws', '/etc/x'"],
      ['src/a.ts', glue('const url = "https://example.com/wo', 'rk/items";')],
    ];
    for (const [file = '', text = ''] of clean) {
      expect(forbiddenReferences(file, text), `${file}: ${text}`).toEqual([]);
    }
  });
});
