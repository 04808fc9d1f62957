/**
 * An IAM policy evaluator for tests: enough of AWS's evaluation logic to prove what the generated
 * roles allow, written from AWS's documentation and checked against its examples
 * (test/iam-evaluator.test.ts):
 *
 * - Evaluation (IAM User Guide, "Policy evaluation logic",
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
 *   every request is denied by default; an Allow in any applicable policy allows it; an explicit
 *   Deny in any applicable policy overrides every Allow. Identity- and resource-based policies of
 *   one account are simply pooled (either may allow).
 * - Action: `service:Name`, `*` and `?` wildcards, matched ignoring case (IAM User Guide, "IAM JSON
 *   policy elements: Action": the prefix and the action name are case insensitive). NotAction.
 * - Resource: `*` and `?` wildcards, case-sensitive, `*` crossing `:` and `/`. NotResource.
 * - Principal (resource-based policies such as a role's trust policy): `"*"`, or `AWS`,
 *   `Federated` or `Service` ids, exact; an account root (`arn:aws:iam::<id>:root`) or bare
 *   account id stands for every principal of that account. NotPrincipal is refused.
 * - Condition (IAM User Guide, "Condition operators" and "Conditions with multiple context keys
 *   or values",
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html,
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html):
 *   operators are ANDed, keys within an operator ANDed, values of one key ORed (NORed for a
 *   negated operator). A key missing from the request makes a positive operator false and a
 *   negated one true, except `...IfExists` (true when missing). `ForAnyValue:` is true when some
 *   request value matches (false for no values), `ForAllValues:` when every one does (true for
 *   none). Operators: StringEquals, StringNotEquals, StringEqualsIgnoreCase,
 *   StringNotEqualsIgnoreCase, StringLike, StringNotLike, ArnEquals, ArnLike, ArnNotEquals,
 *   ArnNotLike, Bool, Null. Anything else throws, so a document that starts to depend on an
 *   operator this does not model fails the test instead of being misjudged.
 *
 * Policy variables (`${aws:username}`) are not modelled either: a value containing `${` throws.
 */

export type ContextValue = string | readonly string[] | undefined;
export type RequestContext = Readonly<Record<string, ContextValue>>;

export interface Principal {
  type: 'AWS' | 'Federated' | 'Service';
  id: string;
}

export interface Request {
  action: string;
  resource: string;
  /** The caller, for resource-based policies (statements with a Principal). */
  principal?: Principal;
  context?: RequestContext;
}

export type Decision = 'Allow' | 'ExplicitDeny' | 'ImplicitDeny';

type Values = string | string[];

export interface Statement {
  Sid?: string;
  Effect: string;
  Principal?: '*' | Record<string, Values>;
  NotPrincipal?: unknown;
  Action?: Values;
  NotAction?: Values;
  Resource?: Values;
  NotResource?: Values;
  Condition?: Record<string, Record<string, Values | boolean>>;
}

export interface Policy {
  Version?: string;
  Statement: Statement | Statement[];
}

const list = (value: Values | undefined): string[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

/** `*` any run of characters (`:` and `/` included), `?` exactly one. */
export function wildcard(pattern: string, value: string, ignoreCase = false): boolean {
  if (pattern.includes('${')) throw new Error(`policy variables are not modelled: ${pattern}`);
  let source = '';
  for (const char of pattern) {
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else source += char.replace(/[.+^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, ignoreCase ? 'isu' : 'su').test(value);
}

/** ArnLike: each of the six colon-separated parts separately; the last one runs to the end. */
function arnLike(pattern: string, value: string): boolean {
  const split = (arn: string) => {
    const parts = arn.split(':');
    if (parts.length < 6) return undefined;
    return [...parts.slice(0, 5), parts.slice(5).join(':')];
  };
  const p = split(pattern);
  const v = split(value);
  if (!p || !v) return false;
  return p.every((part, index) => wildcard(part, v[index] as string));
}

type Matcher = (policyValue: string, requestValue: string) => boolean;

const MATCHERS: Record<string, { match: Matcher; negated: boolean }> = {
  StringEquals: { match: (p, v) => p === v, negated: false },
  StringNotEquals: { match: (p, v) => p === v, negated: true },
  StringEqualsIgnoreCase: { match: (p, v) => p.toLowerCase() === v.toLowerCase(), negated: false },
  StringNotEqualsIgnoreCase: {
    match: (p, v) => p.toLowerCase() === v.toLowerCase(),
    negated: true,
  },
  StringLike: { match: (p, v) => wildcard(p, v), negated: false },
  StringNotLike: { match: (p, v) => wildcard(p, v), negated: true },
  ArnEquals: { match: arnLike, negated: false },
  ArnLike: { match: arnLike, negated: false },
  ArnNotEquals: { match: arnLike, negated: true },
  ArnNotLike: { match: arnLike, negated: true },
  Bool: { match: (p, v) => p.toLowerCase() === v.toLowerCase(), negated: false },
};

/** One operator on one key: `values` are the policy's, `actual` the request's. */
function keyHolds(operator: string, values: Values | boolean, actual: ContextValue): boolean {
  let base = operator;
  let set: 'ForAnyValue' | 'ForAllValues' | undefined;
  const prefix = /^(ForAnyValue|ForAllValues):(.+)$/.exec(base);
  if (prefix) {
    set = prefix[1] as 'ForAnyValue' | 'ForAllValues';
    base = prefix[2] as string;
  }
  const ifExists = base.endsWith('IfExists');
  if (ifExists) base = base.slice(0, -'IfExists'.length);

  const policyValues = list(typeof values === 'boolean' ? String(values) : values);
  if (base === 'Null') {
    if (set || ifExists) throw new Error(`${operator} is not a valid operator`);
    // "true": the key must be absent; "false": present.
    const absent = actual === undefined || (Array.isArray(actual) && actual.length === 0);
    return policyValues.some((value) => (value.toLowerCase() === 'true') === absent);
  }
  const matcher = MATCHERS[base];
  if (!matcher) throw new Error(`condition operator ${operator} is not modelled`);
  const single = (requestValue: string) => {
    const any = policyValues.some((policyValue) => matcher.match(policyValue, requestValue));
    return matcher.negated ? !any : any;
  };
  if (set) {
    const requestValues = actual === undefined ? [] : list(actual as Values);
    if (ifExists && actual === undefined) return true;
    return set === 'ForAnyValue' ? requestValues.some(single) : requestValues.every(single);
  }
  if (Array.isArray(actual)) {
    throw new Error(`${operator} on a multivalued key needs ForAnyValue or ForAllValues`);
  }
  if (actual === undefined) return ifExists ? true : matcher.negated;
  return single(actual as string);
}

export function conditionHolds(
  condition: Statement['Condition'],
  context: RequestContext = {},
): boolean {
  return Object.entries(condition ?? {}).every(([operator, keys]) =>
    Object.entries(keys).every(([key, values]) => keyHolds(operator, values, context[key])),
  );
}

function principalMatches(statement: Statement, principal: Principal | undefined): boolean {
  if (statement.NotPrincipal !== undefined) throw new Error('NotPrincipal is not modelled');
  if (statement.Principal === undefined) return true; // an identity-based policy
  if (statement.Principal === '*') return true;
  if (!principal) return false;
  return list(statement.Principal[principal.type]).some((id) => {
    if (id === '*' || id === principal.id) return true;
    const account = /^(?:arn:[\w-]+:iam::)?(\d{12})(?::root)?$/.exec(id)?.[1];
    return account !== undefined && principal.id.split(':')[4] === account;
  });
}

export function statementApplies(statement: Statement, request: Request): boolean {
  const actionMatch =
    statement.NotAction !== undefined
      ? !list(statement.NotAction).some((p) => wildcard(p, request.action, true))
      : list(statement.Action).some((p) => wildcard(p, request.action, true));
  if (!actionMatch) return false;
  const resourceMatch =
    statement.NotResource !== undefined
      ? !list(statement.NotResource).some((p) => wildcard(p, request.resource))
      : statement.Resource === undefined
        ? statement.Principal !== undefined // a trust policy names no resource: the role itself
        : list(statement.Resource).some((p) => wildcard(p, request.resource));
  if (!resourceMatch) return false;
  if (!principalMatches(statement, request.principal)) return false;
  return conditionHolds(statement.Condition, request.context);
}

/** The decision for a request under every policy that applies to it (same account). */
export function evaluate(policies: readonly Policy[], request: Request): Decision {
  let allowed = false;
  for (const policy of policies) {
    const statements = Array.isArray(policy.Statement) ? policy.Statement : [policy.Statement];
    for (const statement of statements) {
      if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny') {
        throw new Error(`Effect ${statement.Effect} is neither Allow nor Deny`);
      }
      if (!statementApplies(statement, request)) continue;
      if (statement.Effect === 'Deny') return 'ExplicitDeny';
      allowed = true;
    }
  }
  return allowed ? 'Allow' : 'ImplicitDeny';
}

export const allows = (policies: readonly Policy[], request: Request) =>
  evaluate(policies, request) === 'Allow';

// --- GitHub's OIDC tokens and role trust policies ---

export const GITHUB_OIDC = 'token.actions.githubusercontent.com';

/**
 * Whether a CI job's token (its `sub`, and `aud` as configure-aws-credentials asks for it, or as
 * given) may call AssumeRoleWithWebIdentity on a role with this trust policy. The token comes from
 * GitHub unless `issuer` names another host (a GitLab instance: its condition keys are
 * `<host>:sub` and `<host>:aud`, AWS's keys for any OIDC provider).
 */
export function trustAccepts(
  trust: Policy,
  options: { providerArn: string; roleArn: string; sub: string; aud?: string; issuer?: string },
): boolean {
  const issuer = options.issuer ?? GITHUB_OIDC;
  return allows([trust], {
    action: 'sts:AssumeRoleWithWebIdentity',
    resource: options.roleArn,
    principal: { type: 'Federated', id: options.providerArn },
    context: {
      [`${issuer}:sub`]: options.sub,
      [`${issuer}:aud`]: options.aud ?? 'sts.amazonaws.com',
    },
  });
}
