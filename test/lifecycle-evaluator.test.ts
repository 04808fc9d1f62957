import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { resolveConfig } from '../src/config/resolve.js';
import type { RawConfig } from '../src/config/schema.js';
import {
  cacheLifecyclePolicy,
  imageLifecyclePolicy,
  type LifecyclePolicy,
  type LifecycleRule,
} from '../src/model/lifecycle.js';
import {
  type Evaluation,
  evaluateLifecyclePolicy,
  type ListedImage,
  selects,
} from '../src/policy/evaluate-lifecycle.js';

const NOW = new Date('2025-06-01T12:00:00Z');
const DAY = 24 * 3600 * 1000;
const daysAgo = (days: number) => new Date(NOW.getTime() - days * DAY);

function image(name: string, tags: string[], pushed: Date, children?: string[]): ListedImage {
  return { digest: `sha256:${name}`, tags, pushedAt: pushed, sizeInBytes: 100, children };
}

function rule(
  rulePriority: number,
  selection: LifecycleRule['selection'],
  description = `Rule ${rulePriority}`,
): LifecycleRule {
  return { rulePriority, description, selection, action: { type: 'expire' } };
}

/** The letters of the expired images ("sha256:A" → "A"), sorted. */
function expiredNames(evaluation: Evaluation): string[] {
  return evaluation.expired.map((entry) => entry.image.digest.replace('sha256:', '')).sort();
}

/**
 * Every worked example of AWS's "Examples of lifecycle policies in Amazon ECR"
 * (https://docs.aws.amazon.com/AmazonECR/latest/userguide/lifecycle_policy_examples.html):
 * the repository contents, the policy text, and the documented result, as the page gives them.
 * The page's "Filtering on multiple rules" examples used tagPrefixList ["prod"] / ["beta"] in
 * earlier versions and tagPatternList ["prod*"] / ["beta*"] now: both forms are checked.
 */
describe('AWS documentation: Examples of lifecycle policies in Amazon ECR', () => {
  test('Filtering on image age: tagged prod* older than 14 days expire (the page gives only the policy)', () => {
    const policy: LifecyclePolicy = {
      rules: [
        rule(
          1,
          {
            tagStatus: 'tagged',
            tagPatternList: ['prod*'],
            countType: 'sinceImagePushed',
            countUnit: 'days',
            countNumber: 14,
          },
          'Expire images older than 14 days',
        ),
      ],
    };
    const images = [
      image('old-prod', ['prod-1'], daysAgo(15)),
      image('new-prod', ['prod-2'], daysAgo(13)),
      image('old-beta', ['beta-1'], daysAgo(30)),
      image('old-untagged', [], daysAgo(30)),
    ];
    expect(expiredNames(evaluateLifecyclePolicy(policy, images, NOW))).toEqual(['old-prod']);
  });

  test('Filtering on image count: keeps only one untagged image and expires all others (the page gives only the policy)', () => {
    const policy: LifecyclePolicy = {
      rules: [
        rule(
          1,
          { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 },
          'Keep only one untagged image, expire all others',
        ),
      ],
    };
    const images = [
      image('u1', [], daysAgo(3)),
      image('u2', [], daysAgo(2)),
      image('u3', [], daysAgo(1)),
      image('tagged', ['v1'], daysAgo(9)),
    ];
    expect(expiredNames(evaluateLifecyclePolicy(policy, images, NOW))).toEqual(['u1', 'u2']);
  });

  // Repository contents of both "Filtering on multiple rules" examples.
  const multipleRulesRepo = () => [
    image('A', ['beta-1', 'prod-1'], daysAgo(10)),
    image('B', ['beta-2', 'prod-2'], daysAgo(9)),
    image('C', ['beta-3'], daysAgo(8)),
  ];
  const byTag = (form: 'prefix' | 'pattern', tag: string) =>
    form === 'prefix' ? { tagPrefixList: [tag] } : { tagPatternList: [`${tag}*`] };

  test.each(['pattern', 'prefix'] as const)(
    'Filtering on multiple rules, Example A (%s form): Image A is expired',
    (form) => {
      // Rule 1 (prod) marks A; rule 2 (beta) sees A, B and C and would mark A and B, but A was
      // already seen by rule 1 and expiring B would violate rule 1, so it is skipped.
      const policy: LifecyclePolicy = {
        rules: [
          rule(1, {
            tagStatus: 'tagged',
            ...byTag(form, 'prod'),
            countType: 'imageCountMoreThan',
            countNumber: 1,
          }),
          rule(2, {
            tagStatus: 'tagged',
            ...byTag(form, 'beta'),
            countType: 'imageCountMoreThan',
            countNumber: 1,
          }),
        ],
      };
      expect(expiredNames(evaluateLifecyclePolicy(policy, multipleRulesRepo(), NOW))).toEqual([
        'A',
      ]);
    },
  );

  test.each(['pattern', 'prefix'] as const)(
    'Filtering on multiple rules, Example B (%s form): Images A and B are expired',
    (form) => {
      // Rule 1 (beta) sees all three and marks A and B; rule 2 (prod) sees nothing new.
      const policy: LifecyclePolicy = {
        rules: [
          rule(1, {
            tagStatus: 'tagged',
            ...byTag(form, 'beta'),
            countType: 'imageCountMoreThan',
            countNumber: 1,
          }),
          rule(2, {
            tagStatus: 'tagged',
            ...byTag(form, 'prod'),
            countType: 'imageCountMoreThan',
            countNumber: 1,
          }),
        ],
      };
      expect(expiredNames(evaluateLifecyclePolicy(policy, multipleRulesRepo(), NOW))).toEqual([
        'A',
        'B',
      ]);
    },
  );

  test('Filtering on multiple tags in a single rule, Example A: Image C is expired', () => {
    // The rule sees only C and F (both tag patterns must match); C is older than five days.
    const images = [
      image('A', ['alpha-1'], daysAgo(12)),
      image('B', ['beta-1'], daysAgo(11)),
      image('C', ['alpha-2', 'beta-2'], daysAgo(10)),
      image('D', ['alpha-3'], daysAgo(4)),
      image('E', ['beta-3'], daysAgo(3)),
      image('F', ['alpha-4', 'beta-4'], daysAgo(2)),
    ];
    const policy: LifecyclePolicy = {
      rules: [
        rule(1, {
          tagStatus: 'tagged',
          tagPatternList: ['alpha*', 'beta*'],
          countType: 'sinceImagePushed',
          countNumber: 5,
          countUnit: 'days',
        }),
      ],
    };
    expect(expiredNames(evaluateLifecyclePolicy(policy, images, NOW))).toEqual(['C']);
  });

  test('Filtering on multiple tags in a single rule, Example B (tags are not exclusive): Images A and B are expired', () => {
    const images = [
      image('A', ['alpha-1', 'beta-1', 'gamma-1'], daysAgo(10)),
      image('B', ['alpha-2', 'beta-2'], daysAgo(9)),
      image('C', ['alpha-3', 'beta-3', 'gamma-2'], daysAgo(8)),
    ];
    const policy: LifecyclePolicy = {
      rules: [
        rule(1, {
          tagStatus: 'tagged',
          tagPatternList: ['alpha*', 'beta*'],
          countType: 'imageCountMoreThan',
          countNumber: 1,
        }),
      ],
    };
    expect(expiredNames(evaluateLifecyclePolicy(policy, images, NOW))).toEqual(['A', 'B']);
  });

  test('Filtering on all images, Example A: Images A, B and C are expired', () => {
    const images = [
      image('A', ['alpha-1'], daysAgo(4)),
      image('B', ['beta-1'], daysAgo(3)),
      image('C', [], daysAgo(2)),
      image('D', ['alpha-2'], daysAgo(1)),
    ];
    const policy: LifecyclePolicy = {
      rules: [rule(1, { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 })],
    };
    expect(expiredNames(evaluateLifecyclePolicy(policy, images, NOW))).toEqual(['A', 'B', 'C']);
  });

  test('Filtering on all images, Example B (all rule types): Images A, B and D are expired', () => {
    // D and E are both "pushed 1 day ago" on the page, and its rule 3 keeps E as the newest (it
    // marks D): E is pushed a minute after D here. E must also not be older than one day, as
    // rule 2 does not mark it.
    const images = [
      image('A', ['alpha-1', 'beta-1'], daysAgo(4)),
      image('B', [], daysAgo(3)),
      image('C', ['alpha-2'], daysAgo(2)),
      image('D', ['git hash'], daysAgo(1)),
      image('E', [], new Date(daysAgo(1).getTime() + 60_000)),
    ];
    const policy: LifecyclePolicy = {
      rules: [
        rule(1, {
          tagStatus: 'tagged',
          tagPatternList: ['alpha*'],
          countType: 'imageCountMoreThan',
          countNumber: 1,
        }),
        rule(2, {
          tagStatus: 'untagged',
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: 1,
        }),
        rule(3, { tagStatus: 'any', countType: 'imageCountMoreThan', countNumber: 1 }),
      ],
    };
    const evaluation = evaluateLifecyclePolicy(policy, images, NOW);
    expect(expiredNames(evaluation)).toEqual(['A', 'B', 'D']);
    // Rule 1 marks A, rule 2 marks B, rule 3 marks D: it ranks A..E, keeps the newest (E) and can
    // mark none of A, B, C, E because higher-priority rules identified them.
    const by = Object.fromEntries(
      evaluation.expired.map((entry) => [entry.image.digest, entry.rule.rulePriority]),
    );
    expect(by).toEqual({ 'sha256:A': 1, 'sha256:B': 2, 'sha256:D': 3 });
  });
});

describe('index children', () => {
  test('an untagged child of a kept index is not expired; the child of an expired index is', () => {
    const policy: LifecyclePolicy = {
      rules: [
        rule(1, {
          tagStatus: 'untagged',
          countType: 'sinceImagePushed',
          countUnit: 'days',
          countNumber: 1,
        }),
        rule(2, {
          tagStatus: 'tagged',
          tagPatternList: ['*'],
          countType: 'imageCountMoreThan',
          countNumber: 1,
        }),
      ],
    };
    const images = [
      image('old-index', ['v1'], daysAgo(10), ['sha256:old-amd64']),
      image('old-amd64', [], daysAgo(10)),
      image('new-index', ['v2'], daysAgo(5), ['sha256:new-amd64', 'sha256:new-arm64']),
      image('new-amd64', [], daysAgo(5)),
      image('new-arm64', [], daysAgo(5)),
    ];
    const evaluation = evaluateLifecyclePolicy(policy, images, NOW);
    expect(expiredNames(evaluation)).toEqual(['old-amd64', 'old-index']);
    expect(evaluation.protectedChildren.map((child) => child.digest).sort()).toEqual([
      'sha256:new-amd64',
      'sha256:new-arm64',
    ]);
  });
});

describe('images built per platform and merged (docs/multi-platform.md)', () => {
  const config = resolveConfig({
    aws: { accountId: '123456789012', region: 'eu-west-1' },
    github: { repository: 'acme/shop' },
    images: [{ name: 'api', repository: 'acme/api', platforms: ['linux/amd64', 'linux/arm64'] }],
    deployImages: { keep: 2 },
  } as RawConfig);

  /**
   * One commit as the workflow leaves it in the image repository: each platform's job pushed an
   * index by digest (its image and provenance attestation, untagged), and the merge made the tagged
   * manifest list of those images and attestations (`imagetools create` lists the children of its
   * sources, not the sources themselves).
   */
  function commit(name: string, days: number): ListedImage[] {
    const pushed = daysAgo(days);
    const children = ['amd64', 'amd64-att', 'arm64', 'arm64-att'].map((part) => `${name}-${part}`);
    return [
      image(
        `${name}-list`,
        [name],
        pushed,
        children.map((child) => `sha256:${child}`),
      ),
      image(`${name}-amd64-push`, [], pushed, [`sha256:${name}-amd64`, `sha256:${name}-amd64-att`]),
      image(`${name}-arm64-push`, [], pushed, [`sha256:${name}-arm64`, `sha256:${name}-arm64-att`]),
      ...children.map((child) => image(child, [], pushed)),
    ];
  }

  test('"keep the newest N" counts manifest lists; the untagged rule never takes a kept list\'s platform images', () => {
    const images = [...commit('c1', 10), ...commit('c2', 5), ...commit('c3', 2)];
    const evaluation = evaluateLifecyclePolicy(imageLifecyclePolicy(config), images, NOW);
    // keep: 2 keeps c2's and c3's lists; c1's list goes, and with it everything only it held.
    // The per-platform pushes are untagged and nothing references them: they go after a day,
    // while the lists that stay keep every platform image and attestation.
    expect(expiredNames(evaluation)).toEqual(
      [
        ...['list', 'amd64', 'amd64-att', 'arm64', 'arm64-att'].map((part) => `c1-${part}`),
        ...['c1', 'c2', 'c3'].flatMap((name) => [`${name}-amd64-push`, `${name}-arm64-push`]),
      ].sort(),
    );
    expect(evaluation.protectedChildren.map((child) => child.digest).sort()).toEqual(
      ['c2', 'c3']
        .flatMap((name) =>
          ['amd64', 'amd64-att', 'arm64', 'arm64-att'].map((part) => `sha256:${name}-${part}`),
        )
        .sort(),
    );
  });

  test('in the push-by-digest window (before the merge), the platform images are untagged and young: nothing expires', () => {
    const fresh = commit('c9', 0.1).filter((entry) => !entry.digest.endsWith('-list'));
    const evaluation = evaluateLifecyclePolicy(imageLifecyclePolicy(config), fresh, NOW);
    expect(evaluation.expired).toEqual([]);
  });
});

// --- property-based ---

const TAGS = ['main.app', 'seed.app', 'br-a.app', 'br-b.app', 'prod-1', 'prod-2', 'beta-1', 'v1'];
const PREFIXES = ['main.', 'br-', 'prod', 'beta', 'v', 'seed.'];
const PATTERNS = ['*', 'prod*', '*-1', 'br-*.app', 'v?', 'beta*'];

const selectionArb: fc.Arbitrary<LifecycleRule['selection']> = fc
  .record({
    kind: fc.constantFrom('prefix', 'pattern', 'untagged'),
    prefixes: fc.uniqueArray(fc.constantFrom(...PREFIXES), { minLength: 1, maxLength: 2 }),
    patterns: fc.uniqueArray(fc.constantFrom(...PATTERNS), { minLength: 1, maxLength: 2 }),
    age: fc.boolean(),
    count: fc.integer({ min: 1, max: 6 }),
  })
  .map(({ kind, prefixes, patterns, age, count }) => ({
    tagStatus: kind === 'untagged' ? ('untagged' as const) : ('tagged' as const),
    ...(kind === 'prefix' ? { tagPrefixList: prefixes } : {}),
    ...(kind === 'pattern' ? { tagPatternList: patterns } : {}),
    ...(age
      ? { countType: 'sinceImagePushed' as const, countUnit: 'days' as const, countNumber: count }
      : { countType: 'imageCountMoreThan' as const, countNumber: count }),
  }));

/** Valid policies: unique priorities, at most one untagged rule, an optional `any` rule last. */
const policyArb: fc.Arbitrary<LifecyclePolicy> = fc
  .record({
    selections: fc.array(selectionArb, { minLength: 1, maxLength: 5 }),
    priorities: fc.uniqueArray(fc.integer({ min: 1, max: 50 }), { minLength: 6, maxLength: 6 }),
    any: fc.option(fc.record({ age: fc.boolean(), count: fc.integer({ min: 1, max: 6 }) }), {
      nil: undefined,
    }),
  })
  .map(({ selections, priorities, any }) => {
    let untagged = false;
    const kept = selections.filter((selection) => {
      if (selection.tagStatus !== 'untagged') return true;
      if (untagged) return false;
      untagged = true;
      return true;
    });
    const sorted = [...priorities].sort((a, b) => a - b);
    const rules = kept.map((selection, index) => rule(sorted[index] ?? index + 1, selection));
    if (any) {
      rules.push(
        rule(100, {
          tagStatus: 'any',
          ...(any.age
            ? { countType: 'sinceImagePushed', countUnit: 'days', countNumber: any.count }
            : { countType: 'imageCountMoreThan', countNumber: any.count }),
        }),
      );
    }
    // Shuffle order in the document: the evaluator must sort by priority itself.
    return { rules: rules.reverse() };
  });

/** Listings with some indexes whose children are untagged images of the same listing. */
const listingArb: fc.Arbitrary<ListedImage[]> = fc
  .array(
    fc.record({
      tags: fc.uniqueArray(fc.constantFrom(...TAGS), { maxLength: 3 }),
      ageHours: fc.integer({ min: 0, max: 24 * 12 }),
      size: fc.integer({ min: 1, max: 10_000 }),
      isIndex: fc.boolean(),
      childCount: fc.integer({ min: 0, max: 3 }),
    }),
    { maxLength: 25 },
  )
  .map((specs) => {
    // Tags are unique within a repository: a later image takes the tag from an earlier one.
    const owner = new Map<string, number>();
    specs.forEach((spec, index) => {
      for (const tag of spec.tags) owner.set(tag, index);
    });
    const images: ListedImage[] = specs.map((spec, index) => ({
      digest: `sha256:${index.toString().padStart(3, '0')}`,
      tags: spec.tags.filter((tag) => owner.get(tag) === index),
      pushedAt: new Date(NOW.getTime() - spec.ageHours * 3600 * 1000),
      sizeInBytes: spec.size,
    }));
    // Each index takes up to childCount untagged non-index images pushed no later than it.
    const taken = new Set<string>();
    specs.forEach((spec, index) => {
      const parent = images[index];
      if (!spec.isIndex || !parent) return;
      const children = images
        .filter(
          (candidate, at) =>
            at !== index &&
            candidate.tags.length === 0 &&
            !specs[at]?.isIndex &&
            !taken.has(candidate.digest),
        )
        .slice(0, spec.childCount);
      for (const child of children) taken.add(child.digest);
      parent.children = children.map((child) => child.digest);
    });
    return images;
  });

describe('properties over random policies and listings', () => {
  test('every image is expired by at most one rule, and belongs to exactly one outcome', () => {
    fc.assert(
      fc.property(policyArb, listingArb, (policy, images) => {
        const evaluation = evaluateLifecyclePolicy(policy, images, NOW);
        const outcomes = [
          ...evaluation.expired.map((entry) => entry.image.digest),
          ...evaluation.kept.map((entry) => entry.image.digest),
          ...evaluation.protectedChildren.map((child) => child.digest),
          ...evaluation.unmatched.map((entry) => entry.digest),
        ];
        expect(outcomes.sort()).toEqual(images.map((entry) => entry.digest).sort());
      }),
      { numRuns: 300 },
    );
  });

  test('an image is only expired by the highest-priority rule that selects it', () => {
    fc.assert(
      fc.property(policyArb, listingArb, (policy, images) => {
        const evaluation = evaluateLifecyclePolicy(policy, images, NOW);
        for (const { image, rule: by } of [...evaluation.expired, ...evaluation.kept]) {
          expect(selects(by, image)).toBe(true);
          for (const other of policy.rules) {
            if (other.rulePriority < by.rulePriority) expect(selects(other, image)).toBe(false);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('expiries follow the count type: older than N days, or past the newest N the rule identifies', () => {
    fc.assert(
      fc.property(policyArb, listingArb, (policy, images) => {
        const evaluation = evaluateLifecyclePolicy(policy, images, NOW);
        for (const { image, rule: by } of evaluation.expired) {
          const { countType, countNumber } = by.selection;
          if (countType === 'sinceImagePushed') {
            expect(image.pushedAt.getTime()).toBeLessThan(NOW.getTime() - countNumber * DAY);
          } else {
            // At least N images the rule identifies (taken by it or a higher rule) are newer.
            const newer = images.filter(
              (other) =>
                other !== image &&
                selects(by, other) &&
                other.pushedAt.getTime() >= image.pushedAt.getTime(),
            );
            expect(newer.length).toBeGreaterThanOrEqual(countNumber);
          }
        }
        // And nothing a rule takes that meets its criterion is left unexpired (unless an index holds it).
        const held = new Set(evaluation.protectedChildren.map((child) => child.digest));
        for (const { image, rule: by } of evaluation.kept) {
          if (by.selection.countType === 'sinceImagePushed') {
            expect(
              image.pushedAt.getTime() >= NOW.getTime() - by.selection.countNumber * DAY ||
                held.has(image.digest),
            ).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('index children are never expired before their index', () => {
    fc.assert(
      fc.property(policyArb, listingArb, (policy, images) => {
        const evaluation = evaluateLifecyclePolicy(policy, images, NOW);
        const expired = new Set(evaluation.expired.map((entry) => entry.image.digest));
        for (const index of images) {
          for (const child of index.children ?? []) {
            if (expired.has(child)) expect(expired.has(index.digest)).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  test('the generated policies never expire the main or seed cache, nor the newest N deployable images', () => {
    const raw = {
      aws: { accountId: '123456789012', region: 'us-east-1' },
      github: { repository: 'acme/app' },
      images: [{ name: 'app', repository: 'acme/app' }],
      deployImages: { keep: 3 },
    } as unknown as RawConfig;
    const config = resolveConfig(raw);
    const cachePolicy = cacheLifecyclePolicy(config);
    const imagePolicy = imageLifecyclePolicy(config);
    fc.assert(
      fc.property(listingArb, (images) => {
        const cache = evaluateLifecyclePolicy(cachePolicy, images, NOW);
        for (const { image } of cache.expired) {
          expect(image.tags.some((tag) => tag.startsWith('main.'))).toBe(false);
          if (config.seed?.enabled) {
            expect(image.tags.some((tag) => tag.startsWith('seed.'))).toBe(false);
          }
        }
        const deploy = evaluateLifecyclePolicy(imagePolicy, images, NOW);
        const newest = images
          .filter((entry) => entry.tags.length > 0)
          .sort((a, b) => b.pushedAt.getTime() - a.pushedAt.getTime())
          .slice(0, 3)
          .map((entry) => entry.digest);
        const expired = new Set(deploy.expired.map((entry) => entry.image.digest));
        for (const digest of newest) expect(expired.has(digest)).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});
