import { join } from 'node:path';
import { Document, parseDocument } from 'yaml';
import type { Prompter } from '../cli/prompts.js';
import { checkConfigAgainstRepo, parseConfig } from '../config/load.js';
import { CONFIG_FILE, DEFAULT_GITLAB_HOST, GITLAB_CI_FILE } from '../config/resolve.js';
import {
  ACCOUNT_ID,
  BRANCH_NAME,
  CI_KINDS,
  DEPLOY_COMMAND,
  ECR_REPOSITORY,
  GITHUB_REPOSITORY,
  GITLAB_BRANCH_NAME,
  GITLAB_PROJECT,
  HOST_NAME,
  IAM_ROLE_NAME,
  REGION,
} from '../config/schema.js';
import { type Checker, string } from '../config/validate.js';
import {
  detectRepo,
  hasPreferredStage,
  imageNameFor,
  pickTargetStage,
  sanitizeName,
} from '../detect/detect-repo.js';
import { CachedDeployError } from '../errors.js';
import type { Plan } from '../plan/plan.js';
import { planForConfig, throwOnConflicts } from '../plan/plan-repository.js';
import type { ProjenrcEdit } from '../projen/projenrc.js';
import { renderFiles } from '../render/render-files.js';
import { RepoFiles } from '../repo-files.js';
import { quoteForMessage } from '../text.js';
import { GENERATOR_VERSION } from '../version.js';
import { writePlan } from '../write/write-files.js';

export interface InitOptions {
  /** Accept detected values without asking. */
  yes?: boolean;
  accountId?: string;
  region?: string;
  /** `github` or `gitlab` (detected from the origin remote; GitHub when it cannot tell). */
  ci?: string;
  /** owner/name of the GitHub repository (detected from the origin remote). */
  githubRepository?: string;
  /** group/name of the GitLab project (detected from the origin remote). */
  gitlabProject?: string;
  /** The GitLab instance's host name (detected from the origin remote; default gitlab.com). */
  gitlabHost?: string;
  mainBranch?: string;
  roleName?: string;
  /** ECR repository for the deployable image (one-image repositories only). */
  imageRepository?: string;
  deployCommand?: string;
  force?: boolean;
  /** Asks for what cannot be detected; undefined means never ask (no TTY). */
  prompter?: Prompter;
  version?: string;
  env?: NodeJS.ProcessEnv;
  /**
   * In a projen-managed repository: add the CachedDeploy component to .projenrc.ts instead of
   * writing cached-deploy.yml and the files (`npx projen` writes them). Writes nothing else.
   */
  projen?: boolean;
}

export interface InitResult {
  plan: Plan;
  configPath: string;
  /** With `projen`: what was done to .projenrc.ts. The plan is then what `npx projen` will write. */
  projenrc?: ProjenrcEdit;
  /**
   * GitLab, when the repository has a `.gitlab-ci.yml` of its own: the pipeline was written to
   * another file, and this is the `include:` to add to `.gitlab-ci.yml`.
   */
  gitlabInclude?: string;
  /** The CI the files were generated for. */
  ci?: 'github' | 'gitlab';
}

/** Detects, asks what it must, writes cached-deploy.yml and every artifact, all or nothing. */
export async function init(dir: string, options: InitOptions = {}): Promise<InitResult> {
  // Flags reach cached-deploy.yml, then the workflow: checked here, named by their flag.
  checkFlag('--main-branch', options.mainBranch, BRANCH_NAME);
  if (options.ci !== undefined && !(CI_KINDS as readonly string[]).includes(options.ci)) {
    throw new CachedDeployError(
      'USAGE',
      `--ci: ${quoteForMessage(options.ci)} is not allowed (allowed: ${CI_KINDS.join(', ')})`,
    );
  }
  checkFlag(
    '--gitlab-project',
    options.gitlabProject,
    string({ pattern: GITLAB_PROJECT, hint: 'a GitLab project path such as group/name' }),
  );
  checkFlag(
    '--gitlab-host',
    options.gitlabHost,
    string({ pattern: HOST_NAME, hint: 'a host name such as gitlab.example.com' }),
  );
  checkFlag('--deploy-command', options.deployCommand, DEPLOY_COMMAND);
  checkFlag(
    '--role-name',
    options.roleName,
    string({ pattern: IAM_ROLE_NAME, hint: 'a valid IAM role name' }),
  );
  if (options.projen) (await import('../projen/projenrc.js')).findProjenrc(dir);
  const facts = detectRepo(dir, options.env);
  if (facts.dockerfiles.length === 0) {
    throw new CachedDeployError(
      'NO_DOCKERFILE',
      `${dir}: no Dockerfile found (looked for Dockerfile, Dockerfile.*, *.Dockerfile and Containerfile up to ${4} levels deep)`,
    );
  }
  const configPath = join(dir, CONFIG_FILE);
  const existingText = new RepoFiles(dir).read(CONFIG_FILE);
  const existing =
    existingText === undefined
      ? undefined
      : (parseDocument(existingText).toJS() as ExistingConfig | null);

  const ask = options.yes ? undefined : options.prompter;
  const answer = async (
    flag: string,
    given: string | undefined,
    detected: string | undefined,
    question: { message: string; pattern: RegExp; hint: string },
  ): Promise<string> => {
    const validate = (value: string) =>
      question.pattern.test(value) || `${quoteForMessage(value)} is not ${question.hint}`;
    if (given !== undefined) {
      const verdict = validate(given);
      if (verdict !== true) throw new CachedDeployError('USAGE', `${flag}: ${verdict}`);
      return given;
    }
    // Detected values are used as they are (a flag overrides them); only the rest is asked.
    if (detected !== undefined && validate(detected) === true) return detected;
    if (ask) return ask.input({ message: question.message, default: detected, validate });
    throw new CachedDeployError(
      'MISSING_VALUE',
      `${flag} is required: it cannot be detected, and ${options.yes ? '--yes does not ask' : 'there is no terminal to ask on'}`,
    );
  };

  const accountId = await answer('--account-id', options.accountId, existing?.aws?.accountId, {
    message: 'AWS account id of the ECR registry',
    pattern: ACCOUNT_ID,
    hint: 'a 12-digit AWS account id',
  });
  const region = await answer('--region', options.region, existing?.aws?.region ?? facts.region, {
    message: 'AWS region of the ECR registry',
    pattern: REGION,
    hint: 'an AWS region such as eu-west-1',
  });
  // Said, or already in cached-deploy.yml, or what origin points at; GitHub when nothing tells.
  const ci = (options.ci ??
    existing?.ci ??
    (options.githubRepository || existing?.github
      ? 'github'
      : options.gitlabProject || existing?.gitlab || facts.gitlab
        ? 'gitlab'
        : 'github')) as 'github' | 'gitlab';
  let source: Answers['source'];
  if (ci === 'gitlab') {
    const project = await answer(
      '--gitlab-project',
      options.gitlabProject,
      existing?.gitlab?.project ?? facts.gitlab?.project,
      { message: 'GitLab project (group/name)', pattern: GITLAB_PROJECT, hint: 'group/name' },
    );
    const host = options.gitlabHost ?? existing?.gitlab?.host ?? facts.gitlab?.host;
    const mainBranch =
      options.mainBranch ?? existing?.gitlab?.mainBranch ?? facts.defaultBranch ?? 'main';
    checkFlag('--main-branch', mainBranch, GITLAB_BRANCH_NAME);
    source = { ci, project, host: host === DEFAULT_GITLAB_HOST ? undefined : host, mainBranch };
  } else {
    const repository = await answer(
      '--github-repository',
      options.githubRepository,
      existing?.github?.repository ?? facts.githubRepository,
      { message: 'GitHub repository (owner/name)', pattern: GITHUB_REPOSITORY, hint: 'owner/name' },
    );
    const mainBranch =
      options.mainBranch ?? existing?.github?.mainBranch ?? facts.defaultBranch ?? 'main';
    source = { ci, repository, mainBranch };
  }
  const repoName =
    (source.ci === 'github' ? source.repository.split('/')[1] : source.project.split('/').at(-1)) ??
    'app';
  // A .gitlab-ci.yml of the repository's own is never overwritten: the pipeline goes to a file
  // it includes (the user adds one line).
  const includeFile =
    ci === 'gitlab' && facts.foreignGitlabCi && existing?.workflow?.file === undefined
      ? GITLAB_INCLUDE_FILE
      : undefined;

  const images =
    existing?.images ??
    (await Promise.all(
      facts.dockerfiles.map(async (dockerfile, index) => {
        const name = uniqueName(
          imageNameFor(dockerfile.path, repoName),
          facts.dockerfiles.slice(0, index).map((d) => imageNameFor(d.path, repoName)),
        );
        const named = dockerfile.stages.flatMap((stage) => (stage.name ? [stage.name] : []));
        let target = pickTargetStage(dockerfile.stages);
        // Several named stages and none conventionally named for deploying: ask which one.
        if (ask && named.length > 1 && !hasPreferredStage(dockerfile.stages)) {
          target = await ask.select({
            message: `Stage of ${dockerfile.path} to deploy`,
            choices: named.map((stage) => ({ name: stage, value: stage })),
            default: target,
          });
        }
        const single = facts.dockerfiles.length === 1;
        const repository =
          single && options.imageRepository
            ? options.imageRepository
            : sanitizeName(
                single || name === repoName ? repoName : `${repoName}-${name}`,
                200,
              ).replace(/^(.)$/, '$1-app');
        if (!ECR_REPOSITORY.test(repository)) {
          throw new CachedDeployError(
            'USAGE',
            `--image-repository: "${repository}" is not a valid ECR repository name`,
          );
        }
        const dir = dockerfile.path.includes('/')
          ? dockerfile.path.slice(0, dockerfile.path.lastIndexOf('/'))
          : '.';
        return {
          name,
          context: dir,
          dockerfile: dockerfile.path,
          ...(target ? { target } : {}),
          platforms: ['linux/amd64'],
          repository,
        };
      }),
    ));

  const deployCommand =
    options.deployCommand ??
    existing?.workflow?.deploy?.command ??
    (ask
      ? (await ask.input({
          message: 'Deploy command run on the main branch after the push (empty for none)',
          default: '',
          validate: (value) => (value === '' ? true : (flagProblem(value, DEPLOY_COMMAND) ?? true)),
        })) || undefined
      : undefined);

  const text = configText(existingText, {
    accountId,
    region,
    roleName: options.roleName,
    source,
    workflowFile: includeFile,
    images,
    deployCommand,
    version: options.version ?? GENERATOR_VERSION,
  });
  const config = parseConfig(text);
  checkConfigAgainstRepo(config, dir);
  const plan = planForConfig(dir, config, renderFiles(config, options.version), options);
  if (options.projen) {
    // projen writes the files on `npx projen`; here only .projenrc.ts is edited.
    await throwOnConflicts(plan);
    const { addToProjenrc } = await import('../projen/projenrc.js');
    return { plan, configPath, projenrc: addToProjenrc(dir, text) };
  }
  plan.changes.unshift({
    path: CONFIG_FILE,
    action: existingText === undefined ? 'create' : existingText === text ? 'unchanged' : 'update',
    before: existingText,
    after: text,
  });
  await throwOnConflicts(plan);
  writePlan(dir, plan);
  const included = config.ci === 'gitlab' && config.workflow.file !== GITLAB_CI_FILE;
  return {
    plan,
    configPath,
    ci: config.ci,
    ...(included ? { gitlabInclude: gitlabIncludeLine(config.workflow.file) } : {}),
  };
}

/** Where init puts the GitLab pipeline when the repository has a .gitlab-ci.yml of its own. */
export const GITLAB_INCLUDE_FILE = '.gitlab/cached-deploy.yml';

/** The line to add to .gitlab-ci.yml to include the generated pipeline. */
export function gitlabIncludeLine(file: string): string {
  return `include: [{ local: ${file} }]`;
}

/** Why `value` fails `check` (the schema's message without its prefix), or undefined. */
function flagProblem(value: string, check: Checker<string>): string | undefined {
  try {
    check(value, '', '');
    return undefined;
  } catch (error) {
    if (!(error instanceof CachedDeployError)) throw error;
    return error.message.replace(/^: /, '');
  }
}

function checkFlag(flag: string, value: string | undefined, check: Checker<string>): void {
  if (value === undefined) return;
  const problem = flagProblem(value, check);
  if (problem !== undefined) throw new CachedDeployError('USAGE', `${flag}: ${problem}`);
}

interface ExistingConfig {
  ci?: string;
  aws?: { accountId?: string; region?: string };
  github?: { repository?: string; mainBranch?: string };
  gitlab?: { project?: string; host?: string; mainBranch?: string };
  images?: Record<string, unknown>[];
  workflow?: { file?: string; deploy?: { command?: string } };
}

function uniqueName(name: string, taken: string[]): string {
  let candidate = name;
  for (let n = 2; taken.includes(candidate); n++) candidate = `${name.slice(0, 29)}-${n}`;
  return candidate;
}

interface Answers {
  accountId: string;
  region: string;
  roleName: string | undefined;
  source:
    | { ci: 'github'; repository: string; mainBranch: string }
    | { ci: 'gitlab'; project: string; host: string | undefined; mainBranch: string };
  /** The pipeline's file, when not the default. */
  workflowFile: string | undefined;
  images: unknown[];
  deployCommand: string | undefined;
  version: string;
}

/**
 * cached-deploy.yml with only what init knows; everything else keeps its default (so a fleet can
 * change it centrally). Re-running init edits an existing file in place, keeping its comments and
 * every field init does not ask about.
 */
function configText(existingText: string | undefined, answers: Answers): string {
  const document = existingText === undefined ? new Document({}) : parseDocument(existingText);
  if (existingText === undefined) {
    document.commentBefore = [
      " create-cached-deploy: the single source of truth for this repository's cached deploys.",
      ' Edit it, then run `npx create-cached-deploy generate`. Every field is documented in the',
      ' create-cached-deploy README; omitted sections (cache, deployImages, buildkit, workflow,',
      ' seed, prune, paths, ecr, iac) take their defaults.',
    ].join('\n');
  }
  document.setIn(['version'], 1);
  document.setIn(['generator'], answers.version);
  document.setIn(['aws', 'accountId'], answers.accountId);
  document.setIn(['aws', 'region'], answers.region);
  if (answers.roleName) document.setIn(['aws', 'roleName'], answers.roleName);
  const { source } = answers;
  if (source.ci === 'gitlab') {
    document.setIn(['ci'], 'gitlab');
    document.setIn(['gitlab', 'project'], source.project);
    if (source.host) document.setIn(['gitlab', 'host'], source.host);
    document.setIn(['gitlab', 'mainBranch'], source.mainBranch);
  } else {
    // GitHub is the default: an explicit `ci: github` a user wrote stays.
    document.setIn(['github', 'repository'], source.repository);
    document.setIn(['github', 'mainBranch'], source.mainBranch);
  }
  if (answers.workflowFile) document.setIn(['workflow', 'file'], answers.workflowFile);
  if (!document.hasIn(['images'])) document.setIn(['images'], answers.images);
  if (answers.deployCommand)
    document.setIn(['workflow', 'deploy', 'command'], answers.deployCommand);
  return withSchemaComments(document.toString({ lineWidth: 0 }), answers.version);
}

/**
 * The JSON Schema of cached-deploy.yml for editors, pinned to the version that wrote the file, so
 * the editor knows exactly the fields this version accepts. A URL rather than a path into
 * node_modules: most repositories that deploy containers have no node_modules (init runs through
 * npx). A published npm version never changes, so editors can keep the schema once fetched.
 */
export function configSchemaUrl(version: string): string {
  return `https://unpkg.com/create-cached-deploy@${version}/schemas/cached-deploy.schema.json`;
}

/**
 * The comments that name it: Red Hat's YAML language server (VS Code and others) reads the
 * `yaml-language-server` modeline, JetBrains IDEs the `$schema:` comment.
 */
export function schemaComments(version: string): string[] {
  const url = configSchemaUrl(version);
  return [`# yaml-language-server: $schema=${url}`, `# $schema: ${url}`];
}

const SCHEMA_COMMENT = /^# (?:yaml-language-server: \$schema=|\$schema: )(\S*)[ \t]*$/;
const OUR_SCHEMA =
  /^https:\/\/unpkg\.com\/create-cached-deploy@[^/]+\/schemas\/cached-deploy\.schema\.json$/;

/**
 * `text` starting with the schema comments of this version: ours for another version are
 * replaced; a schema comment naming another schema is the user's choice, and then nothing changes.
 */
function withSchemaComments(text: string, version: string): string {
  const lines = text.split('\n');
  const schemaOf = (line: string) => SCHEMA_COMMENT.exec(line)?.[1];
  const named = lines.map(schemaOf).filter((url) => url !== undefined);
  if (named.some((url) => !OUR_SCHEMA.test(url))) return text;
  const rest = lines.filter((line) => schemaOf(line) === undefined);
  return [...schemaComments(version), ...rest].join('\n');
}
