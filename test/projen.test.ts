/**
 * The projen component (`create-cached-deploy/projen`) against the CLI: real projen projects
 * (TypeScriptProject, NodeProject, bare Project) synthesized into copies of examples/node-service
 * must hold byte for byte what the BUILT CLI writes for the same settings in cached-deploy.yml,
 * fail with the CLI's messages, and lose exactly their files when the component is removed. Then
 * `init --projen` end to end, with the edited .projenrc.ts run by tsx as `npx projen` would.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { javascript, Project, Testing, typescript } from 'projen';
import { afterEach, beforeAll, describe, expect, expectTypeOf, test, vi } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../src/config/load.js';
import type { RawConfig } from '../src/config/schema.js';
import { CachedDeployError } from '../src/errors.js';
import { CachedDeploy, type CachedDeployOptions, OPTIONS_SOURCE } from '../src/projen/index.js';
import { renderFiles } from '../src/render/render-files.js';
import {
  createTempDir,
  createTempRepo,
  PROJECT_ROOT,
  runCli,
  snapshotChanges,
  snapshotDir,
} from './support/temp-repo.js';

const run = promisify(execFile);

beforeAll(async () => {
  // The CLI under test is the built one (incremental: a no-op when lib/ is up to date).
  await run('npx', ['tsc', '--build'], { cwd: PROJECT_ROOT, timeout: 120_000 });
}, 120_000);
afterEach(() => {
  vi.unstubAllEnvs();
});

const BASE: CachedDeployOptions = {
  aws: { accountId: '123456789012', region: 'eu-west-1' },
  github: { repository: 'acme/node-service' },
  images: [{ name: 'api', target: 'runtime', repository: 'node-service' }],
};

const CONFIGS: Record<string, CachedDeployOptions> = {
  minimal: BASE,
  'GitLab CI on a self-managed instance, with a deploy environment': {
    ci: 'gitlab',
    aws: { accountId: '123456789012', region: 'eu-west-1' },
    gitlab: {
      project: 'acme/platform/node-service',
      host: 'gitlab.acme.example',
      tags: ['docker'],
    },
    images: [{ name: 'api', target: 'runtime', repository: 'acme/node-service' }],
    workflow: { deploy: { command: './deploy.sh', environment: 'production' } },
  },
  'two images and every section set': {
    aws: { accountId: '000000000042', region: 'us-gov-west-1', roleName: 'deployer' },
    github: { repository: 'acme/node-service', mainBranch: 'trunk' },
    images: [
      {
        name: 'api',
        context: '.',
        dockerfile: 'Dockerfile',
        target: 'runtime',
        platforms: ['linux/amd64', 'linux/arm64'],
        repository: 'acme/node-service',
        cacheRepository: 'build-cache/node-service',
      },
      { name: 'worker', context: 'worker', repository: 'acme/worker' },
    ],
    cache: { branchRetentionDays: 7, untaggedRetentionDays: 2 },
    deployImages: { keep: 10, untaggedRetentionDays: 3 },
    buildkit: { image: 'moby/buildkit:v0.26.0' },
    workflow: {
      file: '.github/workflows/ship.yml',
      name: 'ship',
      runsOn: 'ubuntu-24.04',
      on: { push: ['trunk', 'release/*'], pullRequest: false, workflowDispatch: true },
      deploy: { command: './deploy.sh "$IMAGE_TAG"', environment: 'production' },
      pinActions: { 'actions/checkout': '08c6903cd8c0fde910a37f88322edcfb5dd907a8' },
    },
    seed: { schedule: '30 2 * * 0' },
    prune: { sweep: false, graceHours: 12, failOnError: true },
    ecr: { imageTagMutability: 'MUTABLE', cacheTagMutability: 'IMMUTABLE_WITH_EXCLUSION' },
    iac: 'terraform',
    paths: {
      bakeFile: 'build/docker-bake.hcl',
      ecrDir: 'infra/ecr',
      pruneScript: 'tools/prune.mjs',
    },
  },
  'policies in the root, a worker only, a deploy without environment': {
    aws: { accountId: '210987654321', region: 'ap-southeast-2' },
    github: { repository: 'acme/node-service', mainBranch: 'release+1' },
    images: [
      {
        name: 'worker_1',
        dockerfile: 'worker/Dockerfile',
        context: 'worker',
        repository: 'worker-repo',
      },
    ],
    workflow: { deploy: { command: 'make deploy' }, pinActions: true },
    seed: { enabled: false },
    ecr: { scanOnPush: false },
    paths: { ecrDir: '.' },
  },
};

type ProjectKind = 'TypeScriptProject' | 'NodeProject' | 'Project';
const KINDS: ProjectKind[] = ['TypeScriptProject', 'NodeProject', 'Project'];

/** A projen project of `kind` in `outdir`, set up so that nothing is installed or released. */
function newProject(kind: ProjectKind, outdir: string): Project {
  const node = {
    name: 'node-service',
    outdir,
    defaultReleaseBranch: 'main',
    packageManager: javascript.NodePackageManager.NPM,
    github: false,
    release: false,
    buildWorkflow: false,
    depsUpgrade: false,
    projenrcJson: false,
    jest: false,
  };
  if (kind === 'TypeScriptProject') {
    return new typescript.TypeScriptProject({ ...node, sampleCode: false, eslint: false });
  }
  if (kind === 'NodeProject') return new javascript.NodeProject(node);
  return new Project({ name: 'node-service', outdir });
}

/** A copy of examples/node-service (no git: projen does not need it). */
function serviceCopy(): string {
  const dir = join(createTempDir('cached-deploy-projen-'), 'node-service');
  cpSync(join(PROJECT_ROOT, 'examples', 'node-service'), dir, {
    recursive: true,
    filter: (path) => !/(^|[\\/])(node_modules|\.git)$/.test(path),
  });
  return dir;
}

/** What the built CLI writes for `config` in cached-deploy.yml: generated path → content. */
async function cliOutput(config: object): Promise<Record<string, string>> {
  const repo = createTempRepo();
  writeFileSync(join(repo, 'cached-deploy.yml'), stringify({ version: 1, ...config }));
  const before = snapshotDir(repo);
  const result = await runCli(repo, ['generate']);
  expect(result.code, result.stderr).toBe(0);
  const { added, changed, removed } = snapshotChanges(before, snapshotDir(repo));
  expect([changed, removed]).toEqual([[], []]);
  const state = JSON.parse(readFileSync(join(repo, '.cached-deploy/state.json'), 'utf8'));
  const paths = Object.keys(state.files).sort();
  expect(added.filter((path) => !path.endsWith('/')).sort()).toEqual(
    [...paths, '.cached-deploy/state.json'].sort(),
  );
  return Object.fromEntries(
    paths.map((path) => [path, readFileSync(join(repo, path), 'utf8')] as const),
  );
}

/** The CLI's one-line error for `config` in cached-deploy.yml, without its source prefix. */
async function cliErrorBody(config: unknown): Promise<string> {
  const repo = createTempRepo();
  const value = config !== null && typeof config === 'object' ? { version: 1, ...config } : config;
  writeFileSync(join(repo, 'cached-deploy.yml'), stringify(value));
  const result = await runCli(repo, ['generate']);
  expect(result.code, result.stdout).toBe(1);
  const prefix = 'create-cached-deploy: cached-deploy.yml: ';
  expect(result.stderr.startsWith(prefix), result.stderr).toBe(true);
  expect(result.stderr.endsWith('\n') && result.stderr.split('\n').length === 2).toBe(true);
  return result.stderr.slice(prefix.length, -1);
}

function componentError(options: unknown, kind: ProjectKind = 'Project'): CachedDeployError {
  const project = newProject(kind, serviceCopy());
  try {
    new CachedDeploy(project, options as CachedDeployOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(CachedDeployError);
    return error as CachedDeployError;
  }
  throw new Error('the component accepted invalid options');
}

describe('the same files as the CLI', () => {
  for (const [name, config] of Object.entries(CONFIGS)) {
    test.each(KINDS)(`${name}: Testing.synth of a %s`, async (kind) => {
      const expected = await cliOutput(config);
      const project = newProject(kind, serviceCopy());
      const component = new CachedDeploy(project, config);
      const synthesized: Record<string, string> = Testing.synth(project, { parseJson: false });

      expect(component.files.map((file) => file.path).sort()).toEqual(Object.keys(expected));
      for (const [path, content] of Object.entries(expected)) {
        expect(synthesized[path], path).toBe(content);
      }
      // projen tracks them, and no state file or cached-deploy.yml is involved.
      const manifest = JSON.parse(synthesized['.projen/files.json'] ?? '{}');
      expect(manifest.files).toEqual(expect.arrayContaining(Object.keys(expected)));
      expect(Object.keys(synthesized)).not.toContain('.cached-deploy/state.json');
      expect(Object.keys(synthesized)).not.toContain('cached-deploy.yml');
      // And the same as the library's renderFiles for the same YAML.
      const rendered = renderFiles(parseConfig(stringify(config)));
      expect(Object.fromEntries(rendered.map((file) => [file.path, file.content]))).toEqual(
        expected,
      );
    });
  }

  test('written read-only, byte for byte, by a real synth()', async () => {
    vi.stubEnv('PROJEN_DISABLE_POST', 'true');
    const expected = await cliOutput(BASE);
    const dir = serviceCopy();
    const project = newProject('TypeScriptProject', dir);
    new CachedDeploy(project, BASE);
    project.synth();
    for (const [path, content] of Object.entries(expected)) {
      expect(readFileSync(join(dir, path)).equals(Buffer.from(content, 'utf8')), path).toBe(true);
      expect(statSync(join(dir, path)).mode & 0o222, path).toBe(0);
    }
  });

  test('a NodeProject keeps create-cached-deploy in devDependencies; a bare Project has none', () => {
    for (const kind of ['TypeScriptProject', 'NodeProject'] as const) {
      const project = newProject(kind, serviceCopy());
      new CachedDeploy(project, BASE);
      const pkg = JSON.parse(Testing.synth(project, { parseJson: false })['package.json'] ?? '');
      expect(pkg.devDependencies['create-cached-deploy'], kind).toBe('*');
    }
    const project = newProject('Project', serviceCopy());
    new CachedDeploy(project, BASE);
    expect(project.deps.all).toEqual([]);
  });

  test('checkRepository: false synthesizes without the Dockerfiles (e.g. in a unit test)', () => {
    const project = new Project({ name: 'x', outdir: createTempDir() });
    expect(() => new CachedDeploy(project, BASE)).toThrow(
      `${OPTIONS_SOURCE}: images[0].dockerfile: "Dockerfile" does not exist`,
    );
    const fresh = new Project({ name: 'x', outdir: createTempDir() });
    new CachedDeploy(fresh, { ...BASE, checkRepository: false });
    expect(Testing.synth(fresh, { parseJson: false })['docker-bake.hcl']).toMatch(/^# Generated/);
  });

  test('the options type mirrors the schema of cached-deploy.yml', () => {
    // Every field, at every depth, required and writable: a field added to the schema (or to the
    // options) without the other fails type-checking here.
    type Shape<T> = T extends readonly (infer U)[]
      ? Shape<U>[]
      : T extends object
        ? { -readonly [K in keyof T]-?: Shape<Exclude<T[K], undefined>> }
        : T;
    type Paths = Omit<NonNullable<RawConfig['paths']>, 'stateFile'>;
    type FileSettings = Omit<RawConfig, 'version' | 'generator' | 'paths'> & { paths?: Paths };
    expectTypeOf<Shape<Omit<CachedDeployOptions, 'checkRepository'>>>().toEqualTypeOf<
      Shape<FileSettings>
    >();
  });
});

describe('removing the component', () => {
  test.each(KINDS)('and synthesizing a %s again deletes its files and nothing else', (kind) => {
    vi.stubEnv('PROJEN_DISABLE_POST', 'true');
    const dir = serviceCopy();
    writeFileSync(join(dir, 'NOTES.md'), 'mine\n');
    const config = CONFIGS['two images and every section set'] as CachedDeployOptions;

    const first = newProject(kind, dir);
    const component = new CachedDeploy(first, config);
    first.synth();
    const owned = component.files.map((file) => file.path).sort();
    const withComponent = snapshotDir(dir);
    for (const path of owned) expect(withComponent[path], path).toBeDefined();

    newProject(kind, dir).synth();
    const changes = snapshotChanges(withComponent, snapshotDir(dir));
    expect(changes.removed.sort()).toEqual(owned);
    expect(changes.added).toEqual([]);
    // Only projen's own bookkeeping changes: its file list, .gitignore, .gitattributes, and for
    // Node projects the devDependency the component declared.
    const bookkeeping = ['.gitattributes', '.gitignore', '.projen/files.json'];
    if (kind !== 'Project') bookkeeping.push('.projen/deps.json', 'package.json');
    expect(changes.changed.filter((path) => !bookkeeping.includes(path))).toEqual([]);
    for (const path of ['Dockerfile', 'worker/Dockerfile', 'src/server.ts', 'NOTES.md']) {
      expect(withComponent[path], path).toBeDefined();
    }
    if (kind !== 'Project') {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      expect(pkg.devDependencies?.['create-cached-deploy']).toBeUndefined();
    }
    const manifest = JSON.parse(readFileSync(join(dir, '.projen/files.json'), 'utf8'));
    expect(manifest.files.filter((path: string) => owned.includes(path))).toEqual([]);
  });
});

describe('invalid options fail with the CLI messages', () => {
  const image = BASE.images[0] as NonNullable<CachedDeployOptions['images'][0]>;
  const cases: [string, unknown][] = [
    ['a bad account id', { ...BASE, aws: { accountId: '12345', region: 'eu-west-1' } }],
    ['an account id given as a number', { ...BASE, aws: { ...BASE.aws, accountId: 123456789012 } }],
    ['an unknown top-level key', { ...BASE, caches: { branchRetentionDays: 3 } }],
    ['an unknown nested key', { ...BASE, images: [{ ...image, dockerFile: 'Dockerfile' }] }],
    ['an image name with a dot', { ...BASE, images: [{ ...image, name: 'api.v2' }] }],
    ['a missing section', { aws: BASE.aws, images: BASE.images }],
    ['no images', { ...BASE, images: [] }],
    ['two images of one name', { ...BASE, images: [image, { ...image, repository: 'other' }] }],
    [
      'a cache repository that is an image repository',
      { ...BASE, images: [image, { ...image, name: 'b', repository: 'node-service-buildcache' }] },
    ],
    ['a floating BuildKit', { ...BASE, buildkit: { image: 'moby/buildkit:latest' } }],
    ['a retention out of range', { ...BASE, cache: { branchRetentionDays: 0 } }],
    [
      'an expression in the deploy command',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub expression, not a template
      { ...BASE, workflow: { deploy: { command: 'echo ${{ github.head_ref }}' } } },
    ],
    ['a path outside the repository', { ...BASE, paths: { bakeFile: '../docker-bake.hcl' } }],
    ['a Dockerfile that does not exist', { ...BASE, images: [{ ...image, dockerfile: 'Nope' }] }],
    ['a stage that is not in the Dockerfile', { ...BASE, images: [{ ...image, target: 'nope' }] }],
    ['a context that does not exist', { ...BASE, images: [{ ...image, context: 'nope' }] }],
  ];
  test.each(cases)('%s', async (_, options) => {
    const body = await cliErrorBody(options);
    const error = componentError(options);
    expect(error.message).toBe(`${OPTIONS_SOURCE}: ${body}`);
    // Also through the other project types, unchanged.
    expect(componentError(options, 'TypeScriptProject').message).toBe(error.message);
  });

  test('settings only cached-deploy.yml has are refused, not ignored', () => {
    expect(componentError({ ...BASE, generator: '0.1.0' }).message).toBe(
      `${OPTIONS_SOURCE}: generator: not used by the projen component (it writes its own version)`,
    );
    expect(componentError({ ...BASE, paths: { stateFile: 'state.json' } }).message).toMatch(
      /^CachedDeploy options: paths\.stateFile: not used by the projen component/,
    );
  });

  test('a file projen already owns, or a second component, is refused', () => {
    expect(
      componentError({ ...BASE, workflow: { file: 'package.json' } }, 'NodeProject').message,
    ).toBe(
      `${OPTIONS_SOURCE}: "package.json" is already a file of this projen project (check workflow.file and paths.*)`,
    );
    expect(
      componentError({ ...BASE, paths: { bakeFile: 'scripts/prune-ecr-cache.mjs' } }).message,
    ).toBe(
      `${OPTIONS_SOURCE}: two generated files would both be written to "scripts/prune-ecr-cache.mjs" (check workflow.file and paths.*)`,
    );
    const project = newProject('Project', serviceCopy());
    new CachedDeploy(project, BASE);
    expect(() => new CachedDeploy(project, BASE)).toThrow(/already has a CachedDeploy component/);
  });

  test('nothing is added to the project when the options are invalid', () => {
    const project = newProject('Project', serviceCopy());
    const before = project.files.length;
    expect(() => new CachedDeploy(project, { ...BASE, images: [] })).toThrow(CachedDeployError);
    expect(project.files.length).toBe(before);
    expect(CachedDeploy.of(project)).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// init --projen, end to end: the built CLI edits .projenrc.ts; tsx runs it as `npx projen` would.

const INIT = ['init', '--projen', '--yes', '--account-id', '123456789012', '--region', 'eu-west-1'];
const TSX = join(PROJECT_ROOT, 'node_modules', '.bin', 'tsx');

const MINIMAL_PROJENRC = `import { Project } from 'projen';

// A service that is not a Node project still has projen manage its files.
const project = new Project({ name: 'node-service' });

project.synth();
`;

/** A git repository from examples/node-service with projen and this package importable. */
function projenRepo(projenrc: string | null = MINIMAL_PROJENRC): string {
  const repo = createTempRepo();
  if (projenrc !== null) writeFileSync(join(repo, '.projenrc.ts'), projenrc);
  const modules = join(repo, 'node_modules');
  mkdirSync(modules);
  symlinkSync(PROJECT_ROOT, join(modules, 'create-cached-deploy'), 'dir');
  for (const name of ['projen', 'constructs']) {
    symlinkSync(join(PROJECT_ROOT, 'node_modules', name), join(modules, name), 'dir');
  }
  return repo;
}

/** Runs .projenrc.ts as `npx projen` does for an ESM project (projen's tsx runner). */
async function synthWithTsx(repo: string): Promise<{ code: number; stderr: string }> {
  try {
    await run(TSX, ['.projenrc.ts'], { cwd: repo, timeout: 60_000 });
    return { code: 0, stderr: '' };
  } catch (error) {
    const { code, stderr } = error as { code: number; stderr: string };
    return { code, stderr };
  }
}

const withoutModules = (snapshot: Record<string, string>) =>
  Object.fromEntries(Object.entries(snapshot).filter(([path]) => !path.startsWith('node_modules')));

describe('init --projen', () => {
  test('adds the component to .projenrc.ts; npx projen then writes what init writes', async () => {
    const repo = projenRepo();
    const before = withoutModules(snapshotDir(repo));
    const result = await runCli(repo, INIT);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(
      /^updated {2}\.projenrc\.ts \(added the CachedDeploy component\)\n/,
    );
    expect(result.stdout).toContain('npx projen');

    // Nothing but .projenrc.ts was written: no cached-deploy.yml, state file or generated file.
    const afterInit = withoutModules(snapshotDir(repo));
    expect(snapshotChanges(before, afterInit)).toEqual({
      added: [],
      changed: ['.projenrc.ts'],
      removed: [],
    });
    const projenrc = readFileSync(join(repo, '.projenrc.ts'), 'utf8');
    expect(projenrc.startsWith(MINIMAL_PROJENRC.split('\n')[0] as string)).toBe(true);
    expect(projenrc).toContain(
      "import { Project } from 'projen';\nimport { CachedDeploy } from 'create-cached-deploy/projen';\n",
    );
    expect(projenrc).toMatch(
      /\n\nnew CachedDeploy\(project, \{\n[\s\S]+\n\}\);\n\nproject\.synth\(\);\n$/,
    );
    expect(projenrc).toContain("  aws: { accountId: '123456789012', region: 'eu-west-1' },\n");

    // The same files as `init` without --projen, byte for byte.
    const synth = await synthWithTsx(repo);
    expect(synth.code, synth.stderr).toBe(0);
    const plain = createTempRepo();
    const cli = await runCli(
      plain,
      INIT.filter((arg) => arg !== '--projen'),
    );
    expect(cli.code, cli.stderr).toBe(0);
    const state = JSON.parse(readFileSync(join(plain, '.cached-deploy/state.json'), 'utf8'));
    const generated = Object.keys(state.files);
    expect(generated.length).toBe(12);
    for (const path of generated) {
      const mine = readFileSync(join(repo, path));
      expect(mine.equals(readFileSync(join(plain, path))), path).toBe(true);
    }
    expect(existsSync(join(repo, '.cached-deploy'))).toBe(false);
    expect(existsSync(join(repo, 'cached-deploy.yml'))).toBe(false);

    // Running it again changes nothing and says so.
    const again = await runCli(repo, INIT);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^\.projenrc\.ts already uses CachedDeploy: nothing was written/);
    expect(readFileSync(join(repo, '.projenrc.ts'), 'utf8')).toBe(projenrc);
  });

  test('keeps the file style: double quotes, no semicolons, another project name, CRLF', async () => {
    const style = [
      'import { typescript } from "projen"',
      'import {',
      '  javascript,',
      '} from "projen"',
      '',
      'const svc = new typescript.TypeScriptProject({',
      '  name: "node-service",',
      '  defaultReleaseBranch: "main",',
      '  packageManager: javascript.NodePackageManager.NPM,',
      '})',
      'svc.synth()',
      '',
    ].join('\r\n');
    const repo = projenRepo(style);
    const result = await runCli(repo, INIT);
    expect(result.code, result.stderr).toBe(0);
    const edited = readFileSync(join(repo, '.projenrc.ts'), 'utf8');
    expect(edited).toContain(
      '} from "projen"\r\nimport { CachedDeploy } from "create-cached-deploy/projen"\r\n',
    );
    expect(edited).toMatch(/\}\)\r\n\r\nnew CachedDeploy\(svc, \{\r\n/);
    expect(edited).toContain('  aws: { accountId: "123456789012", region: "eu-west-1" },\r\n');
    expect(edited).toMatch(/\r\n\}\)\r\n\r\nsvc\.synth\(\)\r\n$/);
    expect(edited.replaceAll('\r\n', '')).not.toContain('\n');
  });

  test.each([
    [
      'no single synth() line',
      "import { Project } from 'projen';\n\nexport const project = new Project({ name: 'x' });\n",
      /^Cannot edit \.projenrc\.ts safely: it has no line that is just `project\.synth\(\);`\. Nothing was written\.\n/,
    ],
    [
      'two synth() lines',
      "import { Project } from 'projen';\n\nconst a = new Project({ name: 'a' });\nconst b = new Project({ name: 'b' });\na.synth();\nb.synth();\n",
      /^Cannot edit \.projenrc\.ts safely: it has 2 lines calling synth\(\)\. Nothing was written\.\n/,
    ],
    [
      'no import statement',
      "const { Project } = require('projen');\n\nconst project = new Project({ name: 'x' });\n\nproject.synth();\n",
      /^Cannot edit \.projenrc\.ts safely: it has no import statement/,
    ],
  ])(
    'cannot edit safely (%s): prints exactly what to add and writes nothing',
    async (_, projenrc, why) => {
      const repo = projenRepo(projenrc);
      const before = withoutModules(snapshotDir(repo));
      const result = await runCli(repo, INIT);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(why);
      expect(result.stdout).toContain(
        "\n\nimport { CachedDeploy } from 'create-cached-deploy/projen';\n\nnew CachedDeploy(project, {\n",
      );
      expect(result.stdout).toContain('npx projen');
      expect(withoutModules(snapshotDir(repo))).toEqual(before);
    },
  );

  test('the printed snippet, pasted in, synthesizes', async () => {
    const repo = projenRepo(
      "import { Project } from 'projen';\n\nconst project = new Project({ name: 'x' });\n\nif (project) project.synth();\n",
    );
    const result = await runCli(repo, INIT);
    expect(result.code, result.stderr).toBe(0);
    const [, snippet] = result.stdout.split("before the project's synth() call:\n\n");
    const [importLine, , ...rest] = (snippet ?? '').split('\n');
    const statement = rest.slice(0, rest.indexOf('')).join('\n');
    expect(statement).toMatch(/^new CachedDeploy\(project, \{\n[\s\S]*\n\}\);$/);
    writeFileSync(
      join(repo, '.projenrc.ts'),
      `import { Project } from 'projen';\n${importLine}\n\nconst project = new Project({ name: 'x' });\n${statement}\nproject.synth();\n`,
    );
    const synth = await synthWithTsx(repo);
    expect(synth.code, synth.stderr).toBe(0);
    expect(readFileSync(join(repo, 'docker-bake.hcl'), 'utf8')).toMatch(/^# Generated/);
  });

  test('invalid options fail `npx projen` with the one-line message', async () => {
    const repo = projenRepo(
      [
        "import { Project } from 'projen';",
        "import { CachedDeploy } from 'create-cached-deploy/projen';",
        '',
        "const project = new Project({ name: 'x' });",
        'new CachedDeploy(project, {',
        "  aws: { accountId: '123456789012', region: 'eu-west-1' },",
        "  github: { repository: 'acme/node-service' },",
        "  images: [{ name: 'api.v2', repository: 'node-service' }],",
        '});',
        'project.synth();',
        '',
      ].join('\n'),
    );
    const synth = await synthWithTsx(repo);
    expect(synth.code).not.toBe(0);
    expect(synth.stderr).toContain(
      'CachedDeploy options: images[0].name: "api.v2" is not a bake target name',
    );
    expect(existsSync(join(repo, 'docker-bake.hcl'))).toBe(false);
  });

  test('a CommonJS .projenrc can require() the component', async () => {
    const repo = projenRepo();
    const { stdout } = await run(
      process.execPath,
      ['-e', "process.stdout.write(typeof require('create-cached-deploy/projen').CachedDeploy)"],
      { cwd: repo },
    );
    expect(stdout).toBe('function');
  });

  test('without a projenrc: an error naming .projenrc.ts, before asking anything', async () => {
    const repo = projenRepo(null);
    const before = withoutModules(snapshotDir(repo));
    const result = await runCli(repo, ['init', '--projen']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^create-cached-deploy: --projen: \S*\.projenrc\.ts not found;/);
    expect(withoutModules(snapshotDir(repo))).toEqual(before);
  });

  test('a hand-written file at a generated path is a conflict, as for init', async () => {
    const repo = projenRepo();
    mkdirSync(join(repo, 'ecr'));
    writeFileSync(join(repo, 'ecr/main-role-policy.json'), '{}\n');
    const before = withoutModules(snapshotDir(repo));
    const result = await runCli(repo, INIT);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^create-cached-deploy: ecr\/main-role-policy\.json exists and was not/,
    );
    expect(withoutModules(snapshotDir(repo))).toEqual(before);
  });
});
