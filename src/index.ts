/**
 * create-cached-deploy as a library: the same pipeline the CLI runs, stage by stage.
 *   config (load, validate, defaults) → model (typed GitHub workflow or GitLab pipeline, bake
 *   file, policies, roles; the bake targets of multi-platform images) → render (files)
 *   → plan (desired vs disk vs state) → write (the only writer)
 * and the commands around it: `apply` (ECR, and the seed's GitLab schedule), `doctor`, the fleet
 * (its pull requests and their status).
 */
export { type ApplyOptions, type ApplyResult, apply } from './api/apply.js';
export { type GenerateOptions, type GenerateResult, generate } from './api/generate.js';
export { type InitOptions, type InitResult, init } from './api/init.js';
export {
  checkConfigAgainstRepo,
  loadConfig,
  parseConfig,
  validateRawConfig,
} from './config/load.js';
export {
  deepMerge,
  type FleetLayers,
  mergeFleetConfig,
  mergeLayers,
} from './config/merge.js';
export type { ImageSettings, ResolvedConfig } from './config/resolve.js';
export {
  type CacheStats,
  cacheStats,
  compareWithSeed,
  healthScore,
  matchSteps,
  parseCacheConfig,
  parseCacheManifest,
  reusableWith,
  type StepsAgainstSeed,
} from './doctor/cacheconfig.js';
export {
  type DoctorOptions,
  type DoctorReport,
  doctor,
  doctorWithConfig,
} from './doctor/doctor.js';
export { type CacheRegistry, ecrRegistry, ociRegistry } from './doctor/registry-client.js';
export {
  type ApplyReport,
  type ApplyStatus,
  applyEcr,
  exitCodeOf,
  type RepositoryReport,
} from './ecr/apply-ecr.js';
export type { EcrApplyPort } from './ecr/port.js';
export { CachedDeployError, type ErrorCode } from './errors.js';
export {
  type CheckStatus,
  type CodeHostsOptions,
  type FileSummary,
  type FleetFile,
  type FleetMode,
  type FleetOptions,
  type FleetRepo,
  type FleetResult,
  type FleetStatusResult,
  type HostKind,
  loadFleetFile,
  type PullRequestOutcome,
  type PullRequestSettings,
  type PullRequestState,
  parseFleetFile,
  type RepoPullRequestStatus,
  type RepoResult,
  type RepoStatus,
  type ReviewStatus,
  runFleet,
  runFleetStatus,
  type StatusOptions,
} from './fleet/index.js';
export type { ScheduleReport } from './gitlab-api/seed-schedule.js';
export { ACTION_RELEASES, ACTIONS } from './model/actions.js';
export { bakeFile } from './model/bake.js';
export { branchSlug, cacheScope, cacheTag } from './model/cache-tags.js';
export { type GitlabPipeline, gitlabPipeline } from './model/gitlab-ci.js';
export { rolePolicy, roleTrustPolicy } from './model/iam.js';
export {
  branchCacheLifecyclePolicy,
  cacheLifecyclePolicy,
  imageLifecyclePolicy,
  type LifecyclePolicy,
} from './model/lifecycle.js';
export { type BuildLeg, type BuildTarget, buildLegs, buildTargets } from './model/platforms.js';
export { type CiRole, ciRoles, type RoleKind } from './model/roles.js';
export { deployWorkflow, type Workflow } from './model/workflow.js';
export { type FileChange, type Plan, planChanges } from './plan/plan.js';
export { type LifecycleViolation, validateLifecyclePolicy } from './policy/validate-lifecycle.js';
export { type GeneratedFile, renderFiles } from './render/render-files.js';
export { renderTerraform } from './render/terraform.js';
export { GENERATOR_VERSION } from './version.js';
