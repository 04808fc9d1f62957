import {
  apiUrlOf,
  GITHUB_API_URL,
  GITLAB_API_URL,
  knownCodeHost,
  parseGitUrl,
  projectFromPath,
} from '../../code-hosts.js';
import { CachedDeployError } from '../../errors.js';
import { quoteForMessage } from '../../text.js';
import type { FleetRepo, HostEntry, HostKind } from '../fleet-file.js';

/**
 * Which code host serves a repository's pull requests, and which project there: read from its git
 * URL (a url repository's `url`, a local repository's `origin`), completed or replaced by the fleet
 * file (`host`, `project`, `apiUrl` on the repository; `pullRequests.hosts` per hostname). Pure.
 */
export interface HostTarget {
  kind: HostKind;
  /** The REST API base: https://api.github.com, https://HOST/api/v3, or a GitLab instance URL. */
  apiUrl: string;
  /** GitHub: owner/name. GitLab: group/subgroup/name. */
  project: string;
  /** How messages name the host: its API's hostname (github.com for api.github.com). */
  label: string;
  /** The environment variable its token is read from. */
  tokenEnv: string;
}

export const DEFAULT_TOKEN_ENV: Record<HostKind, string> = {
  github: 'GITHUB_TOKEN',
  gitlab: 'GITLAB_TOKEN',
};

/**
 * The target of `repo`, whose git URL is `gitUrl` (undefined for a local repository without an
 * origin). Throws one line naming what to add to the fleet file when it cannot tell.
 */
export function resolveHostTarget(
  repo: Pick<FleetRepo, 'host' | 'project' | 'apiUrl'>,
  gitUrl: string | undefined,
  hosts: Record<string, HostEntry>,
): HostTarget {
  const parsed = gitUrl === undefined ? undefined : parseGitUrl(gitUrl);
  const entry = parsed ? hosts[parsed.hostname] : undefined;
  const known = parsed ? knownCodeHost(parsed.hostname) : undefined;
  const kind = repo.host ?? entry?.type ?? known?.kind;
  const where =
    gitUrl === undefined ? 'it has no origin remote' : `its url ${quoteForMessage(gitUrl)}`;
  if (!kind) {
    throw new CachedDeployError(
      'USAGE',
      `cannot tell which code host serves its pull requests from ${where}: add \`host: github\` or \`host: gitlab\` (and \`apiUrl\`) to it in the fleet file, or its hostname to pullRequests.hosts`,
    );
  }
  const project = repo.project ?? (parsed ? projectFromPath(parsed.path) : undefined);
  if (!project) {
    throw new CachedDeployError(
      'USAGE',
      `cannot tell its ${kind === 'github' ? 'GitHub repository' : 'GitLab project'} from ${where}: add \`project: ${kind === 'github' ? 'owner/name' : 'group/name'}\` to it in the fleet file`,
    );
  }
  if (kind === 'github' && project.split('/').length !== 2) {
    throw new CachedDeployError(
      'USAGE',
      `${quoteForMessage(project)} is not a GitHub repository (owner/name)`,
    );
  }
  const sameKind = (candidate: HostEntry | undefined) => candidate?.type === kind;
  const apiUrl = (
    repo.apiUrl ??
    (sameKind(entry) ? entry?.apiUrl : undefined) ??
    (parsed ? apiUrlOf(kind, parsed.hostname) : kind === 'github' ? GITHUB_API_URL : GITLAB_API_URL)
  ).replace(/\/+$/, '');
  return {
    kind,
    // gitbeaker appends /api/v4 itself.
    apiUrl: kind === 'gitlab' ? apiUrl.replace(/\/api\/v4$/, '') : apiUrl,
    project,
    label: hostLabel(apiUrl),
    tokenEnv: (sameKind(entry) ? entry?.tokenEnv : undefined) ?? DEFAULT_TOKEN_ENV[kind],
  };
}

/** api.github.com → github.com; https://ghe.acme.com/api/v3 → ghe.acme.com; with a port if any. */
export function hostLabel(apiUrl: string): string {
  try {
    const url = new URL(apiUrl);
    return url.host === 'api.github.com' ? 'github.com' : url.host;
  } catch {
    return apiUrl;
  }
}
