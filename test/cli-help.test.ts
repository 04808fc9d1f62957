/**
 * The README documents every option the CLI has: each command's `--help` is read, and every long
 * option it lists must appear in the README. A flag added without its documentation fails here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { main } from '../src/cli/main.js';
import { PROJECT_ROOT } from './support/temp-repo.js';

const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
    interactive: false,
  });
  return { code, stdout, stderr };
}

const COMMANDS = [
  ['init'],
  ['generate'],
  ['diff'],
  ['policy', 'preview'],
  ['apply'],
  ['fleet'],
  ['doctor'],
];

describe('--help and the README', () => {
  test.each(COMMANDS)('%s %s: every option of --help is in the README', async (...command) => {
    const { code, stdout } = await run([...command.filter(Boolean), '--help']);
    expect(code).toBe(0);
    const options = [...stdout.matchAll(/(?:^|[ ,])(--[a-z][a-z-]*)/gm)]
      .map((match) => match[1] ?? '')
      .filter((option) => option !== '--help');
    expect(options.length).toBeGreaterThan(0);
    expect(options.filter((option) => !readme.includes(`${option}`))).toEqual([]);
  });

  test('prune --help prints the script usage and exits 0; every command of it is in the README', async () => {
    const { code, stdout, stderr } = await run(['prune', '--help']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toMatch(/^usage:\n/);
    const commands = [...stdout.matchAll(/prune-ecr-cache\.mjs ([a-z-]+)/g)].map((m) => m[1]);
    expect(new Set(commands)).toEqual(
      new Set(['record', 'prune', 'delete-branch', 'sweep-branches']),
    );
    for (const command of commands) expect(readme).toContain(`| \`${command} `);
  });

  test('prune with an unknown command still fails, with the usage', async () => {
    const { code, stderr } = await run(['prune', 'nope']);
    expect(code).toBe(1);
    expect(stderr).toMatch(/unknown command "nope"\nusage:/);
  });
});
