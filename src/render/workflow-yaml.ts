import { Document, isScalar, visit } from 'yaml';
import { pinnedVersion } from '../model/actions.js';
import type { Workflow } from '../model/workflow.js';

/**
 * The workflow as YAML. A `uses:` pinned to a commit this package ships gets its release tag as a
 * comment on the same line (`uses: actions/checkout@<sha> # v5.1.0`), the form Dependabot,
 * Renovate and zizmor read the version from.
 */
export function renderWorkflowYaml(workflow: Workflow): string {
  const document = new Document(workflow, { aliasDuplicateObjects: false });
  visit(document, {
    Pair(_, pair) {
      if (!isScalar(pair.key) || pair.key.value !== 'uses' || !isScalar(pair.value)) return;
      const version = pinnedVersion(String(pair.value.value));
      if (version !== undefined) pair.value.comment = ` ${version}`;
    },
  });
  return document.toString({ lineWidth: 0 });
}
