import { posix } from 'node:path';
import type { ResolvedConfig } from '../config/resolve.js';
import { repositorySettings } from '../model/ecr-repositories.js';
import { hashComment } from './marker.js';
import { hclString } from './templates.js';

/**
 * `<ecrDir>/main.tf` (with `iac: terraform`): the repositories, their lifecycle policies, the CI
 * role and its policy, for teams that manage AWS with Terraform. Every policy is read with
 * `file()` from the JSON file generated beside it, so the JSON files stay the one source that
 * `apply`, the IAM console and Terraform all use.
 *
 * The text is built from a small syntax tree and printed the way `terraform fmt` prints it
 * (hclwrite's rules): two spaces per level, one space around `=` except that the `=` of
 * consecutive single-line attributes are aligned one space after the longest name (a blank line,
 * a comment, a block or a multi-line value ends such a run), and a newline at the end.
 */

/** The AWS provider major this file was written for; 6.8 added tag mutability exclusion filters. */
export const AWS_PROVIDER_CONSTRAINT = '~> 6.8';
export const TERRAFORM_VERSION_CONSTRAINT = '>= 1.5.0';

/** An expression: one line of HCL, or an object constructor printed one attribute per line. */
type Expr = { line: string } | { object: Item[] };

type Item =
  | { attribute: string; value: Expr }
  | { block: string; labels: string[]; body: Item[] }
  | { comment: string }
  | 'blank';

const line = (text: string): Expr => ({ line: text });
const str = (text: string): Expr => line(hclString(text));
const list = (values: string[]): Expr => line(`[${values.map((v) => hclString(v)).join(', ')}]`);
const attr = (name: string, value: Expr): Item => ({ attribute: name, value });
const block = (type: string, labels: string[], body: Item[]): Item => ({
  block: type,
  labels,
  body,
});
const comment = (text: string): Item[] => text.split('\n').map((c) => ({ comment: c }));

/** `file("${path.module}/<name>")`: a file beside main.tf. */
function fileBeside(name: string): Expr {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`not a plain file name: ${name}`);
  return line(`file(${hclString(`\${path.module}/${name}`, { interpolate: true })})`);
}

/** The repository-relative paths of the generated files main.tf reads (`generatedPaths(config)`). */
export interface TerraformPolicyPaths {
  cachePolicy: string;
  imagePolicy: string;
  iamPolicy: string;
  trustPolicy: string;
}

/**
 * `paths` name the generated policy files; main.tf is written in their directory and reads each
 * by its name there.
 */
export function renderTerraform(
  config: ResolvedConfig,
  version: string,
  paths: TerraformPolicyPaths,
): string {
  const files = [paths.cachePolicy, paths.imagePolicy, paths.iamPolicy, paths.trustPolicy];
  if (new Set(files.map((path) => posix.dirname(path))).size !== 1) {
    throw new Error(`main.tf reads its policy files from its own directory: ${files.join(', ')}`);
  }
  const beside = (path: string) => fileBeside(posix.basename(path));
  const repositories = repositorySettings(config, paths);
  const names = (kind: 'image' | 'cache') =>
    repositories.filter((repo) => repo.kind === kind).map((repo) => repo.name);
  const settings = (kind: 'image' | 'cache') => {
    const first = repositories.find((repo) => repo.kind === kind);
    if (!first) throw new Error(`no ${kind} repository`);
    return first;
  };

  const repositoryResource = (kind: 'image' | 'cache'): Item => {
    const repo = settings(kind);
    return block(
      'resource',
      ['aws_ecr_repository', kind],
      [
        attr('for_each', line(`toset(local.${kind}_repositories)`)),
        'blank',
        attr('name', line('each.value')),
        attr('image_tag_mutability', str(repo.tagMutability)),
        ...repo.exclusionFilters.flatMap((filter): Item[] => [
          'blank',
          block(
            'image_tag_mutability_exclusion_filter',
            [],
            [attr('filter', str(filter.filter)), attr('filter_type', str(filter.filterType))],
          ),
        ]),
        'blank',
        block(
          'image_scanning_configuration',
          [],
          [attr('scan_on_push', line(String(repo.scanOnPush)))],
        ),
      ],
    );
  };

  const lifecycleResource = (kind: 'image' | 'cache', path: string): Item =>
    block(
      'resource',
      ['aws_ecr_lifecycle_policy', kind],
      [
        attr('for_each', line(`aws_ecr_repository.${kind}`)),
        'blank',
        attr('repository', line('each.value.name')),
        attr('policy', beside(path)),
      ],
    );

  const items: Item[] = [
    ...comment(hashComment(version)),
    ...comment(
      [
        '#',
        '# The ECR repositories of cached-deploy.yml, their lifecycle policies and the CI role, for',
        '# teams that manage AWS with Terraform. The policies are read from the JSON files beside',
        '# this one (the same files `create-cached-deploy apply` puts), so one review covers both.',
      ].join('\n'),
    ),
    'blank',
    block(
      'terraform',
      [],
      [
        attr('required_version', str(TERRAFORM_VERSION_CONSTRAINT)),
        'blank',
        block(
          'required_providers',
          [],
          [
            attr('aws', {
              object: [
                attr('source', str('hashicorp/aws')),
                attr('version', str(AWS_PROVIDER_CONSTRAINT)),
              ],
            }),
          ],
        ),
      ],
    ),
    'blank',
    ...comment(
      '# Refuses to run against any other account than the registry of cached-deploy.yml.',
    ),
    block(
      'provider',
      ['aws'],
      [
        attr('region', str(config.aws.region)),
        attr('allowed_account_ids', list([config.aws.accountId])),
      ],
    ),
    'blank',
    block(
      'locals',
      [],
      [
        attr('image_repositories', list(names('image'))),
        attr('cache_repositories', list(names('cache'))),
      ],
    ),
    'blank',
    repositoryResource('image'),
    'blank',
    lifecycleResource('image', paths.imagePolicy),
    'blank',
    ...comment(
      '# Cache tags (main.*, seed.*, br-*) are rewritten by every build: they must stay mutable.',
    ),
    repositoryResource('cache'),
    'blank',
    lifecycleResource('cache', paths.cachePolicy),
    'blank',
    ...comment(
      [
        "# GitHub's OIDC provider exists once per account and is shared by every repository's role:",
        '# it is read, not created, so planning fails here when the account does not have it yet.',
      ].join('\n'),
    ),
    block(
      'data',
      ['aws_iam_openid_connect_provider', 'github'],
      [attr('url', str('https://token.actions.githubusercontent.com'))],
    ),
    'blank',
    block(
      'resource',
      ['aws_iam_role', 'ci'],
      [
        attr('name', str(config.aws.roleName)),
        attr('assume_role_policy', beside(paths.trustPolicy)),
        'blank',
        attr('depends_on', line('[data.aws_iam_openid_connect_provider.github]')),
      ],
    ),
    'blank',
    block(
      'resource',
      ['aws_iam_role_policy', 'ci'],
      [
        attr('name', str('cached-deploy')),
        attr('role', line('aws_iam_role.ci.id')),
        attr('policy', beside(paths.iamPolicy)),
      ],
    ),
  ];
  return printBody(items, 0).join('\n').concat('\n');
}

// --- printing, as terraform fmt does ---

function printBody(items: Item[], depth: number): string[] {
  const indent = '  '.repeat(depth);
  const out: string[] = [];
  for (let i = 0; i < items.length; ) {
    const item = items[i] as Item;
    if (isSingleLineAttribute(item)) {
      // A run of consecutive single-line attributes: their `=` line up.
      const run: { attribute: string; value: { line: string } }[] = [];
      while (i < items.length && isSingleLineAttribute(items[i] as Item)) {
        run.push(items[i] as { attribute: string; value: { line: string } });
        i++;
      }
      const width = Math.max(...run.map((entry) => entry.attribute.length));
      for (const entry of run) {
        out.push(`${indent}${entry.attribute.padEnd(width)} = ${entry.value.line}`);
      }
      continue;
    }
    i++;
    if (item === 'blank') out.push('');
    else if ('comment' in item) out.push(`${indent}${item.comment}`);
    else if ('attribute' in item) {
      // A multi-line value: its first line has no alignment of its own and ends the run.
      const value = item.value as { object: Item[] };
      out.push(`${indent}${item.attribute} = {`, ...printBody(value.object, depth + 1));
      out.push(`${indent}}`);
    } else {
      const labels = item.labels.map((label) => `${hclString(label)} `).join('');
      out.push(`${indent}${item.block} ${labels}{`, ...printBody(item.body, depth + 1));
      out.push(`${indent}}`);
    }
  }
  return out;
}

function isSingleLineAttribute(item: Item): item is { attribute: string; value: { line: string } } {
  return typeof item === 'object' && 'attribute' in item && 'line' in item.value;
}
