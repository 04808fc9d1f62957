import type { HostKind } from './net/host-connection.js';

/**
 * The code hosts a git remote can name, read one way by `init` (which CI and project a repository
 * has) and by the fleet (which host serves its pull requests): a remote URL's host and path, the
 * project in that path, and whether a hostname is GitHub's or GitLab's. Pure.
 */

export const GITHUB_API_URL = 'https://api.github.com';
export const GITLAB_API_URL = 'https://gitlab.com';

/** Hostname and path of a git URL: https://, ssh://, git:// or scp-like user@host:path. */
export function parseGitUrl(url: string): { hostname: string; path: string } | undefined {
  const scp = /^[\w.-]+@([\w.-]+):(?!\/\/)(.+)$/.exec(url);
  if (scp) return { hostname: (scp[1] as string).toLowerCase(), path: scp[2] as string };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (!['https:', 'http:', 'ssh:', 'git:', 'git+ssh:'].includes(parsed.protocol)) return undefined;
  if (parsed.hostname === '') return undefined;
  return { hostname: parsed.hostname.toLowerCase(), path: decodeURIComponent(parsed.pathname) };
}

const PROJECT_PATH = /^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*\/)+[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** `group/…/name` from a remote's path (`.git` and a GitLab web URL's `/-/…` tail dropped). */
export function projectFromPath(path: string): string | undefined {
  const project = path
    .replace(/^\/+/, '')
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    // GitLab web URLs: https://gitlab.com/group/name/-/tree/main
    .replace(/\/-(?:\/.*)?$/, '');
  return PROJECT_PATH.test(project) && !project.split('/').includes('..') ? project : undefined;
}

/**
 * The host a hostname names by itself, and its API: github.com, gitlab.com, or a self-managed
 * instance named the usual way (`gitlab.*`, `gitlab-*`, `github.*`, `github-*`). Anything else
 * must be named by the user.
 */
export function knownCodeHost(hostname: string): { kind: HostKind; apiUrl: string } | undefined {
  const kind =
    PUBLIC.github.includes(hostname) || /^github[.-]/.test(hostname)
      ? 'github'
      : PUBLIC.gitlab.includes(hostname) || /^gitlab[.-]/.test(hostname)
        ? 'gitlab'
        : undefined;
  return kind === undefined ? undefined : { kind, apiUrl: apiUrlOf(kind, hostname) };
}

const PUBLIC: Record<HostKind, readonly string[]> = {
  github: ['github.com', 'www.github.com'],
  gitlab: ['gitlab.com', 'www.gitlab.com'],
};

/**
 * The REST API of a `kind` host at `hostname`: the public one, or a self-managed instance's
 * (GitHub Enterprise Server under `/api/v3`; GitLab at the instance URL, gitbeaker adds the rest).
 */
export function apiUrlOf(kind: HostKind, hostname: string): string {
  if (PUBLIC[kind].includes(hostname)) return kind === 'github' ? GITHUB_API_URL : GITLAB_API_URL;
  return kind === 'github' ? `https://${hostname}/api/v3` : `https://${hostname}`;
}
