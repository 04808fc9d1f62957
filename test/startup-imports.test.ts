import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;
const bin = join(root, 'bin', 'create-cached-deploy.js');
const hook = join(root, 'test', 'support', 'import-log-hook.mjs');

/** Runs the built CLI with the import-logging hook; returns every module URL it resolved. */
async function modulesLoadedBy(args: string[], cwd: string): Promise<string[]> {
  const log = join(cwd, `imports-${Date.now()}.log`);
  await run('node', ['--import', hook, bin, ...args], {
    cwd,
    env: { ...process.env, IMPORT_LOG: log },
  }).catch((error: { code?: unknown }) => {
    // Exit 2 (out of date) is an answer, not a failure.
    if (error.code !== 2) throw error;
  });
  const urls = readFileSync(log, 'utf8').trim().split('\n');
  rmSync(log);
  return urls;
}

describe('start-up cost', () => {
  let work: string;
  beforeAll(async () => {
    await run('npx', ['tsc', '--build'], { cwd: root });
    work = mkdtempSync(join(tmpdir(), 'cached-deploy-imports-'));
    cpSync(join(root, 'examples', 'node-service'), work, { recursive: true });
    await run(
      'node',
      [
        bin,
        'init',
        '--yes',
        '--account-id',
        '123456789012',
        '--region',
        'eu-west-1',
        '--github-repository',
        'acme/orders',
      ],
      { cwd: work },
    );
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('generate loads neither the AWS SDK nor the prompt library', async () => {
    const urls = await modulesLoadedBy(['generate', '--check'], work);
    // The hook works: the CLI and yaml were seen.
    expect(urls.some((url) => url.endsWith('/lib/cli/main.js'))).toBe(true);
    expect(urls.some((url) => url.includes('/node_modules/yaml/'))).toBe(true);
    expect(urls.filter((url) => url.includes('@aws-sdk') || url.includes('@smithy'))).toEqual([]);
    expect(urls.filter((url) => url.includes('@inquirer'))).toEqual([]);
    // Nor the code hosts' clients, which only --open-pr and --status load.
    expect(urls.filter((url) => /@octokit|@gitbeaker/.test(url))).toEqual([]);
  });

  it('fleet --check loads neither code host client (only --open-pr and --status do)', async () => {
    writeFileSync(join(work, 'fleet.yml'), 'repos: ["."]\npullRequests: { branch: upgrade }\n');
    const urls = await modulesLoadedBy(['fleet', 'fleet.yml', '--check'], work);
    expect(urls.some((url) => url.endsWith('/lib/fleet/run-fleet.js'))).toBe(true);
    expect(
      urls.filter((url) =>
        /@octokit|@gitbeaker|\/fleet\/hosts\/|\/net\/(?:host-connection|gitbeaker)\.js/.test(url),
      ),
    ).toEqual([]);
  });

  it('--version loads no template engine, YAML parser, SDK or prompts', async () => {
    const urls = await modulesLoadedBy(['--version'], work);
    expect(urls.filter((url) => /handlebars|\/yaml\/|@aws-sdk|@inquirer/.test(url))).toEqual([]);
  });
});
