/**
 * Every action the generated workflow uses, with the major version it was written for
 * (docs/github-actions.md, docs/actions.md). One table, so an upgrade is one reviewed change for
 * the whole fleet.
 */
export const ACTIONS = {
  checkout: 'actions/checkout@v5',
  configureAwsCredentials: 'aws-actions/configure-aws-credentials@v6',
  ecrLogin: 'aws-actions/amazon-ecr-login@v2',
  setupBuildx: 'docker/setup-buildx-action@v4',
  bake: 'docker/bake-action@v7',
  /** Only in a job that builds an image `emulated` (docs/multi-platform.md). */
  setupQemu: 'docker/setup-qemu-action@v4',
} as const;

/**
 * The image that registers QEMU's binfmt handlers for emulated builds, pinned on both CIs
 * (docs/actions.md): docker/setup-qemu-action's `image` input on GitHub (whose default is the
 * unpinned `docker.io/tonistiigi/binfmt:latest`), `docker run --privileged` on GitLab. It runs
 * privileged, so it is named by the tag of one release, `deploy/v10.2.3-68` of tonistiigi/binfmt
 * (QEMU v10.2.3): that release's own tag, which a later release of the same QEMU version does not
 * move (`qemu-v10.2.3` would).
 */
export const BINFMT_IMAGE = 'tonistiigi/binfmt:qemu-v10.2.3-68';

/** Where BINFMT_IMAGE was read: the GitHub release of tonistiigi/binfmt that pushed it. */
export const BINFMT_RELEASE = {
  /** The release's git tag; its release notes name the image tag. */
  tag: 'deploy/v10.2.3-68',
  /** The commit the tag points to. */
  commit: 'e29e7d72c9672c8c8bf846655ab149b50e1a62bd',
  readOn: '2026-11-29',
} as const;

export type ActionKey = keyof typeof ACTIONS;
type ActionReference = (typeof ACTIONS)[ActionKey];
/** `owner/name` of an action in the table, such as `actions/checkout`. */
export type ActionRepository = ActionReference extends `${infer Repository}@${string}`
  ? Repository
  : never;

/** A release of an action: its version tag and the commit that tag points to. */
export interface ActionRelease {
  /** The full `vX.Y.Z` tag, in the major of `ACTIONS`. */
  readonly version: string;
  /** The full 40-hex commit SHA the tag pointed to (annotated tags dereferenced to the commit). */
  readonly commit: string;
  /** When the tag was read from the action's public repository (`https://github.com/<owner/name>`). */
  readonly readOn: string;
}

/**
 * The release of each action that `workflow.pinActions: true` pins by commit SHA: the latest
 * release in the major `ACTIONS` uses, read from the tags of the action's public GitHub repository
 * (docs/actions.md lists each source and how to check it). A tag can be moved; a commit SHA
 * cannot, so a pinned workflow runs exactly the code that was reviewed.
 */
export const ACTION_RELEASES = {
  checkout: {
    version: 'v5.1.0',
    commit: 'fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09',
    readOn: '2026-11-29',
  },
  configureAwsCredentials: {
    version: 'v6.2.3',
    commit: 'e6de054238d6b7531b4efff3b6587d9aade6a06c',
    readOn: '2026-11-29',
  },
  ecrLogin: {
    version: 'v2.1.7',
    commit: '03f1aad4c6c7ffd436567f42f9384779290529bd',
    readOn: '2026-11-29',
  },
  setupBuildx: {
    version: 'v4.3.0',
    commit: '37fe631027851001ddb9b187196cc803df7f5f0e',
    readOn: '2026-11-29',
  },
  bake: {
    version: 'v7.1.0',
    commit: 'a66e1c87e2eca0503c343edf1d208c716d54b8a8',
    readOn: '2026-11-29',
  },
  setupQemu: {
    version: 'v4.2.0',
    commit: '96fe6ef7f33517b61c61be40b68a1882f3264fb8',
    readOn: '2026-11-29',
  },
} as const satisfies Record<ActionKey, ActionRelease>;

/** A full commit SHA as git prints it: what `uses: owner/name@<sha>` must be to be immutable. */
export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/** `actions/checkout` from `actions/checkout@v5`. */
export function actionRepository(key: ActionKey): ActionRepository {
  return ACTIONS[key].slice(0, ACTIONS[key].indexOf('@')) as ActionRepository;
}

/** Every action repository of the table, in table order. */
export const ACTION_REPOSITORIES: readonly ActionRepository[] = (
  Object.keys(ACTIONS) as ActionKey[]
).map(actionRepository);

/** The commit each action is pinned to, by repository; `false` keeps the `@vN` tags. */
export type ActionPins = false | Readonly<Record<ActionRepository, string>>;

/**
 * `workflow.pinActions` resolved: `true` pins every action to the release this package ships;
 * a map pins the actions it names to the user's own commits and every other one to the shipped
 * release, so pinning never leaves an action on a movable tag.
 */
export function resolveActionPins(
  setting: boolean | Partial<Record<ActionRepository, string>> | undefined,
): ActionPins {
  if (setting === undefined || setting === false) return false;
  const shipped = Object.fromEntries(
    (Object.keys(ACTIONS) as ActionKey[]).map((key) => [
      actionRepository(key),
      ACTION_RELEASES[key].commit,
    ]),
  ) as Record<ActionRepository, string>;
  return setting === true ? shipped : { ...shipped, ...setting };
}

/**
 * The `uses:` of a step for an action of the table: unchanged without pins, else
 * `owner/name@<commit>`. Anything not in the table is refused, so no action can escape pinning.
 */
export function pinnedUses(uses: string, pins: ActionPins): string {
  const key = (Object.keys(ACTIONS) as ActionKey[]).find(
    (candidate) => ACTIONS[candidate] === uses,
  );
  if (key === undefined) {
    throw new Error(`${uses}: not an action of the table in src/model/actions.ts`);
  }
  if (pins === false) return uses;
  return `${actionRepository(key)}@${pins[actionRepository(key)]}`;
}

/**
 * The workflow with every step's `uses:` pinned (see `pinnedUses`). It walks every job and step,
 * whatever they are, so a step added later is pinned like the others.
 */
export function pinWorkflowActions<
  W extends { jobs: Record<string, { steps: readonly { uses?: string }[] }> },
>(workflow: W, pins: ActionPins): W {
  const jobs = Object.fromEntries(
    Object.entries(workflow.jobs).map(([id, job]) => [
      id,
      {
        ...job,
        steps: job.steps.map((step) =>
          step.uses === undefined ? step : { ...step, uses: pinnedUses(step.uses, pins) },
        ),
      },
    ]),
  );
  return { ...workflow, jobs };
}

/**
 * The release tag to write beside a pinned `uses:` (`# v5.1.0`, the comment Dependabot, Renovate
 * and zizmor read), when the commit is the one this package ships. A user's own commit gets none:
 * its version is not known here, and a wrong version comment is worse than none.
 */
export function pinnedVersion(uses: string): string | undefined {
  for (const key of Object.keys(ACTIONS) as ActionKey[]) {
    const release = ACTION_RELEASES[key];
    if (uses === `${actionRepository(key)}@${release.commit}`) return release.version;
  }
  return undefined;
}

/**
 * The one npm package the shipped prune script needs, pinned: the workflow installs exactly this
 * version on the runner, so every repository prunes with the same, reviewed client.
 */
export const PRUNER_SDK = '@aws-sdk/client-ecr@3.1169.0';
