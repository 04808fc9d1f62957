/**
 * Every action the generated workflow uses, with the major version it was written for
 * (docs/github-actions.md). One table, so an upgrade is one reviewed change for the whole fleet.
 */
export const ACTIONS = {
  checkout: 'actions/checkout@v5',
  configureAwsCredentials: 'aws-actions/configure-aws-credentials@v6',
  ecrLogin: 'aws-actions/amazon-ecr-login@v2',
  setupBuildx: 'docker/setup-buildx-action@v4',
  bake: 'docker/bake-action@v7',
} as const;

/**
 * The one npm package the shipped prune script needs, pinned: the workflow installs exactly this
 * version on the runner, so every repository prunes with the same, reviewed client.
 */
export const PRUNER_SDK = '@aws-sdk/client-ecr@3.1169.0';
