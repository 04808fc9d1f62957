import type { ResolvedConfig } from '../config/resolve.js';
import {
  KEEP_FOREVER_COUNT,
  type LifecyclePolicy,
  type LifecycleRule,
} from '../model/lifecycle.js';
import type { RoleKind } from '../model/roles.js';
import type { FileChange } from '../plan/plan.js';
import { generatedPaths } from '../render/render-files.js';
import { explainAccessChange, type PolicyDocumentLike, type RoleDocuments } from './access.js';

/**
 * Policy changes in words, for reviewers who should not have to read JSON line diffs: what a
 * lifecycle policy now keeps or expires, what the CI role may now do, who may now assume it.
 * Everything here compares parsed documents, so reordering or reformatting explains as nothing.
 */

export type PolicyKind =
  | 'cache-lifecycle'
  | 'branch-cache-lifecycle'
  | 'image-lifecycle'
  | 'iam'
  | 'trust';

/** The single CI role of earlier versions: files `generate` now deletes. */
export const LEGACY_ROLE_FILES = { policy: 'iam-policy.json', trust: 'trust-policy.json' } as const;

const ROLE_LABELS: Record<RoleKind, string> = {
  main: 'the main role',
  branch: 'the branch role',
  deploy: 'the deploy role',
};

interface RoleFiles {
  label: string;
  policy: string;
  trust: string;
}

/** Every role's pair of files, the current ones and the former single CI role's. */
function roleFiles(config: Parameters<typeof generatedPaths>[0]): RoleFiles[] {
  const paths = generatedPaths(config);
  const ecr = (name: string) =>
    config.paths.ecrDir === '.' ? name : `${config.paths.ecrDir}/${name}`;
  return [
    ...(Object.keys(paths.roles) as RoleKind[]).map((kind) => ({
      label: ROLE_LABELS[kind],
      ...paths.roles[kind],
    })),
    {
      label: 'the former CI role',
      policy: ecr(LEGACY_ROLE_FILES.policy),
      trust: ecr(LEGACY_ROLE_FILES.trust),
    },
  ];
}

/**
 * Sentences for every policy file among `changes` that would change (`diff`, `fleet --diff`):
 * per file, then, when a role's documents changed, who can now or no longer do what, compared over
 * all the roles' documents before and after (so a role split shows as "branch builds and pull
 * requests can no longer push images to ...").
 */
export function explainChanges(config: ResolvedConfig, changes: FileChange[]): string[] {
  const paths = generatedPaths(config);
  const roles = roleFiles(config);
  const kinds = new Map<string, { kind: PolicyKind; label?: string }>([
    [paths.cachePolicy, { kind: 'cache-lifecycle' }],
    [paths.branchCachePolicy, { kind: 'branch-cache-lifecycle' }],
    [paths.imagePolicy, { kind: 'image-lifecycle' }],
    ...roles.flatMap((role): [string, { kind: PolicyKind; label: string }][] => [
      [role.policy, { kind: 'iam', label: role.label }],
      [role.trust, { kind: 'trust', label: role.label }],
    ]),
  ]);
  const explanations: string[] = [];
  let rolesChanged = false;
  for (const change of changes) {
    const known = kinds.get(change.path);
    if (!known || change.action === 'unchanged' || change.before === change.after) continue;
    if (known.kind === 'iam' || known.kind === 'trust') rolesChanged = true;
    explanations.push(
      ...explainPolicyChange(known.kind, change.before, change.after, change.path, known.label),
    );
  }
  if (rolesChanged) {
    const byPath = new Map(changes.map((change) => [change.path, change]));
    const side = (which: 'before' | 'after'): RoleDocuments[] =>
      roles.map((role) => ({
        trust: parse(byPath.get(role.trust)?.[which] ?? '') as PolicyDocumentLike | undefined,
        policy: parse(byPath.get(role.policy)?.[which] ?? '') as PolicyDocumentLike | undefined,
      }));
    explanations.push(...explainAccessChange(config, side('before'), side('after')));
  }
  return explanations;
}

/** Sentences for the change of one policy file (`before` undefined: created; `after`: deleted). */
export function explainPolicyChange(
  kind: PolicyKind,
  before: string | undefined,
  after: string | undefined,
  path: string,
  roleLabel = 'the CI role',
): string[] {
  if (before === after) return [];
  const old = before === undefined ? undefined : parse(before);
  const next = after === undefined ? undefined : parse(after);
  if ((before !== undefined && old === undefined) || (after !== undefined && next === undefined)) {
    return [
      `${path} is not valid JSON ${old === undefined ? 'today' : 'as generated'}: compare it by hand`,
    ];
  }
  if (kind === 'cache-lifecycle' || kind === 'image-lifecycle') {
    return explainLifecycleChange(
      old as LifecyclePolicy | undefined,
      next as LifecyclePolicy | undefined,
      kind === 'cache-lifecycle' ? 'cache' : 'image',
    );
  }
  if (kind === 'branch-cache-lifecycle') {
    return explainLifecycleChange(
      old as LifecyclePolicy | undefined,
      next as LifecyclePolicy | undefined,
      'cache',
      'branch-cache lifecycle policy',
    );
  }
  return kind === 'iam'
    ? explainIamChange(
        old as PolicyDocumentLike | undefined,
        next as PolicyDocumentLike | undefined,
        roleLabel,
        path,
      )
    : explainTrustChange(
        old as PolicyDocumentLike | undefined,
        next as PolicyDocumentLike | undefined,
        roleLabel,
        path,
      );
}

function parse(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// --- lifecycle policies ---

interface Subject {
  text: string;
  plural: boolean;
}

/** What a rule's selection is about, in the terms of this tool's policies when it can. */
function subjectOf(rule: LifecycleRule, repo: 'cache' | 'image'): Subject {
  const { tagStatus, tagPrefixList, tagPatternList } = rule.selection;
  if (tagStatus === 'untagged') {
    return {
      text: repo === 'cache' ? 'untagged cache artifacts' : 'untagged images',
      plural: true,
    };
  }
  if (tagStatus === 'any')
    return { text: `all ${repo === 'cache' ? 'cache ' : ''}images`, plural: true };
  const prefixes = tagPrefixList ?? [];
  const patterns = tagPatternList ?? [];
  if (repo === 'cache' && prefixes.length === 1 && prefixes[0] === 'main.') {
    return { text: 'the main branch cache', plural: false };
  }
  if (repo === 'cache' && prefixes.length === 1 && prefixes[0] === 'seed.') {
    return { text: 'the seed cache', plural: false };
  }
  if (repo === 'cache' && prefixes.length === 1 && prefixes[0] === 'br-') {
    return { text: 'branch caches', plural: true };
  }
  if (repo === 'image' && patterns.length === 1 && patterns[0] === '*') {
    return { text: 'deployable images', plural: true };
  }
  if (repo === 'cache' && patterns.length === 1 && patterns[0] === '*') {
    return { text: 'other tagged images', plural: true };
  }
  const quote = (list: string[]) => list.map((entry) => `"${entry}"`).join(' and ');
  if (prefixes.length > 0)
    return { text: `images tagged with prefix ${quote(prefixes)}`, plural: true };
  return { text: `images tagged ${quote(patterns)}`, plural: true };
}

/** A count that can never be reached: the generator's "keep forever". */
const FOREVER = KEEP_FOREVER_COUNT;

function retention(rule: LifecycleRule, subject: Subject): string {
  const { countType, countNumber } = rule.selection;
  const be = subject.plural ? 'are' : 'is';
  if (countType === 'sinceImagePushed') {
    return `expire${subject.plural ? '' : 's'} ${days(countNumber)} after ${subject.plural ? 'their' : 'its'} last push`;
  }
  if (countNumber >= FOREVER) return `${be} kept forever`;
  return `${be} kept as the newest ${countNumber}, older ones expire`;
}

function days(count: number): string {
  return `${count} day${count === 1 ? '' : 's'}`;
}

function selectionKey(rule: LifecycleRule): string {
  const { tagStatus, tagPrefixList, tagPatternList } = rule.selection;
  return JSON.stringify([tagStatus, tagPrefixList ?? null, tagPatternList ?? null]);
}

function rulesOf(policy: LifecyclePolicy | undefined): LifecycleRule[] {
  const rules = Array.isArray(policy?.rules) ? policy.rules : [];
  return [...rules].sort((a, b) => a.rulePriority - b.rulePriority);
}

export function explainLifecycleChange(
  before: LifecyclePolicy | undefined,
  after: LifecyclePolicy | undefined,
  repo: 'cache' | 'image',
  label = repo === 'cache' ? 'cache lifecycle policy' : 'image lifecycle policy',
): string[] {
  if (before === undefined && after === undefined) return [];
  if (before === undefined) {
    const rules = rulesOf(after).map((rule) => {
      const subject = subjectOf(rule, repo);
      return `${subject.text} ${retention(rule, subject)}`;
    });
    return [`new ${label}: ${rules.join('; ')}`];
  }
  if (after === undefined) {
    return [`the ${label} would be deleted: ECR keeps the policy it has until it is removed there`];
  }
  const sentences: string[] = [];
  const oldRules = new Map(rulesOf(before).map((rule) => [selectionKey(rule), rule]));
  const newRules = rulesOf(after);
  for (const rule of newRules) {
    const subject = subjectOf(rule, repo);
    const old = oldRules.get(selectionKey(rule));
    oldRules.delete(selectionKey(rule));
    if (!old) {
      sentences.push(
        `new rule "${rule.description}" (priority ${rule.rulePriority}): ${subject.text} ${retention(rule, subject)}`,
      );
      continue;
    }
    sentences.push(...compareRule(old, rule, subject));
  }
  // Renumbering alone changes nothing; a different order of the same rules changes which rule
  // takes (and so protects) an image that several select.
  const oldOrder = rulesOf(before).map(selectionKey);
  const newKeys = new Set(newRules.map(selectionKey));
  const commonOld = oldOrder.filter((key) => newKeys.has(key));
  const commonNew = newRules.map(selectionKey).filter((key) => commonOld.includes(key));
  if (commonOld.join('\n') !== commonNew.join('\n')) {
    const names = (keys: string[]) =>
      keys
        .map((key) => newRules.find((rule) => selectionKey(rule) === key))
        .map((rule) => (rule ? `"${rule.description}"` : '?'))
        .join(', ');
    sentences.push(
      `rules now apply in the order ${names(commonNew)} (was ${names(commonOld)}), which changes which rule takes an image that several select`,
    );
  }
  for (const old of oldRules.values()) {
    const subject = subjectOf(old, repo);
    sentences.push(
      `rule "${old.description}" was removed: ${subject.text} ${noLonger(old, subject)}`,
    );
  }
  return sentences.map((sentence) => `${label}: ${sentence}`);
}

function compareRule(old: LifecycleRule, rule: LifecycleRule, subject: Subject): string[] {
  const a = old.selection;
  const b = rule.selection;
  const be = subject.plural ? 'are' : 'is';
  if (a.countType === b.countType && a.countNumber === b.countNumber) return [];
  if (a.countType === 'sinceImagePushed' && b.countType === 'sinceImagePushed') {
    const verb = subject.plural ? 'expire' : 'expires';
    return [`${subject.text} now ${verb} after ${days(b.countNumber)} instead of ${a.countNumber}`];
  }
  if (a.countType === 'imageCountMoreThan' && b.countType === 'imageCountMoreThan') {
    if (b.countNumber >= FOREVER) {
      return [`${subject.text} ${be} now kept forever instead of only the newest ${a.countNumber}`];
    }
    if (a.countNumber >= FOREVER) {
      return [`${subject.text} ${be} no longer kept forever: only the newest ${b.countNumber}`];
    }
    const noun = subject.text.replace(/^the /, '');
    return [`the newest ${b.countNumber} ${noun} are kept instead of ${a.countNumber}`];
  }
  return [`${subject.text} ${retention(rule, subject)} (instead of ${gerund(old, subject)})`];
}

function gerund(rule: LifecycleRule, subject: Subject): string {
  const { countType, countNumber } = rule.selection;
  if (countType === 'sinceImagePushed') {
    return `expiring ${days(countNumber)} after ${subject.plural ? 'their' : 'its'} last push`;
  }
  return countNumber >= FOREVER ? 'being kept forever' : `being kept as the newest ${countNumber}`;
}

function noLonger(rule: LifecycleRule, subject: Subject): string {
  const { countType, countNumber } = rule.selection;
  const be = subject.plural ? 'are' : 'is';
  if (countType === 'sinceImagePushed') {
    const verb = subject.plural ? 'expire' : 'expires';
    return `no longer ${verb} ${days(countNumber)} after ${subject.plural ? 'their' : 'its'} last push (unless another rule selects them)`;
  }
  return countNumber >= FOREVER
    ? `${be} no longer kept forever: lower-priority rules can now expire ${subject.plural ? 'them' : 'it'}`
    : `${be} no longer limited to the newest ${countNumber}`;
}

// --- IAM policies ---

type StatementLike = NonNullable<Extract<PolicyDocumentLike['Statement'], unknown[]>>[number];

function statements(doc: PolicyDocumentLike | undefined): StatementLike[] {
  if (!doc?.Statement) return [];
  return Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement];
}

const list = (value: string | string[] | undefined): string[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** One (effect, action, resource, condition) grant per element of the cross product. */
function grants(doc: PolicyDocumentLike | undefined): Map<string, Grant> {
  const result = new Map<string, Grant>();
  for (const statement of statements(doc)) {
    const effect = statement.Effect === 'Deny' ? 'Deny' : 'Allow';
    const condition = statement.Condition ? JSON.stringify(sortKeys(statement.Condition)) : '';
    const actions = statement.NotAction
      ? list(statement.NotAction).map((action) => `everything but ${action}`)
      : list(statement.Action);
    const resources = statement.Resource === undefined ? ['*'] : list(statement.Resource);
    for (const action of actions) {
      for (const resource of resources) {
        const grant = { effect, action, resource, condition } as const;
        result.set(JSON.stringify(grant), grant);
      }
    }
  }
  return result;
}

interface Grant {
  effect: 'Allow' | 'Deny';
  action: string;
  resource: string;
  condition: string;
}

export function explainIamChange(
  before: PolicyDocumentLike | undefined,
  after: PolicyDocumentLike | undefined,
  role = 'the CI role',
  path = 'its policy file',
): string[] {
  if (before === undefined && after === undefined) return [];
  if (after === undefined) {
    return [
      `${path} (${role}'s permissions) is no longer generated: the role keeps them in IAM until you change or delete it`,
    ];
  }
  const old = grants(before);
  const next = grants(after);
  const added = [...next].filter(([key]) => !old.has(key)).map(([, grant]) => grant);
  const removed = [...old].filter(([key]) => !next.has(key)).map(([, grant]) => grant);
  return [
    ...sentencesFor(added, (g) => (g.effect === 'Allow' ? 'can now' : 'is now denied'), role),
    ...sentencesFor(
      removed,
      (g) => (g.effect === 'Allow' ? 'can no longer' : 'is no longer denied'),
      role,
    ),
  ];
}

/** Groups grants that share a verb, a condition and a resource set into one sentence. */
function sentencesFor(items: Grant[], verb: (grant: Grant) => string, role: string): string[] {
  const byAction = new Map<string, { grant: Grant; resources: string[] }>();
  for (const grant of items) {
    const key = JSON.stringify([verb(grant), grant.condition, grant.action]);
    const entry = byAction.get(key) ?? { grant, resources: [] };
    entry.resources.push(grant.resource);
    byAction.set(key, entry);
  }
  const byResources = new Map<string, { grant: Grant; actions: string[]; resources: string[] }>();
  for (const { grant, resources } of byAction.values()) {
    const sorted = [...resources].sort();
    const key = JSON.stringify([verb(grant), grant.condition, sorted]);
    const entry = byResources.get(key) ?? { grant, actions: [], resources: sorted };
    entry.actions.push(grant.action);
    byResources.set(key, entry);
  }
  return [...byResources.values()].map(({ grant, actions, resources }) => {
    const when = grant.condition ? ` when ${grant.condition}` : '';
    return `${role} ${verb(grant)} ${actions.sort().join(', ')} on ${describeResources(resources)}${when}`;
  });
}

const ECR_REPOSITORY_ARN = /^arn:[\w-]+:ecr:[\w-]+:\d{12}:repository\/(.+)$/;

/** ECR repository ARNs by name (the account and region are the config's), anything else as is. */
function describeResources(resources: string[]): string {
  const names = resources.map((resource) => ECR_REPOSITORY_ARN.exec(resource)?.[1]);
  if (names.every((name) => name !== undefined)) {
    return `${names.length === 1 ? 'repository' : 'repositories'} ${names.join(', ')}`;
  }
  return resources
    .map((resource) => (resource === '*' ? '* (every resource)' : resource))
    .join(', ');
}

// --- trust policies ---

interface Trust {
  principal: string;
  action: string;
  /** operator + key → values */
  conditions: Map<string, Set<string>>;
}

function trusts(doc: PolicyDocumentLike | undefined): Map<string, Trust> {
  const result = new Map<string, Trust>();
  for (const statement of statements(doc)) {
    if (statement.Effect === 'Deny') continue;
    const principals = principalList(statement.Principal);
    for (const principal of principals) {
      for (const action of list(statement.Action)) {
        const key = `${principal} ${action}`;
        const trust = result.get(key) ?? { principal, action, conditions: new Map() };
        for (const [operator, entries] of Object.entries(statement.Condition ?? {})) {
          for (const [conditionKey, values] of Object.entries(entries)) {
            const name = `${conditionKey} (${operator})`;
            const set = trust.conditions.get(name) ?? new Set<string>();
            for (const value of list(values)) set.add(value);
            trust.conditions.set(name, set);
          }
        }
        result.set(key, trust);
      }
    }
  }
  return result;
}

function principalList(principal: unknown): string[] {
  if (typeof principal === 'string') return [principal];
  if (principal === null || typeof principal !== 'object') return [];
  return Object.entries(principal as Record<string, string | string[]>).flatMap(([type, value]) =>
    list(value).map((entry) => `${type} ${entry}`),
  );
}

export function explainTrustChange(
  before: PolicyDocumentLike | undefined,
  after: PolicyDocumentLike | undefined,
  role = 'the CI role',
  path = 'its trust policy file',
): string[] {
  if (before === undefined && after === undefined) return [];
  if (after === undefined) {
    return [
      `${path} (who may assume ${role}) is no longer generated: IAM keeps the trust policy until you change or delete the role`,
    ];
  }
  const old = trusts(before);
  const next = trusts(after);
  const sentences: string[] = [];
  for (const [key, trust] of next) {
    const previous = old.get(key);
    if (!previous) {
      const when = [...trust.conditions]
        .map(([name, values]) => `${name} = ${[...values].join(', ')}`)
        .join('; ');
      sentences.push(
        `${role} can now be assumed by ${trust.principal} (${trust.action})${when ? ` when ${when}` : ''}`,
      );
      continue;
    }
    for (const [name, values] of trust.conditions) {
      const was = previous.conditions.get(name) ?? new Set<string>();
      const added = [...values].filter((value) => !was.has(value));
      const gone = [...was].filter((value) => !values.has(value));
      if (added.length > 0) sentences.push(`${role} now also trusts ${name} = ${added.join(', ')}`);
      if (gone.length > 0) sentences.push(`${role} no longer trusts ${name} = ${gone.join(', ')}`);
    }
    for (const [name, was] of previous.conditions) {
      if (!trust.conditions.has(name)) {
        sentences.push(
          `the condition ${name} (${[...was].join(', ')}) was removed: ${role} is trusted more widely`,
        );
      }
    }
  }
  for (const [key, trust] of old) {
    if (!next.has(key)) sentences.push(`${trust.principal} can no longer assume ${role}`);
  }
  return sentences;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([key, entry]) => [key, sortKeys(entry)]),
  );
}
