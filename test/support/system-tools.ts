/**
 * The system tools (not npm packages) some tests drive: where each is looked for and what to
 * install. A test that needs a missing tool is skipped, with a reason that says what to install.
 * A tool listed in CACHED_DEPLOY_REQUIRED_TOOLS (space-separated; .ci/run lists the ones it
 * installs) is required instead: the test fails, so CI can never pass by skipping.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'vitest';

export type SystemTool = 'aws' | 'docker-registry' | 'jq' | 'terraform';

const onPath = (name: string) =>
  (process.env.PATH ?? '').split(delimiter).flatMap((dir) => (dir ? [join(dir, name)] : []));

const TOOLS: Record<SystemTool, { candidates: () => string[]; install: string }> = {
  aws: {
    // Debian's awscli first (what .ci/run installs): a pyenv shim on PATH may hold awscli v1.
    candidates: () => ['/usr/bin/aws', ...onPath('aws')],
    install: 'install awscli (`apt-get install awscli`, as .ci/run does, or AWS CLI v2)',
  },
  'docker-registry': {
    // Debian's package of the distribution registry (2.8): a real OCI registry on loopback.
    candidates: () => ['/usr/bin/docker-registry'],
    install:
      "install Debian's docker-registry package (`apt-get install docker-registry`, as .ci/run does)",
  },
  jq: {
    // The GitLab pipeline's per-platform build jobs read bake's metadata file with it (they install
    // it with apk); their runs under gitlab-ci-local use the machine's.
    candidates: () => onPath('jq'),
    install: 'install jq (`apt-get install jq`, as .ci/run does)',
  },
  terraform: {
    candidates: () => onPath('terraform'),
    install:
      'install terraform on PATH (https://developer.hashicorp.com/terraform/install); only `terraform fmt -check` runs, offline',
  },
};

/** The tool's executable, or undefined when none of its candidates is there. */
export function findSystemTool(tool: SystemTool): string | undefined {
  for (const candidate of TOOLS[tool].candidates()) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  return undefined;
}

function isRequired(tool: SystemTool): boolean {
  return (process.env.CACHED_DEPLOY_REQUIRED_TOOLS ?? '').split(/\s+/).includes(tool);
}

/**
 * The tool's executable; when it is missing, skips the current test with a reason naming what to
 * install (or fails it, when the tool is required). Call it in the test or in a beforeEach.
 */
export function needSystemTool(context: TestContext, tool: SystemTool): string {
  const found = findSystemTool(tool);
  if (found) return found;
  const reason = `needs ${tool}: ${TOOLS[tool].install}`;
  if (isRequired(tool)) {
    throw new Error(`${reason} (CACHED_DEPLOY_REQUIRED_TOOLS requires it)`);
  }
  // The reporter lists skip reasons only when verbose: say it once per file on stderr too.
  if (!announced.has(tool)) {
    announced.add(tool);
    console.warn(`Skipping the tests that need ${tool}: ${TOOLS[tool].install}`);
  }
  return context.skip(reason);
}

const announced = new Set<SystemTool>();
