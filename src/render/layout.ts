import { PRUNER_PACKAGE_SUFFIXES } from '../model/pruner.js';

/**
 * Which paths a layout of cached-deploy.yml generates, as far as the plan needs to know without
 * rendering anything (no templates, no I/O: plan.ts stays pure).
 */

/**
 * The JSON files generated together, by every generator version so far. JSON sent to AWS or read
 * by npm cannot carry our marker comment, so a file of a set is only ever deleted as an orphan
 * when the whole set it belongs to is still as we wrote it (plan.ts): that is the evidence that it
 * is ours, which a single name and hash in a state file are not.
 */
export interface JsonFileSet {
  /** Which generator versions wrote it (for the reader). */
  written: string;
  /** Names relative to the set's directory. All must be present, as recorded. */
  required: readonly string[];
  /** Names written only in some configurations (the deploy role's files). */
  optional: readonly string[];
}

/** `paths.ecrDir` before trust separation (0.1.0): one CI role. */
const ECR_FILES_0_1 = {
  written: '0.1.0',
  required: [
    'cache-lifecycle-policy.json',
    'image-lifecycle-policy.json',
    'iam-policy.json',
    'trust-policy.json',
  ],
  optional: [],
} as const;

/** `paths.ecrDir` with a role per trust level and a branch-cache repository per image. */
const ECR_FILES = {
  written: '0.2.0 and later',
  required: [
    'cache-lifecycle-policy.json',
    'branch-cache-lifecycle-policy.json',
    'image-lifecycle-policy.json',
    'main-role-policy.json',
    'main-role-trust-policy.json',
    'branch-role-policy.json',
    'branch-role-trust-policy.json',
  ],
  optional: ['deploy-role-policy.json', 'deploy-role-trust-policy.json'],
} as const;

export const JSON_FILE_SETS: readonly JsonFileSet[] = [ECR_FILES_0_1, ECR_FILES];

/** Every file the current layout may write into `paths.ecrDir` (`main.tf` only with terraform). */
export const ECR_FILE_NAMES = [...ECR_FILES.required, ...ECR_FILES.optional, 'main.tf'] as const;

/**
 * Where a GitLab pipeline may be generated: `.gitlab-ci.yml`, or a file under `.gitlab/` that the
 * repository's own `.gitlab-ci.yml` includes.
 */
export const GITLAB_CI_PATH =
  /^(?:\.gitlab-ci\.ya?ml|\.gitlab\/[A-Za-z0-9._@+ -]+(?:\/[A-Za-z0-9._@+ -]+)*\.ya?ml)$/;

/** `name` inside `dir` (the repository root is "."). */
export function inDir(dir: string, name: string): string {
  return dir === '.' ? name : `${dir}/${name}`;
}

/** The directory part of a repository-relative path ("." for the root). */
export function dirOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '.' : path.slice(0, slash);
}

function nameOf(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/**
 * The files that must all be as recorded before the JSON file at `path` may be deleted as an
 * orphan, one list per set it could belong to; empty when it belongs to none (never deleted).
 */
export function jsonSetsOf(path: string): string[][] {
  const name = nameOf(path);
  const dir = dirOf(path);
  const sets = JSON_FILE_SETS.filter(
    (set) => set.required.includes(name) || set.optional.includes(name),
  ).map((set) => [...new Set([...set.required.map((each) => inDir(dir, each)), path])]);
  const suffix = PRUNER_PACKAGE_SUFFIXES.find((each) => name.endsWith(each));
  if (suffix && name.length > suffix.length) {
    const stem = path.slice(0, path.length - suffix.length);
    sets.push(PRUNER_PACKAGE_SUFFIXES.map((each) => `${stem}${each}`));
  }
  return sets;
}

/**
 * Whether `path` has the shape of a file some layout generates: a file of `paths.ecrDir` by its
 * fixed name (of this layout or an earlier one), a bake file (`*.hcl`), a prune script (`*.mjs`)
 * and its npm project, or a GitHub workflow. A state file may record the files of an earlier
 * layout (a renamed `paths.bakeFile`); any other key is not ours (see plan/plan-repository.ts).
 */
export function hasGeneratedShape(path: string): boolean {
  const name = nameOf(path);
  return (
    name === 'main.tf' ||
    jsonSetsOf(path).length > 0 ||
    /\.(?:hcl|mjs)$/.test(name) ||
    /^\.github\/workflows\/[^/]+\.ya?ml$/.test(path) ||
    GITLAB_CI_PATH.test(path)
  );
}
