import { Document } from 'yaml';
import type { GitlabPipeline } from '../model/gitlab-ci.js';

/**
 * The pipeline as `.gitlab-ci.yml`: `workflow`, `stages` and `variables` first, then each job as a
 * top-level key, in the order the model lists them. Multi-line scripts become block scalars, so
 * the heredocs read as they run.
 */
export function renderGitlabCiYaml(pipeline: GitlabPipeline): string {
  const { jobs, ...rest } = pipeline;
  const document = new Document({ ...rest, ...jobs }, { aliasDuplicateObjects: false });
  return document.toString({ lineWidth: 0 });
}
