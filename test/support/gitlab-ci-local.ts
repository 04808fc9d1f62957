// biome-ignore-all lint/suspicious/noTemplateCurlyInString: shell scripts, whose ${…} is not JavaScript's
/**
 * Runs a generated `.gitlab-ci.yml` with gitlab-ci-local (npm; version 4 needs Node >= 22, so it
 * runs on node@22 from npx) with its shell executor: every job's own script runs for real, with
 * bash, in a copy of the repository. Only the tools a runner image would bring are stand-ins, first
 * on PATH: `docker`, `aws`, `apk`, `npm`, `node` and the installed CLI record each call (its
 * arguments and environment, NUL-separated, one file per call) and answer what the scripts read.
 * gitlab-ci-local's own container engine (`--container-executable`, which it asks to start the
 * dind service) is a stand-in too, so no Docker engine is needed.
 *
 * It also carries GitLab's published CI JSON schema (bundled into its dist/index.js, fetched from
 * gitlab-org/gitlab's app/assets/javascripts/editor/schema/ci.json): `gitlabCiSchema()` extracts it.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { parse, stringify } from 'yaml';
import { PROJECT_ROOT } from './temp-repo.js';

export const GITLAB_CI_LOCAL = join(
  PROJECT_ROOT,
  'node_modules',
  'gitlab-ci-local',
  'dist',
  'index.js',
);

let node22: Promise<string> | undefined;

/** The node@22 binary gitlab-ci-local runs on (npx installs it once from the npm registry). */
export function node22Path(): Promise<string> {
  node22 ??= new Promise((resolve, reject) => {
    execFile(
      'npx',
      ['-y', '-p', 'node@22', 'node', '-e', 'process.stdout.write(process.execPath)'],
      { encoding: 'utf8', timeout: 120_000 },
      (error, stdout, stderr) =>
        error ? reject(new Error(`npx node@22: ${error.message}\n${stderr}`)) : resolve(stdout),
    );
  });
  return node22;
}

/** One recorded call of a stand-in. */
export interface Invocation {
  tool: string;
  job: string;
  args: string[];
  env: Record<string, string>;
  /** Order of the calls within a run (nanosecond clock). */
  at: bigint;
}

const STANDIN = [
  '#!/bin/bash',
  'tool=${STANDIN_TOOL:-$(basename "$0")}',
  'unset STANDIN_TOOL',
  'file="$STANDIN_LOG/calls/$(date +%s%N)-$$-$tool"',
  '{ printf \'%s\\0\' "$tool" "${CI_JOB_NAME:-?}" "$#" "$@"; env -0; } >"$file"',
  'case "$tool ${1:-} ${2:-}" in',
  '  "docker buildx version") echo "github.com/docker/buildx v0.25.0 standin" ;;',
  '  "docker login "*) cat >/dev/null ;;',
  '  "docker buildx bake")',
  '    [ -z "${STANDIN_BAKE_FAILS:-}" ] || exit 1',
  '    # --metadata-file: what buildx writes there, each target named on the command line with the',
  '    # digest of its image: sha256 of the target name (standinDigest).',
  '    metadata= targets=() allows=() locals=()',
  '    shift 2',
  '    while [ $# -gt 0 ]; do',
  '      case "$1" in',
  '        --metadata-file) metadata=$2; shift ;;',
  '        --allow) allows+=("$2"); shift ;;',
  '        --set) case "$2" in *type=local*) locals+=("$2") ;; esac; shift ;;',
  '        --file) shift ;;',
  '        -*) ;;',
  '        *) targets+=("$1") ;;',
  '      esac',
  '      shift',
  '    done',
  '    # Since v0.20, bake refuses a local cache path outside the working directory that no',
  '    # --allow fs=, fs.read= (src) or fs.write= (dest) grants (bake/entitlements.go).',
  '    for set in "${locals[@]}"; do',
  '      IFS=, read -ra attrs <<<"${set#*=}"',
  '      for attr in "${attrs[@]}"; do',
  '        case "$attr" in src=*) need=fs.read path=${attr#src=} ;; dest=*) need=fs.write path=${attr#dest=} ;; *) continue ;; esac',
  '        case "$path" in /*) ;; *) continue ;; esac',
  '        case "$path/" in "$PWD"/*) continue ;; esac',
  '        granted=',
  '        for allow in "${allows[@]}"; do',
  '          key=${allow%%=*} value=${allow#*=}',
  '          [ "$key" = fs ] || [ "$key" = "$need" ] || continue',
  '          case "$path/" in "${value%/}"/*) granted=1 ;; esac',
  '          [ "$value" != "*" ] || granted=1',
  '        done',
  '        [ -n "$granted" ] || { echo "ERROR: additional privileges requested: $need=$path" >&2; exit 1; }',
  '      done',
  '    done',
  '    if [ -n "$metadata" ]; then',
  '      { printf \'{"buildx.build.ref": "standin/standin/0"\'',
  '        for target in "${targets[@]}"; do',
  '          printf \', "%s": {"containerimage.digest": "sha256:%s", "image.name": "standin"}\' "$target" "$(printf \'%s\' "$target" | sha256sum | cut -c1-64)"',
  '        done',
  '        printf \'}\\n\'; } >"$metadata"',
  '    fi ;;',
  '  "aws ecr get-login-password")',
  '    # The CLI assumes AWS_ROLE_ARN with the token in AWS_WEB_IDENTITY_TOKEN_FILE.',
  '    [ -n "${AWS_ROLE_ARN:-}" ] && [ -s "${AWS_WEB_IDENTITY_TOKEN_FILE:-/nonexistent}" ] || exit 253',
  '    echo standin-password ;;',
  '  "aws ecr describe-images")',
  '    [ -n "${AWS_ROLE_ARN:-}" ] && [ -s "${AWS_WEB_IDENTITY_TOKEN_FILE:-/nonexistent}" ] || exit 253',
  '    # STANDIN_IMAGES_EXIST: every commit tag is in ECR already (a re-run of the commit).',
  '    if [ -n "${STANDIN_IMAGES_EXIST:-}" ]; then echo "sha256:standin"; exit 0; fi',
  '    echo "An error occurred (ImageNotFoundException) when calling the DescribeImages operation" >&2',
  '    exit 254 ;;',
  '  "npm install "*)',
  '    # npm install --prefix DIR … create-cached-deploy@V: the CLI, a stand-in too.',
  '    prefix=',
  '    while [ $# -gt 0 ]; do [ "$1" = --prefix ] && prefix=$2; shift; done',
  '    mkdir -p "$prefix/node_modules/.bin"',
  '    ln -s "$STANDIN_BIN/standin" "$prefix/node_modules/.bin/create-cached-deploy" ;;',
  '  "node "*)',
  '    # The pruner: what sweep-branches is given to read is recorded too.',
  '    while [ $# -gt 0 ]; do',
  '      [ "$1" = --branches-file ] && cp "$2" "$file.branches"',
  '      shift',
  '    done ;;',
  'esac',
  'exit 0',
].join('\n');

const ENGINE = [
  '#!/bin/bash',
  'printf \'%s\\n\' "$*" >>"$STANDIN_LOG/engine"',
  'case "$1 ${2:-}" in',
  '  "image inspect") echo \'[{"Config":{}}]\' ;;',
  '  "network create") echo standin-network ;;',
  '  "run "*|"create "*) echo standin-container ;;',
  'esac',
  'exit 0',
].join('\n');

/** The digest the docker stand-in's bake reports for a target's image. */
export function standinDigest(target: string): string {
  return `sha256:${createHash('sha256').update(target, 'utf8').digest('hex')}`;
}

/** Writes the stand-ins into `dir` and returns it (put it first on PATH). */
export function writeStandins(dir: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'standin'), STANDIN, { mode: 0o755 });
  writeFileSync(join(dir, 'engine'), ENGINE, { mode: 0o755 });
  for (const tool of ['docker', 'aws', 'apk', 'npm', 'node']) {
    writeFileSync(
      join(dir, tool),
      `#!/bin/bash\nSTANDIN_TOOL=${tool} exec "${join(dir, 'standin')}" "$@"\n`,
    );
    chmodSync(join(dir, tool), 0o755);
  }
  return dir;
}

export interface PipelineRun {
  exitCode: number;
  output: string;
  /** Jobs that finished, by their status line. */
  passed: string[];
  failed: string[];
  invocations: Invocation[];
}

/**
 * Runs the whole pipeline gitlab-ci-local selects for `variables` (CI_PIPELINE_SOURCE and the
 * predefined variables a push, a merge request or a schedule would set) in `repo`.
 */
export async function runPipeline(options: {
  repo: string;
  standins: string;
  logDir: string;
  variables: Record<string, string>;
  unset?: string[];
  env?: Record<string, string>;
  /**
   * Whether the workflow's rules create this pipeline (workflowCreatesPipelines): when false,
   * nothing runs and no job is reported, as on GitLab.
   */
  created: boolean;
}): Promise<PipelineRun> {
  const node = await node22Path();
  mkdirSync(join(options.logDir, 'calls'), { recursive: true });
  if (options.created === false) {
    return { exitCode: 0, output: 'no pipeline', passed: [], failed: [], invocations: [] };
  }
  const args = [
    GITLAB_CI_LOCAL,
    '--force-shell-executor',
    '--container-executable',
    join(options.standins, 'engine'),
    '--no-color',
    // The test validates against the same schema with ajv, once per file instead of once a run.
    '--no-json-schema-validation',
    '--max-job-name-padding',
    '0',
    ...Object.entries(options.variables).flatMap(([name, value]) => [
      '--variable',
      `${name}=${value}`,
    ]),
    ...(options.unset ?? []).flatMap((name) => ['--unset-variable', name]),
  ];
  const env: NodeJS.ProcessEnv = {
    PATH: `${options.standins}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: options.logDir,
    LANG: 'C.UTF-8',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    STANDIN_LOG: options.logDir,
    STANDIN_BIN: options.standins,
    GCL_IGNORE_PREDEFINED_VARS: Object.keys(options.variables).join(','),
    ...options.env,
  };
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
    execFile(
      node,
      args,
      { cwd: options.repo, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
          output: `${stdout}${stderr}`,
        }),
    );
  });
  const status = (word: string) =>
    [...output.matchAll(new RegExp(`^ ${word} {1,2}(\\S+)`, 'gm'))].map((match) => match[1] ?? '');
  return {
    exitCode: code,
    output,
    passed: status('PASS').sort(),
    failed: status('FAIL').sort(),
    invocations: readInvocations(options.logDir),
  };
}

/**
 * The top-level `workflow: rules:` and `variables:` of the pipeline in `repo`: its .gitlab-ci.yml's,
 * or, when it has no `workflow`, those of the first local file it includes that has one (GitLab
 * merges included files under the including one, whose keys win).
 */
function workflowOf(repo: string): { rules?: unknown[]; variables: Record<string, unknown> } {
  const read = (path: string) =>
    (parse(readFileSync(join(repo, path), 'utf8')) ?? {}) as Record<string, unknown>;
  const main = read('.gitlab-ci.yml');
  const includes = ([] as unknown[]).concat(main.include ?? []).flatMap((entry) => {
    const local = typeof entry === 'string' ? entry : (entry as { local?: string }).local;
    return local !== undefined && existsSync(join(repo, local)) ? [read(local)] : [];
  });
  const files = [main, ...includes];
  const rules = files.find((file) => file.workflow !== undefined)?.workflow as
    | { rules?: unknown[] }
    | undefined;
  const variables = Object.assign(
    {},
    ...files.reverse().map((file) => (file.variables ?? {}) as Record<string, unknown>),
  );
  return { rules: rules?.rules, variables };
}

/** The predefined variables one pipeline has: set ones, and ones GitLab leaves unset. */
export interface PipelineVariables {
  variables: Record<string, string>;
  unset?: string[];
}

/**
 * Whether GitLab would create each of the pipelines at all: gitlab-ci-local reads `workflow:
 * rules:` only for the variables they set, and runs the jobs even when the rules say `never`. So
 * the rules are evaluated by gitlab-ci-local's own rule evaluator, as the rules of probe jobs in a
 * pipeline of their own, one job per pipeline with that pipeline's variables as job variables (which
 * rules read as GitLab's do), all in one run. Pipelines whose file has no `workflow` are created.
 */
export async function workflowCreatesPipelines(
  repo: string,
  scratch: string,
  pipelines: readonly PipelineVariables[],
): Promise<boolean[]> {
  const { rules, variables } = workflowOf(repo);
  if (rules === undefined) return pipelines.map(() => true);
  const node = await node22Path();
  const probe = join(scratch, 'workflow-probe');
  mkdirSync(probe, { recursive: true });
  const jobs = Object.fromEntries(
    pipelines.map((pipeline, index) => [
      `probe-${index}`,
      { variables: pipeline.variables, rules, script: ['true'] },
    ]),
  );
  writeFileSync(join(probe, '.gitlab-ci.yml'), stringify({ variables, ...jobs }));
  const run = (command: string, args: string[], env: NodeJS.ProcessEnv) =>
    new Promise<string>((resolve, reject) =>
      execFile(
        command,
        args,
        { cwd: probe, encoding: 'utf8', timeout: 60_000, env },
        (error, stdout, stderr) =>
          error
            ? reject(new Error(`workflow probe: ${command}: ${error.message}\n${stderr}`))
            : resolve(stdout),
      ),
    );
  const gitEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' };
  const identity = ['-c', 'user.name=probe', '-c', 'user.email=probe@example.com'];
  await run('git', [...identity, 'init', '-q', '-b', 'main'], gitEnv);
  await run('git', [...identity, 'add', '-A'], gitEnv);
  await run('git', [...identity, 'commit', '-q', '-m', 'probe'], gitEnv);
  // Every variable any pipeline sets or leaves unset is left to the probe jobs' own variables.
  const names = new Set(
    pipelines.flatMap((pipeline) => [
      ...Object.keys(pipeline.variables),
      ...(pipeline.unset ?? []),
    ]),
  );
  const listed = await run(node, [GITLAB_CI_LOCAL, '--list-json'], {
    PATH: process.env.PATH,
    HOME: scratch,
    GCL_IGNORE_PREDEFINED_VARS: [...names].join(','),
  });
  const verdicts = new Map(
    (JSON.parse(listed) as { name: string; when: string }[]).map((job) => [job.name, job.when]),
  );
  return pipelines.map((_, index) => {
    const when = verdicts.get(`probe-${index}`);
    if (when === undefined) throw new Error(`workflow probe: no probe-${index} in ${listed}`);
    return when !== 'never';
  });
}

/** The calls the stand-ins recorded under `logDir`, in order. */
export function readInvocations(logDir: string): Invocation[] {
  const dir = join(logDir, 'calls');
  return readdirSync(dir)
    .filter((name) => !name.endsWith('.branches'))
    .map((name) => {
      const fields = readFileSync(join(dir, name), 'utf8').split('\0');
      const [tool = '', job = '', count = '0'] = fields;
      const args = fields.slice(3, 3 + Number(count));
      const env: Record<string, string> = {};
      for (const entry of fields.slice(3 + Number(count))) {
        const eq = entry.indexOf('=');
        if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
      }
      let branches: string | undefined;
      try {
        branches = readFileSync(join(dir, `${name}.branches`), 'utf8');
      } catch {
        branches = undefined;
      }
      if (branches !== undefined) env.STANDIN_BRANCHES_FILE = branches;
      return { tool, job, args, env, at: BigInt(name.split('-')[0] ?? '0') };
    })
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

/**
 * GitLab's CI JSON schema as gitlab-ci-local bundles it: the object literal whose `$id` is
 * `https://gitlab.com/.gitlab-ci.yml`, cut out of dist/index.js by matching braces (outside
 * strings) and evaluated in an empty context.
 */
export function gitlabCiSchema(): Record<string, unknown> {
  const source = readFileSync(GITLAB_CI_LOCAL, 'utf8');
  const marker = source.indexOf('$id:"https://gitlab.com/.gitlab-ci.yml"');
  if (marker < 0) throw new Error('gitlab-ci-local no longer bundles the GitLab CI schema');
  const start = source.lastIndexOf('{', marker);
  let depth = 0;
  let quote: string | undefined;
  for (let i = start; i < source.length; i++) {
    const char = source[i];
    if (quote) {
      if (char === '\\') i++;
      else if (char === quote) quote = undefined;
      continue;
    }
    if (char === '"' || char === "'" || char === '`') quote = char;
    else if (char === '{') depth++;
    else if (char === '}' && --depth === 0) {
      return runInNewContext(`(${source.slice(start, i + 1)})`, {}) as Record<string, unknown>;
    }
  }
  throw new Error('unbalanced GitLab CI schema in gitlab-ci-local');
}
