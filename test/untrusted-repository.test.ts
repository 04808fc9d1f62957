/**
 * A repository is input written by someone else. Its state file, symlinks, special files and
 * config values must never make the CLI read, print, write or delete anything outside the files it
 * generates. Every test here runs real commands (the API, the in-process CLI, or the CLI in a child
 * process where a runaway read must be bounded) on real files in temporary directories, with an
 * `outside/` directory next to the repository that must never change or leak.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { generate } from '../src/api/generate.js';
import { init } from '../src/api/init.js';
import { parseConfig } from '../src/config/load.js';
import { formatMarkdown } from '../src/diff/format.js';
import { CachedDeployError } from '../src/errors.js';
import type { FleetResult } from '../src/fleet/run-fleet.js';
import { formatSummaryMarkdown, formatSummaryTable } from '../src/fleet/summary.js';
import { hashContent } from '../src/plan/state.js';
import { runMain } from './support/run-main.js';
import { createTempDir, PROJECT_ROOT, snapshotDir } from './support/temp-repo.js';

const SECRET = 'SECRET-7f3a9c51';
const STATE = '.cached-deploy/state.json';
const GENERATED = [
  '.github/workflows/deploy.yml',
  'docker-bake.hcl',
  'ecr/cache-lifecycle-policy.json',
  'ecr/branch-cache-lifecycle-policy.json',
  'ecr/image-lifecycle-policy.json',
  'ecr/main-role-policy.json',
  'ecr/main-role-trust-policy.json',
  'ecr/branch-role-policy.json',
  'ecr/branch-role-trust-policy.json',
  'scripts/prune-ecr-cache.mjs',
  'scripts/prune-ecr-cache.package.json',
  'scripts/prune-ecr-cache.package-lock.json',
];
const CONFIG = {
  aws: { accountId: '123456789012', region: 'eu-west-1' },
  github: { repository: 'acme/app' },
  images: [{ name: 'app', repository: 'acme/app' }],
};

interface World {
  /** Holds repo/ and outside/: snapshotted whole. */
  root: string;
  repo: string;
  outside: string;
  /** Fleet files, reports and work directories live here, apart from `root`. */
  scratch: string;
}

/** A generated repository next to an outside/ directory holding files with the secret. */
async function makeWorld(config: object = CONFIG): Promise<World> {
  const root = createTempDir();
  const repo = join(root, 'repo');
  const outside = join(root, 'outside');
  mkdirSync(repo);
  mkdirSync(outside);
  writeFileSync(join(repo, 'Dockerfile'), 'FROM scratch\n');
  writeFileSync(join(repo, 'cached-deploy.yml'), stringify(config));
  await generate(repo);
  writeFileSync(join(outside, 'victim.txt'), `victim ${SECRET}\n`);
  writeFileSync(join(outside, 'secret.txt'), `{"rules": "${SECRET}"}\n`);
  writeFileSync(join(outside, 'iam-policy.json'), `{"victim": "${SECRET}"}\n`);
  return { root, repo, outside, scratch: createTempDir() };
}

function addStateKey(repo: string, key: string, content: string): void {
  const state = JSON.parse(readFileSync(join(repo, STATE), 'utf8'));
  state.files[key] = hashContent(content);
  writeFileSync(join(repo, STATE), `${JSON.stringify(state, null, 2)}\n`);
}

interface Run {
  code: number;
  /** Everything the command printed and wrote outside the repository (reports, results). */
  output: string;
  /** The one-line error: stderr's first line, or the fleet repository's message. */
  error: string;
}

/** The commands a repository goes through, each reading (and maybe writing) it. */
const COMMANDS: Record<string, (world: World) => Promise<Run>> = {
  generate: (w) => cli(['generate', w.repo]),
  'generate --force': (w) => cli(['generate', w.repo, '--force']),
  'generate --check': (w) => cli(['generate', w.repo, '--check']),
  'init --yes': (w) =>
    cli([
      'init',
      w.repo,
      '--yes',
      '--account-id',
      '123456789012',
      '--region',
      'eu-west-1',
      '--github-repository',
      'acme/app',
    ]),
  'diff --format unified': (w) => cli(['diff', w.repo]),
  'diff --format markdown': (w) => cli(['diff', w.repo, '--format', 'markdown']),
  'diff --format json': (w) => cli(['diff', w.repo, '--format', 'json']),
  'fleet --check': (w) => fleet(w, ['--check']),
  'fleet --diff': (w) => fleet(w, ['--diff']),
  'fleet --write': (w) => fleet(w, ['--write']),
};

async function cli(argv: string[]): Promise<Run> {
  const { code, stdout, stderr } = await runMain(argv);
  const error = (stderr.split('\n')[0] ?? '').replace(/^create-cached-deploy: /, '');
  return { code, output: stdout + stderr, error };
}

/** `fleet` over this one repository, with a markdown report; the results file counts as output. */
async function fleet(world: World, args: string[]): Promise<Run> {
  const file = join(world.scratch, 'fleet.yml');
  const workDir = join(world.scratch, 'work');
  writeFileSync(file, stringify({ workDir, repos: [{ path: world.repo, name: 'app' }] }));
  const report = join(world.scratch, 'report.md');
  rmSync(report, { force: true });
  const { code, stdout, stderr } = await runMain(['fleet', file, ...args, '--report', report]);
  const results = readFileSync(join(workDir, 'last-run.fleet.json'), 'utf8');
  const message = JSON.parse(results).repositories.app.message as string;
  return { code, output: stdout + stderr + readFileSync(report, 'utf8') + results, error: message };
}

/** The command failed with one line naming `what`, leaked nothing and changed nothing. */
async function expectRefused(world: World, command: string, what: RegExp): Promise<void> {
  const before = snapshotDir(world.root, { includeGit: true });
  const run = await COMMANDS[command]?.(world);
  if (!run) throw new Error(`no command ${command}`);
  expect(run.code, `${command}: ${run.output}`).toBe(1);
  expect(run.error, command).toMatch(what);
  expect(run.output, command).not.toContain(SECRET);
  expect(snapshotDir(world.root, { includeGit: true }), command).toEqual(before);
}

describe('state file keys are data, never paths to read or delete', () => {
  /** key → what it names (relative to the world), so its hash can be recorded. */
  const HOSTILE: [string, (w: World) => { key: string; content: string }][] = [
    ['a relative path out of the repository', (w) => victim(w, '../outside/victim.txt')],
    ['an absolute path', (w) => victim(w, join(w.outside, 'victim.txt'))],
    ['a path that leaves and re-enters', (w) => victim(w, 'ecr/../../outside/victim.txt')],
    ['a Windows path', (w) => victim(w, '..\\outside\\victim.txt')],
    [
      'a file in .git',
      (w) => {
        mkdirSync(join(w.repo, '.git'), { recursive: true });
        writeFileSync(join(w.repo, '.git', 'config'), `[core]\n# ${SECRET}\n`);
        return { key: '.git/config', content: `[core]\n# ${SECRET}\n` };
      },
    ],
    [
      'a source file of the repository',
      (w) => {
        writeFileSync(join(w.repo, 'Dockerfile'), `FROM scratch\n# ${SECRET}\n`);
        return { key: 'Dockerfile', content: `FROM scratch\n# ${SECRET}\n` };
      },
    ],
    [
      'cached-deploy.yml itself',
      (w) => ({
        key: 'cached-deploy.yml',
        content: readFileSync(join(w.repo, 'cached-deploy.yml'), 'utf8'),
      }),
    ],
    [
      'a generated name through a symlinked parent',
      (w) => {
        symlinkSync('../outside', join(w.repo, 'link'));
        return { key: 'link/iam-policy.json', content: `{"victim": "${SECRET}"}\n` };
      },
    ],
  ];

  function victim(w: World, key: string) {
    return { key, content: readFileSync(join(w.outside, 'victim.txt'), 'utf8') };
  }

  test.each(HOSTILE)(
    '%s: every command refuses it in one line and touches nothing',
    async (_, make) => {
      const world = await makeWorld();
      const { key, content } = make(world);
      addStateKey(world.repo, key, content);
      const names = new RegExp(
        `^${escapeRegex(STATE)}: .*${escapeRegex(JSON.stringify(key))}.*(?:not a file create-cached-deploy generates|symbolic link|outside)`,
      );
      for (const command of Object.keys(COMMANDS)) {
        // The fleet reports it as the repository's error, prefixed the same way.
        await expectRefused(world, command, names);
      }
    },
  );

  test('a cloned fleet repository whose state file names a file on the fleet host', async () => {
    const world = await makeWorld();
    // The clone lives in <scratch>/<work dir>/repos/<name>; the key climbs to the world's outside/.
    const key = relative(
      join(world.scratch, 'work', 'repos', 'x'),
      join(world.outside, 'victim.txt'),
    );
    addStateKey(world.repo, key, readFileSync(join(world.outside, 'victim.txt'), 'utf8'));
    const remote = bareRemoteOf(world.repo, join(world.scratch, 'remote.git'));
    const file = join(world.scratch, 'fleet.yml');
    writeFileSync(
      file,
      stringify({ workDir: join(world.scratch, 'work'), repos: [{ url: remote, name: 'app' }] }),
    );
    const before = snapshotDir(world.root, { includeGit: true });
    const { code, stdout, stderr } = await runMain([
      'fleet',
      file,
      '--write',
      '--branch',
      'cached-deploy/update',
    ]);
    expect(code).toBe(1);
    const results = readFileSync(join(world.scratch, 'work', 'last-run.fleet.json'), 'utf8');
    expect(JSON.parse(results).repositories.app.message).toMatch(
      new RegExp(`^${escapeRegex(STATE)}: .*${escapeRegex(JSON.stringify(key))}`),
    );
    expect(stdout + stderr + results).not.toContain(SECRET);
    expect(snapshotDir(world.root, { includeGit: true })).toEqual(before);
  });

  test('orphans that were ours are still deleted: a renamed paths.bakeFile, iac terraform -> none, a renamed ecrDir', async () => {
    const world = await makeWorld();
    writeFileSync(
      join(world.repo, 'cached-deploy.yml'),
      stringify({ ...CONFIG, paths: { bakeFile: 'build/bake.hcl' }, iac: 'terraform' }),
    );
    const diff = await cli(['diff', world.repo]);
    expect(diff.output).toMatch(/^--- a\/docker-bake\.hcl$/m);
    const first = await generate(world.repo);
    expect(first.plan.changes.find((change) => change.path === 'docker-bake.hcl')?.action).toBe(
      'delete',
    );
    expect(existsSync(join(world.repo, 'docker-bake.hcl'))).toBe(false);
    expect(existsSync(join(world.repo, 'ecr/main.tf'))).toBe(true);
    writeFileSync(join(world.repo, 'cached-deploy.yml'), stringify({ ...CONFIG, iac: 'none' }));
    await generate(world.repo);
    expect(existsSync(join(world.repo, 'ecr/main.tf'))).toBe(false);
    expect(existsSync(join(world.repo, 'build/bake.hcl'))).toBe(false);
    expect(existsSync(join(world.repo, 'docker-bake.hcl'))).toBe(true);
    // A renamed ecrDir: the seven policy files go together (JSON carries no marker).
    writeFileSync(
      join(world.repo, 'cached-deploy.yml'),
      stringify({ ...CONFIG, paths: { ecrDir: 'infra/ecr' } }),
    );
    const moved = await generate(world.repo);
    expect(moved.plan.changes.filter((change) => change.action === 'delete').length).toBe(7);
    expect(existsSync(join(world.repo, 'ecr/main-role-policy.json'))).toBe(false);
    expect(existsSync(join(world.repo, 'infra/ecr/main-role-policy.json'))).toBe(true);
  });

  test('a key shaped like a generated file but without our marker is left alone and never shown', async () => {
    const world = await makeWorld();
    mkdirSync(join(world.repo, 'src'));
    const source = `// the service\nconsole.log("${SECRET}");\n`;
    writeFileSync(join(world.repo, 'src', 'server.mjs'), source);
    addStateKey(world.repo, 'src/server.mjs', source);
    for (const command of ['diff --format unified', 'diff --format markdown', 'generate --force']) {
      const run = await COMMANDS[command]?.(world);
      expect(run?.output, command).not.toContain(SECRET);
      expect(run?.output, command).not.toContain('src/server.mjs');
    }
    expect(readFileSync(join(world.repo, 'src', 'server.mjs'), 'utf8')).toBe(source);
    const state = JSON.parse(readFileSync(join(world.repo, STATE), 'utf8'));
    expect(Object.keys(state.files)).not.toContain('src/server.mjs');
  });
});

describe('symlinks and special files at generated paths and at cached-deploy.yml', () => {
  test.each([...GENERATED, STATE, 'cached-deploy.yml'])(
    '%s as a symlink to a file outside: refused in one line by every command, nothing leaks',
    async (path) => {
      const world = await makeWorld();
      rmSync(join(world.repo, path));
      symlinkSync(join(world.outside, 'secret.txt'), join(world.repo, path));
      const names = new RegExp(`^${escapeRegex(path)}: .*symbolic link`);
      for (const command of Object.keys(COMMANDS)) {
        await expectRefused(world, command, names);
      }
    },
  );

  test('a symlink pointing inside the repository is refused too (it could be swapped)', async () => {
    const world = await makeWorld();
    rmSync(join(world.repo, 'docker-bake.hcl'));
    symlinkSync('ecr/main-role-policy.json', join(world.repo, 'docker-bake.hcl'));
    await expectRefused(world, 'generate', /^docker-bake\.hcl: .*symbolic link/);
  });

  test('a generated path inside a symlinked directory: nothing written through it', async () => {
    const world = await makeWorld();
    mkdirSync(join(world.repo, '.git', 'hooks'), { recursive: true });
    symlinkSync('.git/hooks', join(world.repo, 'hooks'));
    writeFileSync(
      join(world.repo, 'cached-deploy.yml'),
      stringify({ ...CONFIG, paths: { pruneScript: 'hooks/pre-commit' } }),
    );
    await expectRefused(
      world,
      'generate',
      /paths\.pruneScript.*symbolic link|hooks.*symbolic link/,
    );
    expect(existsSync(join(world.repo, '.git', 'hooks', 'pre-commit'))).toBe(false);
  });

  // In a child process with a timeout: on a CLI that reads without looking, these hang or grow
  // without bound.
  test.each<[string, string, (w: World) => void, RegExp]>([
    [
      '/dev/zero at a generated path',
      'generate --check',
      (w) => relink(w, 'ecr/main-role-policy.json', '/dev/zero'),
      /^create-cached-deploy: ecr\/main-role-policy\.json: .*symbolic link/,
    ],
    [
      '/dev/zero as cached-deploy.yml',
      'generate --check',
      (w) => relink(w, 'cached-deploy.yml', '/dev/zero'),
      /^create-cached-deploy: cached-deploy\.yml: .*symbolic link/,
    ],
    [
      'a FIFO at a generated path',
      'generate --check',
      (w) => {
        rmSync(join(w.repo, 'docker-bake.hcl'));
        execFileSync('mkfifo', [join(w.repo, 'docker-bake.hcl')]);
      },
      /^create-cached-deploy: docker-bake\.hcl: .*not a regular file/,
    ],
    [
      'a directory at a generated path',
      'generate',
      (w) => {
        rmSync(join(w.repo, '.github/workflows/deploy.yml'));
        mkdirSync(join(w.repo, '.github/workflows/deploy.yml'));
      },
      /^create-cached-deploy: \.github\/workflows\/deploy\.yml: .*not a regular file/,
    ],
    [
      'a huge cached-deploy.yml',
      'generate --check',
      (w) => writeFileSync(join(w.repo, 'cached-deploy.yml'), `# ${'x'.repeat(8 << 20)}\n`),
      /^create-cached-deploy: cached-deploy\.yml: .*larger than/,
    ],
    [
      '/proc/self/environ at a generated path',
      'diff --format markdown',
      (w) => relink(w, 'ecr/main-role-policy.json', '/proc/self/environ'),
      /^create-cached-deploy: ecr\/main-role-policy\.json: .*symbolic link/,
    ],
  ])('%s (%s): a one-line error, quickly', async (_, command, make, message) => {
    const world = await makeWorld();
    make(world);
    const [name, ...args] = command.split(' ');
    const result = await sourceCli([name as string, world.repo, ...args], {
      CANARY_ENV: SECRET,
    });
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(message);
    expect(result.stdout + result.stderr).not.toContain(SECRET);
  });
});

function relink(world: World, path: string, target: string): void {
  rmSync(join(world.repo, path));
  symlinkSync(target, join(world.repo, path));
}

describe('config paths and free text that reach git, YAML and GitHub expressions', () => {
  const base = stringify(CONFIG);
  const errorOf = (text: string): CachedDeployError => {
    try {
      parseConfig(text);
    } catch (error) {
      if (error instanceof CachedDeployError) return error;
      throw error;
    }
    throw new Error('no error');
  };
  const withField = (path: string[], value: unknown) => {
    const config = structuredClone(CONFIG) as Record<string, unknown>;
    let node = config;
    for (const key of path.slice(0, -1)) {
      node[key] ??= {};
      node = node[key] as Record<string, unknown>;
    }
    node[path.at(-1) as string] = value;
    return stringify(config);
  };

  test.each<[string[], string]>([
    [['paths', 'pruneScript'], '.git/hooks/pre-commit'],
    [['paths', 'bakeFile'], '.GIT/config'],
    [['paths', 'ecrDir'], '.git'],
    [['paths', 'stateFile'], 'x/.git/state.json'],
    [['workflow', 'file'], '.git/workflows/deploy.yml'],
    [['images', '0', 'context'], '.git'],
  ])('%j: %s is refused (no path into .git)', (path, value) => {
    const field = path.join('.').replace('.0.', '[0].');
    const error = errorOf(withField(path, value));
    expect(error.message).toMatch(
      new RegExp(`^cached-deploy\\.yml: ${escapeRegex(field)}: .*\\.git`),
    );
  });

  test.each<[string[], string]>([
    [['paths', 'stateFile'], 'cached-deploy.yml'],
    [['paths', 'pruneScript'], 'cached-deploy.yml'],
    [['workflow', 'file'], 'cached-deploy.yml'],
  ])('%j: %s is refused (it would overwrite the config)', (path, value) => {
    const error = errorOf(withField(path, value));
    expect(error.message).toMatch(/^cached-deploy\.yml: .*cached-deploy\.yml/);
  });

  test('generate never writes the prune script into .git/hooks', async () => {
    const world = await makeWorld();
    mkdirSync(join(world.repo, '.git', 'hooks'), { recursive: true });
    writeFileSync(
      join(world.repo, 'cached-deploy.yml'),
      `${base}paths:\n  pruneScript: .git/hooks/pre-commit\n`,
    );
    await expectRefused(world, 'generate', /paths\.pruneScript/);
    expect(existsSync(join(world.repo, '.git', 'hooks', 'pre-commit'))).toBe(false);
  });

  test.each<[string[], string]>([
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, on purpose
    [['workflow', 'runsOn'], '${{ github.event.pull_request.title }}'],
    [['workflow', 'runsOn'], 'ubuntu-latest\nevil: true'],
    [['workflow', 'runsOn'], 'ubuntu-latest\u001b[2J'],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, on purpose
    [['workflow', 'name'], 'deploy ${{ secrets.AWS_KEY }}'],
    [['workflow', 'name'], 'deploy\r\non: push'],
    [['workflow', 'name'], 'deploy\u0000'],
    [['workflow', 'deploy', 'command'], './deploy.sh\u001b]0;title\u0007'],
    [['workflow', 'deploy', 'environment'], 'prod\nx'],
    [['workflow', 'on', 'push'], 'main\u0085'],
    [['generator', ''], '1.0.0\u001b[31m'],
  ])('%j = %j is refused', (path, value) => {
    const target = path.at(-1) === '' ? path.slice(0, -1) : path;
    const field = target.join('.');
    const text =
      field === 'workflow.on.push'
        ? withField(['workflow', 'on', 'push'], [value])
        : field === 'workflow.deploy.environment'
          ? withField(['workflow', 'deploy'], { command: './deploy.sh', environment: value })
          : withField(target, value);
    const error = errorOf(text);
    expect(error.message).toMatch(new RegExp(`^cached-deploy\\.yml: ${escapeRegex(field)}`));
    expect(error.message).not.toMatch(CONTROL);
  });

  test('init flags that feed those fields are checked and named', async () => {
    const world = await makeWorld();
    const flags = {
      yes: true,
      accountId: '123456789012',
      region: 'eu-west-1',
      githubRepository: 'acme/app',
    };
    const cases: [Record<string, string>, string][] = [
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, on purpose
      [{ mainBranch: 'main${{ github.token }}' }, '--main-branch'],
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, on purpose
      [{ deployCommand: 'echo ${{ secrets.X }}' }, '--deploy-command'],
      [{ deployCommand: './deploy\u001b[2J' }, '--deploy-command'],
      [{ roleName: 'role name with spaces' }, '--role-name'],
    ];
    for (const [extra, flag] of cases) {
      const error = await init(world.repo, { ...flags, ...extra }).catch((e: Error) => e);
      expect(error, flag).toBeInstanceOf(CachedDeployError);
      expect((error as Error).message, flag).toMatch(new RegExp(`^${escapeRegex(flag)}: `));
      expect((error as Error).message).not.toMatch(CONTROL);
    }
  });
});

describe('errors truncate long values and escape control characters', () => {
  test('a schema error quotes at most a short prefix of a long value', () => {
    const long = 'x'.repeat(100_000);
    let message = '';
    try {
      parseConfig(stringify({ ...CONFIG, aws: { ...CONFIG.aws, region: long } }));
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/^cached-deploy\.yml: aws\.region: /);
    expect(message.length).toBeLessThan(400);
    expect(message).toContain('(100000 characters)');
  });

  test('the CLI prints every error with control characters escaped', async () => {
    const { code, stderr } = await runMain([
      'diff',
      '.',
      '--listing',
      'listing\u001b[2J\u001b]0;pwned\u0007.json',
    ]);
    expect(code).toBe(1);
    expect(stderr).not.toMatch(CONTROL_BUT_NEWLINE);
    expect(stderr).toContain('\\u{1b}[2J');
  });
});

describe('markdown and terminal output of text from outside', () => {
  const hostile =
    'git fetch failed: remote: see https://evil.example/login or www.evil.example \u001b[31mred\u001b[0m \u202eevil';
  const fleetResult = (message: string): FleetResult => ({
    mode: 'check',
    fleetFile: '/f/fleet.yml',
    generator: '1.0.0',
    total: 1,
    results: [
      {
        repository: 'acme/app',
        status: 'error',
        generatorBefore: undefined,
        generatorAfter: '1.0.0',
        message,
        changes: [],
      },
    ],
    counts: { 'in-sync': 0, changed: 0, conflict: 0, error: 1 },
    exitCode: 1,
    resultsFile: '/f/last-run.json',
  });
  const nodeTypes = (markdown: string) => {
    const types = new Set<string>();
    const walk = (node: { type: string; children?: unknown[] }) => {
      types.add(node.type);
      for (const child of node.children ?? []) walk(child as typeof node);
    };
    walk(fromMarkdown(markdown, { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] }));
    return types;
  };

  test('URLs and escapes in a message become neither links nor terminal control', () => {
    const markdown = [
      formatSummaryMarkdown(fleetResult(hostile)),
      formatMarkdown([
        {
          repository: 'www.evil.example',
          generatorBefore: undefined,
          generatorAfter: '1.0.0',
          changes: [],
          explanations: [],
          error: hostile,
        },
      ]),
    ];
    for (const text of markdown) {
      expect(nodeTypes(text).has('link'), text).toBe(false);
      expect(text).not.toMatch(CONTROL_BUT_NEWLINE);
      expect(text).not.toContain('\u202e');
    }
    const table = formatSummaryTable(fleetResult(hostile));
    expect(table).not.toMatch(CONTROL_BUT_NEWLINE);
    expect(table).not.toContain('\u202e');
  });

  test('a long error from a repository is cut to one short line', async () => {
    const world = await makeWorld();
    writeFileSync(
      join(world.repo, 'cached-deploy.yml'),
      `${stringify(CONFIG)}${'x'.repeat(50_000)}: 1\n`,
    );
    const run = await fleet(world, ['--check']);
    expect(run.error.length).toBeLessThan(400);
    expect(run.output.length).toBeLessThan(5_000);
  });
});

// --- helpers ---

/** Any C0 or C1 control character (newline allowed where a test says so). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/;

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const GIT_ENV = {
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.com',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.com',
};

function gitIn(cwd: string, args: string[]): string {
  return execFileSync('git', args, {
    cwd,
    env: { ...process.env, ...GIT_ENV },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Commits `repo` (a plain directory) and pushes it to a new bare remote; returns its file:// URL. */
function bareRemoteOf(repo: string, remote: string): string {
  gitIn(repo, ['init', '-q', '-b', 'main']);
  gitIn(repo, ['add', '-A']);
  gitIn(repo, ['-c', 'commit.gpgsign=false', 'commit', '-q', '-m', 'fixture']);
  execFileSync('git', ['init', '-q', '--bare', '-b', 'main', remote], {
    env: { ...process.env, ...GIT_ENV },
  });
  gitIn(repo, ['push', '-q', remote, 'main']);
  // The repository itself is not the test subject here: only its remote is.
  rmSync(join(repo, '.git'), { recursive: true, force: true });
  return `file://${remote}`;
}

/** The CLI from src/ in a child process, bounded by a timeout. */
function sourceCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', join(PROJECT_ROOT, 'test', 'support', 'source-cli.ts'), ...args],
      {
        cwd: PROJECT_ROOT,
        env: { ...process.env, ...env },
        encoding: 'utf8',
        timeout: 20_000,
        maxBuffer: 4 << 20,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`the CLI did not finish: ${error.message}`));
          return;
        }
        resolvePromise({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
    child.stdin?.end();
  });
}
