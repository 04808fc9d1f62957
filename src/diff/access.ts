import type { ResolvedConfig } from '../config/resolve.js';
import { repositoryArn } from '../model/aws.js';
import { cacheTag, imageTagSuffixes, MAIN_SCOPE, SEED_SCOPE } from '../model/cache-tags.js';
import { repositoryNames } from '../model/iam.js';
import {
  GITHUB_OIDC_HOST,
  githubOf,
  githubSubject,
  gitlabOf,
  gitlabSubject,
  OIDC_AUDIENCE,
} from '../model/roles.js';

/**
 * Who can do what, before and after a change of the IAM documents, in words: "branch builds and
 * pull requests can no longer write main.api and seed.api (in shop-api-buildcache)". For each
 * audience (the OIDC subject a kind of job presents) every role whose trust policy accepts that
 * subject is collected, and each capability that matters here (push an image, write main's cache,
 * delete, change repository settings) is checked against those roles' permission policies.
 *
 * The evaluation is IAM's for what these documents use: an explicit Deny wins over any Allow;
 * Action and NotAction match with `*` and `?`, ignoring case; Resource and NotResource with `*` and
 * `?`; conditions StringEquals, StringNotEquals, StringLike, StringNotLike (values ORed, negated
 * ones NORed, a missing key fails a positive operator and passes a negated one). Any other
 * condition operator makes a statement count as not applying (an Allow grants nothing, a Deny
 * denies nothing), so an unusual hand-written document is explained conservatively.
 */

export interface PolicyDocumentLike {
  Statement?: StatementLike[] | StatementLike;
}

export interface StatementLike {
  Sid?: string;
  Effect?: string;
  Principal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, string | string[]>>;
}

/** A role as two documents: who may assume it, and what it may do. */
export interface RoleDocuments {
  trust: PolicyDocumentLike | undefined;
  policy: PolicyDocumentLike | undefined;
}

const list = (value: string | string[] | undefined): string[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

function statements(doc: PolicyDocumentLike | undefined): StatementLike[] {
  if (!doc?.Statement) return [];
  return Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
}

/** IAM's wildcard match: `*` any run of characters, `?` any one. */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  let source = '';
  for (const char of pattern) {
    source += char === '*' ? '.*' : char === '?' ? '.' : char.replace(/[.+^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, ignoreCase ? 'is' : 's').test(value);
}

type Context = Record<string, string | undefined>;

function conditionsHold(condition: StatementLike['Condition'], context: Context): boolean {
  for (const [operator, entries] of Object.entries(condition ?? {})) {
    for (const [key, values] of Object.entries(entries ?? {})) {
      const actual = context[key];
      const patterns = list(values);
      switch (operator) {
        case 'StringEquals':
          if (actual === undefined || !patterns.includes(actual)) return false;
          break;
        case 'StringLike':
          if (actual === undefined || !patterns.some((p) => wildcardMatch(p, actual))) return false;
          break;
        case 'StringNotEquals':
          if (actual !== undefined && patterns.includes(actual)) return false;
          break;
        case 'StringNotLike':
          if (actual !== undefined && patterns.some((p) => wildcardMatch(p, actual))) return false;
          break;
        default:
          return false;
      }
    }
  }
  return true;
}

function matchesAction(statement: StatementLike, action: string): boolean {
  if (statement.NotAction !== undefined) {
    return !list(statement.NotAction).some((p) => wildcardMatch(p, action, true));
  }
  return list(statement.Action).some((p) => wildcardMatch(p, action, true));
}

function matchesResource(statement: StatementLike, resource: string): boolean {
  if (statement.NotResource !== undefined) {
    return !list(statement.NotResource).some((p) => wildcardMatch(p, resource));
  }
  return list(statement.Resource ?? '*').some((p) => wildcardMatch(p, resource));
}

/** Whether an identity policy allows `action` on `resource` (explicit Deny wins). */
export function policyAllows(
  policy: PolicyDocumentLike | undefined,
  action: string,
  resource: string,
  context: Context = {},
): boolean {
  let allowed = false;
  for (const statement of statements(policy)) {
    if (!matchesAction(statement, action) || !matchesResource(statement, resource)) continue;
    if (statement.Condition !== undefined && !conditionsHold(statement.Condition, context)) {
      continue;
    }
    if (statement.Effect === 'Deny') return false;
    if (statement.Effect === 'Allow') allowed = true;
  }
  return allowed;
}

/** The issuer of the tokens a trust policy is judged against: its host and the audience asked for. */
export interface TokenIssuer {
  host: string;
  audience: string;
}

const GITHUB_ISSUER: TokenIssuer = { host: GITHUB_OIDC_HOST, audience: OIDC_AUDIENCE };

/**
 * Whether an OIDC token with this `sub` (and the audience the jobs ask for) from this issuer
 * (GitHub's by default) may assume the role.
 */
export function trustAdmits(
  trust: PolicyDocumentLike | undefined,
  subject: string,
  issuer: TokenIssuer = GITHUB_ISSUER,
): boolean {
  const context: Context = {
    [`${issuer.host}:sub`]: subject,
    [`${issuer.host}:aud`]: issuer.audience,
  };
  let allowed = false;
  for (const statement of statements(trust)) {
    if (!federatedBy(statement.Principal, issuer.host)) continue;
    if (!matchesAction(statement, 'sts:AssumeRoleWithWebIdentity')) continue;
    if (statement.Condition !== undefined && !conditionsHold(statement.Condition, context)) {
      continue;
    }
    if (statement.Effect === 'Deny') return false;
    if (statement.Effect === 'Allow') allowed = true;
  }
  return allowed;
}

function federatedBy(principal: unknown, host: string): boolean {
  if (principal === '*') return true;
  if (principal === null || typeof principal !== 'object') return false;
  const federated = (principal as Record<string, string | string[]>).Federated;
  return list(federated).some((arn) => arn.endsWith(`:oidc-provider/${host}`));
}

// --- audiences and capabilities ---

interface Audience {
  label: string;
  subject: string;
}

/**
 * The subjects jobs of this repository present: a branch other than main, a pull request, the
 * main branch, and the deploy environment when there is one. (A name no branch is likely to have
 * stands for "any other branch".)
 */
export function audiences(config: ResolvedConfig): Audience[] {
  if (config.ci === 'gitlab') return gitlabAudiences(config);
  const repo = githubOf(config).repository;
  const environment = config.workflow.deploy?.environment;
  return [
    {
      label: 'branch builds',
      subject: githubSubject.branch(repo, 'cached-deploy/any-other-branch'),
    },
    { label: 'pull requests', subject: githubSubject.pullRequest(repo) },
    {
      label: `the ${config.mainBranch} branch`,
      subject: githubSubject.branch(repo, config.mainBranch),
    },
    ...(environment
      ? [
          {
            label: `the deploy environment ${environment}`,
            subject: githubSubject.environment(repo, environment),
          },
        ]
      : []),
  ];
}

/**
 * On GitLab a merge request presents its source branch's subject and a deploy job the main
 * branch's, so branches, the main branch and a tag are what differ.
 */
function gitlabAudiences(config: ResolvedConfig): Audience[] {
  const { project } = gitlabOf(config);
  return [
    {
      label: 'branch builds and merge requests',
      subject: gitlabSubject.branch(project, 'cached-deploy/any-other-branch'),
    },
    {
      label: `the ${config.mainBranch} branch`,
      subject: gitlabSubject.branch(project, config.mainBranch),
    },
  ];
}

interface Capability {
  /** Groups objects into one sentence: "<verb> <objects>". */
  verb: string;
  object: string;
  action: string;
  repository: string;
}

/** What matters about the repositories of this configuration, as (action, repository) probes. */
function capabilities(config: ResolvedConfig): Capability[] {
  const repos = repositoryNames(config);
  const tagsIn = (repository: string) =>
    config.images
      .filter((image) => image.cacheRepository === repository)
      .flatMap((image) =>
        // One tag per platform for an image built per platform (main.api.linux-arm64).
        imageTagSuffixes(image).flatMap((suffix) => [
          cacheTag(MAIN_SCOPE, suffix),
          cacheTag(SEED_SCOPE, suffix),
        ]),
      );
  const all = [...repos.images, ...repos.caches, ...repos.branchCaches];
  return [
    ...repos.images.map((repository) => ({
      verb: 'pull images from',
      object: repository,
      action: 'ecr:BatchGetImage',
      repository,
    })),
    ...repos.images.map((repository) => ({
      verb: 'push images to',
      object: repository,
      action: 'ecr:PutImage',
      repository,
    })),
    ...repos.caches.map((repository) => ({
      verb: 'write',
      object: `${tagsIn(repository).join(', ')} (in ${repository})`,
      action: 'ecr:PutImage',
      repository,
    })),
    ...repos.branchCaches.map((repository) => ({
      verb: 'write branch caches in',
      object: repository,
      action: 'ecr:PutImage',
      repository,
    })),
    ...all.map((repository) => ({
      verb: 'delete images in',
      object: repository,
      action: 'ecr:BatchDeleteImage',
      repository,
    })),
    ...all.map((repository) => ({
      verb: 'change the lifecycle policy of',
      object: repository,
      action: 'ecr:PutLifecyclePolicy',
      repository,
    })),
    ...all.map((repository) => ({
      verb: 'change the tag mutability of',
      object: repository,
      action: 'ecr:PutImageTagMutability',
      repository,
    })),
    ...[...repos.caches, ...repos.branchCaches].map((repository) => ({
      verb: 'read the caches in',
      object: repository,
      action: 'ecr:BatchGetImage',
      repository,
    })),
  ];
}

/**
 * Sentences for what each audience gained or lost between two sets of roles. Audiences that end
 * up with the same changes share a sentence ("branch builds and pull requests can no longer ...").
 */
export function explainAccessChange(
  config: ResolvedConfig,
  before: RoleDocuments[],
  after: RoleDocuments[],
): string[] {
  const { accountId, region } = config.aws;
  const probes = capabilities(config);
  const issuer =
    config.ci === 'gitlab'
      ? { host: gitlabOf(config).host, audience: gitlabOf(config).audience }
      : GITHUB_ISSUER;
  const can = (roles: RoleDocuments[], subject: string, probe: Capability) =>
    roles.some(
      (role) =>
        trustAdmits(role.trust, subject, issuer) &&
        policyAllows(role.policy, probe.action, repositoryArn(accountId, region, probe.repository)),
    );
  const changesOf = new Map<string, { audiences: string[]; lines: string[] }>();
  for (const audience of audiences(config)) {
    const lines: string[] = [];
    for (const [verb, direction] of [
      ['can no longer', (b: boolean, a: boolean) => b && !a],
      ['can now', (b: boolean, a: boolean) => !b && a],
    ] as const) {
      const objects = new Map<string, string[]>();
      for (const probe of probes) {
        if (!direction(can(before, audience.subject, probe), can(after, audience.subject, probe))) {
          continue;
        }
        const group = objects.get(probe.verb) ?? [];
        group.push(probe.object);
        objects.set(probe.verb, group);
      }
      for (const [what, names] of objects) lines.push(`${verb} ${what} ${names.join(', ')}`);
    }
    if (lines.length === 0) continue;
    const key = lines.join('\n');
    const entry = changesOf.get(key) ?? { audiences: [], lines };
    entry.audiences.push(audience.label);
    changesOf.set(key, entry);
  }
  return [...changesOf.values()].flatMap(({ audiences: who, lines }) =>
    lines.map((line) => `${who.join(' and ')} ${line}`),
  );
}
