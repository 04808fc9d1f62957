import { CachedDeployError } from '../errors.js';
import { quoteForMessage } from '../text.js';
import { DOCTOR_EXIT, doctor } from './doctor.js';
import { formatDoctorReport } from './format.js';

/** What `create-cached-deploy doctor` parses from its flags (commander's camelCase names). */
export interface DoctorCommandOptions {
  registryUrl?: string;
  branch?: string;
  json?: boolean;
  reseed?: boolean;
  githubToken?: string;
  githubApiUrl?: string;
  gitlabToken?: string;
  gitlabUrl?: string;
  minRetained?: string;
  now?: string;
  timeout?: string;
}

export interface DoctorIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/**
 * The CLI shell of `doctor`: the report (table, or JSON with --json) on stdout; returns the exit
 * code: 0 healthy, 2 degraded, 1 error (a cache that could not be read, or a failed reseed).
 */
export async function doctorCommand(
  dir: string,
  options: DoctorCommandOptions,
  io: DoctorIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const report = await doctor(dir, {
    branch: options.branch,
    registryUrl: options.registryUrl,
    reseed: Boolean(options.reseed),
    githubToken: options.githubToken ?? (env.GITHUB_TOKEN || undefined),
    githubApiUrl: options.githubApiUrl,
    gitlabToken: options.gitlabToken ?? (env.GITLAB_TOKEN?.trim() || undefined),
    gitlabUrl: options.gitlabUrl,
    minRetained: options.minRetained === undefined ? undefined : fraction(options.minRetained),
    now: options.now === undefined ? undefined : date(options.now),
    timeoutMs: options.timeout === undefined ? undefined : seconds(options.timeout) * 1000,
  });
  io.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report));
  return DOCTOR_EXIT[report.status];
}

function fraction(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) {
    throw new CachedDeployError('USAGE', `--min-retained: "${text}" is not a number`);
  }
  return value;
}

function seconds(text: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) {
    throw new CachedDeployError(
      'USAGE',
      `--timeout: ${quoteForMessage(text)} is not a positive number of seconds`,
    );
  }
  return value;
}

function date(text: string): Date {
  const value = new Date(text);
  if (Number.isNaN(value.getTime())) {
    throw new CachedDeployError('USAGE', `--now: "${text}" is not an ISO 8601 date`);
  }
  return value;
}
