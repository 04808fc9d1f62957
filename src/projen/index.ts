/**
 * `create-cached-deploy/projen`: the projen component, for repositories managed by projen. A
 * second shell over the same model and render code as the CLI. Needs projen (an optional peer
 * dependency); the main entry point never loads this module.
 */
export { CachedDeploy } from './cached-deploy.js';
export {
  type CachedDeployActionPins,
  type CachedDeployAwsOptions,
  type CachedDeployBuildkitOptions,
  type CachedDeployCacheOptions,
  type CachedDeployDeployImagesOptions,
  type CachedDeployDeployOptions,
  type CachedDeployEcrOptions,
  type CachedDeployGithubOptions,
  type CachedDeployGitlabOptions,
  type CachedDeployImageOptions,
  type CachedDeployOptions,
  type CachedDeployPathsOptions,
  type CachedDeployPruneOptions,
  type CachedDeploySeedOptions,
  type CachedDeployWorkflowOptions,
  type CachedDeployWorkflowTriggerOptions,
  OPTIONS_SOURCE,
  resolveCachedDeployOptions,
} from './options.js';
