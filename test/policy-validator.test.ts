import { describe, expect, test } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import type { ResolvedConfig } from '../src/config/resolve.js';
import { cacheTag, MAIN_SCOPE } from '../src/model/cache-tags.js';
import {
  branchCacheLifecyclePolicy,
  cacheLifecyclePolicy,
  imageLifecyclePolicy,
  type LifecyclePolicy,
} from '../src/model/lifecycle.js';
import {
  formatViolation,
  type LifecycleRuleId,
  type LifecycleViolation,
  validateKeepsTags,
  validateLifecyclePolicy,
} from '../src/policy/validate-lifecycle.js';
import { renderFiles } from '../src/render/render-files.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests build deliberately malformed policies
type Loose = any;

/** A valid policy that exercises every kind of rule; each case below breaks exactly one thing. */
function validPolicy(): Loose {
  return {
    rules: [
      {
        rulePriority: 1,
        description: 'Keep the main cache forever',
        selection: {
          tagStatus: 'tagged',
          tagPrefixList: ['main.'],
          countType: 'imageCountMoreThan',
          countNumber: 9999,
        },
        action: { type: 'expire' },
      },
      {
        rulePriority: 2,
        description: 'Expire branch caches after 14 days',
        selection: {
          tagStatus: 'tagged',
          tagPatternList: ['br-*'],
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: 14,
        },
        action: { type: 'expire' },
      },
      {
        rulePriority: 3,
        description: 'Expire untagged after 1 day',
        selection: {
          tagStatus: 'untagged',
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: 1,
        },
        action: { type: 'expire' },
      },
      {
        rulePriority: 4,
        description: 'Keep the last 10 releases',
        selection: {
          tagStatus: 'tagged',
          tagPrefixList: ['release-'],
          countType: 'imageCountMoreThan',
          countNumber: 10,
        },
        action: { type: 'expire' },
      },
    ],
  };
}

/** `count` valid tagged rules with ascending priorities and distinct prefixes. */
function manyRules(count: number): Loose {
  return {
    rules: Array.from({ length: count }, (_, index) => ({
      rulePriority: index + 1,
      selection: {
        tagStatus: 'tagged',
        tagPrefixList: [`p${index}-`],
        countType: 'imageCountMoreThan',
        countNumber: 5,
      },
      action: { type: 'expire' },
    })),
  };
}

interface Case {
  /** What the violation is, in words (the test name). */
  what: string;
  /** Breaks exactly one rule of the valid policy, in place... */
  mutate?: (policy: Loose) => void;
  /** ...or replaces it. */
  replace?: () => unknown;
  /** The check to run, when it is not validateLifecyclePolicy. */
  check?: (policy: Loose) => LifecycleViolation[];
  /** The policy text to measure, when it is not JSON.stringify of the policy. */
  text?: (policy: Loose) => string;
  path: string;
}

function violationsOf(testCase: Case): LifecycleViolation[] {
  const policy = testCase.replace ? testCase.replace() : validPolicy();
  testCase.mutate?.(policy);
  if (testCase.check) return testCase.check(policy);
  return validateLifecyclePolicy(policy, testCase.text?.(policy));
}

const pad = (policy: Loose) => `${JSON.stringify(policy)}${' '.repeat(200)}`;

/**
 * One case per rule id. A Record keyed by LifecycleRuleId, so adding a rule to the validator
 * without a case here fails the type check.
 */
const MAIN_TAGS = ['main.web', 'main.worker'];
const keepsMainTags = (policy: Loose) => validateKeepsTags(policy, MAIN_TAGS);

const oneCasePerRule: Record<LifecycleRuleId, Case> = {
  'keeps-tag': {
    what: "main's cache tags selected first by an age rule",
    mutate: (policy) => {
      policy.rules[0].selection = {
        tagStatus: 'tagged',
        tagPrefixList: ['main.'],
        countType: 'sinceImagePushed',
        countUnit: 'days',
        countNumber: 9999,
      };
    },
    // Both tags are claimed by the same wrong rule: one violation each, at that rule.
    check: (policy) => keepsMainTags(policy).slice(0, 1),
    path: 'rules[0]',
  },
  'policy-shape': {
    what: 'a rule that is not an object',
    mutate: (policy) => {
      policy.rules[1] = 'expire everything';
    },
    path: 'rules[1]',
  },
  'text-length': {
    what: 'policy text over 30,720 characters',
    mutate: (policy) => {
      policy.rules[0].description = 'x'.repeat(31_000);
    },
    path: '',
  },
  'rule-count': {
    what: '51 rules',
    replace: () => manyRules(51),
    path: 'rules',
  },
  'priority-unique': {
    what: 'two rules with priority 2',
    mutate: (policy) => {
      policy.rules[2].rulePriority = 2;
    },
    path: 'rules[2].rulePriority',
  },
  'priority-integer': {
    what: 'a fractional rulePriority',
    mutate: (policy) => {
      policy.rules[1].rulePriority = 1.5;
    },
    path: 'rules[1].rulePriority',
  },
  'priority-sorted': {
    what: 'rules not in ascending priority',
    mutate: (policy) => {
      policy.rules.reverse();
    },
    path: 'rules',
  },
  'tag-status': {
    what: 'tagStatus "all"',
    mutate: (policy) => {
      policy.rules[2].selection.tagStatus = 'all';
    },
    path: 'rules[2].selection.tagStatus',
  },
  'tagged-needs-filter': {
    what: 'a tagged rule without a tag filter',
    mutate: (policy) => {
      delete policy.rules[0].selection.tagPrefixList;
    },
    path: 'rules[0].selection',
  },
  'filter-exclusive': {
    what: 'both tagPrefixList and tagPatternList',
    mutate: (policy) => {
      policy.rules[0].selection.tagPatternList = ['main.*'];
    },
    path: 'rules[0].selection',
  },
  'untagged-no-filter': {
    what: 'an untagged rule with a tag filter',
    mutate: (policy) => {
      policy.rules[2].selection.tagPrefixList = ['br-'];
    },
    path: 'rules[2].selection',
  },
  'any-last': {
    what: 'an "any" rule that is not the last priority',
    mutate: (policy) => {
      policy.rules[2].selection.tagStatus = 'any';
    },
    path: 'rules[2].rulePriority',
  },
  'single-untagged': {
    what: 'two rules selecting untagged images',
    mutate: (policy) => {
      policy.rules[3].selection = {
        tagStatus: 'untagged',
        countType: 'imageCountMoreThan',
        countNumber: 100,
      };
    },
    path: 'rules',
  },
  'pattern-wildcards': {
    what: 'a tag pattern with 5 wildcards',
    mutate: (policy) => {
      policy.rules[1].selection.tagPatternList = ['br-*', '*a*b*c*d*'];
    },
    path: 'rules[1].selection.tagPatternList[1]',
  },
  'filter-nonempty': {
    what: 'an empty tagPrefixList',
    mutate: (policy) => {
      policy.rules[0].selection.tagPrefixList = [];
    },
    path: 'rules[0].selection.tagPrefixList',
  },
  'count-type': {
    what: 'countType sinceImagePulled (archives only)',
    mutate: (policy) => {
      policy.rules[1].selection.countType = 'sinceImagePulled';
    },
    path: 'rules[1].selection.countType',
  },
  'count-unit': {
    what: 'countUnit hours',
    mutate: (policy) => {
      policy.rules[1].selection.countUnit = 'hours';
    },
    path: 'rules[1].selection.countUnit',
  },
  'count-number': {
    what: 'countNumber 0',
    mutate: (policy) => {
      policy.rules[1].selection.countNumber = 0;
    },
    path: 'rules[1].selection.countNumber',
  },
  'action-type': {
    what: 'action type transition',
    mutate: (policy) => {
      policy.rules[0].action.type = 'transition';
    },
    path: 'rules[0].action.type',
  },
};

/** More ways to break the same rules, each still exactly one violation. */
const moreCases: [LifecycleRuleId, Case][] = [
  [
    'keeps-tag',
    {
      what: 'no rule selects the main cache tags',
      mutate: (policy) => {
        policy.rules.shift();
      },
      check: (policy) => keepsMainTags(policy).slice(0, 1),
      path: 'rules',
    },
  ],
  [
    'keeps-tag',
    {
      what: 'a keep rule with room for fewer images than there are main tags',
      mutate: (policy) => {
        policy.rules[0].selection.countNumber = 1;
      },
      check: (policy) => keepsMainTags(policy).slice(0, 1),
      path: 'rules[0]',
    },
  ],
  [
    'keeps-tag',
    {
      what: 'a higher-priority age rule that also selects main tags (pattern)',
      mutate: (policy) => {
        policy.rules[0].selection = {
          tagStatus: 'tagged',
          tagPatternList: ['*.web'],
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: 30,
        };
      },
      // main.web is taken by the age rule; main.worker is not selected by any rule.
      check: (policy) => keepsMainTags(policy).filter((v) => v.message.includes('main.web')),
      path: 'rules[0]',
    },
  ],
  [
    'policy-shape',
    { what: 'a policy without rules', replace: () => ({ Rules: [] }), text: pad, path: '' },
  ],
  [
    'policy-shape',
    { what: 'rules that is not a list', replace: () => ({ rules: {} }), text: pad, path: '' },
  ],
  ['policy-shape', { what: 'a policy that is null', replace: () => null, text: pad, path: '' }],
  [
    'policy-shape',
    {
      what: 'a rule without an action',
      mutate: (policy) => {
        delete policy.rules[3].action;
      },
      path: 'rules[3]',
    },
  ],
  [
    'text-length',
    {
      what: 'policy text of 99 characters',
      // No valid policy is this short; the boundary is reached through the measured text.
      text: () => ' '.repeat(99),
      path: '',
    },
  ],
  [
    'rule-count',
    { what: 'no rules at all', replace: () => ({ rules: [] }), text: pad, path: 'rules' },
  ],
  [
    'priority-integer',
    {
      what: 'rulePriority 0',
      mutate: (policy) => {
        policy.rules[0].rulePriority = 0;
      },
      path: 'rules[0].rulePriority',
    },
  ],
  [
    'priority-integer',
    {
      what: 'a string rulePriority',
      mutate: (policy) => {
        policy.rules[3].rulePriority = '4';
      },
      path: 'rules[3].rulePriority',
    },
  ],
  [
    'tag-status',
    {
      what: 'a missing tagStatus',
      mutate: (policy) => {
        delete policy.rules[2].selection.tagStatus;
      },
      path: 'rules[2].selection.tagStatus',
    },
  ],
  [
    'untagged-no-filter',
    {
      what: 'an "any" rule with a tag pattern',
      mutate: (policy) => {
        policy.rules[3].selection.tagStatus = 'any';
        policy.rules[2].selection.tagStatus = 'tagged';
        policy.rules[2].selection.tagPrefixList = ['old-'];
      },
      path: 'rules[3].selection',
    },
  ],
  [
    'pattern-wildcards',
    {
      what: 'a single pattern of 5 wildcards',
      mutate: (policy) => {
        policy.rules[1].selection.tagPatternList = ['*****'];
      },
      path: 'rules[1].selection.tagPatternList[0]',
    },
  ],
  [
    'filter-nonempty',
    {
      what: 'an empty string in tagPatternList',
      mutate: (policy) => {
        policy.rules[1].selection.tagPatternList = ['br-*', ''];
      },
      path: 'rules[1].selection.tagPatternList',
    },
  ],
  [
    'filter-nonempty',
    {
      what: 'tagPrefixList as a string',
      mutate: (policy) => {
        policy.rules[0].selection.tagPrefixList = 'main.';
      },
      path: 'rules[0].selection.tagPrefixList',
    },
  ],
  [
    'count-type',
    {
      what: 'an unknown countType',
      mutate: (policy) => {
        policy.rules[0].selection.countType = 'imageCountGreaterThan';
      },
      path: 'rules[0].selection.countType',
    },
  ],
  [
    'count-unit',
    {
      what: 'countUnit on an imageCountMoreThan rule',
      mutate: (policy) => {
        policy.rules[0].selection.countUnit = 'days';
      },
      path: 'rules[0].selection.countUnit',
    },
  ],
  [
    'count-unit',
    {
      what: 'sinceImagePushed without countUnit',
      mutate: (policy) => {
        delete policy.rules[2].selection.countUnit;
      },
      path: 'rules[2].selection.countUnit',
    },
  ],
  [
    'count-number',
    {
      what: 'a fractional countNumber',
      mutate: (policy) => {
        policy.rules[3].selection.countNumber = 2.5;
      },
      path: 'rules[3].selection.countNumber',
    },
  ],
  [
    'count-number',
    {
      what: 'a string countNumber',
      mutate: (policy) => {
        policy.rules[1].selection.countNumber = '14';
      },
      path: 'rules[1].selection.countNumber',
    },
  ],
  [
    'action-type',
    {
      what: 'a rule without an action type',
      mutate: (policy) => {
        policy.rules[2].action = {};
      },
      path: 'rules[2].action.type',
    },
  ],
];

describe('validateLifecyclePolicy: one violation per case', () => {
  test('the starting policy is valid, and keeps the main cache tags', () => {
    expect(validateLifecyclePolicy(validPolicy())).toEqual([]);
    expect(keepsMainTags(validPolicy())).toEqual([]);
  });

  test('keeps-tag reports every tag that is not kept', () => {
    const policy = validPolicy();
    policy.rules[0].selection.countNumber = 1;
    expect(keepsMainTags(policy).map((v) => [v.rule, v.path])).toEqual([
      ['keeps-tag', 'rules[0]'],
      ['keeps-tag', 'rules[0]'],
    ]);
  });

  test.each(
    Object.entries(oneCasePerRule).map(([rule, testCase]) => [rule, testCase.what, testCase]),
  )('%s: %s', (rule, _what, testCase) => {
    const violations = violationsOf(testCase as Case);
    expect(violations.map(({ rule, path }) => ({ rule, path }))).toEqual([
      { rule, path: (testCase as Case).path },
    ]);
    expect(violations[0]?.message).not.toBe('');
  });

  test.each(moreCases.map(([rule, testCase]) => [rule, testCase.what, testCase] as const))(
    '%s: %s',
    (rule, _what, testCase) => {
      const violations = violationsOf(testCase);
      expect(violations.map(({ rule, path }) => ({ rule, path }))).toEqual([
        { rule, path: testCase.path },
      ]);
    },
  );

  test('formatViolation names the file, the path and the rule id', () => {
    const [violation] = violationsOf(oneCasePerRule['count-unit']);
    expect(violation).toBeDefined();
    expect(
      formatViolation('ecr/cache-lifecycle-policy.json', violation as LifecycleViolation),
    ).toBe(
      'ecr/cache-lifecycle-policy.json: rules[1].selection.countUnit: sinceImagePushed needs countUnit "days" [count-unit]',
    );
    const [whole] = violationsOf(oneCasePerRule['text-length']);
    expect(formatViolation('p.json', whole as LifecycleViolation)).toMatch(
      /^p\.json: policy text is \d+ characters; ECR accepts 100 to 30720 \[text-length\]$/,
    );
  });
});

describe('validateLifecyclePolicy: valid edge cases', () => {
  test('exactly 50 rules', () => {
    expect(validateLifecyclePolicy(manyRules(50))).toEqual([]);
  });

  test('a tag pattern with exactly 4 wildcards', () => {
    const policy = validPolicy();
    policy.rules[1].selection.tagPatternList = ['*a*b*c*d', 'br-*'];
    expect(validateLifecyclePolicy(policy)).toEqual([]);
  });

  test('policy text of exactly 30,720 characters', () => {
    const policy = validPolicy();
    const length = JSON.stringify(policy).length;
    policy.rules[0].description += 'x'.repeat(30_720 - length);
    expect(JSON.stringify(policy)).toHaveLength(30_720);
    expect(validateLifecyclePolicy(policy)).toEqual([]);
    policy.rules[0].description += 'x';
    expect(validateLifecyclePolicy(policy).map((v) => v.rule)).toEqual(['text-length']);
  });

  test('policy text of exactly 100 characters', () => {
    expect(validateLifecyclePolicy(validPolicy(), ' '.repeat(100))).toEqual([]);
  });

  test('an "any" rule with the highest priority, as the only rule selecting untagged images', () => {
    const policy = validPolicy();
    policy.rules.splice(2, 1); // drop the untagged rule
    policy.rules.push({
      rulePriority: 10,
      selection: {
        tagStatus: 'any',
        countType: 'sinceImagePushed',
        countUnit: 'days',
        countNumber: 90,
      },
      action: { type: 'expire' },
    });
    expect(validateLifecyclePolicy(policy)).toEqual([]);
  });

  test('a single rule, countNumber 1, gaps between priorities', () => {
    expect(
      validateLifecyclePolicy({
        rules: [
          {
            rulePriority: 7,
            description: 'Expire untagged images one day after they were pushed',
            selection: {
              tagStatus: 'untagged',
              countType: 'sinceImagePushed',
              countUnit: 'days',
              countNumber: 1,
            },
            action: { type: 'expire' },
          },
        ],
      }),
    ).toEqual([]);
  });

  test('several entries in one tagPrefixList (ANDed) are allowed', () => {
    const policy = validPolicy();
    policy.rules[3].selection.tagPrefixList = ['release-', 'release-2'];
    expect(validateLifecyclePolicy(policy)).toEqual([]);
  });
});

describe('every policy the generator emits is valid', () => {
  const base: ResolvedConfig = parseConfig(
    [
      'aws: { accountId: "123456789012", region: eu-west-1 }',
      'github: { repository: acme/shop }',
      'images: [{ name: web, repository: shop }]',
    ].join('\n'),
  );
  const withCache = (branch: number, untagged: number): ResolvedConfig => ({
    ...base,
    cache: { branchRetentionDays: branch, untaggedRetentionDays: untagged },
  });
  const withImages = (keep: number, untagged: number): ResolvedConfig => ({
    ...base,
    deployImages: { keep, untaggedRetentionDays: untagged },
  });
  const problems = (policy: LifecyclePolicy, label: string) =>
    validateLifecyclePolicy(policy).map((violation) => formatViolation(label, violation));

  test('cache policy for every branch retention from 1 to 3650 days', () => {
    const found: string[] = [];
    for (let days = 1; days <= 3650; days++) {
      found.push(...problems(cacheLifecyclePolicy(withCache(days, 1)), `branch=${days}`));
      found.push(...problems(cacheLifecyclePolicy(withCache(14, days)), `untagged=${days}`));
    }
    for (const days of [1, 14, 3650]) {
      const policy = cacheLifecyclePolicy(withCache(days, days));
      found.push(...validateKeepsTags(policy, ['main.web']).map((v) => formatViolation('keep', v)));
    }
    expect(found).toEqual([]);
    // The loop really produced the values it claims to cover.
    const branchRule = cacheLifecyclePolicy(withCache(3650, 1)).rules.find((rule) =>
      rule.selection.tagPrefixList?.includes('br-'),
    );
    expect(branchRule?.selection.countNumber).toBe(3650);
  });

  test('image policy for every keep count from 1 to 10000 and untagged retention from 1 to 3650', () => {
    const found: string[] = [];
    for (let keep = 1; keep <= 10_000; keep++) {
      found.push(...problems(imageLifecyclePolicy(withImages(keep, 1)), `keep=${keep}`));
    }
    for (let days = 1; days <= 3650; days++) {
      found.push(...problems(imageLifecyclePolicy(withImages(30, days)), `untagged=${days}`));
    }
    expect(found).toEqual([]);
    expect(imageLifecyclePolicy(withImages(10_000, 1)).rules[1]?.selection.countNumber).toBe(
      10_000,
    );
  });

  test('the rendered policy files, as written (pretty-printed), are valid too', () => {
    const configs = [
      base,
      withCache(1, 1),
      withCache(3650, 3650),
      withImages(1, 1),
      withImages(10_000, 3650),
      {
        ...base,
        images: Array.from({ length: 20 }, (_, index) => ({
          ...(base.images[0] as ResolvedConfig['images'][number]),
          name: `img-${index}`,
          repository: `shop/img-${index}`,
          cacheRepository: `shop/img-${index}-buildcache`,
        })),
      },
    ];
    let checked = 0;
    for (const config of configs) {
      for (const file of renderFiles(config, '0.0.0-test')) {
        if (!file.path.endsWith('lifecycle-policy.json')) continue;
        checked++;
        const policy = JSON.parse(file.content);
        expect(validateLifecyclePolicy(policy, file.content), file.path).toEqual([]);
        if (file.path.endsWith('/cache-lifecycle-policy.json')) {
          const mainTags = config.images.map((image) => cacheTag(MAIN_SCOPE, image.name));
          expect(validateKeepsTags(policy, mainTags), file.path).toEqual([]);
        }
      }
    }
    // The image, cache and branch-cache policies of every configuration.
    expect(checked).toBe(configs.length * 3);
  });

  test('branch-cache policy for every retention: valid, and nothing in the repository is kept forever', () => {
    const found: string[] = [];
    for (let days = 1; days <= 3650; days++) {
      found.push(...problems(branchCacheLifecyclePolicy(withCache(days, 1)), `branch=${days}`));
      found.push(...problems(branchCacheLifecyclePolicy(withCache(14, days)), `untagged=${days}`));
    }
    expect(found).toEqual([]);
    for (const [branch, untagged] of [
      [1, 1],
      [14, 1],
      [3650, 3650],
    ] as const) {
      const policy = branchCacheLifecyclePolicy(withCache(branch, untagged));
      // Every rule expires by age: no count rule keeps anything for ever.
      for (const rule of policy.rules) {
        expect(rule.selection.countType).toBe('sinceImagePushed');
        expect(rule.selection.countNumber).toBe(
          rule.selection.tagStatus === 'untagged' ? untagged : branch,
        );
      }
      // Whatever tags a branch build writes there (main.* and seed.* included), some rule selects
      // them: the main and seed caches are not kept here, they live in the cache repository.
      expect(validateKeepsTags(policy, ['main.web']).length).toBeGreaterThan(0);
      expect(policy.rules.map((rule) => rule.selection.tagStatus)).toEqual([
        'tagged',
        'untagged',
        'tagged',
      ]);
      expect(policy.rules.at(-1)?.selection.tagPatternList).toEqual(['*']);
    }
  });
});
