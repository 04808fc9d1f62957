/**
 * What the bench scripts share: building lib/, a repository initialised from the example, and a
 * child process measured by GNU time.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const root = new URL('..', import.meta.url).pathname;
export const bin = join(root, 'bin', 'create-cached-deploy.js');

/** Builds lib/ (incremental): a stale one would measure old code. */
export function buildLib(): void {
  try {
    execFileSync('npx', ['tsc', '--build'], { cwd: root, stdio: 'ignore' });
  } catch {
    console.error('warning: `npx tsc --build` reported errors; measuring the lib/ it emitted');
  }
}

/** A copy of examples/node-service at `dir`, a git repository on main, initialised by the CLI. */
export function initExample(dir: string, githubRepository: string): void {
  cpSync(join(root, 'examples', 'node-service'), dir, { recursive: true });
  execFileSync('git', ['init', '-q', '-b', 'main'], { cwd: dir });
  execFileSync(
    process.execPath,
    [
      bin,
      'init',
      '--yes',
      '--account-id',
      '123456789012',
      '--region',
      'eu-west-1',
      '--github-repository',
      githubRepository,
    ],
    { cwd: dir, stdio: 'ignore' },
  );
}

export interface Measured {
  wallMs: number;
  maxRssKb: number;
  stdout: string;
  stderr: string;
  code: number | null;
}

/**
 * Runs `command` under /usr/bin/time (GNU time), reading its wall time here and its peak RSS from
 * the file time writes into `scratch`.
 */
export function measureUnderTime(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  scratch: string,
): Promise<Measured> {
  const timeFile = join(scratch, `time-${process.hrtime.bigint()}`);
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%M', '-o', timeFile, command, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({
        wallMs: Number(process.hrtime.bigint() - start) / 1e6,
        maxRssKb: Number(readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        code,
      });
    });
  });
}
