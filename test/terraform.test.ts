// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Terraform expressions, not JavaScript templates
/**
 * `generate --iac terraform`: ecr/main.tf parses as HCL (@cdktf/hcl2json), declares the
 * repositories, their lifecycle policies and the CI role, reads exactly the generated policy files
 * beside it with file(), pins the AWS provider, is formatted as `terraform fmt` formats it (checked
 * by the rules here, and by terraform itself when it is installed), and the choice is saved in
 * cached-deploy.yml so that a later plain `generate` keeps the file.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parse } from '@cdktf/hcl2json';
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { generate } from '../src/api/generate.js';
import { main } from '../src/cli/main.js';
import { parseConfig } from '../src/config/load.js';
import { repositorySettings } from '../src/model/ecr-repositories.js';
import { ciRoles } from '../src/model/roles.js';
import { generatedPaths, renderFiles } from '../src/render/render-files.js';
import { AWS_PROVIDER_CONSTRAINT, renderTerraform } from '../src/render/terraform.js';
import { needSystemTool } from './support/system-tools.js';
import { createTempDir, snapshotChanges, snapshotDir } from './support/temp-repo.js';

const CONFIG = `# Our deploys. This comment must survive generate --iac.
version: 1
aws:
  accountId: "123456789012"
  region: eu-west-1 # Ireland
github:
  repository: acme/shop
images:
  - name: api
    repository: shop
  - name: worker
    dockerfile: worker/Dockerfile
    repository: shop-worker
`;

const POLICY_FILES = [
  'branch-cache-lifecycle-policy.json',
  'branch-role-policy.json',
  'branch-role-trust-policy.json',
  'cache-lifecycle-policy.json',
  'image-lifecycle-policy.json',
  'main-role-policy.json',
  'main-role-trust-policy.json',
];

function repo(config = CONFIG): string {
  const dir = createTempDir();
  writeFileSync(join(dir, 'Dockerfile'), 'FROM alpine:3.20\n');
  mkdirSync(join(dir, 'worker'));
  writeFileSync(join(dir, 'worker/Dockerfile'), 'FROM alpine:3.20\n');
  writeFileSync(join(dir, 'cached-deploy.yml'), config);
  return dir;
}

function mainTf(config: string): string {
  const file = renderFiles(parseConfig(config), '1.2.3').find((f) => f.path.endsWith('main.tf'));
  if (!file) throw new Error('no main.tf rendered');
  return file.content;
}

// biome-ignore lint/suspicious/noExplicitAny: hcl2json's output is untyped JSON
type Hcl = any;

/** Every `file("${path.module}/<name>")` in the parsed configuration. */
function fileReferences(value: unknown): string[] {
  const text = JSON.stringify(value);
  return [...text.matchAll(/file\(\\"\$\{path\.module\}\/([^"\\]+)\\"\)/g)].map((m) => m[1] ?? '');
}

/**
 * The formatting rules of `terraform fmt` (hclwrite) that this file exercises, checked line by
 * line without trusting the renderer: indentation is two spaces per open brace or bracket, and in
 * every run of consecutive lines that each hold a whole `name = value` attribute, the `=` signs
 * are aligned one space after the longest name.
 */
function fmtViolations(text: string): string[] {
  const problems: string[] = [];
  if (!text.endsWith('\n') || text.endsWith('\n\n')) problems.push('must end with one newline');
  const lines = (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n');
  let depth = 0;
  let run: { index: number; name: string; column: number }[] = [];
  const closeRun = () => {
    if (run.length > 0) {
      const width = Math.max(...run.map((entry) => entry.name.length));
      for (const entry of run) {
        if (entry.column !== width + 1) {
          problems.push(`line ${entry.index + 1}: "=" at ${entry.column}, expected ${width + 1}`);
        }
      }
    }
    run = [];
  };
  lines.forEach((line, index) => {
    if (/\s$/.test(line)) problems.push(`line ${index + 1}: trailing whitespace`);
    if (line.includes('\t')) problems.push(`line ${index + 1}: tab`);
    const body = line.trimStart();
    const closes = /^[}\]]/.test(body) ? 1 : 0;
    const expected = body === '' ? 0 : 2 * (depth - closes);
    if (line.length - body.length !== expected) {
      problems.push(`line ${index + 1}: indent ${line.length - body.length}, expected ${expected}`);
    }
    const code = body.startsWith('#') ? '' : body.replace(/"(?:[^"\\]|\\.)*"/g, '""');
    const net = (code.match(/[{[(]/g)?.length ?? 0) - (code.match(/[}\])]/g)?.length ?? 0);
    const attribute = /^([\w-]+)( +)= /.exec(body);
    if (attribute && net === 0) {
      run.push({
        index,
        name: attribute[1] ?? '',
        column: (attribute[1] ?? '').length + (attribute[2] ?? '').length,
      });
    } else {
      closeRun();
      if (attribute && attribute[2] !== ' ') {
        problems.push(`line ${index + 1}: one space before "=" when a value spans lines`);
      }
    }
    depth += net;
  });
  closeRun();
  if (depth !== 0) problems.push(`unbalanced braces (${depth})`);
  return problems;
}

describe('ecr/main.tf', () => {
  it('is generated only with iac: terraform', () => {
    expect(renderFiles(parseConfig(CONFIG)).map((f) => f.path)).not.toContain('ecr/main.tf');
    expect(renderFiles(parseConfig(`${CONFIG}iac: terraform\n`)).map((f) => f.path)).toContain(
      'ecr/main.tf',
    );
  });

  it('parses as HCL and declares the repositories, their policies and the CI roles', async () => {
    const tf: Hcl = await parse('main.tf', mainTf(`${CONFIG}iac: terraform\n`));
    expect(tf.terraform[0].required_providers[0].aws).toEqual({
      source: 'hashicorp/aws',
      version: '~> 6.8',
    });
    expect(AWS_PROVIDER_CONSTRAINT).toMatch(/^~> 6\.\d+$/);
    expect(tf.provider.aws[0]).toEqual({
      region: 'eu-west-1',
      allowed_account_ids: ['123456789012'],
    });
    expect(tf.locals[0]).toEqual({
      image_repositories: ['shop', 'shop-worker'],
      cache_repositories: ['shop-buildcache', 'shop-worker-buildcache'],
      branch_cache_repositories: ['shop-buildcache-branches', 'shop-worker-buildcache-branches'],
    });
    const { resource } = tf;
    expect(Object.keys(resource).sort()).toEqual([
      'aws_ecr_lifecycle_policy',
      'aws_ecr_repository',
      'aws_iam_role',
      'aws_iam_role_policy',
    ]);
    const image = resource.aws_ecr_repository.image[0];
    expect(image).toMatchObject({
      for_each: '${toset(local.image_repositories)}',
      name: '${each.value}',
      // Commit tags are immutable by default: what a deploy pulls cannot be replaced.
      image_tag_mutability: 'IMMUTABLE',
      image_scanning_configuration: [{ scan_on_push: true }],
    });
    expect(image.image_tag_mutability_exclusion_filter).toBeUndefined();
    for (const kind of ['cache', 'branch_cache']) {
      expect(resource.aws_ecr_repository[kind][0]).toMatchObject({
        for_each: `\${toset(local.${kind}_repositories)}`,
        image_tag_mutability: 'MUTABLE',
      });
    }
    expect(resource.aws_ecr_lifecycle_policy.image[0]).toEqual({
      for_each: '${aws_ecr_repository.image}',
      repository: '${each.value.name}',
      policy: '${file("${path.module}/image-lifecycle-policy.json")}',
    });
    expect(resource.aws_ecr_lifecycle_policy.cache[0].policy).toBe(
      '${file("${path.module}/cache-lifecycle-policy.json")}',
    );
    expect(resource.aws_ecr_lifecycle_policy.branch_cache[0]).toEqual({
      for_each: '${aws_ecr_repository.branch_cache}',
      repository: '${each.value.name}',
      policy: '${file("${path.module}/branch-cache-lifecycle-policy.json")}',
    });
    expect(Object.keys(resource.aws_iam_role).sort()).toEqual(['branch', 'main']);
    expect(resource.aws_iam_role.main[0]).toMatchObject({
      name: 'shop-cached-deploy',
      assume_role_policy: '${file("${path.module}/main-role-trust-policy.json")}',
    });
    expect(resource.aws_iam_role_policy.main[0]).toEqual({
      name: 'cached-deploy',
      role: '${aws_iam_role.main.id}',
      policy: '${file("${path.module}/main-role-policy.json")}',
    });
    expect(tf.data.aws_iam_openid_connect_provider.github[0].url).toBe(
      'https://token.actions.githubusercontent.com',
    );
    // An upgrade from the single CI role ("ci") keeps that role as the main role.
    expect(tf.moved).toEqual([
      { from: '${aws_iam_role.ci}', to: '${aws_iam_role.main}' },
      { from: '${aws_iam_role_policy.ci}', to: '${aws_iam_role_policy.main}' },
    ]);
  });

  it.each([
    ['no deploy environment', ''],
    [
      'a deploy environment',
      'workflow:\n  deploy:\n    command: ./deploy.sh\n    environment: production\n',
    ],
  ])(
    'gives the same roles, documents and repositories as the JSON files (%s)',
    async (_, extra) => {
      const config = parseConfig(`${CONFIG}iac: terraform\n${extra}`);
      const files = new Map(renderFiles(config, '1.2.3').map((f) => [f.path, f.content]));
      const tf: Hcl = await parse('main.tf', files.get('ecr/main.tf') ?? '');
      const beside = (expression: string) => {
        const name = /^\$\{file\("\$\{path\.module\}\/([^"]+)"\)\}$/.exec(expression)?.[1];
        const content = files.get(`ecr/${name}`);
        if (content === undefined)
          throw new Error(`main.tf reads ${expression}, which is not generated`);
        return JSON.parse(content);
      };
      // Roles: Terraform's, by name, with the documents it reads…
      const tfRoles = Object.fromEntries(
        Object.entries(tf.resource.aws_iam_role).map(([key, [role]]: [string, Hcl]) => {
          const [policy] = tf.resource.aws_iam_role_policy[key];
          expect(policy.role).toBe(`\${aws_iam_role.${key}.id}`);
          return [
            role.name,
            { trust: beside(role.assume_role_policy), policy: beside(policy.policy) },
          ];
        }),
      );
      // …are exactly the roles the JSON files describe and the workflow assumes.
      const paths = generatedPaths(config);
      const jsonRoles = Object.fromEntries(
        ciRoles(config).map((role) => [
          role.name,
          {
            trust: JSON.parse(files.get(paths.roles[role.kind].trust) ?? ''),
            policy: JSON.parse(files.get(paths.roles[role.kind].policy) ?? ''),
          },
        ]),
      );
      expect(tfRoles).toEqual(jsonRoles);
      expect(Object.keys(tfRoles).length).toBe(extra ? 3 : 2);
      const workflow = files.get(config.workflow.file) ?? '';
      for (const role of ciRoles(config)) expect(workflow).toContain(role.arn);
      // Repositories and their lifecycle documents: the same as apply's.
      const settings = repositorySettings(config, paths);
      for (const kind of ['image', 'cache', 'branch-cache'] as const) {
        const key = kind.replace('-', '_');
        const names = settings.filter((r) => r.kind === kind).map((r) => r.name);
        expect(tf.locals[0][`${key}_repositories`]).toEqual(names);
        const [repository] = tf.resource.aws_ecr_repository[key];
        expect(repository.image_tag_mutability).toBe(
          settings.find((r) => r.kind === kind)?.tagMutability,
        );
        const [lifecycle] = tf.resource.aws_ecr_lifecycle_policy[key];
        const policyFile = settings.find((r) => r.kind === kind)?.policyFile ?? '';
        expect(beside(lifecycle.policy)).toEqual(JSON.parse(files.get(policyFile) ?? ''));
      }
    },
  );

  it("reads the GitLab instance's OIDC provider with ci: gitlab, and the roles depend on it", async () => {
    const gitlab = CONFIG.replace(
      'github:\n  repository: acme/shop\n',
      'ci: gitlab\ngitlab:\n  project: acme/platform/shop\n  host: gitlab.acme.example\n',
    );
    const text = mainTf(`${gitlab}iac: terraform\n`);
    expect(fmtViolations(text)).toEqual([]);
    const tf = (await parse('main.tf', text)) as Hcl;
    expect(Object.keys(tf.data.aws_iam_openid_connect_provider)).toEqual(['gitlab']);
    expect(tf.data.aws_iam_openid_connect_provider.gitlab[0].url).toBe(
      'https://gitlab.acme.example',
    );
    expect(tf.resource.aws_iam_role.main[0].depends_on).toEqual([
      '${data.aws_iam_openid_connect_provider.gitlab}',
    ]);
  });

  it('reads the policy files it is given, by their names beside it', async () => {
    const role = (kind: string) => ({
      policy: `aws/${kind}-permissions.json`,
      trust: `aws/${kind}-trust.json`,
    });
    const paths = {
      cachePolicy: 'aws/cache.json',
      branchCachePolicy: 'aws/branch-cache.json',
      imagePolicy: 'aws/image.json',
      roles: { main: role('main'), branch: role('branch'), deploy: role('deploy') },
    };
    const config = parseConfig(`${CONFIG}iac: terraform\n`);
    const text = renderTerraform(config, '1.2.3', paths);
    expect(fileReferences(await parse('main.tf', text)).sort()).toEqual([
      'branch-cache.json',
      'branch-permissions.json',
      'branch-trust.json',
      'cache.json',
      'image.json',
      'main-permissions.json',
      'main-trust.json',
    ]);
    expect(() =>
      renderTerraform(config, '1.2.3', {
        ...paths,
        roles: { ...paths.roles, branch: { ...role('branch'), policy: 'elsewhere/role.json' } },
      }),
    ).toThrow(/from its own directory/);
  });

  it('keeps every cache tag mutable with IMMUTABLE_WITH_EXCLUSION, and follows the ecr settings', async () => {
    const tf: Hcl = await parse(
      'main.tf',
      mainTf(
        `${CONFIG}iac: terraform\necr:\n  imageTagMutability: IMMUTABLE\n  cacheTagMutability: IMMUTABLE_WITH_EXCLUSION\n  scanOnPush: false\n`,
      ),
    );
    const cache = tf.resource.aws_ecr_repository.cache[0];
    expect(cache.image_tag_mutability).toBe('IMMUTABLE_WITH_EXCLUSION');
    expect(cache.image_tag_mutability_exclusion_filter).toEqual([
      { filter: 'main.*', filter_type: 'WILDCARD' },
      { filter: 'seed.*', filter_type: 'WILDCARD' },
      { filter: 'br-*', filter_type: 'WILDCARD' },
    ]);
    expect(cache.image_scanning_configuration).toEqual([{ scan_on_push: false }]);
    // Branch caches are rewritten in place too.
    const branchCache = tf.resource.aws_ecr_repository.branch_cache[0];
    expect(branchCache.image_tag_mutability).toBe('IMMUTABLE_WITH_EXCLUSION');
    expect(branchCache.image_tag_mutability_exclusion_filter).toEqual(
      cache.image_tag_mutability_exclusion_filter,
    );
    expect(tf.resource.aws_ecr_repository.image[0].image_tag_mutability).toBe('IMMUTABLE');
  });

  it.each([
    ['the defaults', ''],
    ['exclusion filters', 'ecr:\n  cacheTagMutability: IMMUTABLE_WITH_EXCLUSION\n'],
    ['ecrDir "."', 'paths:\n  ecrDir: .\n'],
  ])('is formatted as terraform fmt formats it (%s)', (_, extra) => {
    const text = mainTf(`${CONFIG}iac: terraform\n${extra}`);
    expect(fmtViolations(text)).toEqual([]);
    expect(text).toMatch(/^# Generated by create-cached-deploy 1\.2\.3\. Do not edit/);
    expect(text).toContain('  name                 = each.value\n  image_tag_mutability = ');
    expect(text).toContain('      source  = "hashicorp/aws"\n      version = "~> 6.8"\n');
  });

  it('the format checker catches misalignment, bad indents and a missing final newline', () => {
    expect(fmtViolations('a {\n  x = 1\n  long = 2\n}')).toEqual([
      'must end with one newline',
      'line 2: "=" at 2, expected 5',
    ]);
    expect(fmtViolations('a {\n x = 1\n}\n')).toEqual(['line 2: indent 1, expected 2']);
    expect(fmtViolations('a {\n  x = {\n    y = 1\n  }\n  zz = 2\n}\n')).toEqual([]);
  });

  it('passes terraform fmt -check', (context) => {
    const terraform = needSystemTool(context, 'terraform');
    for (const extra of ['', 'ecr:\n  cacheTagMutability: IMMUTABLE_WITH_EXCLUSION\n']) {
      const dir = createTempDir();
      writeFileSync(join(dir, 'main.tf'), mainTf(`${CONFIG}iac: terraform\n${extra}`));
      // Exit 0 and no file listed: nothing to reformat.
      const out = execFileSync(terraform, ['fmt', '-check', '-list=true', dir], {
        encoding: 'utf8',
        env: { ...process.env, TF_CLI_CONFIG_FILE: '/dev/null' },
      });
      expect(out).toBe('');
    }
  });
});

describe('generate --iac terraform', () => {
  it('writes main.tf referencing exactly the generated policy files beside it', async () => {
    const dir = repo();
    await generate(dir, { iac: 'terraform' });
    const text = readFileSync(join(dir, 'ecr/main.tf'), 'utf8');
    const references = fileReferences(await parse('main.tf', text)).sort();
    expect(references).toEqual(POLICY_FILES);
    const state = JSON.parse(readFileSync(join(dir, '.cached-deploy/state.json'), 'utf8'));
    for (const name of references) {
      const path = join(dirname('ecr/main.tf'), name);
      expect(existsSync(join(dir, path)), path).toBe(true);
      expect(Object.keys(state.files)).toContain(path);
      // The JSON files are what AWS gets: valid JSON, no marker.
      expect(() => JSON.parse(readFileSync(join(dir, path), 'utf8'))).not.toThrow();
    }
    expect(Object.keys(state.files)).toContain('ecr/main.tf');
  });

  it('saves iac: terraform in cached-deploy.yml (comments kept); a plain generate is then a no-op', async () => {
    const dir = repo();
    await generate(dir);
    const result = await generate(dir, { iac: 'terraform' });
    expect(result.wrote).toBe(true);
    expect(
      result.plan.changes.filter((c) => c.action !== 'unchanged').map((c) => [c.path, c.action]),
    ).toEqual([
      ['cached-deploy.yml', 'update'],
      ['ecr/main.tf', 'create'],
    ]);
    const config = readFileSync(join(dir, 'cached-deploy.yml'), 'utf8');
    expect(config).toBe(`${CONFIG}iac: terraform\n`);
    expect(parseDocument(config).get('iac')).toBe('terraform');

    const before = snapshotDir(dir);
    const again = await generate(dir);
    expect(again.wrote).toBe(false);
    expect(snapshotChanges(before, snapshotDir(dir))).toEqual({
      added: [],
      changed: [],
      removed: [],
    });
    expect((await generate(dir, { iac: 'terraform' })).wrote).toBe(false);
    expect(
      (await generate(dir, { check: true })).plan.changes.every((c) => c.action === 'unchanged'),
    ).toBe(true);
  });

  it('through the CLI; --iac none removes main.tf again; an unknown tool is a usage error', async () => {
    const dir = repo();
    const out: string[] = [];
    const err: string[] = [];
    const io = {
      stdout: (text: string) => out.push(text),
      stderr: (text: string) => err.push(text),
      interactive: false,
    };
    expect(await main(['generate', dir, '--iac', 'terraform'], io)).toBe(0);
    expect(out.join('')).toMatch(/created +ecr\/main\.tf/);
    expect(await main(['generate', dir, '--check'], io)).toBe(0);

    expect(await main(['generate', dir, '--iac', 'none'], io)).toBe(0);
    expect(existsSync(join(dir, 'ecr/main.tf'))).toBe(false);
    expect(parseDocument(readFileSync(join(dir, 'cached-deploy.yml'), 'utf8')).get('iac')).toBe(
      'none',
    );

    const before = snapshotDir(dir);
    expect(await main(['generate', dir, '--iac', 'pulumi'], io)).toBe(1);
    expect(err.join('')).toMatch(/--iac: "pulumi" is not allowed \(allowed: none, terraform\)/);
    expect(snapshotDir(dir)).toEqual(before);
  });

  it('--check --iac terraform reports the pending change and writes nothing', async () => {
    const dir = repo();
    await generate(dir);
    const before = snapshotDir(dir);
    const result = await generate(dir, { check: true, iac: 'terraform' });
    expect(result.plan.changes.filter((c) => c.action !== 'unchanged').map((c) => c.path)).toEqual([
      'cached-deploy.yml',
      'ecr/main.tf',
    ]);
    expect(snapshotDir(dir)).toEqual(before);
  });
});
