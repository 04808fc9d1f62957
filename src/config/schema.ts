import { CachedDeployError } from '../errors.js';
import { ACTION_REPOSITORIES, type ActionRepository, COMMIT_SHA } from '../model/actions.js';
import { GITLAB_CI_PATH } from '../render/layout.js';
import { quoteForMessage } from '../text.js';
import { jsonPattern, nullable } from './json-schema.js';
import { CONFIG_FILE } from './resolve.js';
import {
  boolean,
  type Checker,
  checker,
  describe,
  fail,
  integer,
  join,
  list,
  literal,
  object,
  oneOf,
  string,
} from './validate.js';

/**
 * The shape of cached-deploy.yml. Only `aws`, `github` and `images` are required; every other
 * section has defaults (see `DEFAULTS` in resolve.ts), so a repository's file holds only what is
 * particular to it and a fleet can change the rest in one place.
 */

export const ACCOUNT_ID = /^\d{12}$/;
// Commercial, China, GovCloud and ISO partitions: xx(-gov|-iso…)-direction-N.
export const REGION = /^(?:[a-z]{2})(?:-(?:gov|isob?|isof))?-[a-z]+-\d{1,2}$/;
// ECR repository name: lowercase components separated by ., _ or -, optionally namespaced.
export const ECR_REPOSITORY =
  /^(?=.{2,256}$)(?:[a-z0-9]+(?:[._-][a-z0-9]+)*\/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
export const IAM_ROLE_NAME = /^[\w+=,.@-]{1,64}$/;
export const GITHUB_REPOSITORY = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})\/[A-Za-z0-9._-]{1,100}$/;
/**
 * A GitLab project's full path, `group/subgroup/project` (GitLab's path rules: letters, digits,
 * `_`, `-` and `.`, not starting with `-` or `.`, not ending with `.`). It reaches the OIDC `sub`
 * the trust policies compare and a string comparison in the pipeline's rules, so nothing else.
 */
export const GITLAB_PROJECT =
  /^(?=.{3,255}$)(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?\/){1,20}[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?$/;
/** A host name without port or path (an IAM OIDC provider URL has neither), lowercase. */
export const HOST_NAME =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;
/** An OIDC audience: URL characters, no `$` (GitLab would expand a variable in `aud`) or quotes. */
export const OIDC_AUDIENCE_VALUE = /^[A-Za-z0-9._~:/@%+=,-]{1,255}$/;
/** A GitLab runner tag: no `$` (GitLab expands variables in `tags`), quotes or control characters. */
export const RUNNER_TAG = /^[A-Za-z0-9][A-Za-z0-9 ._:/@+=-]{0,254}$/;
// Image (bake target) names become part of cache tags after a '.', so they must not contain one:
// that is what keeps `<scope>.<image>` unambiguous (see model/cache-tags.ts).
export const IMAGE_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
export const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/;
// A pinned image reference: a tag other than latest, or a digest (no tag at all means latest).
export const PINNED_IMAGE =
  /^[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::(?!latest$)[\w][\w.-]{0,127}(?:@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})$/;
/** How an image's platforms are built: one job per platform, or all in one job with QEMU. */
export const PLATFORM_BUILDS = ['native', 'emulated'] as const;
export const DOCKERFILE_STAGE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

const checkRelativePath = (value: unknown, path: string, source: string): string => {
  const text = string()(value, path, source);
  if (text.startsWith('/') || /^[A-Za-z]:[\\/]/.test(text) || text.split(/[\\/]/).includes('..')) {
    throw pathOutsideRepo(source, path, text);
  }
  // Paths reach YAML, HCL and (quoted) shell lines of the workflow: letters, digits and a few
  // punctuation marks only, so no `$`, quote, backslash or `${{` can turn one into code.
  if (!SAFE_PATH.test(text)) {
    fail(
      source,
      path,
      `${quoteForMessage(text)} may only contain letters, digits, spaces and . _ @ + / -`,
    );
  }
  // .git holds hooks and config that git runs: a generated file there is code execution, and no
  // input belongs there either. Any spelling a filesystem might fold to ".git" counts.
  if (text.split('/').some((part) => /^\.git[. ]*$/i.test(part))) {
    fail(
      source,
      path,
      `${quoteForMessage(text)} is inside .git; create-cached-deploy never reads or writes there`,
    );
  }
  return text;
};

const SAFE_PATH = /^[A-Za-z0-9._@+/ -]+$/;
const relativePath = checker(checkRelativePath, {
  type: 'string',
  minLength: 1,
  // Not absolute, no ".." segment (a drive letter or a backslash fails SAFE_PATH anyway), no
  // component that a filesystem may fold to ".git".
  pattern: `^(?!/)(?!(?:.*/)?\\.\\.(?:/|$))(?!(?:.*/)?\\.[gG][iI][tT][. ]*(?:/|$))${jsonPattern(SAFE_PATH).slice(1)}`,
  description:
    'A path relative to the repository root, without ".." and not inside .git: letters, digits, spaces and . _ @ + / - only.',
});

/** A path the tool writes: a relative path that is not cached-deploy.yml itself. */
const outputPath = checker(
  (value, path, source) => {
    const text = relativePath(value, path, source);
    const normalized = text
      .split('/')
      .filter((part) => part !== '' && part !== '.')
      .join('/');
    if (normalized === CONFIG_FILE) {
      fail(source, path, `"${text}" would overwrite ${CONFIG_FILE}; choose another path`);
    }
    return text;
  },
  {
    ...relativePath.jsonSchema,
    // cached-deploy.yml however it is spelt: `./cached-deploy.yml`, `cached-deploy.yml/`.
    // `type: string`: a `not` of a bare pattern would also refuse null, which means "absent".
    not: { type: 'string', pattern: '^(?:\\.?/)*cached-deploy\\.yml(?:/\\.?)*$' },
    description: `${relativePath.jsonSchema.description} Not ${CONFIG_FILE} itself.`,
  },
);

/**
 * One line of text that reaches the workflow's YAML and GitHub's expression evaluation (a name, a
 * runner label): no `${{` (an expression GitHub would evaluate, with whatever it can read), no
 * newline or other control character (which would end the YAML value or hide text on a terminal).
 */
function oneLineText(maxLength: number, what: string) {
  return string({
    maxLength,
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
    pattern: /^(?![\s\S]*\$\{\{)[^\u0000-\u001f\u007f-\u009f\u2028\u2029]+$/,
    hint: `${what}: one line, without control characters or \${{ }} expressions`,
  });
}

/** A runner label (`runs-on`): text that reaches the workflow's YAML. */
const runnerLabel = oneLineText(200, 'a runner label');

export function pathOutsideRepo(source: string, path: string, text: string) {
  return new PathOutsideRepoError(
    `${source}: ${path}: ${quoteForMessage(text)} points outside the repository (use a path relative to the repository root, without "..")`,
  );
}

class PathOutsideRepoError extends CachedDeployError {
  constructor(message: string) {
    super('PATH_OUTSIDE_REPO', message);
  }
}

// Branch names as git accepts them (git check-ref-format --branch), minus what never makes sense
// for a deploy branch. Only used for names we write into triggers and comparisons, so `${{` (which
// GitHub would read as the start of an expression there) is refused too.
export const BRANCH_NAME = string({
  pattern:
    /^(?!-)(?!.*(?:\.\.|@\{|\/\/|\/\.|\.lock(?:\/|$)|\$\{\{))[^\0-\x20\x7f-\x9f~^:?*[\\]+(?<![./])$/,
  hint: 'a valid git branch name without "${{"',
});
/**
 * The main branch of a GitLab project: a git branch name without `$` (GitLab expands variables in
 * many keywords) or quotes, so it is plain text wherever the pipeline names it.
 */
export const GITLAB_BRANCH_NAME = string({
  pattern:
    /^(?!-)(?!.*(?:\.\.|@\{|\/\/|\/\.|\.lock(?:\/|$)))[^\0-\x20\x7f-\x9f~^:?*[\\$"'`]+(?<![./])$/,
  hint: 'a valid git branch name without $, quotes or backquotes',
});
// Branch filters in `on.push.branches` may use GitHub's glob characters.
const BRANCH_FILTER = string({
  pattern: /^(?!.*\$\{\{)[^\0-\x20\x7f-\x9f~^:\\]+$/,
  hint: 'a branch name or GitHub branch filter pattern without "${{"',
});

// The deploy job's shell command.
export const DEPLOY_COMMAND = string({
  maxLength: 10000,
  // Newlines and tabs are shell; other control characters (escape sequences, CR) only
  // ever hide what the command does from someone reading it.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
  pattern: /^(?![\s\S]*\$\{\{)[^\u0000-\u0008\u000b-\u001f\u007f-\u009f]+$/,
  // biome-ignore lint/suspicious/noTemplateCurlyInString: names GitHub's syntax, not a template
  hint: 'a shell command without ${{ }} expressions or control characters other than newlines and tabs (read REGISTRY and IMAGE_TAG from the environment)',
});

/**
 * Five POSIX cron fields, as GitHub's `schedule` takes them: each a `*`, a number, a range or a
 * list of them, optionally with a `/step`; months and weekdays also by name. Values are checked
 * against each field's range, so `0 25 * * 1` is an error here rather than a workflow GitHub
 * rejects.
 */
const CRON_FIELDS: readonly { name: string; min: number; max: number; names?: string[] }[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  {
    name: 'month',
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { name: 'day of week', min: 0, max: 6, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

const checkCronSchedule = (value: unknown, path: string, source: string): string => {
  const text = string()(value, path, source);
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 5) {
    fail(
      source,
      path,
      `${quoteForMessage(text)} is not a cron expression with five fields, such as "0 4 * * 1"`,
    );
  }
  fields.forEach((field, index) => {
    const spec = CRON_FIELDS[index];
    if (!spec || !cronFieldIsValid(field, spec)) {
      fail(
        source,
        path,
        `${quoteForMessage(text)}: the ${spec?.name} field ${quoteForMessage(field, 20)} is not valid (${spec?.min}-${spec?.max})`,
      );
    }
  });
  return text;
};

const cronSchedule = checker(checkCronSchedule, {
  type: 'string',
  minLength: 1,
  pattern: cronPattern(),
  description:
    'Five cron fields (minute hour day-of-month month day-of-week), as GitHub\'s `schedule` takes them, such as "0 4 * * 1". Whether a range ends before it starts is checked by create-cached-deploy only.',
});

/**
 * checkCronSchedule's rules as one regular expression, for the JSON Schema: every field's numbers
 * in range (leading zeros allowed, as Number() reads them), names in any case, ranges, lists and
 * steps. The one rule it leaves out is that a range's start is not after its end.
 */
function cronPattern(): string {
  const field = (spec: (typeof CRON_FIELDS)[number]) => {
    const numbers: string[] = [];
    for (let n = spec.max; n >= spec.min; n--) numbers.push(String(n));
    const names = (spec.names ?? []).map((name) =>
      [...name].map((c) => `[${c}${c.toUpperCase()}]`).join(''),
    );
    const value = `(?:0*(?:${numbers.join('|')})${names.map((name) => `|${name}`).join('')})`;
    const item = `(?:\\*|${value}(?:-${value})?)(?:/[1-9][0-9]*)?`;
    return `${item}(?:,${item})*`;
  };
  return `^\\s*${CRON_FIELDS.map(field).join('\\s+')}\\s*$`;
}

function cronFieldIsValid(field: string, spec: (typeof CRON_FIELDS)[number]): boolean {
  const value = (part: string) => {
    const byName = spec.names?.indexOf(part.toLowerCase()) ?? -1;
    if (byName >= 0) return byName + spec.min;
    return /^\d+$/.test(part) ? Number(part) : Number.NaN;
  };
  const inRange = (n: number) => Number.isInteger(n) && n >= spec.min && n <= spec.max;
  return field.split(',').every((item) => {
    const [range = '', step, ...extra] = item.split('/');
    if (extra.length > 0 || (step !== undefined && !/^[1-9]\d*$/.test(step))) return false;
    if (range === '*') return true;
    const [from = '', to, ...more] = range.split('-');
    if (more.length > 0) return false;
    if (to === undefined) return inRange(value(from));
    return inRange(value(from)) && inRange(value(to)) && value(from) <= value(to);
  });
}

const commitSha = string({
  pattern: COMMIT_SHA,
  hint: 'a full commit SHA (40 lowercase hex digits, as `git rev-parse` prints it)',
});

/**
 * `workflow.pinActions`: `true` pins every action to the commit of the release this package
 * ships, or a mapping from action (`actions/checkout`) to the user's own commit SHA. Only full
 * SHAs: a tag or a short SHA can be made to point at other code.
 */
const actionPins = checker(
  (value, path, source): boolean | Partial<Record<ActionRepository, string>> => {
    if (typeof value === 'boolean') return value;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail(
        source,
        path,
        `expected true, false or a mapping from action to commit SHA, got ${describe(value)}`,
      );
    }
    const pins: Partial<Record<ActionRepository, string>> = {};
    for (const [action, sha] of Object.entries(value)) {
      const where = join(path, action);
      if (!(ACTION_REPOSITORIES as readonly string[]).includes(action)) {
        fail(
          source,
          where,
          `not an action the workflow uses (known: ${ACTION_REPOSITORIES.join(', ')})`,
        );
      }
      if (sha === null || sha === undefined) continue;
      pins[action as ActionRepository] = commitSha(sha, where, source);
    }
    return pins;
  },
  {
    anyOf: [
      { type: 'boolean' },
      {
        type: 'object',
        properties: Object.fromEntries(
          ACTION_REPOSITORIES.map((action) => [action, nullable(commitSha.jsonSchema)]),
        ),
        additionalProperties: false,
      },
    ],
  },
);

const imageSchema = object(
  {
    name: string({
      pattern: IMAGE_NAME,
      hint: 'a bake target name ([a-z0-9][a-z0-9_-]*, at most 32 characters, no dots)',
    }),
    context: relativePath,
    dockerfile: relativePath,
    target: string({ pattern: DOCKERFILE_STAGE, hint: 'a Dockerfile stage name' }),
    // At most 32 characters: a platform is part of its cache tags (`<scope>.<image>.<platform>`),
    // which must leave room for a branch's slug within Docker's 128.
    platforms: list(
      string({ pattern: PLATFORM, maxLength: 32, hint: 'a platform such as linux/amd64' }),
      {
        min: 1,
        unique: true,
      },
    ),
    // How the platforms are built (docs/multi-platform.md): `native`, one job per platform on a
    // runner of that platform (the default with more than one); `emulated`, every platform in the
    // one build job, with QEMU.
    build: oneOf(PLATFORM_BUILDS),
    repository: string({ pattern: ECR_REPOSITORY, hint: 'a valid ECR repository name' }),
    cacheRepository: string({ pattern: ECR_REPOSITORY, hint: 'a valid ECR repository name' }),
    // Where branch builds and pull requests read and write their own caches: a repository of its
    // own, because IAM cannot restrict a role by image tag (docs/trust-separation.md).
    branchCacheRepository: string({ pattern: ECR_REPOSITORY, hint: 'a valid ECR repository name' }),
  },
  [
    'context',
    'dockerfile',
    'target',
    'platforms',
    'build',
    'cacheRepository',
    'branchCacheRepository',
  ],
);

/**
 * A mapping from platform (`linux/arm64`) to a value `each` checks; a platform mapped to null is
 * left out (it keeps its default).
 */
function byPlatform<T>(
  each: Checker<T>,
  what: string,
  description: string,
): Checker<Record<string, T>> {
  return checker(
    (value, path, source): Record<string, T> => {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        fail(source, path, `expected a mapping from platform to ${what}, got ${describe(value)}`);
      }
      const mapped: Record<string, T> = {};
      for (const [platform, entry] of Object.entries(value)) {
        const where = join(path, platform);
        if (!PLATFORM.test(platform) || platform.length > 32) {
          fail(source, where, `${quoteForMessage(platform)} is not a platform such as linux/arm64`);
        }
        if (entry === null || entry === undefined) continue;
        mapped[platform] = each(entry, where, source);
      }
      return mapped;
    },
    {
      type: 'object',
      propertyNames: { pattern: jsonPattern(PLATFORM), maxLength: 32 },
      additionalProperties: nullable(each.jsonSchema),
      description,
    },
  );
}

/**
 * `workflow.runners`: the runner label of each platform a native build runs on, for the platforms
 * whose GitHub-hosted default (DEFAULT_PLATFORM_RUNNERS) is not wanted, or that have none.
 */
const platformRunners = byPlatform(
  runnerLabel,
  'runner label',
  'The runner label each platform of a native build runs on (default: linux/amd64 on ubuntu-24.04, linux/arm64 on ubuntu-24.04-arm).',
);

/** GitLab runner tags: every job's (`gitlab.tags`), or what a platform's jobs add to them. */
const runnerTags = list(
  string({
    pattern: RUNNER_TAG,
    hint: 'a runner tag (letters, digits, spaces and . _ : / @ + = -, no $)',
  }),
  { unique: true, max: 20 },
);

/**
 * `gitlab.runnerTags`: the runner tags each platform's native build and seed jobs add to
 * `gitlab.tags`, which is how GitLab picks a runner of that architecture (GitLab has no runner
 * labels: a job runs on a runner that has every tag it lists). An empty list: `gitlab.tags` alone.
 */
const platformRunnerTags = byPlatform(
  runnerTags,
  'a list of runner tags',
  "The runner tags each platform's native build and seed jobs add to gitlab.tags (default on gitlab.com, when gitlab.tags is empty: GitLab's hosted runners, linux/amd64 on saas-linux-small-amd64 and linux/arm64 on saas-linux-small-arm64).",
);

export const CI_KINDS = ['github', 'gitlab'] as const;

const configFields = object(
  {
    version: literal(1),
    generator: string({ pattern: /^[\w.+-]{1,64}$/, hint: 'a version such as 0.1.0' }),
    aws: object(
      {
        accountId: string({ pattern: ACCOUNT_ID, hint: 'a 12-digit AWS account id' }),
        region: string({ pattern: REGION, hint: 'an AWS region such as eu-west-1' }),
        roleName: string({ pattern: IAM_ROLE_NAME, hint: 'a valid IAM role name' }),
        branchRoleName: string({ pattern: IAM_ROLE_NAME, hint: 'a valid IAM role name' }),
        deployRoleName: string({ pattern: IAM_ROLE_NAME, hint: 'a valid IAM role name' }),
      },
      ['roleName', 'branchRoleName', 'deployRoleName'],
    ),
    // Which CI runs the builds: GitHub Actions (the `github` section) or GitLab CI (`gitlab`).
    ci: oneOf(CI_KINDS),
    github: object(
      {
        repository: string({
          pattern: GITHUB_REPOSITORY,
          hint: 'owner/name of the GitHub repository',
        }),
        mainBranch: BRANCH_NAME,
      },
      ['mainBranch'],
    ),
    gitlab: object(
      {
        project: string({
          pattern: GITLAB_PROJECT,
          hint: 'the full path of the GitLab project, such as group/subgroup/project',
        }),
        host: string({
          pattern: HOST_NAME,
          hint: 'the host name of the GitLab instance, such as gitlab.com (lowercase, no port)',
        }),
        mainBranch: GITLAB_BRANCH_NAME,
        audience: string({
          pattern: OIDC_AUDIENCE_VALUE,
          hint: 'an OIDC audience such as https://gitlab.com (URL characters, no $)',
        }),
        tags: runnerTags,
        // The runner tags a native platform's jobs add to `tags` (docs/multi-platform.md).
        runnerTags: platformRunnerTags,
      },
      ['host', 'mainBranch', 'audience', 'tags', 'runnerTags'],
    ),
    images: list(imageSchema, { min: 1, max: 20 }),
    cache: object(
      {
        branchRetentionDays: integer(1, 3650),
        untaggedRetentionDays: integer(1, 3650),
      },
      ['branchRetentionDays', 'untaggedRetentionDays'],
    ),
    deployImages: object(
      {
        keep: integer(1, 10000),
        untaggedRetentionDays: integer(1, 3650),
      },
      ['keep', 'untaggedRetentionDays'],
    ),
    buildkit: object(
      {
        image: string({
          pattern: PINNED_IMAGE,
          hint: 'a pinned BuildKit image such as moby/buildkit:v0.27.0 (a version tag or digest, not latest)',
        }),
      },
      ['image'],
    ),
    workflow: object(
      {
        file: outputPath,
        name: oneLineText(100, 'a workflow name'),
        runsOn: runnerLabel,
        runners: platformRunners,
        on: object(
          {
            push: list(BRANCH_FILTER, { unique: true }),
            pullRequest: boolean(),
            workflowDispatch: boolean(),
          },
          ['push', 'pullRequest', 'workflowDispatch'],
        ),
        deploy: object(
          {
            // Expressions inside run: are how script injection happens; the deploy step gets
            // REGISTRY and IMAGE_TAG through env instead (see DEPLOY_COMMAND).
            command: DEPLOY_COMMAND,
            environment: string({ pattern: /^[\w. -]{1,255}$/, hint: 'a GitHub environment name' }),
          },
          ['environment'],
        ),
        pinActions: actionPins,
      },
      ['file', 'name', 'runsOn', 'runners', 'on', 'deploy', 'pinActions'],
    ),
    seed: object(
      {
        enabled: boolean(),
        schedule: cronSchedule,
      },
      ['enabled', 'schedule'],
    ),
    prune: object(
      {
        sweep: boolean(),
        graceHours: integer(1, 720),
        failOnError: boolean(),
      },
      ['sweep', 'graceHours', 'failOnError'],
    ),
    paths: object(
      {
        bakeFile: outputPath,
        ecrDir: outputPath,
        stateFile: outputPath,
        pruneScript: outputPath,
      },
      ['bakeFile', 'ecrDir', 'stateFile', 'pruneScript'],
    ),
    // The repositories' own settings: what `apply` (and ecr/main.tf with `iac: terraform`) gives
    // them. Cache tags are always rewritten in place, so the cache repository is either MUTABLE or
    // IMMUTABLE_WITH_EXCLUSION with every cache tag (main.*, seed.*, br-*) excluded.
    ecr: object(
      {
        imageTagMutability: oneOf(['IMMUTABLE', 'MUTABLE'] as const),
        cacheTagMutability: oneOf(['MUTABLE', 'IMMUTABLE_WITH_EXCLUSION'] as const),
        scanOnPush: boolean(),
      },
      ['imageTagMutability', 'cacheTagMutability', 'scanOnPush'],
    ),
    // `terraform`: also generate <ecrDir>/main.tf (repositories, lifecycle policies, CI roles).
    iac: oneOf(['none', 'terraform'] as const),
  },
  [
    'version',
    'generator',
    'ci',
    'github',
    'gitlab',
    'cache',
    'deployImages',
    'buildkit',
    'workflow',
    'seed',
    'prune',
    'paths',
    'ecr',
    'iac',
  ],
);

/**
 * cached-deploy.yml: the fields, and the section of the chosen CI. `ci: gitlab` needs `gitlab`;
 * without `ci` (GitHub Actions, the default) `github` is required. The other section is not read.
 */
export const configSchema = checker(
  (value, path, source) => {
    const raw = configFields(value, path, source);
    const ci = raw.ci ?? 'github';
    if (ci === 'gitlab' && raw.gitlab === undefined) {
      fail(source, join(path, 'gitlab'), 'is required with ci: gitlab');
    }
    const file = raw.workflow?.file;
    if (ci === 'gitlab' && file !== undefined && !GITLAB_CI_PATH.test(file)) {
      fail(
        source,
        join(path, 'workflow.file'),
        `${quoteForMessage(file)}: with ci: gitlab the pipeline is .gitlab-ci.yml or a .yml file under .gitlab/ (to include from .gitlab-ci.yml)`,
      );
    }
    if (ci === 'github' && raw.github === undefined) {
      fail(source, join(path, 'github'), 'is required (or set ci: gitlab and a gitlab section)');
    }
    return raw;
  },
  {
    ...configFields.jsonSchema,
    allOf: [
      {
        if: { type: 'object', properties: { ci: { const: 'gitlab' } }, required: ['ci'] },
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's keyword, not a thenable
        then: {
          type: 'object',
          required: ['gitlab'],
          properties: {
            gitlab: { type: 'object' },
            workflow: {
              type: ['object', 'null'],
              properties: {
                file: { type: ['string', 'null'], pattern: jsonPattern(GITLAB_CI_PATH) },
              },
            },
          },
        },
        else: { type: 'object', required: ['github'], properties: { github: { type: 'object' } } },
      },
    ],
  },
);

/** cached-deploy.yml as written: what the schema accepts, before defaults. */
export type RawConfig = ReturnType<typeof configSchema>;
