import { Command, CommanderError } from 'commander';
import type { GenerateResult } from '../api/generate.js';
import { isCachedDeployError } from '../errors.js';
import { conflictReason, type FileChange } from '../plan/plan.js';
import { printable } from '../text.js';
import { GENERATOR_VERSION } from '../version.js';

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether a person can answer prompts (stdin and stdout are terminals). */
  interactive: boolean;
}

const defaultIo: Io = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  interactive: Boolean(process.stdin.isTTY && process.stdout.isTTY),
};

/** Exit codes (docs/exit-codes.md): 0 ok / in sync, 1 error, 2 drift or pending changes. */
export const EXIT = { ok: 0, error: 1, drift: 2 } as const;

/**
 * The whole CLI: parses argv, runs one command through the API, returns the exit code. Commands
 * are imported when they run, so `--version` and `generate` load neither the prompt library nor
 * anything they do not use.
 */
export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  let exitCode: number = EXIT.ok;
  const debug = argv.includes('--debug');
  const program = new Command('create-cached-deploy')
    .description(
      'Fast, cheap, safe Docker deploys from CI to Amazon ECR with BuildKit registry cache.',
    )
    .version(GENERATOR_VERSION, '-v, --version')
    .option('--debug', 'print stack traces of unexpected errors')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  program
    .command('init', { isDefault: true })
    .description(
      'detect the repository, ask what cannot be detected, write cached-deploy.yml and every generated file',
    )
    .argument('[dir]', 'repository root', '.')
    .option('-y, --yes', 'accept detected values; never prompt')
    .option('--account-id <id>', 'AWS account id of the ECR registry')
    .option('--region <region>', 'AWS region of the ECR registry (default: $AWS_REGION)')
    .option(
      '--ci <github|gitlab>',
      'the CI that builds: GitHub Actions or GitLab CI (default: from the origin remote)',
    )
    .option(
      '--github-repository <owner/name>',
      'GitHub repository (default: from the origin remote)',
    )
    .option('--gitlab-project <group/name>', 'GitLab project (default: from the origin remote)')
    .option(
      '--gitlab-host <host>',
      'GitLab instance, for self-managed ones (default: from the origin remote, else gitlab.com)',
    )
    .option(
      '--main-branch <name>',
      'branch that deploys and owns the main cache (default: detected)',
    )
    .option(
      '--role-name <name>',
      'the main IAM role (default: <repo>-cached-deploy; the branch and deploy roles are named after it)',
    )
    .option(
      '--image-repository <name>',
      'ECR repository of the image (one-Dockerfile repositories)',
    )
    .option('--deploy-command <command>', 'shell command the deploy job runs on the main branch')
    .option('--force', 'overwrite generated files that were edited by hand')
    .option(
      '--projen',
      'in a projen-managed repository: add the CachedDeploy component to .projenrc.ts instead of writing files',
    )
    .action(async (dir: string, options: Record<string, string | boolean | undefined>) => {
      const { init } = await import('../api/init.js');
      const prompter = io.interactive ? (await import('./prompts.js')).terminalPrompter : undefined;
      const result = await init(dir, {
        yes: Boolean(options.yes),
        accountId: options.accountId as string | undefined,
        region: options.region as string | undefined,
        ci: options.ci as string | undefined,
        githubRepository: options.githubRepository as string | undefined,
        gitlabProject: options.gitlabProject as string | undefined,
        gitlabHost: options.gitlabHost as string | undefined,
        mainBranch: options.mainBranch as string | undefined,
        roleName: options.roleName as string | undefined,
        imageRepository: options.imageRepository as string | undefined,
        deployCommand: options.deployCommand as string | undefined,
        force: Boolean(options.force),
        prompter,
        projen: Boolean(options.projen),
      });
      if (result.projenrc) {
        io.stdout(`${result.projenrc.message}\n`);
        return;
      }
      printChanges(io, result.plan.changes);
      if (result.gitlabInclude) {
        io.stdout(
          `Your .gitlab-ci.yml is your own, so the pipeline is in another file: add this line to .gitlab-ci.yml (its stages must include build, deploy and cleanup):\n  ${result.gitlabInclude}\n`,
        );
      }
      io.stdout(
        result.ci === 'gitlab'
          ? "Next: create GitLab's OIDC identity provider and the IAM roles from ecr/*-role-*.json (README: GitLab CI), run `create-cached-deploy apply`, commit these files, push, and add a weekly pipeline schedule on the main branch (seed.schedule).\n"
          : 'Next: create the IAM roles from ecr/*-role-*.json (docs: Trust separation), run `create-cached-deploy apply`, commit these files, and push.\n',
      );
    });

  program
    .command('generate')
    .description('regenerate every file from cached-deploy.yml (idempotent)')
    .argument('[dir]', 'repository root', '.')
    .option('--check', 'write nothing; exit 2 when a file is out of date')
    .option('--force', 'overwrite generated files that were edited by hand')
    .option(
      '--iac <tool>',
      'also generate infrastructure as code (terraform: <ecrDir>/main.tf); saved in cached-deploy.yml',
    )
    .action(async (dir: string, options: { check?: boolean; force?: boolean; iac?: string }) => {
      const { generate } = await import('../api/generate.js');
      const result = await generate(dir, {
        check: options.check,
        force: options.force,
        iac: options.iac,
      });
      exitCode = reportGenerate(io, result, Boolean(options.check));
    });

  program
    .command('apply')
    .description(
      "make ECR match the committed files: repositories, tag mutability, scan on push, lifecycle policies (previewed first); on GitLab, the seed's pipeline schedule",
    )
    .argument('[dir]', 'repository root', '.')
    .option('--dry-run', 'read and preview only; exit 2 when changes are pending')
    .option('--force', 'put a lifecycle policy even if it would expire images the config protects')
    .option('--json', 'print the report as JSON (formatVersion 1)')
    .option(
      '--gitlab-token <token>',
      "with ci: gitlab: keep the seed's pipeline schedule (default: $GITLAB_TOKEN)",
    )
    .option('--gitlab-url <url>', 'the GitLab instance (default: gitlab.host, else gitlab.com)')
    .action(async (dir: string, options: import('../ecr/cli.js').ApplyCommandOptions) => {
      const { applyCommand } = await import('../ecr/cli.js');
      exitCode = await applyCommand(dir, options, io);
    });

  program
    .command('fleet')
    .description(
      'check, diff or regenerate every repository of a fleet file (defaults, enforce, repos)',
    )
    .argument('<fleet.yml>', 'the fleet file')
    .option('--check', 'write nothing; exit 2 when any repository is out of date (the default)')
    .option('--diff', 'print what --write would change, as one review report for the fleet')
    .option('--write', 'regenerate every repository')
    .option(
      '--status',
      "show each repository's pull request for the branch: state, review, checks; exit 2 while any is open",
    )
    .option('--force', 'overwrite generated files that were edited by hand')
    .option(
      '--branch <name>',
      "with --write: commit on this branch in each repository; with --open-pr, --status: the pull requests' branch",
    )
    .option('--push', 'with --branch: push the branch to origin')
    .option(
      '--open-pr',
      'open or update a pull request (GitLab: merge request) per changed repository; close it once in sync',
    )
    .option('--report <file>', 'also write a markdown report to this file')
    .option('--json', 'print JSON instead of the table (with --diff: instead of the diff)')
    .option('--concurrency <n>', 'repositories processed at once (default: the fleet file)')
    .option(
      '--workers <n>',
      'worker threads besides the main one, for machines with many cores (default 0)',
    )
    .option('--only-failed', 'only the repositories that errored or conflicted last time')
    .option('--shard <i/n>', 'only this share of the fleet (e.g. 2/4), split by a stable hash')
    .option('--work-dir <dir>', 'clones and results (default: the fleet file workDir)')
    .option('--no-fetch', 'do not fetch url repositories that are already cloned')
    .action(async (file: string, options: import('../fleet/cli.js').FleetCommandOptions) => {
      const { fleetCommand } = await import('../fleet/cli.js');
      // The progress bar goes to stderr: redrawn in place only when that is this process's terminal.
      const progressTTY = io === defaultIo && Boolean(process.stderr.isTTY);
      exitCode = await fleetCommand(file, options, { ...io, progressTTY });
    });

  program
    .command('doctor')
    .description(
      "judge each image's seed (age, completeness, imported?) and main (steps builds can reuse), and recommend or trigger a reseed",
    )
    .argument('[dir]', 'repository root', '.')
    .option('--registry-url <url>', 'read from this OCI registry (distribution API) instead of ECR')
    .option('--branch <name>', "also inspect this branch's cache")
    .option('--json', 'print the report as JSON')
    .option(
      '--reseed',
      'when a reseed is recommended, trigger it (workflow_dispatch reseed=true; on GitLab a pipeline with CACHED_DEPLOY_RESEED=true)',
    )
    .option('--github-token <token>', 'token for --reseed (default: $GITHUB_TOKEN)')
    .option('--github-api-url <url>', 'GitHub API base URL (default: https://api.github.com)')
    .option(
      '--gitlab-token <token>',
      'with ci: gitlab, token for --reseed (default: $GITLAB_TOKEN)',
    )
    .option('--gitlab-url <url>', 'the GitLab instance (default: gitlab.host, else gitlab.com)')
    .option(
      '--min-retained <fraction>',
      'main is eroded when builds can reuse less than this share of its steps (default 0.75)',
    )
    .option('--now <iso-date>', 'measure ages against this time instead of the clock')
    .option(
      '--timeout <seconds>',
      'give up on the registry and GitHub or GitLab after this long (default 300)',
    )
    .action(async (dir: string, options: import('../doctor/cli.js').DoctorCommandOptions) => {
      const { doctorCommand } = await import('../doctor/cli.js');
      exitCode = await doctorCommand(dir, options, io);
    });

  program
    .command('diff')
    .description('show what `generate` would change, with policy changes explained in words')
    .argument('[dir]', 'repository root', '.')
    .option('--format <format>', 'unified (default), markdown (a PR comment) or json', 'unified')
    .option(
      '--listing <file...>',
      '`aws ecr describe-images` output: show which images would now expire',
    )
    .option('--repository <name>', 'the ECR repository of a listing whose images name none')
    .option('--live', 'read the images of every repository whose lifecycle policy changes from ECR')
    .option('--max-bytes <n>', 'markdown: upper bound of the comment size (default 60000)')
    .option('--now <iso-date>', 'measure image ages against this time instead of the clock')
    .action(async (dir: string, options: import('../diff/command.js').DiffCommandOptions) => {
      const { runDiff } = await import('../diff/command.js');
      exitCode = await runDiff(dir, options, io);
    });

  program
    .command('policy')
    .description('lifecycle policy tools')
    .command('preview')
    .description('evaluate the generated lifecycle policies locally against image listings')
    .argument('[dir]', 'repository root', '.')
    .option(
      '--listing <file...>',
      '`aws ecr describe-images` output, one file per repository or page',
    )
    .option(
      '--repository <name>',
      'only this ECR repository (and the name of a listing that has none)',
    )
    .option('--live', 'read the listings from ECR (credentials from the AWS SDK chain)')
    .option('--json', 'print JSON (formatVersion 1)')
    .option('--now <iso-date>', 'measure image ages against this time instead of the clock')
    .action(async (dir: string, options: import('../diff/command.js').PreviewCommandOptions) => {
      const { runPolicyPreview } = await import('../diff/command.js');
      exitCode = await runPolicyPreview(dir, options, io);
    });

  program
    .command('prune')
    .description(
      'delete superseded BuildKit cache artifacts (the shipped prune script; run `prune --help` for its usage)',
    )
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]', 'record | prune | delete-branch | sweep-branches, and their options')
    .action(async (args: string[]) => {
      // The command is the shipped script itself, so both always behave the same.
      const { PRUNE_SCRIPT_TEMPLATE } = await import('../render/prune-script.js');
      const script = (await import(PRUNE_SCRIPT_TEMPLATE.href)) as {
        main: (argv: string[], io: object) => Promise<number>;
      };
      exitCode = await script.main(args, { stdout: io.stdout, stderr: io.stderr });
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    return reportError(io, error, debug);
  }
}

function reportGenerate(io: Io, result: GenerateResult, check: boolean): number {
  const pending = result.plan.changes.filter((change) => change.action !== 'unchanged');
  if (check) {
    if (pending.length === 0) {
      io.stdout(`In sync: ${result.plan.changes.length} generated files are up to date.\n`);
      return EXIT.ok;
    }
    for (const change of pending) io.stdout(`out of date: ${change.path} (${describe(change)})\n`);
    io.stdout('Run `npx create-cached-deploy generate` to update them.\n');
    return EXIT.drift;
  }
  if (pending.length === 0)
    io.stdout(`In sync: ${result.plan.changes.length} generated files are up to date.\n`);
  else printChanges(io, result.plan.changes);
  return EXIT.ok;
}

function describe(change: FileChange): string {
  if (change.action !== 'conflict') return `would ${change.action}`;
  return `conflict: ${conflictReason(change).label}`;
}

function printChanges(io: Io, changes: FileChange[]): void {
  for (const change of changes) {
    if (change.action === 'unchanged') continue;
    const verb = { create: 'created', update: 'updated', delete: 'deleted', conflict: 'conflict' }[
      change.action
    ];
    io.stdout(`${verb.padEnd(8)} ${change.path}\n`);
  }
}

function reportError(io: Io, error: unknown, debug: boolean): number {
  if (error instanceof CommanderError) {
    // Help and --version "fail" with exit code 0; usage errors were already printed by commander.
    return error.exitCode === 0 ? EXIT.ok : EXIT.error;
  }
  if (error instanceof Error && error.name === 'ExitPromptError') return 130; // Ctrl-C at a prompt
  // Messages quote files, registries and APIs: printed with every control character escaped, so
  // none of them can move the cursor, recolour or rewrite what the terminal shows.
  if (isCachedDeployError(error)) {
    io.stderr(`create-cached-deploy: ${printable(error.message)}\n`);
    if (error.details) io.stderr(`${printable(error.details, { multiline: true })}\n`);
    if (debug) io.stderr(`${printable(String(error.stack), { multiline: true })}\n`);
    return EXIT.error;
  }
  const message = error instanceof Error ? error.message : String(error);
  io.stderr(
    `create-cached-deploy: unexpected error: ${printable(message.split('\n')[0] ?? '')}${debug ? '' : ' (rerun with --debug for details)'}\n`,
  );
  if (debug && error instanceof Error) {
    io.stderr(`${printable(String(error.stack), { multiline: true })}\n`);
  }
  return EXIT.error;
}
