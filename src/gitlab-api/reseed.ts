import { RESEED_VARIABLE } from '../model/gitlab-ci.js';
import type { GitLabApi } from './client.js';
import type { GitLabProject } from './project.js';

/**
 * A reseed on GitLab: a pipeline on the main branch with `CACHED_DEPLOY_RESEED=true`, which the
 * generated .gitlab-ci.yml runs as the seed job (a cold build exporting seed.<image>).
 * GitLab API "Create a new pipeline", POST /projects/:id/pipeline (docs/gitlab-ci.md).
 */

export async function triggerGitLabReseed(
  api: GitLabApi,
  project: GitLabProject,
): Promise<{ id: number; url?: string }> {
  const pipeline = await api.createPipeline(
    project.path,
    project.mainBranch,
    { [RESEED_VARIABLE]: 'true' },
    {
      400: `GitLab refused the pipeline: ${project.mainBranch} must exist, and the token's user must be allowed to set pipeline variables (Settings > CI/CD > Variables, "Minimum role to use pipeline variables"; new projects on gitlab.com allow no one)`,
      403: `the token needs the api scope and a role that may run pipelines on ${project.mainBranch} (Developer, or more when the branch is protected)`,
    },
  );
  return { id: pipeline.id, ...(pipeline.webUrl ? { url: pipeline.webUrl } : {}) };
}

/** The reseed by hand, for the recommendation. */
export function gitlabReseedCommand(project: GitLabProject): string {
  return `glab ci run --repo ${project.path} --branch ${project.mainBranch} --variables ${RESEED_VARIABLE}:true`;
}
