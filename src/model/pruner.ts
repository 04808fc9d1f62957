import type { ResolvedConfig } from '../config/resolve.js';

/**
 * The shipped prune script and the npm project that installs its one dependency from a lockfile
 * (`npm ci --ignore-scripts`): every package it runs with while AWS credentials are in the
 * environment is pinned by an integrity hash (docs/trust-separation.md). The package.json and
 * package-lock.json live beside the script as `<script name>.package.json` and
 * `<script name>.package-lock.json`, and the workflow copies them to where npm expects them.
 */
export function prunerPaths(config: ResolvedConfig): {
  script: string;
  packageJson: string;
  lockfile: string;
} {
  const script = config.paths.pruneScript;
  const stem = script.replace(/\.[cm]?js$/, '');
  return {
    script,
    packageJson: `${stem}.package.json`,
    lockfile: `${stem}.package-lock.json`,
  };
}
