import type { ImageSettings, ResolvedConfig } from '../config/resolve.js';
import { buildsPerPlatform, cacheTagSuffix, platformSlug } from './cache-tags.js';

/**
 * Which bake targets are built where (docs/multi-platform.md), independent of the CI that runs
 * them: the GitHub workflow makes one job of each leg, and another CI can do the same.
 *
 * - An image on one platform (no `build` setting), or built `emulated`, is one bake target named
 *   after the image, building all its platforms on one builder: they share one cache tag per scope
 *   (a single builder exports one cache for every platform it built).
 * - An image built `native` is one bake target per platform, `<image>-<os>-<arch>[-<variant>]`,
 *   each built on a runner of that platform, each with its own cache tags
 *   (`<scope>.<image>.<platform slug>`, since runners exporting one tag overwrite each other) and
 *   pushed by digest; a merge then makes the manifest list under the image's tag.
 */

/** One bake target: an image, or one platform of an image built per platform. */
export interface BuildTarget {
  /** The bake target's name: the image's, or `<image>-<platform slug>`. */
  name: string;
  image: ImageSettings;
  /** The one platform of a per-platform target; undefined for an image's one target. */
  platform: string | undefined;
  /** The platforms it builds. */
  platforms: string[];
  /** What its cache tags end in after `<scope>.` (see cacheTagSuffix). */
  tagSuffix: string;
}

/** The bake target name of one platform of an image built per platform. */
export function platformTargetName(imageName: string, platform: string): string {
  return `${imageName}-${platformSlug(platform)}`;
}

/** An image's bake targets: one per platform when it is built per platform, else one. */
export function imageBuildTargets(image: ImageSettings): BuildTarget[] {
  if (!buildsPerPlatform(image)) {
    return [
      {
        name: image.name,
        image,
        platform: undefined,
        platforms: image.platforms,
        tagSuffix: cacheTagSuffix(image.name),
      },
    ];
  }
  return image.platforms.map((platform) => ({
    name: platformTargetName(image.name, platform),
    image,
    platform,
    platforms: [platform],
    tagSuffix: cacheTagSuffix(image.name, platform),
  }));
}

/** Every bake target of a configuration, in image and platform order. */
export function buildTargets(config: ResolvedConfig): BuildTarget[] {
  return config.images.flatMap(imageBuildTargets);
}

/** Whether any image is built per platform: then the workflow has per-platform jobs and a merge. */
export function hasPlatformLegs(config: ResolvedConfig): boolean {
  return config.images.some(buildsPerPlatform);
}

/** Bake targets built together on one runner: one build job of the CI. */
export interface BuildLeg {
  /**
   * The platform every target of the leg builds, for a per-platform leg; undefined for the shared
   * leg, which builds every image that is not built per platform.
   */
  platform: string | undefined;
  /** `''` for the shared leg, else `-<platform slug>`: what job ids of the leg end in. */
  idSuffix: string;
  targets: BuildTarget[];
  /** Whether the leg builds a platform its runner may not run: QEMU is set up first. */
  emulate: boolean;
  /** The platforms QEMU is set up for (emulatedPlatforms); none on a platform's own leg. */
  emulatedPlatforms: string[];
}

/**
 * The platform the shared leg's runner runs on GitHub (`workflow.runsOn`): the platform whose
 * runner label (`workflow.runners`) it is, else linux/amd64, as GitHub's hosted `ubuntu-*`
 * runners. (GitLab's shared jobs assume linux/amd64 runners too: gitlab-ci.ts.)
 */
function sharedRunnerPlatform(config: ResolvedConfig): string {
  const named = Object.entries(config.workflow.runners).find(
    ([, label]) => label === config.workflow.runsOn,
  );
  return named?.[0] ?? 'linux/amd64';
}

/**
 * What the shared leg's QEMU must emulate: every platform of an image built `emulated`, and those
 * of an image on one platform that are not the runner's own (an arm64 image on an x64 runner:
 * without QEMU its RUN steps fail with "exec format error").
 */
function emulatedPlatforms(config: ResolvedConfig, shared: readonly BuildTarget[]): string[] {
  const native = sharedRunnerPlatform(config);
  return [
    ...new Set(
      shared.flatMap((target) =>
        target.image.build === 'emulated'
          ? target.image.platforms
          : target.platforms.filter((platform) => platform !== native),
      ),
    ),
  ];
}

/**
 * The legs of a configuration: the shared one (when any image is not built per platform) first,
 * then one per platform of the images built per platform, in the order the platforms first appear.
 */
export function buildLegs(config: ResolvedConfig): BuildLeg[] {
  const targets = buildTargets(config);
  const legs: BuildLeg[] = [];
  const shared = targets.filter((target) => target.platform === undefined);
  if (shared.length > 0) {
    const emulated = emulatedPlatforms(config, shared);
    legs.push({
      platform: undefined,
      idSuffix: '',
      targets: shared,
      emulate: emulated.length > 0,
      emulatedPlatforms: emulated,
    });
  }
  const platforms = [
    ...new Set(
      targets.flatMap((target) => (target.platform === undefined ? [] : [target.platform])),
    ),
  ];
  for (const platform of platforms) {
    legs.push({
      platform,
      idSuffix: `-${platformSlug(platform)}`,
      targets: targets.filter((target) => target.platform === platform),
      emulate: false,
      emulatedPlatforms: [],
    });
  }
  return legs;
}

/**
 * Where a leg runs on GitHub Actions, as a runner label: `workflow.runsOn` for the shared leg, the
 * platform's runner (`workflow.runners`) otherwise. The config refuses a platform without one.
 */
export function githubRunner(config: ResolvedConfig, leg: BuildLeg): string {
  if (leg.platform === undefined) return config.workflow.runsOn;
  const runner = config.workflow.runners[leg.platform];
  if (runner === undefined) throw new Error(`no runner for ${leg.platform} (workflow.runners)`);
  return runner;
}

/**
 * Where a leg runs on GitLab CI, as the runner tags its jobs list (a runner must have every one):
 * `gitlab.tags` for the shared leg; for a platform's leg, those and the platform's
 * `gitlab.runnerTags`. The config refuses a native platform without runner tags.
 */
export function gitlabRunnerTags(config: ResolvedConfig, leg: BuildLeg): string[] {
  const gitlab = config.gitlab;
  if (!gitlab) throw new Error('not a GitLab CI configuration (ci: github)');
  if (leg.platform === undefined) return [...gitlab.tags];
  const platformTags = gitlab.runnerTags[leg.platform];
  if (platformTags === undefined) {
    throw new Error(`no runner tags for ${leg.platform} (gitlab.runnerTags)`);
  }
  return [...new Set([...gitlab.tags, ...platformTags])];
}
