/**
 * Which paths a layout of cached-deploy.yml generates, as far as the plan needs to know without
 * rendering anything (no templates, no I/O: plan.ts stays pure).
 */

/** The JSON documents written into `paths.ecrDir`, always all four together. */
export const POLICY_FILE_NAMES = [
  'cache-lifecycle-policy.json',
  'image-lifecycle-policy.json',
  'iam-policy.json',
  'trust-policy.json',
] as const;

/** Every file written into `paths.ecrDir` (`main.tf` only with `iac: terraform`). */
export const ECR_FILE_NAMES = [...POLICY_FILE_NAMES, 'main.tf'] as const;

/** `name` inside `dir` (the repository root is "."). */
export function inDir(dir: string, name: string): string {
  return dir === '.' ? name : `${dir}/${name}`;
}

/** The directory part of a repository-relative path ("." for the root). */
export function dirOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '.' : path.slice(0, slash);
}

/**
 * Whether `path` has the shape of a file some layout generates: a file of `paths.ecrDir` by its
 * fixed name, a bake file (`*.hcl`), a prune script (`*.mjs`) or a GitHub workflow. A state file
 * may record the files of an earlier layout (a renamed `paths.bakeFile`); any other key is not
 * ours (see plan/plan-repository.ts).
 */
export function hasGeneratedShape(path: string): boolean {
  const name = path.slice(path.lastIndexOf('/') + 1);
  return (
    (ECR_FILE_NAMES as readonly string[]).includes(name) ||
    /\.(?:hcl|mjs)$/.test(name) ||
    /^\.github\/workflows\/[^/]+\.ya?ml$/.test(path)
  );
}
