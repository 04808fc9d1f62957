import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parseDockerfileStages } from '../detect/dockerfile.js';
import { CachedDeployError } from '../errors.js';
import { RepoFiles, UnsafePathError } from '../repo-files.js';
import { quoteForMessage } from '../text.js';
import { parseYamlValue } from './parse-yaml.js';
import { CONFIG_FILE, type ResolvedConfig, resolveConfig } from './resolve.js';
import { configSchema, pathOutsideRepo, type RawConfig } from './schema.js';
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
  const imageRepos = new Set(raw.images.map((image) => image.repository));
  raw.images.forEach((image, index) => {
    const cacheRepo = image.cacheRepository ?? `${image.repository}-buildcache`;
    if (imageRepos.has(cacheRepo)) {
      fail(
        source,
        `images[${index}].cacheRepository`,
        `"${cacheRepo}" is also an image repository; cache artifacts must live apart from deployable images`,
      );
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

  const root = realpathSync(dir);
  const inside = (field: string, path: string) => {
    const absolute = resolve(root, path);
    const real = existsSync(absolute) ? realpathSync(absolute) : resolveExistingParent(absolute);
    const rel = relative(root, real);
    if (rel === '..' || rel.startsWith(`..${sep}`) || rel === real) {
      throw pathOutsideRepo(source, field, path);
    }
    return absolute;
  };
  config.images.forEach((image, index) => {
    const context = inside(`images[${index}].context`, image.context);
    if (!existsSync(context) || !statSync(context).isDirectory()) {
      fail(source, `images[${index}].context`, `directory "${image.context}" does not exist`);
    }
    const dockerfile = inside(`images[${index}].dockerfile`, image.dockerfile);
    if (!existsSync(dockerfile) || !statSync(dockerfile).isFile()) {
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

function resolveExistingParent(path: string): string {
  let current = path;
  const rest: string[] = [];
  while (!existsSync(current)) {
    const parent = dirname(current);
    if (parent === current) return path;
    rest.unshift(current.slice(parent.length + 1));
    current = parent;
  }
  return join(realpathSync(current), ...rest);
}
