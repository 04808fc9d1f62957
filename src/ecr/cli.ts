import type { ApplyOptions } from '../api/apply.js';
import { exitCodeOf } from './apply-ecr.js';
import { formatApplyReport } from './format.js';

export interface ApplyCommandOptions {
  dryRun?: boolean;
  force?: boolean;
  json?: boolean;
  gitlabToken?: string;
  gitlabUrl?: string;
}

export interface ApplyIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/**
 * The CLI shell of `apply`: the summary (or with `--json` the report, formatVersion 1) on stdout,
 * the reason of a refusal or failure also on stderr. Returns the exit code: 0 in sync or applied,
 * 1 error or refusal, 2 changes pending (`--dry-run`).
 */
export async function applyCommand(
  dir: string,
  options: ApplyCommandOptions,
  io: ApplyIo,
  extra: Omit<ApplyOptions, 'dryRun' | 'force'> = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const { apply } = await import('../api/apply.js');
  const { report } = await apply(dir, {
    ...extra,
    dryRun: Boolean(options.dryRun),
    force: Boolean(options.force),
    gitlabToken: options.gitlabToken ?? (env.GITLAB_TOKEN?.trim() || undefined),
    ...(options.gitlabUrl === undefined ? {} : { gitlabUrl: options.gitlabUrl }),
  });
  io.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatApplyReport(report));
  if (report.status === 'failed')
    io.stderr(`create-cached-deploy: apply failed: ${report.error}\n`);
  if (report.status === 'refused') {
    io.stderr(
      'create-cached-deploy: apply refused: a new lifecycle policy would expire images the config protects (rerun with --force to put it anyway)\n',
    );
  }
  return exitCodeOf(report);
}
