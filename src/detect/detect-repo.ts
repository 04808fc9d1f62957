import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';
import { GITHUB_API_URL, knownCodeHost, parseGitUrl, projectFromPath } from '../code-hosts.js';
import { GITLAB_CI_FILE } from '../config/resolve.js';
import { GITHUB_REPOSITORY, GITLAB_PROJECT, HOST_NAME } from '../config/schema.js';
import { carriesMarker } from '../render/marker.js';
import { RepoFiles } from '../repo-files.js';
import { type DockerfileStage, parseDockerfileStages } from './dockerfile.js';

/** What init can learn about a repository without asking. */
export interface RepoFacts {
  dockerfiles: { path: string; stages: DockerfileStage[] }[];
  /** owner/name when origin points at GitHub. */
  githubRepository: string | undefined;
  /** The instance and project when origin points at GitLab (gitlab.com, or a host named gitlab.*). */
  gitlab: { host: string; project: string } | undefined;
  /** A `.gitlab-ci.yml` this tool did not write: the pipeline then goes in a file it includes. */
  foreignGitlabCi: boolean;
  defaultBranch: string | undefined;
  /** AWS_REGION / AWS_DEFAULT_REGION, when set. */
  region: string | undefined;
}

const SKIP_DIRS = new Set(['node_modules', 'vendor', 'dist', 'build', 'lib', 'target', 'coverage']);
const MAX_DEPTH = 4;

function isDockerfileName(name: string): boolean {
  return (
    name === 'Dockerfile' ||
    name === 'Containerfile' ||
    name.startsWith('Dockerfile.') ||
    name.endsWith('.Dockerfile') ||
    name.endsWith('.dockerfile')
  );
}

/** Dockerfiles up to MAX_DEPTH folders down, not in hidden or build folders, nor behind symlinks. */
function findDockerfiles(repo: RepoFiles): string[] {
  const found: string[] = [];
  const walk = (current: string, depth: number) => {
    let entries: ReturnType<RepoFiles['list']>;
    try {
      entries = repo.list(current);
    } catch {
      return; // unreadable: nothing to detect there
    }
    const inside = (name: string) => (current === '.' ? name : `${current}/${name}`);
    for (const entry of entries ?? []) {
      if (
        entry.kind === 'file' &&
        isDockerfileName(entry.name) &&
        !entry.name.endsWith('.dockerignore')
      ) {
        found.push(inside(entry.name));
      } else if (
        entry.kind === 'directory' &&
        depth < MAX_DEPTH &&
        !entry.name.startsWith('.') &&
        !SKIP_DIRS.has(entry.name)
      ) {
        walk(inside(entry.name), depth + 1);
      }
    }
  };
  walk('.', 0);
  return found;
}

export function detectRepo(dir: string, env: NodeJS.ProcessEnv = process.env): RepoFacts {
  const repo = new RepoFiles(dir);
  const origin = git(dir, ['remote', 'get-url', 'origin']);
  return {
    dockerfiles: findDockerfiles(repo).map((path) => ({
      path,
      stages: parseDockerfileStages(repo.readInput(path) ?? ''),
    })),
    githubRepository: parseGithubRemote(origin),
    gitlab: parseGitlabRemote(origin),
    foreignGitlabCi: (() => {
      const text = repo.readInput(GITLAB_CI_FILE);
      return text !== undefined && !carriesMarker(text);
    })(),
    defaultBranch: detectDefaultBranch(dir),
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || undefined,
  };
}

function git(dir: string, args: string[]): string | undefined {
  try {
    return (
      execFileSync('git', ['-C', dir, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      }).trim() || undefined
    );
  } catch {
    return undefined;
  }
}

function detectDefaultBranch(dir: string): string | undefined {
  const remoteHead = git(dir, ['symbolic-ref', '--short', 'refs/remotes/origin/HEAD']);
  if (remoteHead?.startsWith('origin/')) return remoteHead.slice('origin/'.length);
  return git(dir, ['branch', '--show-current']) ?? git(dir, ['config', 'init.defaultBranch']);
}

/**
 * owner/name of a remote on github.com (https, ssh or scp-like). Only github.com: the generated
 * trust policies name its OIDC issuer, which a GitHub Enterprise Server does not use.
 */
export function parseGithubRemote(url: string | undefined): string | undefined {
  const remote = url === undefined ? undefined : parseGitUrl(url);
  if (!remote || knownCodeHost(remote.hostname)?.apiUrl !== GITHUB_API_URL) return undefined;
  const project = projectFromPath(remote.path);
  return project !== undefined && GITHUB_REPOSITORY.test(project) ? project : undefined;
}

/**
 * The GitLab instance and project of a remote URL (https, ssh or scp-like `git@host:group/name`),
 * when its host is gitlab.com or named like a self-managed GitLab (`gitlab.*`, `gitlab-*`).
 */
export function parseGitlabRemote(
  url: string | undefined,
): { host: string; project: string } | undefined {
  const remote = url === undefined ? undefined : parseGitUrl(url);
  const known = remote && knownCodeHost(remote.hostname);
  if (!remote || known?.kind !== 'gitlab') return undefined;
  // gitlab.com however the remote spells it; a self-managed instance by its own name.
  const host = new URL(known.apiUrl).hostname;
  const project = projectFromPath(remote.path);
  if (!HOST_NAME.test(host) || project === undefined || !GITLAB_PROJECT.test(project)) {
    return undefined;
  }
  return { host, project };
}

/** A bake target name for a Dockerfile: its directory, or its suffix (Dockerfile.worker). */
export function imageNameFor(dockerfile: string, fallback: string): string {
  const file = basename(dockerfile);
  const dir = dockerfile.includes('/')
    ? basename(dockerfile.slice(0, dockerfile.lastIndexOf('/')))
    : '';
  const suffix = file.startsWith('Dockerfile.')
    ? file.slice('Dockerfile.'.length)
    : file.replace(/\.[Dd]ockerfile$/, '');
  const raw = suffix && suffix !== file ? suffix : dir || fallback;
  return sanitizeName(raw, 32) || 'app';
}

/** Lowercase [a-z0-9] words joined by single '-', at most `max` characters. */
export function sanitizeName(raw: string, max: number): string {
  return raw
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, max)
    .replace(/-+$/, '');
}

const PREFERRED_STAGES = ['runtime', 'production', 'prod', 'release', 'final', 'app'];

/** The stage to deploy: a conventionally named one, else the last stage (if it has a name). */
export function hasPreferredStage(stages: DockerfileStage[]): boolean {
  return stages.some((stage) => stage.name !== undefined && PREFERRED_STAGES.includes(stage.name));
}

export function pickTargetStage(stages: DockerfileStage[]): string | undefined {
  const named = stages.flatMap((stage) => (stage.name ? [stage.name] : []));
  const preferred = PREFERRED_STAGES.find((name) => named.includes(name));
  return preferred ?? stages.at(-1)?.name;
}
