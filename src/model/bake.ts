import type { ResolvedConfig } from '../config/resolve.js';
import { registryHost } from './aws.js';
import {
  buildsPerPlatform,
  cacheRepositoryVariable,
  cacheTag,
  LOCAL_CACHE_SCOPE,
  MAIN_SCOPE,
  SEED_SCOPE,
} from './cache-tags.js';
import { buildTargets, imageBuildTargets } from './platforms.js';

/**
 * The buildx bake file as data. The cache strategy (docs/cache-strategy.md) holds by plain variable
 * substitution, with no conditionals to get wrong: every target imports the seed (when enabled)
 * and main caches from its cache repository, and `${CACHE_SCOPE}`'s from
 * `${CACHE_REPOSITORY_<TARGET>}`, and exports only to `${CACHE_REPOSITORY_<TARGET>}:${CACHE_SCOPE}.<target>`.
 * The workflow's scope step sets CACHE_SCOPE to "main" and each CACHE_REPOSITORY_<TARGET> to the
 * cache repository on the main branch; "br-<slug>" and the branch-cache repository elsewhere; the
 * seed job "seed" and the cache repository. What a build may actually write is decided by the
 * role it assumes, not by this file (a pull request can change it): docs/trust-boundaries.md.
 */
export interface BakeFile {
  variables: BakeVariable[];
  /** What the `default` group builds: every image (a target, or a group of per-platform ones). */
  defaultGroup: string[];
  /** One per image built per platform, named after it: its per-platform targets. */
  groups: BakeGroup[];
  targets: BakeTarget[];
}

export interface BakeGroup {
  name: string;
  targets: string[];
  comment: string;
}

export interface BakeVariable {
  name: string;
  default: string;
  comment: string;
}

export interface BakeTarget {
  name: string;
  context: string;
  dockerfile: string;
  target: string | undefined;
  platforms: string[];
  /** The image's tag; none on a per-platform target, which is pushed by digest. */
  tags: string[];
  /**
   * A per-platform target's image output: pushed by digest into the image repository (named in
   * the output: BuildKit refuses to push a tagged name by digest), when the workflow sets
   * `<target>.push=true`. Undefined for an image's one target (buildx adds the output on push).
   */
  output: string[] | undefined;
  cacheFrom: string[];
  cacheTo: string[];
}

/**
 * The image output of a per-platform target (Docker, "Multi-platform image with GitHub Actions",
 * distributing the build across runners: docs/multi-platform.md): an image pushed by its digest
 * only, with its canonical `name@digest` in the build's metadata, for the merge.
 */
export const PUSH_BY_DIGEST_OUTPUT = 'type=image,push-by-digest=true,name-canonical=true';

export const BAKE_VARIABLES = {
  registry: 'REGISTRY',
  imageTag: 'IMAGE_TAG',
  cacheScope: 'CACHE_SCOPE',
} as const;

/**
 * How every cache is exported: `mode=max` (every intermediate step, not only the final image's),
 * `image-manifest=true,oci-mediatypes=true`, the only cache layout ECR accepts
 * (docs/cache-strategy.md).
 */
export const CACHE_EXPORT_LAYOUT = 'mode=max,image-manifest=true,oci-mediatypes=true';

/**
 * What ordinary builds export with: `ignore-error=true` on top, since a failed export
 * (throttling, an expired token) must not fail a deploy. The seed job drops it: the seed is that
 * job's only output (docs/doctor.md).
 */
export const CACHE_EXPORT_OPTIONS = `${CACHE_EXPORT_LAYOUT},ignore-error=true`;

export function bakeFile(config: ResolvedConfig): BakeFile {
  const v = (name: string) => `\${${name}}`;
  const registry = v(BAKE_VARIABLES.registry);
  const scope = v(BAKE_VARIABLES.cacheScope);
  return {
    variables: [
      {
        name: BAKE_VARIABLES.registry,
        default: registryHost(config.aws.accountId, config.aws.region),
        comment: 'The ECR registry of the image and cache repositories.',
      },
      {
        name: BAKE_VARIABLES.imageTag,
        default: 'dev',
        comment: 'The image tag; the workflow sets it to the commit SHA.',
      },
      {
        name: BAKE_VARIABLES.cacheScope,
        default: LOCAL_CACHE_SCOPE,
        comment: `Which cache this build writes: "${MAIN_SCOPE}" on the main branch, "br-<branch slug>" elsewhere${config.seed.enabled ? `, "${SEED_SCOPE}" in the scheduled cold build` : ''} (set by the workflow).`,
      },
      ...config.images.map((image) => ({
        name: cacheRepositoryVariable(image.name),
        default: image.branchCacheRepository,
        comment: `The repository of ${image.name}'s own cache scope: ${image.cacheRepository} for "${MAIN_SCOPE}"${config.seed.enabled ? ` and "${SEED_SCOPE}"` : ''}, ${image.branchCacheRepository} for branches and builds outside CI (set by the workflow).`,
      })),
    ],
    defaultGroup: config.images.map((image) => image.name),
    groups: config.images.filter(buildsPerPlatform).map((image) => ({
      name: image.name,
      targets: imageBuildTargets(image).map((target) => target.name),
      comment: `${image.name} on every platform: one target per platform, each built on its own runner and pushed by digest.`,
    })),
    targets: buildTargets(config).map((buildTarget) => {
      const { image } = buildTarget;
      const ownRepository = v(cacheRepositoryVariable(image.name));
      const cacheRef = (repository: string, tagScope: string) =>
        `type=registry,ref=${registry}/${repository}:${cacheTag(tagScope, buildTarget.tagSuffix)}`;
      const perPlatform = buildTarget.platform !== undefined;
      return {
        name: buildTarget.name,
        context: image.context,
        dockerfile: relativeToContext(image.context, image.dockerfile),
        target: image.target,
        platforms: buildTarget.platforms,
        tags: perPlatform ? [] : [`${registry}/${image.repository}:${v(BAKE_VARIABLES.imageTag)}`],
        output: perPlatform
          ? [`${PUSH_BY_DIGEST_OUTPUT.replace(',', `,name=${registry}/${image.repository},`)}`]
          : undefined,
        // The seed first: it is the one cache that re-exports from fresh runners cannot erode.
        // Without a seed job nothing writes it, so nothing imports it either.
        cacheFrom: [
          ...(config.seed.enabled ? [cacheRef(image.cacheRepository, SEED_SCOPE)] : []),
          cacheRef(image.cacheRepository, MAIN_SCOPE),
          cacheRef(ownRepository, scope),
        ],
        cacheTo: [`${cacheRef(ownRepository, scope)},${CACHE_EXPORT_OPTIONS}`],
      };
    }),
  };
}

/** Bake resolves `dockerfile` relative to `context`, while the config holds repo-relative paths. */
function relativeToContext(context: string, dockerfile: string): string {
  if (context === '.') return dockerfile;
  const contextParts = context.split('/');
  const fileParts = dockerfile.split('/');
  let common = 0;
  while (common < contextParts.length && contextParts[common] === fileParts[common]) common++;
  const up = contextParts.slice(common).map(() => '..');
  return [...up, ...fileParts.slice(common)].join('/');
}
