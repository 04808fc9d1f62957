/**
 * create-cached-deploy as a library: the same pipeline the CLI runs, stage by stage.
 *   config (load, validate, defaults) → model (typed workflow, bake, policies) → render (files)
 *   → plan (desired vs disk vs state) → apply (the only writer)
 */
export { type GenerateOptions, type GenerateResult, generate } from './api/generate.js';
export { type InitOptions, type InitResult, init } from './api/init.js';
export { checkConfigAgainstRepo, loadConfig, parseConfig } from './config/load.js';
export type { ImageSettings, ResolvedConfig } from './config/resolve.js';
export { CachedDeployError, type ErrorCode } from './errors.js';
export { bakeFile } from './model/bake.js';
export { branchSlug, cacheScope, cacheTag } from './model/cache-tags.js';
export { ciRolePolicy, ciTrustPolicy } from './model/iam.js';
export {
  cacheLifecyclePolicy,
  imageLifecyclePolicy,
  type LifecyclePolicy,
} from './model/lifecycle.js';
export { deployWorkflow } from './model/workflow.js';
export { type FileChange, type Plan, planChanges } from './plan/plan.js';
export { type LifecycleViolation, validateLifecyclePolicy } from './policy/validate-lifecycle.js';
export { type GeneratedFile, renderFiles } from './render/render-files.js';
export { GENERATOR_VERSION } from './version.js';
