import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { definition, mergedOntoSchema } from '../config/json-schema.js';
import { isMapping, mergeLayers } from '../config/merge.js';
import { parseYamlValue } from '../config/parse-yaml.js';
import { normalizePath } from '../config/resolve.js';
import { configSchema } from '../config/schema.js';
import {
  type Checker,
  checker,
  fail,
  integer,
  list,
  literal,
  object,
  string,
} from '../config/validate.js';
import { CachedDeployError } from '../errors.js';

/**
 * fleet.yml: one file that names every repository of a fleet and what the fleet decides for them.
 *
 *   version: 1                      # optional
 *   workDir: .cached-deploy-fleet   # clones and the last run's results (relative to fleet.yml)
 *   concurrency: 8                  # repositories processed at once (git clones and fetches)
 *   defaults: { ... }               # any cached-deploy.yml fields; a repository's own file wins
 *   enforce: { ... }                # any cached-deploy.yml fields; the fleet wins
 *   repos:
 *     - path: ../orders             # a local repository (relative to fleet.yml, or absolute)
 *     - url: https://github.com/acme/billing.git
 *       ref: main                   # optional: branch, tag or commit (default: the remote's HEAD)
 *       name: billing               # optional: how reports name it (default: the path or url)
 *       overrides: { ... }          # optional: this repository only, applied last
 *     - ../payments                 # shorthand: a path, or a url when it looks like one
 *
 * `defaults`, `enforce` and `overrides` are checked here against the cached-deploy.yml schema
 * (each on its own, as a partial configuration), so a typo in them is one error naming
 * `fleet.yml: enforce.cache.branchRetentionDays`, not a thousand repository errors.
 */

export const DEFAULT_WORK_DIR = '.cached-deploy-fleet';
export const DEFAULT_CONCURRENCY = 8;

export interface FleetRepo {
  /** How reports, shards and `--only-failed` name this repository: `name`, or the path or url. */
  repository: string;
  kind: 'path' | 'url';
  /** For `path`: the absolute directory. */
  path?: string;
  /** For `url`: what `git fetch` is given. */
  url?: string;
  ref?: string;
  overrides?: Record<string, unknown>;
}

export interface FleetFile {
  /** Absolute path of fleet.yml. */
  file: string;
  /** Absolute work directory (clones, the last run's results). */
  workDir: string;
  concurrency: number;
  defaults: Record<string, unknown> | undefined;
  enforce: Record<string, unknown> | undefined;
  repos: FleetRepo[];
}

// Enough of a valid configuration that a partial layer merged onto it can be checked alone.
const PROBE = {
  version: 1,
  aws: { accountId: '123456789012', region: 'eu-west-1' },
  github: { repository: 'probe/probe' },
  images: [{ name: 'app', repository: 'probe' }],
};

const checkLayer = (value: unknown, path: string, source: string): Record<string, unknown> => {
  if (!isMapping(value)) {
    fail(source, path, 'expected a mapping of cached-deploy.yml fields');
  }
  configSchema(mergeLayers(PROBE, value), path, source);
  return value;
};
const layer = checker(
  checkLayer,
  definition('layer', {
    ...mergedOntoSchema(configSchema.jsonSchema, PROBE),
    description: 'Any cached-deploy.yml fields (a partial configuration).',
  }),
);

// scheme://… (https, ssh, git, file) or scp-like user@host:path; never an option to git.
const URL_PATTERN = /^(?!-)(?:[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s]+|[\w.-]+@[\w.-]+:[^\s]+)$/;
const REF_PATTERN = /^(?!-)(?!.*(?:\.\.|@\{|\/\/))[^\0-\x20\x7f~^:?*[\\]+(?<![./])$/;

const url = string({
  pattern: URL_PATTERN,
  hint: 'a git URL (https://, ssh://, file:// or user@host:path)',
});
const ref = string({ pattern: REF_PATTERN, hint: 'a git branch, tag or commit' });
const name = string({
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  pattern: /^[^\0-\x1f\x7f-\x9f]+$/,
  hint: 'a name without control characters',
  maxLength: 200,
});
const path = string({
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  pattern: /^[^\0-\x1f\x7f-\x9f]+$/,
  hint: 'a directory path without control characters',
});

const urlEntry = object({ url, ref, name, overrides: layer }, ['ref', 'name', 'overrides']);
const pathEntry = object({ path, name, overrides: layer }, ['name', 'overrides']);

type Entry =
  | ({ kind: 'url' } & ReturnType<typeof urlEntry>)
  | ({ kind: 'path' } & ReturnType<typeof pathEntry>);

const checkRepoEntry = (value: unknown, at: string, source: string): Entry => {
  if (typeof value === 'string') {
    return URL_PATTERN.test(value)
      ? { kind: 'url', url: value }
      : { kind: 'path', path: path(value, at, source) };
  }
  if (!isMapping(value)) {
    fail(source, at, 'expected a mapping with `path` (a local repository) or `url` (a git URL)');
  }
  if ('path' in value && 'url' in value) fail(source, at, 'give either `path` or `url`, not both');
  if ('url' in value) return { kind: 'url', ...urlEntry(value, at, source) };
  if ('path' in value) return { kind: 'path', ...pathEntry(value, at, source) };
  return fail(source, at, 'needs `path` (a local repository) or `url` (a git URL to clone)');
};

const repoEntry: Checker<Entry> = checker(checkRepoEntry, {
  anyOf: [url.jsonSchema, path.jsonSchema, urlEntry.jsonSchema, pathEntry.jsonSchema],
});

export const fleetSchema = object(
  {
    version: literal(1),
    workDir: path,
    concurrency: integer(1, 64),
    defaults: layer,
    enforce: layer,
    repos: list(repoEntry, { min: 1 }),
  },
  ['version', 'workDir', 'concurrency', 'defaults', 'enforce'],
);

/** Parses and validates fleet.yml text; `file` is its path (for relative paths and messages). */
export function parseFleetFile(text: string, file: string): FleetFile {
  const absolute = resolve(file);
  const source = basename(absolute);
  const base = dirname(absolute);
  const raw = fleetSchema(parseYamlValue(text, source) ?? null, '', source);
  const seen = new Map<string, number>();
  const repos = raw.repos.map((entry, index): FleetRepo => {
    const repo: FleetRepo =
      entry.kind === 'path'
        ? {
            repository: entry.name ?? normalizeShown(entry.path),
            kind: 'path',
            path: resolve(base, entry.path),
          }
        : {
            repository: entry.name ?? (entry.ref ? `${entry.url}#${entry.ref}` : entry.url),
            kind: 'url',
            url: entry.url,
            ...(entry.ref ? { ref: entry.ref } : {}),
          };
    if (entry.overrides) repo.overrides = entry.overrides;
    // Two entries for one name, one directory or one url and ref would race each other.
    const target = repo.kind === 'path' ? `path:${repo.path}` : `url:${repo.url}#${repo.ref ?? ''}`;
    for (const key of [`name:${repo.repository}`, target]) {
      const first = seen.get(key);
      if (first !== undefined) {
        const what = key === target ? (repo.path ?? repo.repository) : repo.repository;
        fail(source, `repos[${index}]`, `"${what}" is already listed as repos[${first}]`);
      }
      seen.set(key, index);
    }
    return repo;
  });
  return {
    file: absolute,
    workDir: resolve(base, raw.workDir ?? DEFAULT_WORK_DIR),
    concurrency: raw.concurrency ?? DEFAULT_CONCURRENCY,
    defaults: raw.defaults,
    enforce: raw.enforce,
    repos,
  };
}

export function loadFleetFile(file: string): FleetFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (error as Error).message;
    throw new CachedDeployError('CONFIG_NOT_FOUND', `${file}: ${reason}`);
  }
  return parseFleetFile(text, file);
}

function normalizeShown(path: string): string {
  return isAbsolute(path) ? resolve(path) : normalizePath(path);
}
