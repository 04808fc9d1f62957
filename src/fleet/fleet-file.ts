import { readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve } from 'node:path';
import { definition, jsonPattern, mergedOntoSchema } from '../config/json-schema.js';
import { isMapping, mergeLayers } from '../config/merge.js';
import { parseYamlValue } from '../config/parse-yaml.js';
import { normalizePath } from '../config/resolve.js';
import { configSchema } from '../config/schema.js';
import {
  boolean,
  type Checker,
  checker,
  fail,
  integer,
  join,
  list,
  literal,
  object,
  oneOf,
  string,
} from '../config/validate.js';
import { CachedDeployError } from '../errors.js';
import type { HostKind } from '../net/host-connection.js';
import { BRANCH_PATTERN } from './git.js';

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
 *       host: gitlab                # optional: the code host of its pull requests (from the url)
 *       project: group/sub/name     # optional: its project on that host (from the url)
 *       apiUrl: https://git.acme.com   # optional: the host's API (GitHub Enterprise, self-managed GitLab)
 *     - ../payments                 # shorthand: a path, or a url when it looks like one
 *   pullRequests:                   # optional: for `--open-pr` and `--status`
 *     branch: cached-deploy/upgrade # the default of --branch for them
 *     title: 'chore: create-cached-deploy {generator}'   # placeholders {generator} {previous} {repository}
 *     labels: [dependencies]
 *     reviewers: [alice, acme/platform]   # users, or org/team (GitHub)
 *     assignees: [bob]
 *     draft: false
 *     writeIntervalMs: 1000         # pause between writes to one host (default: GitHub 1000, GitLab 0)
 *     hosts:                        # code hosts the url alone does not name
 *       git.acme.com: { type: gitlab, apiUrl: https://git.acme.com, tokenEnv: ACME_GITLAB_TOKEN }
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
  /** Where its pull requests live, when the url (or a local repository's origin) does not say. */
  host?: HostKind;
  project?: string;
  apiUrl?: string;
}

export type { HostKind };

/** A code host named by its hostname in `pullRequests.hosts`. */
export interface HostEntry {
  type: HostKind;
  apiUrl?: string;
  /** The environment variable holding its token (default GITHUB_TOKEN or GITLAB_TOKEN). */
  tokenEnv?: string;
}

/** The `pullRequests:` section: what `--open-pr` opens and `--status` looks for. */
export interface PullRequestSettings {
  branch?: string;
  title?: string;
  labels: string[];
  reviewers: string[];
  assignees: string[];
  draft: boolean;
  writeIntervalMs?: number;
  hosts: Record<string, HostEntry>;
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
  pullRequests: PullRequestSettings;
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

// http is allowed for a GitHub Enterprise or GitLab instance inside a network (and for tests).
const apiUrl = string({
  pattern: /^https?:\/\/[^\s/?#@]+(?:\/[^\s?#]*)?$/,
  hint: 'an http(s) URL without credentials, query or fragment (e.g. https://ghe.acme.com/api/v3)',
  maxLength: 500,
});
const host = oneOf(['github', 'gitlab'] as const);
// GitHub: owner/name; GitLab: group/subgroup/.../name. Never `..` or a leading dot or dash.
const project = string({
  pattern: /^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*\/)+[A-Za-z0-9_][A-Za-z0-9_.-]*$/,
  hint: 'a project path such as owner/name or group/subgroup/name',
  maxLength: 255,
});
const hostFields = { host, project, apiUrl };
const hostOptional = ['host', 'project', 'apiUrl'] as const;

const urlEntry = object({ url, ref, name, overrides: layer, ...hostFields }, [
  'ref',
  'name',
  'overrides',
  ...hostOptional,
]);
const pathEntry = object({ path, name, overrides: layer, ...hostFields }, [
  'name',
  'overrides',
  ...hostOptional,
]);

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

export const TITLE_PLACEHOLDERS = ['generator', 'previous', 'repository'] as const;

const titleText = string({
  // biome-ignore lint/suspicious/noControlCharactersInRegex: one line of text, no control characters
  pattern: /^[^\0-\x1f\x7f]+$/,
  hint: 'one line of text',
  maxLength: 200,
});
const title = checker(
  (value, at, source): string => {
    const text = titleText(value, at, source);
    for (const match of text.matchAll(/\{([^{}]*)\}/g)) {
      if (!(TITLE_PLACEHOLDERS as readonly string[]).includes(match[1] as string)) {
        fail(
          source,
          at,
          `unknown placeholder {${match[1]}} (allowed: ${TITLE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')})`,
        );
      }
    }
    return text;
  },
  {
    ...titleText.jsonSchema,
    // No `{…}` other than the placeholders (braces inside braces are not a placeholder).
    allOf: [
      {
        not: {
          pattern: `\\{(?!(?:${TITLE_PLACEHOLDERS.join('|')})\\})[^{}]*\\}`,
        },
      },
    ],
    description: `One line of text; placeholders: ${TITLE_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}.`,
  },
);
// GitLab takes labels as a comma-separated list, so a comma would split one into two.
const label = string({
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  pattern: /^[^\0-\x1f\x7f,]+$/,
  hint: 'a label name without commas or control characters',
  maxLength: 100,
});
const user = string({
  pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]*$/,
  hint: 'a user name',
  maxLength: 100,
});
const userOrTeam = string({
  pattern: /^[A-Za-z0-9][A-Za-z0-9_.-]*(?:\/[A-Za-z0-9][A-Za-z0-9_.-]*)?$/,
  hint: 'a user name, or org/team (a GitHub team)',
  maxLength: 200,
});
const tokenEnv = string({
  pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
  hint: 'an environment variable name',
  maxLength: 100,
});
const hostEntry = object({ type: host, apiUrl, tokenEnv }, ['apiUrl', 'tokenEnv']);
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const hosts = checker(
  (value, at, source): Record<string, HostEntry> => {
    if (!isMapping(value))
      fail(source, at, 'expected a mapping of hostname to { type, apiUrl, tokenEnv }');
    const out: Record<string, HostEntry> = {};
    for (const [name, entry] of Object.entries(value)) {
      if (!HOSTNAME.test(name)) {
        fail(source, join(at, name), 'is not a hostname (e.g. git.acme.com)');
      }
      out[name.toLowerCase()] = hostEntry(entry, join(at, name), source);
    }
    return out;
  },
  {
    type: 'object',
    propertyNames: { pattern: jsonPattern(HOSTNAME) },
    additionalProperties: hostEntry.jsonSchema,
    description: 'Code hosts by hostname, for URLs that do not say which host they are.',
  },
);
const pullRequestsSchema = object(
  {
    branch: string({ pattern: BRANCH_PATTERN, hint: 'a git branch name', maxLength: 200 }),
    title,
    labels: list(label, { max: 20, unique: true }),
    reviewers: list(userOrTeam, { max: 20, unique: true }),
    assignees: list(user, { max: 10, unique: true }),
    draft: boolean(),
    writeIntervalMs: integer(0, 60_000),
    hosts,
  },
  ['branch', 'title', 'labels', 'reviewers', 'assignees', 'draft', 'writeIntervalMs', 'hosts'],
);

export const fleetSchema = object(
  {
    version: literal(1),
    workDir: path,
    concurrency: integer(1, 64),
    defaults: layer,
    enforce: layer,
    repos: list(repoEntry, { min: 1 }),
    pullRequests: pullRequestsSchema,
  },
  ['version', 'workDir', 'concurrency', 'defaults', 'enforce', 'pullRequests'],
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
    if (entry.host) repo.host = entry.host;
    if (entry.project) repo.project = entry.project;
    if (entry.apiUrl) repo.apiUrl = entry.apiUrl;
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
    pullRequests: {
      ...(raw.pullRequests?.branch ? { branch: raw.pullRequests.branch } : {}),
      ...(raw.pullRequests?.title ? { title: raw.pullRequests.title } : {}),
      labels: raw.pullRequests?.labels ?? [],
      reviewers: raw.pullRequests?.reviewers ?? [],
      assignees: raw.pullRequests?.assignees ?? [],
      draft: raw.pullRequests?.draft ?? false,
      ...(raw.pullRequests?.writeIntervalMs !== undefined
        ? { writeIntervalMs: raw.pullRequests.writeIntervalMs }
        : {}),
      hosts: raw.pullRequests?.hosts ?? {},
    },
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
