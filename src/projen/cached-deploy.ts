import { existsSync } from 'node:fs';
import { Component, FileBase, javascript, type Project } from 'projen';
import { checkConfigAgainstRepo } from '../config/load.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { type GeneratedFile, renderFiles } from '../render/render-files.js';
import { GENERATOR_VERSION } from '../version.js';
import { type CachedDeployOptions, OPTIONS_SOURCE, resolveCachedDeployOptions } from './options.js';

const PACKAGE_NAME = 'create-cached-deploy';

/**
 * create-cached-deploy as a projen component: the workflow, bake file, lifecycle and IAM policies
 * and prune script, byte for byte what `create-cached-deploy generate` writes for the same settings
 * (the same model and render code), as projen-managed files. projen then tracks them in
 * `.projen/files.json`, makes them read-only, rewrites them on every `npx projen` and deletes them
 * when the component is removed. No cached-deploy.yml and no state file are involved.
 *
 * @example
 * new CachedDeploy(project, {
 *   aws: { accountId: '123456789012', region: 'eu-west-1' },
 *   github: { repository: 'acme/orders' },
 *   images: [{ name: 'api', target: 'runtime', repository: 'orders-api' }],
 * });
 */
export class CachedDeploy extends Component {
  /** The project's CachedDeploy component, if it has one. */
  static of(project: Project): CachedDeploy | undefined {
    return project.components.find(
      (component): component is CachedDeploy => component instanceof CachedDeploy,
    );
  }

  /** The settings with every default filled in. */
  readonly config: ResolvedConfig;
  /** The generated files, one projen file each. */
  readonly files: readonly FileBase[];

  /**
   * @throws CachedDeployError when an option is invalid, with the message the CLI gives for the
   * same value in cached-deploy.yml (`CachedDeploy options: images[0].name: ...`).
   */
  constructor(project: Project, options: CachedDeployOptions) {
    if (CachedDeploy.of(project)) {
      throw new CachedDeployError(
        'USAGE',
        `${OPTIONS_SOURCE}: this project already has a CachedDeploy component (list every image in its images)`,
      );
    }
    // Everything is checked before anything is added to the project.
    const config = resolveCachedDeployOptions(options);
    if ((options.checkRepository ?? true) && existsSync(project.outdir)) {
      checkConfigAgainstRepo(config, project.outdir, OPTIONS_SOURCE);
    }
    const rendered = renderFiles(config, GENERATOR_VERSION);
    checkOutputPaths(project, rendered);

    super(project, 'CachedDeploy');
    this.config = config;
    this.files = rendered.map((file) => new GeneratedProjenFile(this, file));
    // projen rewrites package.json from its own list of dependencies: declare the one .projenrc.ts
    // imports, or the next install would remove it.
    if (project instanceof javascript.NodeProject && !project.deps.tryGetDependency(PACKAGE_NAME)) {
      project.addDevDeps(PACKAGE_NAME);
    }
  }
}

/**
 * A generated file written verbatim: no projen marker or trailing newline is added, so the bytes
 * are the CLI's. Read-only and listed in `.projen/files.json`, as every projen-managed file.
 */
class GeneratedProjenFile extends FileBase {
  private readonly content: string;

  constructor(scope: CachedDeploy, file: GeneratedFile) {
    super(scope, file.path, { marker: false });
    this.content = file.content;
  }

  protected synthesizeContent(): string {
    return this.content;
  }
}

function checkOutputPaths(project: Project, files: GeneratedFile[]): void {
  const seen = new Set<string>();
  for (const file of files) {
    if (seen.has(file.path)) {
      throw new CachedDeployError(
        'CONFIG_INVALID',
        `${OPTIONS_SOURCE}: two generated files would both be written to "${file.path}" (check workflow.file and paths.*)`,
      );
    }
    seen.add(file.path);
    if (project.tryFindFile(file.path)) {
      throw new CachedDeployError(
        'CONFIG_INVALID',
        `${OPTIONS_SOURCE}: "${file.path}" is already a file of this projen project (check workflow.file and paths.*)`,
      );
    }
  }
}
