import type { ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { bakeFile } from '../model/bake.js';
import { gitlabPipeline } from '../model/gitlab-ci.js';
import { rolePolicy, roleTrustPolicy } from '../model/iam.js';
import {
  branchCacheLifecyclePolicy,
  cacheLifecyclePolicy,
  imageLifecyclePolicy,
  keptCacheTags,
  type LifecyclePolicy,
} from '../model/lifecycle.js';
import { prunerPaths } from '../model/pruner.js';
import { ciRoles, type RoleKind } from '../model/roles.js';
import { deployWorkflow } from '../model/workflow.js';
import {
  formatViolation,
  validateKeepsTags,
  validateLifecyclePolicy,
} from '../policy/validate-lifecycle.js';
import { GENERATOR_VERSION } from '../version.js';
import { renderGitlabCiYaml } from './gitlab-ci-yaml.js';
import { type ECR_FILE_NAMES, inDir } from './layout.js';
import { hashComment } from './marker.js';
import { renderPrunerPackage, renderPruneScript } from './prune-script.js';
import { renderTemplate } from './templates.js';
import { renderTerraform } from './terraform.js';
import { renderWorkflowYaml } from './workflow-yaml.js';

/** A file the generator wants on disk: repository-relative POSIX path and exact content. */
export interface GeneratedFile {
  path: string;
  content: string;
}

export interface RolePaths {
  /** `<ecrDir>/<kind>-role-policy.json`: what the role may do. */
  policy: string;
  /** `<ecrDir>/<kind>-role-trust-policy.json`: who may assume it. */
  trust: string;
}

export function generatedPaths(config: ResolvedConfig) {
  const ecr = (name: (typeof ECR_FILE_NAMES)[number]) => inDir(config.paths.ecrDir, name);
  const role = (kind: RoleKind): RolePaths => ({
    policy: ecr(`${kind}-role-policy.json`),
    trust: ecr(`${kind}-role-trust-policy.json`),
  });
  const pruner = prunerPaths(config);
  return {
    workflow: config.workflow.file,
    bake: config.paths.bakeFile,
    cachePolicy: ecr('cache-lifecycle-policy.json'),
    branchCachePolicy: ecr('branch-cache-lifecycle-policy.json'),
    imagePolicy: ecr('image-lifecycle-policy.json'),
    /** Every role's files; the deploy role's are written only with a deploy environment. */
    roles: { main: role('main'), branch: role('branch'), deploy: role('deploy') } as Record<
      RoleKind,
      RolePaths
    >,
    pruneScript: pruner.script,
    prunerPackage: pruner.packageJson,
    prunerLockfile: pruner.lockfile,
  };
}

/**
 * Every artifact for one repository, pure: the same config and generator version always give the
 * same bytes. The lifecycle policies are validated here, so an invalid policy can never be written.
 */
export function renderFiles(config: ResolvedConfig, version = GENERATOR_VERSION): GeneratedFile[] {
  const paths = generatedPaths(config);
  const marker = hashComment(version);
  const bake = bakeFile(config);
  const pruner = renderPrunerPackage();
  return [
    {
      path: paths.workflow,
      content: `${marker}\n${
        config.ci === 'gitlab'
          ? renderGitlabCiYaml(gitlabPipeline(config, version))
          : renderWorkflowYaml(deployWorkflow(config, version))
      }`,
    },
    {
      path: paths.bake,
      content: renderTemplate('docker-bake.hcl.hbs', {
        marker,
        seed: config.seed.enabled,
        perPlatform: bake.groups.length > 0,
        variables: bake.variables,
        targetNames: bake.defaultGroup,
        groups: bake.groups,
        targets: bake.targets,
      }),
    },
    {
      path: paths.cachePolicy,
      content: policyJson(paths.cachePolicy, cacheLifecyclePolicy(config), keptCacheTags(config)),
    },
    {
      path: paths.branchCachePolicy,
      content: policyJson(paths.branchCachePolicy, branchCacheLifecyclePolicy(config)),
    },
    {
      path: paths.imagePolicy,
      content: policyJson(paths.imagePolicy, imageLifecyclePolicy(config)),
    },
    ...ciRoles(config).flatMap((role) => [
      { path: paths.roles[role.kind].policy, content: json(rolePolicy(config, role.kind)) },
      { path: paths.roles[role.kind].trust, content: json(roleTrustPolicy(config, role.kind)) },
    ]),
    { path: paths.pruneScript, content: renderPruneScript(version) },
    { path: paths.prunerPackage, content: pruner.packageJson },
    { path: paths.prunerLockfile, content: pruner.lockfile },
    ...(config.iac === 'terraform'
      ? [{ path: terraformPath(config), content: renderTerraform(config, version, paths) }]
      : []),
  ];
}

/** `<ecrDir>/main.tf`, generated with `iac: terraform` (beside the policies it reads). */
export function terraformPath(config: ResolvedConfig): string {
  return config.paths.ecrDir === '.' ? 'main.tf' : `${config.paths.ecrDir}/main.tf`;
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function policyJson(path: string, policy: LifecyclePolicy, keepTags: string[] = []): string {
  const text = json(policy);
  const violations = [
    ...validateLifecyclePolicy(policy, JSON.stringify(policy)),
    ...validateKeepsTags(policy, keepTags),
  ];
  if (violations.length > 0) {
    throw new CachedDeployError(
      'POLICY_INVALID',
      violations.map((violation) => formatViolation(path, violation)).join('; '),
    );
  }
  return text;
}
