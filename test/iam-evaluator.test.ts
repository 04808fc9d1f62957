/**
 * The test IAM evaluator (test/support/iam-evaluator.ts) against AWS's own documented examples,
 * policy for policy and row for row. The proofs about the generated roles (test/iam.test.ts) are
 * only as good as this evaluator.
 *
 * Sources (IAM User Guide):
 * - "Policy evaluation logic",
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
 *   (also github.com/awsdocs/iam-user-guide, doc_source/reference_policies_evaluation-logic.md,
 *   commit 149cf97f): the carlossalazar example and the AllowGetList/DenyReports example.
 * - "Conditions with multiple context keys or values",
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html:
 *   the two tables (StringEquals + ArnLike, StringEquals + ArnNotLike), and the earlier version of
 *   that page (awsdocs/iam-user-guide doc_source/reference_policies_multi-value-conditions.md,
 *   commit 027b8db4): the ForAllValues / ForAnyValue examples on dynamodb:requestedAttributes.
 * - "IAM JSON policy elements: Condition operators",
 *   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html:
 *   a key missing from the request fails a positive operator and passes a negated one (except
 *   ...IfExists and Null), and the iam:*AccessKey* / aws:PrincipalTag/job-category example.
 */
import { describe, expect, it } from 'vitest';
import {
  conditionHolds,
  evaluate,
  type Policy,
  type RequestContext,
  type Statement,
  wildcard,
} from './support/iam-evaluator.js';

describe('policy evaluation logic (carlossalazar)', () => {
  const identity: Policy = {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'AllowS3ListRead',
        Effect: 'Allow',
        Action: [
          's3:GetBucketLocation',
          's3:GetAccountPublicAccessBlock',
          's3:ListAccessPoints',
          's3:ListAllMyBuckets',
        ],
        Resource: 'arn:aws:s3:::*',
      },
      {
        Sid: 'AllowS3Self',
        Effect: 'Allow',
        Action: 's3:*',
        Resource: ['arn:aws:s3:::carlossalazar/*', 'arn:aws:s3:::carlossalazar'],
      },
      { Sid: 'DenyS3Logs', Effect: 'Deny', Action: 's3:*', Resource: 'arn:aws:s3:::*log*' },
    ],
  };
  const bucketPolicy: Policy = {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { AWS: 'arn:aws:iam::123456789012:user/carlossalazar' },
        Action: 's3:*',
        Resource: ['arn:aws:s3:::carlossalazar/*', 'arn:aws:s3:::carlossalazar'],
      },
    ],
  };
  const carlos = { type: 'AWS' as const, id: 'arn:aws:iam::123456789012:user/carlossalazar' };

  it('saving to carlossalazar-logs is explicitly denied (DenyS3Logs matches *log*)', () => {
    expect(
      evaluate([identity], {
        action: 's3:PutObject',
        resource: 'arn:aws:s3:::carlossalazar-logs/file.txt',
        principal: carlos,
      }),
    ).toBe('ExplicitDeny');
  });

  it('saving to carlossalazar is allowed by both policies, and by either one alone', () => {
    const request = {
      action: 's3:PutObject',
      resource: 'arn:aws:s3:::carlossalazar/file.txt',
      principal: carlos,
    };
    expect(evaluate([identity, bucketPolicy], request)).toBe('Allow');
    // "If either the identity-based policy or the resource-based policy ... allows the request
    // and the other doesn't, the request is still allowed."
    expect(evaluate([bucketPolicy], request)).toBe('Allow');
    expect(evaluate([identity], request)).toBe('Allow');
    // The bucket policy names only carlossalazar.
    expect(
      evaluate([bucketPolicy], {
        ...request,
        principal: { type: 'AWS', id: 'arn:aws:iam::123456789012:user/someone-else' },
      }),
    ).toBe('ImplicitDeny');
  });

  it('listing buckets is allowed by AllowS3ListRead', () => {
    expect(
      evaluate([identity], { action: 's3:ListAllMyBuckets', resource: 'arn:aws:s3:::anything' }),
    ).toBe('Allow');
  });
});

describe('explicit and implicit denies (AllowGetList / DenyReports)', () => {
  const policy: Policy = {
    Version: '2012-10-17',
    Statement: [
      { Sid: 'AllowGetList', Effect: 'Allow', Action: ['iam:Get*', 'iam:List*'], Resource: '*' },
      { Sid: 'DenyReports', Effect: 'Deny', Action: 'iam:*Report', Resource: '*' },
    ],
  };
  const decide = (action: string, more: Policy[] = []) =>
    evaluate([policy, ...more], { action, resource: '*' });

  it('allows Get* and List*, implicitly denies iam:CreatePolicy, explicitly denies *Report', () => {
    expect(decide('iam:GetUser')).toBe('Allow');
    expect(decide('iam:ListRoles')).toBe('Allow');
    expect(decide('iam:CreatePolicy')).toBe('ImplicitDeny');
    expect(decide('iam:GetOrganizationsAccessReport')).toBe('ExplicitDeny');
  });

  it('another policy granting iam:GenerateCredentialReport cannot override the explicit deny', () => {
    const grant: Policy = {
      Statement: { Effect: 'Allow', Action: 'iam:GenerateCredentialReport', Resource: '*' },
    };
    expect(decide('iam:GenerateCredentialReport')).toBe('ExplicitDeny');
    expect(decide('iam:GenerateCredentialReport', [grant])).toBe('ExplicitDeny');
    expect(decide('iam:CreatePolicy', [grant])).toBe('ImplicitDeny');
  });

  it('matches action names ignoring case (the IAM User Guide: "IAM:listaccesskeys")', () => {
    expect(decide('IAM:listaccesskeys')).toBe('Allow');
    expect(decide('iam:GETORGANIZATIONSACCESSREPORT')).toBe('ExplicitDeny');
    // …but resources with case.
    const bucket: Policy = {
      Statement: { Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::Logs/*' },
    };
    expect(evaluate([bucket], { action: 's3:GetObject', resource: 'arn:aws:s3:::Logs/a' })).toBe(
      'Allow',
    );
    expect(evaluate([bucket], { action: 's3:GetObject', resource: 'arn:aws:s3:::logs/a' })).toBe(
      'ImplicitDeny',
    );
  });
});

describe('conditions with multiple context keys or values (the two tables)', () => {
  const department = ['finance', 'hr', 'legal'];
  const role = ['audit', 'security'];
  const arns = ['arn:aws:iam::222222222222:user/Ana', 'arn:aws:iam::222222222222:user/Mary'];
  const withArn = (operator: 'ArnLike' | 'ArnNotLike'): Policy => ({
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'ExamplePolicy',
        Effect: 'Allow',
        Principal: { AWS: 'arn:aws:iam::222222222222:root' },
        Action: 's3:ListBucket',
        Resource: 'arn:aws:s3:::amzn-s3-demo-bucket',
        Condition: {
          StringEquals: {
            'aws:PrincipalTag/department': department,
            'aws:PrincipalTag/role': role,
          },
          [operator]: { 'aws:PrincipalArn': arns },
        },
      },
    ],
  });
  const user = (name: string) => `arn:aws:iam::222222222222:user/${name}`;
  const row = (
    departmentTag: string | undefined,
    roleTag: string | undefined,
    name: string,
    match: boolean,
  ) => ({
    context: {
      'aws:PrincipalTag/department': departmentTag,
      'aws:PrincipalTag/role': roleTag,
      'aws:PrincipalArn': user(name),
    } satisfies RequestContext,
    name,
    match,
  });

  it.each([
    row('legal', 'audit', 'Mary', true),
    row('hr', 'audit', 'Nikki', false),
    row('hr', 'payroll', 'Mary', false),
    row('hr', undefined, 'Mary', false),
    row(undefined, undefined, 'Mary', false),
  ])(
    'StringEquals + ArnLike: department $context.aws:PrincipalTag/department, role $context.aws:PrincipalTag/role, $name → match $match',
    ({ context, name, match }) => {
      const policy = withArn('ArnLike');
      const [statement] = policy.Statement as Statement[];
      expect(conditionHolds(statement?.Condition, context)).toBe(match);
      expect(
        evaluate([policy], {
          action: 's3:ListBucket',
          resource: 'arn:aws:s3:::amzn-s3-demo-bucket',
          principal: { type: 'AWS', id: user(name) },
          context,
        }),
      ).toBe(match ? 'Allow' : 'ImplicitDeny');
    },
  );

  it.each([
    row('legal', 'audit', 'Nikki', true),
    row('hr', 'audit', 'Mary', false),
    row('hr', 'payroll', 'Nikki', false),
    row('hr', undefined, 'Nikki', false),
    row(undefined, undefined, 'Nikki', false),
  ])(
    'StringEquals + ArnNotLike (NOR): department $context.aws:PrincipalTag/department, role $context.aws:PrincipalTag/role, $name → match $match',
    ({ context, match }) => {
      const policy = withArn('ArnNotLike');
      const [statement] = policy.Statement as Statement[];
      expect(conditionHolds(statement?.Condition, context)).toBe(match);
    },
  );
});

describe('set operators on a multivalued key (dynamodb:requestedAttributes)', () => {
  const table = 'arn:aws:dynamodb:REGION:ACCOUNT-ID-WITHOUT-HYPHENS:table/Thread';
  const allowOnly: Policy = {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Action: 'GetItem',
        Resource: table,
        Condition: {
          'ForAllValues:StringLike': {
            'dynamodb:requestedAttributes': ['PostDateTime', 'Message', 'Tags'],
          },
        },
      },
    ],
  };
  const denySome: Policy = {
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Deny',
        Action: 'PutItem',
        Resource: table,
        Condition: {
          'ForAnyValue:StringLike': { 'dynamodb:requestedAttributes': ['ID', 'PostDateTime'] },
        },
      },
    ],
  };
  const attributes = (...values: string[]) => ({ 'dynamodb:requestedAttributes': values });

  it('ForAllValues: PostDateTime and Message are allowed; with ID or UserName, not', () => {
    const get = (context: RequestContext) =>
      evaluate([allowOnly], { action: 'GetItem', resource: table, context });
    expect(get(attributes('PostDateTime', 'Message'))).toBe('Allow');
    expect(get(attributes('PostDateTime', 'ID'))).toBe('ImplicitDeny');
    expect(get(attributes('PostDateTime', 'UserName'))).toBe('ImplicitDeny');
  });

  it('ForAnyValue on a Deny: UserName, Message, PostDateTime is denied; UserName alone is not', () => {
    const anyPut: Policy = { Statement: { Effect: 'Allow', Action: 'PutItem', Resource: '*' } };
    const put = (context: RequestContext) =>
      evaluate([denySome, anyPut], { action: 'PutItem', resource: table, context });
    expect(put(attributes('UserName', 'Message', 'PostDateTime'))).toBe('ExplicitDeny');
    // "The condition returns false ... the request is not denied by this policy" (another allows).
    expect(put(attributes('UserName'))).toBe('Allow');
    expect(
      evaluate([denySome], { action: 'PutItem', resource: table, context: attributes('UserName') }),
    ).toBe('ImplicitDeny');
  });

  it('an empty set: ForAllValues is true, ForAnyValue is false', () => {
    const key = { 'dynamodb:requestedAttributes': ['ID'] };
    expect(conditionHolds({ 'ForAllValues:StringLike': key }, attributes())).toBe(true);
    expect(conditionHolds({ 'ForAnyValue:StringLike': key }, attributes())).toBe(false);
    expect(conditionHolds({ 'ForAllValues:StringLike': key }, {})).toBe(true);
    expect(conditionHolds({ 'ForAnyValue:StringLike': key }, {})).toBe(false);
  });

  it('refuses a plain operator on a multivalued key (AWS asks for a set operator)', () => {
    expect(() => conditionHolds({ StringLike: { k: 'a' } }, { k: ['a'] })).toThrow(/ForAnyValue/);
  });
});

describe('condition operators: a key missing from the request', () => {
  const accessKeys: Policy = {
    Version: '2012-10-17',
    Statement: {
      Effect: 'Allow',
      Action: 'iam:*AccessKey*',
      Resource: 'arn:aws:iam::account-id:user/*',
      Condition: { StringEquals: { 'aws:PrincipalTag/job-category': 'iamuser-admin' } },
    },
  };
  const request = (action: string, context: RequestContext) => ({
    action,
    resource: 'arn:aws:iam::account-id:user/someone',
    context,
  });

  it('the job-category example: a tagged admin may, an untagged user is implicitly denied', () => {
    const admin = { 'aws:PrincipalTag/job-category': 'iamuser-admin' };
    expect(evaluate([accessKeys], request('iam:CreateAccessKey', admin))).toBe('Allow');
    expect(evaluate([accessKeys], request('iam:UpdateAccessKey', admin))).toBe('Allow');
    expect(evaluate([accessKeys], request('iam:CreateAccessKey', {}))).toBe('ImplicitDeny');
    expect(
      evaluate(
        [accessKeys],
        request('iam:CreateAccessKey', { 'aws:PrincipalTag/job-category': 'dev-ops' }),
      ),
    ).toBe('ImplicitDeny');
    // iam:*AccessKey* does not match actions without "AccessKey".
    expect(evaluate([accessKeys], request('iam:ListUsers', admin))).toBe('ImplicitDeny');
  });

  it('missing: positive operators are false, negated ones true, IfExists true, Null as asked', () => {
    const arn = 'arn:aws:iam::111122223333:user/a';
    const sample = (operator: string) => (operator.startsWith('Arn') ? arn : 'v');
    for (const operator of ['StringEquals', 'StringLike', 'ArnLike', 'StringEqualsIgnoreCase']) {
      const k = sample(operator);
      expect(conditionHolds({ [operator]: { k } }, {}), operator).toBe(false);
      expect(conditionHolds({ [operator]: { k } }, { k }), operator).toBe(true);
    }
    for (const operator of ['StringNotEquals', 'StringNotLike', 'ArnNotLike']) {
      const k = sample(operator);
      expect(conditionHolds({ [operator]: { k } }, {}), operator).toBe(true);
      expect(conditionHolds({ [operator]: { k } }, { k }), operator).toBe(false);
    }
    const value = { k: 'v' };
    expect(conditionHolds({ StringEqualsIfExists: value }, {})).toBe(true);
    expect(conditionHolds({ StringEqualsIfExists: value }, { k: 'w' })).toBe(false);
    expect(conditionHolds({ Null: { k: 'true' } }, {})).toBe(true);
    expect(conditionHolds({ Null: { k: 'false' } }, {})).toBe(false);
  });

  it('StringLike wildcards: * any run (slashes and colons too), ? exactly one', () => {
    expect(wildcard('repo:acme/shop:ref:refs/heads/*', 'repo:acme/shop:ref:refs/heads/a/b')).toBe(
      true,
    );
    expect(wildcard('repo:acme/shop:ref:refs/heads/*', 'repo:acme/shop:pull_request')).toBe(false);
    expect(wildcard('a?c', 'abc')).toBe(true);
    expect(wildcard('a?c', 'ac')).toBe(false);
    expect(wildcard('a?c', 'abbc')).toBe(false);
    expect(conditionHolds({ StringLike: { k: 'Sales:??' } }, { k: 'Sales:EU' })).toBe(true);
    expect(conditionHolds({ StringLike: { k: 'Sales:??' } }, { k: 'sales:EU' })).toBe(false);
  });

  it('refuses what it does not model instead of guessing', () => {
    expect(() => conditionHolds({ NumericLessThan: { k: '1' } }, { k: '0' })).toThrow(
      /not modelled/,
    );
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an IAM policy variable, not a template
    expect(() => wildcard('home/${aws:username}/*', 'home/x/y')).toThrow(/policy variables/);
    expect(() =>
      evaluate([{ Statement: { Effect: 'Allow', NotPrincipal: {}, Action: '*', Resource: '*' } }], {
        action: 'a:b',
        resource: 'r',
      }),
    ).toThrow(/NotPrincipal/);
  });
});
