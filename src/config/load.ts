import { join } from 'node:path';
import { parseDockerfileStages } from '../detect/dockerfile.js';
import { CachedDeployError } from '../errors.js';
import { buildsPerPlatform, cacheRepositoryVariable, platformSlug } from '../model/cache-tags.js';
import { platformTargetName } from '../model/platforms.js';
import { RepoFiles, UnsafePathError } from '../repo-files.js';
import { quoteForMessage } from '../text.js';
import { parseYamlValue } from './parse-yaml.js';
import {
  CONFIG_FILE,
  defaultBranchCacheRepository,
  defaultCacheRepository,
  type ResolvedConfig,
  resolveConfig,
} from './resolve.js';
import { configSchema, ECR_REPOSITORY, pathOutsideRepo, type RawConfig } from './schema.js';
import { fail } from './validate.js';

/** Parses and validates cached-deploy.yml text; `source` names the file in messages. */
export function parseConfig(text: string, source = CONFIG_FILE): ResolvedConfig {
  return resolveConfig(parseRawConfig(text, source));
}

export function parseRawConfig(text: string, source = CONFIG_FILE): RawConfig {
  return validateRawConfig(parseYamlValue(text, source), source);
}

/**
 * Validates an already-parsed configuration: the schema, then the checks across fields. The one
 * entry point for both shells: cached-deploy.yml after YAML parsing, and the projen component's
 * options. `source` prefixes every message (`<source>: images[0].name: ...`).
 */
export function validateRawConfig(value: unknown, source = CONFIG_FILE): RawConfig {
  const raw = configSchema(value ?? null, '', source);
  checkCrossFields(raw, source);
  return raw;
}

function checkCrossFields(raw: RawConfig, source: string): void {
  const names = new Map<string, number>();
  raw.images.forEach((image, index) => {
    const first = names.get(image.name);
    if (first !== undefined) {
      fail(source, `images[${index}].name`, `"${image.name}" is already used by images[${first}]`);
    }
    names.set(image.name, index);
  });
  const variables = new Map<string, number>();
  raw.images.forEach((image, index) => {
    // Both become the same bake variable (CACHE_REPOSITORY_A_B for a-b and a_b).
    const variable = cacheRepositoryVariable(image.name);
    const first = variables.get(variable);
    if (first !== undefined) {
      fail(
        source,
        `images[${index}].name`,
        `"${image.name}" and images[${first}].name would share the bake variable ${variable}; rename one`,
      );
    }
    variables.set(variable, index);
  });
  checkRepositories(raw, source);
  checkRoleNames(raw, source);
  checkPlatforms(raw, source);
}

/**
 * Images built natively per platform (docs/multi-platform.md): each platform needs a runner (on
 * GitLab, runner tags), and their per-platform names must not be another image's: an image named
 * `linux-amd64` would make a branch's `<scope>.linux-amd64` tag another branch's
 * `<scope>.<image>.linux-amd64`, and one named `api-linux-amd64` would be the bake target of api's
 * linux/amd64 build.
 */
function checkPlatforms(raw: RawConfig, source: string): void {
  const config = resolveConfig(raw);
  const index = new Map(config.images.map((image, i) => [image.name, i]));
  config.images.forEach((image, i) => {
    if (!buildsPerPlatform(image)) return;
    image.platforms.forEach((platform, j) => {
      if (config.ci === 'gitlab' && config.gitlab?.runnerTags[platform] === undefined) {
        fail(
          source,
          `images[${i}].platforms[${j}]`,
          `${platform} has no runner tags for a native build: set gitlab.runnerTags.${platform} to the tags of its runners ([] for gitlab.tags alone), or build: emulated`,
        );
      }
      if (config.ci !== 'gitlab' && config.workflow.runners[platform] === undefined) {
        fail(
          source,
          `images[${i}].platforms[${j}]`,
          `${platform} has no runner for a native build: set workflow.runners.${platform} to its runner label, or build: emulated`,
        );
      }
      const clashes: [string, string][] = [
        [platformSlug(platform), 'the cache-tag suffix of'],
        [platformTargetName(image.name, platform), 'the bake target of'],
      ];
      for (const [name, what] of clashes) {
        const other = index.get(name);
        if (other !== undefined) {
          fail(
            source,
            `images[${other}].name`,
            `"${name}" is also ${what} images[${i}] (${image.name}) on ${platform}; rename it`,
          );
        }
      }
    });
  });
}

/**
 * Deployable images, main caches and branch caches live in disjoint repositories: the branch
 * role may write every branch-cache repository, so one that is also an image or main-cache
 * repository would hand branch builds what only main may write (docs/trust-separation.md).
 */
function checkRepositories(raw: RawConfig, source: string): void {
  const owner = new Map<string, { kind: string; field: string }>();
  const claim = (name: string, kind: string, field: string) => {
    const existing = owner.get(name);
    if (existing && existing.kind !== kind) {
      fail(
        source,
        field,
        `"${name}" is also ${existing.kind} (${existing.field}); ${REPOSITORY_KINDS_APART}`,
      );
    }
    if (!existing) owner.set(name, { kind, field });
  };
  const derived = (name: string, field: string, explicit: string | undefined) => {
    if (explicit === undefined && !ECR_REPOSITORY.test(name)) {
      fail(
        source,
        field,
        `the default "${name.length > 60 ? `${name.slice(0, 57)}...` : name}" is not a valid ECR repository name (at most 256 characters); set ${field}`,
      );
    }
    return name;
  };
  raw.images.forEach((image, index) => {
    const field = `images[${index}].repository`;
    // Every image is pushed as <repository>:<commit sha>: two in one repository would write one tag.
    const earlier = owner.get(image.repository);
    if (earlier?.kind === 'an image repository') {
      fail(
        source,
        field,
        `"${image.repository}" is also the image repository of ${earlier.field.replace(/\.repository$/, '')}; each image needs its own (both would be pushed as ${image.repository}:<commit sha>)`,
      );
    }
    claim(image.repository, 'an image repository', field);
  });
  raw.images.forEach((image, index) => {
    const field = `images[${index}].cacheRepository`;
    claim(
      derived(defaultCacheRepository(image), field, image.cacheRepository),
      'a cache repository',
      field,
    );
  });
  raw.images.forEach((image, index) => {
    const field = `images[${index}].branchCacheRepository`;
    const name = derived(defaultBranchCacheRepository(image), field, image.branchCacheRepository);
    claim(name, 'a branch-cache repository', field);
  });
}

const REPOSITORY_KINDS_APART =
  'deployable images, main caches and branch caches must live in separate repositories';

function checkRoleNames(raw: RawConfig, source: string): void {
  const config = resolveConfig(raw);
  const roles: [string, string][] = [
    ['aws.roleName', config.aws.roleName],
    ['aws.branchRoleName', config.aws.branchRoleName],
    ...(raw.workflow?.deploy?.environment
      ? [['aws.deployRoleName', config.aws.deployRoleName] as [string, string]]
      : []),
  ];
  roles.forEach(([field, name], index) => {
    const same = roles.slice(0, index).find(([, other]) => other === name);
    if (same) {
      fail(source, field, `"${name}" is also ${same[0]}; each role needs its own name`);
    }
  });
}

/** Reads `<dir>/cached-deploy.yml`, validates it, and checks it against the repository's files. */
export function loadConfig(dir: string): ResolvedConfig {
  const text = new RepoFiles(dir).read(CONFIG_FILE);
  if (text === undefined) {
    throw new CachedDeployError(
      'CONFIG_NOT_FOUND',
      `${join(dir, CONFIG_FILE)}: not found (run \`create-cached-deploy init\` first)`,
    );
  }
  const config = parseConfig(text, CONFIG_FILE);
  checkConfigAgainstRepo(config, dir);
  return config;
}

/**
 * The checks that need the repository: every generated file is reached through real directories
 * (no symlink could lead a write out of the repository or into .git), every input stays inside it
 * (after resolving symlinks), every Dockerfile exists and every target stage is a stage of its
 * Dockerfile.
 */
export function checkConfigAgainstRepo(
  config: ResolvedConfig,
  dir: string,
  source = CONFIG_FILE,
  repo = new RepoFiles(dir),
): void {
  const output = (field: string, path: string, isDirectory = false) => {
    try {
      if (isDirectory) repo.checkDirectory(path);
      else repo.checkParentDirectories(path);
    } catch (error) {
      if (!(error instanceof UnsafePathError)) throw error;
      throw new CachedDeployError(
        'UNSAFE_PATH',
        `${source}: ${field}: ${quoteForMessage(path)} ${error.why}`,
      );
    }
  };
  output('workflow.file', config.workflow.file);
  output('paths.bakeFile', config.paths.bakeFile);
  output('paths.ecrDir', config.paths.ecrDir, true);
  output('paths.stateFile', config.paths.stateFile);
  output('paths.pruneScript', config.paths.pruneScript);

  // Inputs may be symbolic links, as long as they stay inside the repository and out of .git.
  const input = (field: string, path: string) => {
    try {
      return repo.inputKind(path);
    } catch (error) {
      if (!(error instanceof UnsafePathError)) throw error;
      if (error.outside) throw pathOutsideRepo(source, field, path);
      throw new CachedDeployError(
        'UNSAFE_PATH',
        `${source}: ${field}: ${quoteForMessage(path)} ${error.why}`,
      );
    }
  };
  config.images.forEach((image, index) => {
    if (input(`images[${index}].context`, image.context) !== 'directory') {
      fail(source, `images[${index}].context`, `directory "${image.context}" does not exist`);
    }
    if (input(`images[${index}].dockerfile`, image.dockerfile) !== 'file') {
      throw new CachedDeployError(
        'DOCKERFILE_NOT_FOUND',
        `${source}: images[${index}].dockerfile: "${image.dockerfile}" does not exist`,
      );
    }
    if (image.target !== undefined) {
      const stages = parseDockerfileStages(repo.readInput(image.dockerfile) ?? '');
      const named = stages.flatMap((stage) => (stage.name ? [stage.name] : []));
      if (!named.includes(image.target.toLowerCase())) {
        throw new CachedDeployError(
          'STAGE_NOT_FOUND',
          `${source}: images[${index}].target: stage "${image.target}" is not in ${image.dockerfile} (stages: ${named.join(', ') || 'none named'})`,
        );
      }
    }
  });
}
