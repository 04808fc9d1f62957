/**
 * Checks an ECR lifecycle policy against every rule in docs/ecr-lifecycle.md (AWS "Lifecycle policy
 * properties" and "evaluation rules"). The generator runs it on its own output before anything is
 * written, and it is exported for anyone who hand-writes policies. Each violation names its rule,
 * so a message can be traced back to the documentation.
 */

import type { LifecyclePolicy } from '../model/lifecycle.js';
import { printable, quoteForMessage } from '../text.js';
import { selects } from './evaluate-lifecycle.js';

/** A value from a policy file as a message quotes it: short, one line, no control characters. */
function shown(value: unknown): string {
  if (typeof value === 'string') return quoteForMessage(value, 60);
  const text = JSON.stringify(value) ?? String(value);
  return printable(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}

export type LifecycleRuleId =
  | 'keeps-tag'
  | 'policy-shape'
  | 'text-length'
  | 'rule-count'
  | 'priority-unique'
  | 'priority-integer'
  | 'priority-sorted'
  | 'tag-status'
  | 'tagged-needs-filter'
  | 'filter-exclusive'
  | 'untagged-no-filter'
  | 'any-last'
  | 'single-untagged'
  | 'pattern-wildcards'
  | 'filter-nonempty'
  | 'count-type'
  | 'count-unit'
  | 'count-number'
  | 'action-type';

export interface LifecycleViolation {
  rule: LifecycleRuleId;
  /** Where in the policy, e.g. "rules[1].selection.countUnit". */
  path: string;
  message: string;
}

const MIN_TEXT = 100;
const MAX_TEXT = 30720;
const MAX_RULES = 50;
const MAX_WILDCARDS = 4;

export function validateLifecyclePolicy(policy: unknown, text?: string): LifecycleViolation[] {
  const violations: LifecycleViolation[] = [];
  const add = (rule: LifecycleRuleId, path: string, message: string) =>
    violations.push({ rule, path, message });

  const policyText = text ?? JSON.stringify(policy);
  if (policyText.length < MIN_TEXT || policyText.length > MAX_TEXT) {
    add(
      'text-length',
      '',
      `policy text is ${policyText.length} characters; ECR accepts ${MIN_TEXT} to ${MAX_TEXT}`,
    );
  }
  if (!isRecord(policy) || !Array.isArray(policy.rules)) {
    add('policy-shape', '', 'a lifecycle policy is an object with a "rules" list');
    return violations;
  }
  const rules: unknown[] = policy.rules;
  if (rules.length < 1 || rules.length > MAX_RULES) {
    add('rule-count', 'rules', `has ${rules.length} rules; ECR accepts 1 to ${MAX_RULES}`);
  }

  const priorities: number[] = [];
  let untaggedSelectors = 0;
  rules.forEach((rule, index) => {
    const at = `rules[${index}]`;
    if (!isRecord(rule) || !isRecord(rule.selection) || !isRecord(rule.action)) {
      add('policy-shape', at, 'a rule needs rulePriority, selection and action');
      return;
    }
    const priority = rule.rulePriority;
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 1) {
      add('priority-integer', `${at}.rulePriority`, `${shown(priority)} is not a positive integer`);
    } else {
      if (priorities.includes(priority)) {
        add(
          'priority-unique',
          `${at}.rulePriority`,
          `priority ${priority} is used by another rule; priorities must be unique`,
        );
      }
      priorities.push(priority);
    }

    const selection = rule.selection;
    const status = selection.tagStatus;
    const prefixes = selection.tagPrefixList;
    const patterns = selection.tagPatternList;
    if (status !== 'tagged' && status !== 'untagged' && status !== 'any') {
      add(
        'tag-status',
        `${at}.selection.tagStatus`,
        `${shown(status)} is not tagged, untagged or any`,
      );
    }
    if (status === 'tagged' && prefixes === undefined && patterns === undefined) {
      add(
        'tagged-needs-filter',
        `${at}.selection`,
        'a tagged rule needs tagPrefixList or tagPatternList',
      );
    }
    if (prefixes !== undefined && patterns !== undefined) {
      add(
        'filter-exclusive',
        `${at}.selection`,
        'tagPrefixList and tagPatternList cannot both be set',
      );
    }
    if (status !== 'tagged' && (prefixes !== undefined || patterns !== undefined)) {
      add(
        'untagged-no-filter',
        `${at}.selection`,
        `a ${String(status)} rule cannot have tagPrefixList or tagPatternList`,
      );
    }
    for (const [name, list] of [
      ['tagPrefixList', prefixes],
      ['tagPatternList', patterns],
    ] as const) {
      if (list === undefined) continue;
      if (
        !Array.isArray(list) ||
        list.length === 0 ||
        !list.every((entry) => typeof entry === 'string' && entry !== '')
      ) {
        add(
          'filter-nonempty',
          `${at}.selection.${name}`,
          `${name} must be a non-empty list of non-empty strings`,
        );
      }
    }
    if (Array.isArray(patterns)) {
      patterns.forEach((pattern, patternIndex) => {
        if (typeof pattern === 'string' && (pattern.match(/\*/g)?.length ?? 0) > MAX_WILDCARDS) {
          add(
            'pattern-wildcards',
            `${at}.selection.tagPatternList[${patternIndex}]`,
            `"${pattern}" has more than ${MAX_WILDCARDS} wildcards`,
          );
        }
      });
    }
    if (status === 'untagged' || status === 'any') untaggedSelectors++;

    const countType = selection.countType;
    if (countType === 'sinceImagePulled') {
      add(
        'count-type',
        `${at}.selection.countType`,
        'sinceImagePulled only archives; expire rules must use sinceImagePushed or imageCountMoreThan',
      );
    } else if (countType !== 'imageCountMoreThan' && countType !== 'sinceImagePushed') {
      add(
        'count-type',
        `${at}.selection.countType`,
        `${shown(countType)} is not imageCountMoreThan or sinceImagePushed`,
      );
    }
    const since = countType === 'sinceImagePushed' || countType === 'sinceImagePulled';
    if (since && selection.countUnit !== 'days') {
      add('count-unit', `${at}.selection.countUnit`, `${countType} needs countUnit "days"`);
    }
    if (!since && selection.countUnit !== undefined) {
      add(
        'count-unit',
        `${at}.selection.countUnit`,
        'countUnit is only allowed with sinceImagePushed',
      );
    }
    const count = selection.countNumber;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) {
      add('count-number', `${at}.selection.countNumber`, `${shown(count)} is not an integer >= 1`);
    }
    if (rule.action.type !== 'expire') {
      add('action-type', `${at}.action.type`, `${shown(rule.action.type)} is not "expire"`);
    }
  });

  if (untaggedSelectors > 1) {
    add(
      'single-untagged',
      'rules',
      `${untaggedSelectors} rules select untagged images (untagged or any); ECR allows one`,
    );
  }
  const maxPriority = Math.max(...priorities);
  rules.forEach((rule, index) => {
    if (
      isRecord(rule) &&
      isRecord(rule.selection) &&
      rule.selection.tagStatus === 'any' &&
      rule.rulePriority !== maxPriority
    ) {
      add(
        'any-last',
        `rules[${index}].rulePriority`,
        'a tagStatus "any" rule must have the highest rulePriority',
      );
    }
  });
  // ECR returns rules sorted by priority; emitting them in any other order shows up as drift in
  // every IaC tool that compares the two.
  if (priorities.some((priority, index) => index > 0 && priority < (priorities[index - 1] ?? 0))) {
    add('priority-sorted', 'rules', 'rules must be listed in ascending rulePriority');
  }
  return violations;
}

/**
 * Lifecycle age is the original push time, and an unchanged cache keeps its digest and its old
 * push date: the tags that must live forever (main's cache) need a top-priority count rule that
 * claims them before any age rule can. Checks that the first rule selecting each tag is such a
 * rule, with room for all of them.
 */
export function validateKeepsTags(policy: LifecyclePolicy, tags: string[]): LifecycleViolation[] {
  const rules = [...policy.rules].sort((a, b) => a.rulePriority - b.rulePriority);
  const violations: LifecycleViolation[] = [];
  for (const tag of tags) {
    const image = { digest: tag, tags: [tag], pushedAt: new Date(0), sizeInBytes: 0 };
    const index = rules.findIndex((rule) => selects(rule, image));
    const rule = rules[index];
    const keeps =
      rule?.selection.countType === 'imageCountMoreThan' &&
      rule.selection.countNumber >= tags.length;
    if (!keeps) {
      violations.push({
        rule: 'keeps-tag',
        path: rule ? `rules[${policy.rules.indexOf(rule)}]` : 'rules',
        message: `tag "${tag}" must be kept forever, but ${rule ? `the first rule selecting it (priority ${rule.rulePriority}) can expire it` : 'no rule protects it from later rules'}`,
      });
    }
  }
  return violations;
}

export function formatViolation(source: string, violation: LifecycleViolation): string {
  const where = violation.path ? `${source}: ${violation.path}` : source;
  return `${where}: ${violation.message} [${violation.rule}]`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
