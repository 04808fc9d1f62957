import { posix } from 'node:path';
import type { ResolvedConfig } from '../config/resolve.js';
import { type RepositoryKind, repositorySettings } from '../model/ecr-repositories.js';
import { ciRoles, oidcIssuer, type RoleKind } from '../model/roles.js';
import { hashComment } from './marker.js';
import { hclString } from './templates.js';

/**
 * `<ecrDir>/main.tf` (with `iac: terraform`): the repositories, their lifecycle policies, the CI
 * roles (main, branch, and deploy with a deploy environment) and their policies, for teams that
 * manage AWS with Terraform. Every policy is read with
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
  branchCachePolicy: string;
  imagePolicy: string;
  roles: Record<RoleKind, { policy: string; trust: string }>;
}

/** Terraform's name for each kind of repository (and for its local list). */
const TF_KIND: Record<RepositoryKind, string> = {
  image: 'image',
  cache: 'cache',
  'branch-cache': 'branch_cache',
};

/**
 * `paths` name the generated policy files; main.tf is written in their directory and reads each
 * by its name there.
 */
export function renderTerraform(
  config: ResolvedConfig,
  version: string,
  paths: TerraformPolicyPaths,
): string {
  const roles = ciRoles(config);
  const files = [
    paths.cachePolicy,
    paths.branchCachePolicy,
    paths.imagePolicy,
    ...roles.flatMap((role) => [paths.roles[role.kind].policy, paths.roles[role.kind].trust]),
  ];
  if (new Set(files.map((path) => posix.dirname(path))).size !== 1) {
    throw new Error(`main.tf reads its policy files from its own directory: ${files.join(', ')}`);
  }
  const beside = (path: string) => fileBeside(posix.basename(path));
  const repositories = repositorySettings(config, paths);
  const names = (kind: RepositoryKind) =>
    repositories.filter((repo) => repo.kind === kind).map((repo) => repo.name);
  const settings = (kind: RepositoryKind) => {
    const first = repositories.find((repo) => repo.kind === kind);
    if (!first) throw new Error(`no ${kind} repository`);
    return first;
  };

  const repositoryResource = (kind: RepositoryKind): Item => {
    const repo = settings(kind);
    return block(
      'resource',
      ['aws_ecr_repository', TF_KIND[kind]],
      [
        attr('for_each', line(`toset(local.${TF_KIND[kind]}_repositories)`)),
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

  const lifecycleResource = (kind: RepositoryKind, path: string): Item =>
    block(
      'resource',
      ['aws_ecr_lifecycle_policy', TF_KIND[kind]],
      [
        attr('for_each', line(`aws_ecr_repository.${TF_KIND[kind]}`)),
        'blank',
        attr('repository', line('each.value.name')),
        attr('policy', beside(path)),
      ],
    );

  // The CI's OIDC provider: GitHub's, or the GitLab instance's (docs/gitlab-ci.md).
  const issuer = oidcIssuer(config);
  const provider =
    issuer.ci === 'gitlab'
      ? {
          name: 'gitlab',
          owner: `The GitLab instance's (${issuer.host})`,
          url: `https://${issuer.host}`,
        }
      : { name: 'github', owner: "GitHub's", url: `https://${issuer.host}` };
  const ROLE_COMMENTS: Record<RoleKind, string> = {
    main: `# The main role: trusted only for the ${config.mainBranch} branch. Pushes images, writes and prunes the\n# main and seed caches, runs apply (and deploys when no deploy environment is set).`,
    branch:
      '# The branch role: every branch and same-repository pull request. Reads the main and seed\n# caches; reads, writes and deletes only in the branch-cache repositories.',
    deploy:
      issuer.ci === 'gitlab'
        ? `# The deploy role: the deploy job on the ${config.mainBranch} branch (IAM cannot read GitLab's environment\n# claims). Pulls images; attach what the deploy command itself needs to this role.`
        : '# The deploy role: trusted only through the deploy environment, so its protection rules gate\n# AWS access. Pulls images; attach what the deploy command itself needs to this role.',
  };
  const roleResources = (kind: RoleKind): Item[] => [
    ...comment(ROLE_COMMENTS[kind]),
    block(
      'resource',
      ['aws_iam_role', kind],
      [
        attr('name', str(roles.find((role) => role.kind === kind)?.name ?? '')),
        attr('assume_role_policy', beside(paths.roles[kind].trust)),
        'blank',
        attr('depends_on', line(`[data.aws_iam_openid_connect_provider.${provider.name}]`)),
      ],
    ),
    'blank',
    block(
      'resource',
      ['aws_iam_role_policy', kind],
      [
        attr('name', str('cached-deploy')),
        attr('role', line(`aws_iam_role.${kind}.id`)),
        attr('policy', beside(paths.roles[kind].policy)),
      ],
    ),
    'blank',
  ];

  const items: Item[] = [
    ...comment(hashComment(version)),
    ...comment(
      [
        '#',
        '# The ECR repositories of cached-deploy.yml, their lifecycle policies and the CI roles, for',
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
        attr('branch_cache_repositories', list(names('branch-cache'))),
      ],
    ),
    'blank',
    repositoryResource('image'),
    'blank',
    lifecycleResource('image', paths.imagePolicy),
    'blank',
    ...comment(
      [
        '# Cache tags (main.*, seed.*, br-*) are rewritten by every build: they must stay mutable.',
        '# main.* and seed.* live in the cache repositories, which only the main role can write.',
      ].join('\n'),
    ),
    repositoryResource('cache'),
    'blank',
    lifecycleResource('cache', paths.cachePolicy),
    'blank',
    ...comment(
      "# Every branch's cache (br-*): the one place the branch role can write. Everything expires.",
    ),
    repositoryResource('branch-cache'),
    'blank',
    lifecycleResource('branch-cache', paths.branchCachePolicy),
    'blank',
    ...comment(
      [
        `# ${provider.owner} OIDC provider exists once per account and is shared by every repository's role:`,
        '# it is read, not created, so planning fails here when the account does not have it yet.',
      ].join('\n'),
    ),
    block(
      'data',
      ['aws_iam_openid_connect_provider', provider.name],
      [attr('url', str(provider.url))],
    ),
    'blank',
    ...roles.flatMap((role) => roleResources(role.kind)),
    ...comment(
      '# Before 0.2 the main role was the only CI role, named "ci": keep it instead of replacing it.',
    ),
    block(
      'moved',
      [],
      [attr('from', line('aws_iam_role.ci')), attr('to', line('aws_iam_role.main'))],
    ),
    'blank',
    block(
      'moved',
      [],
      [attr('from', line('aws_iam_role_policy.ci')), attr('to', line('aws_iam_role_policy.main'))],
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
