import { CONFIG_FILE, type ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { quoteForMessage } from '../text.js';

/**
 * The GitLab side of a configuration, read in one place: whether the repository runs on GitLab
 * CI, its project, the instance, the main branch. Everything in src/gitlab-api/ reads it through
 * here, so a change in where cached-deploy.yml keeps these is a change to this file only.
 */

/** Where `apply` and `doctor` read a GitLab token when no flag gives one. */
export const GITLAB_TOKEN_ENV = 'GITLAB_TOKEN';

export interface GitLabProject {
  /** `https://gitlab.com`, or a self-managed instance's URL (gitbeaker's `host`). */
  instanceUrl: string;
  /** The project's full path: group, any subgroups, project. */
  path: string;
  /** The branch that deploys: the schedule's ref, the reseed pipeline's ref. */
  mainBranch: string;
}

/** The GitLab project of a `ci: gitlab` configuration; undefined on any other CI. */
export function gitlabProject(
  config: ResolvedConfig,
  overrides: { instanceUrl?: string } = {},
): GitLabProject | undefined {
  if (config.ci !== 'gitlab') return undefined;
  // The schema requires the gitlab section with ci: gitlab; this guards callers that build a
  // configuration by hand.
  const gitlab = config.gitlab;
  if (!gitlab) {
    throw new CachedDeployError(
      'CONFIG_INVALID',
      `${CONFIG_FILE}: ci: gitlab needs gitlab.project (the project's full path, such as group/project)`,
    );
  }
  return {
    instanceUrl: gitlabInstanceUrl(overrides.instanceUrl ?? gitlab.host),
    path: gitlab.project,
    mainBranch: config.mainBranch,
  };
}

/**
 * An instance URL from a host name or a URL. A token is sent there, so it must be https (plain
 * http only on loopback, for a local test instance).
 */
export function gitlabInstanceUrl(host: string): string {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `https://${host}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CachedDeployError('USAGE', `${quoteForMessage(host)} is not a GitLab instance URL`);
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new CachedDeployError(
      'USAGE',
      `the GitLab instance ${quoteForMessage(host)} must be an https URL (a token is sent there)`,
    );
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new CachedDeployError(
      'USAGE',
      `the GitLab instance URL ${quoteForMessage(host)} may hold no credentials, query or fragment`,
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
