/**
 * `doctor`: reads every image's main, seed and (optionally) branch cache from the registry,
 * matches their steps against the seed's (cacheconfig.ts), and judges what matters for the next
 * builds (docs/doctor.md, docs/erosion-and-seed.md): whether the seed is there, complete and fresh for its schedule, whether
 * builds import it, and how many of main's steps builds can still reuse. It names the cause and
 * recommends, or triggers, what fixes it. The report is data; format.ts prints it.
 */
import { basename } from 'node:path';
import { GITHUB_API_URL } from '../code-hosts.js';
import { loadConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError, isCachedDeployError } from '../errors.js';
import { GITLAB_TOKEN_ENV, gitlabProject } from '../gitlab-api/project.js';
import { gitlabReseedCommand } from '../gitlab-api/reseed.js';
import {
  cacheScope,
  cacheTag,
  cacheTagSuffixes,
  MAIN_SCOPE,
  SEED_SCOPE,
} from '../model/cache-tags.js';
import { buildTargets } from '../model/platforms.js';
import { githubOf } from '../model/roles.js';
import { createHttpClient, type HttpClient } from '../net/bounded-fetch.js';
import { RepoFiles } from '../repo-files.js';
import { printable } from '../text.js';
import {
  type CacheConfig,
  CacheFormatError,
  type CacheStats,
  cacheStats,
  compareWithSeed,
  DEFAULT_MIN_RETAINED,
  parseCacheConfig,
  parseCacheManifest,
  reusableWith,
  type StepsAgainstSeed,
} from './cacheconfig.js';
import { formatAge } from './format.js';
import { dispatchReseed } from './github.js';
import { type CacheRegistry, ecrRegistry, ociRegistry } from './registry-client.js';
import { CronError, schedulePeriodMs } from './schedule.js';
import { type SeedImport, seedImportOf } from './seed-import.js';

/**
 * 2: health counts steps, not records (a cold build is 100%); main and branch are matched step by
 * step against the seed (`againstSeed`); the seed is judged on its own (`seed`); main's verdict
 * is what builds can reuse (`main`); `erosion` and `retained` are gone, `problems` and
 * `recommendations` (a list) replace `recommendation`.
 */
export const DOCTOR_FORMAT_VERSION = 2;

export interface DoctorOptions {
  /** Also inspect this branch's cache. */
  branch?: string;
  /** Read from this OCI registry over the distribution API instead of ECR. */
  registryUrl?: string;
  /** A registry adapter to use as is (tests, other shells). Wins over registryUrl. */
  registry?: CacheRegistry;
  /** Extra ECRClient configuration (endpoint, credentials) when reading from ECR. */
  ecrClientConfig?: Record<string, unknown>;
  /** The clock ages are measured against. Default: now. */
  now?: Date;
  /**
   * Main is eroded when builds can reuse less than this share of its steps, in (0, 1].
   * Default DEFAULT_MIN_RETAINED (0.75).
   */
  minRetained?: number;
  /**
   * The repository's bake file, to tell whether builds import the seed. `doctor(dir)` reads it;
   * without it, the file generated from the configuration is assumed.
   */
  bakeText?: string;
  /**
   * Trigger a reseed when one is recommended: a workflow_dispatch (needs githubToken), or with
   * `ci: gitlab` a pipeline with CACHED_DEPLOY_RESEED=true (needs gitlabToken).
   */
  reseed?: boolean;
  githubToken?: string;
  /** Default https://api.github.com */
  githubApiUrl?: string;
  gitlabToken?: string;
  /** The GitLab instance, instead of gitlab.host of cached-deploy.yml. */
  gitlabUrl?: string;
  /** Overrides of the GitLab transport policy (tests). */
  gitlabPolicy?: Partial<import('../net/host-connection.js').HostPolicy>;
  /** The transport under every HTTP read (registry, blobs, GitHub API). Default: fetch. */
  fetch?: typeof fetch;
  /**
   * The whole run's deadline (registry reads, ECR calls, the reseed): after it every read fails
   * at once. Default 300 s.
   */
  timeoutMs?: number;
  /** One request's deadline, from sending it to its last byte. Default 60 s (at most timeoutMs). */
  requestTimeoutMs?: number;
}

export type Health = 'healthy' | 'degraded' | 'error';
export type CacheKind = 'main' | 'seed' | 'branch';

export interface CacheReport {
  kind: CacheKind;
  /** Where it was read: the cache repository, or the branch-cache repository for a branch. */
  repository: string;
  tag: string;
  status: 'ok' | 'missing' | 'error';
  digest?: string;
  /** Seconds since the newest result the cache holds was created. */
  ageSeconds?: number;
  stats?: CacheStats;
  /** Main and branch: their steps against the seed's, step by step (when both were read). */
  againstSeed?: StepsAgainstSeed;
  /**
   * Main and branch: how many of its steps a build can reuse, counting the results of the caches
   * that build also imports (the seed, when builds import it; for a branch, main too).
   */
  reusableByBuilds?: number;
  error?: string;
}

export interface SeedVerdict {
  status: 'fresh' | 'stale' | 'missing' | 'incomplete' | 'unscheduled' | 'unknown-age' | 'error';
  /** `seed.schedule` */
  schedule: string;
  /** The longest gap between two runs of the schedule; absent when it never runs. */
  periodSeconds?: number;
  /** Older than this (two periods), the seed is stale. */
  staleAfterSeconds?: number;
  ageSeconds?: number;
  /** Whether ordinary builds import the seed, and how doctor knows. */
  imported: SeedImport;
}

export interface MainVerdict {
  status: 'healthy' | 'eroded' | 'missing' | 'error';
  /** Share of main's steps builds can reuse (reusableByBuilds / steps). */
  reusable?: number;
}

export type ProblemCode =
  | 'seed-missing'
  | 'seed-stale'
  | 'seed-incomplete'
  | 'seed-unscheduled'
  | 'seed-not-imported'
  | 'main-missing'
  | 'main-eroded';

export type Action = 'reseed' | 'regenerate' | 'enable-seed' | 'build-main';

export interface Problem {
  code: ProblemCode;
  /** What fixes it. */
  action: Action;
  /** The cause, in a few words, for the recommendation ("seed.web is 21 d old"). */
  cause: string;
}

export interface ImageReport {
  image: string;
  /**
   * For an image built natively per platform: the platform whose caches this report judges (each
   * platform has its own main, seed and branch cache tags, and its own report).
   */
  platform?: string;
  cacheRepository: string;
  /** Where branch caches live (read with `--branch`). */
  branchCacheRepository: string;
  status: Health;
  caches: CacheReport[];
  /** Absent when the seed is disabled. */
  seed?: SeedVerdict;
  main: MainVerdict;
  /** What makes this image degraded, each with the action that fixes it. */
  problems: Problem[];
  /** One sentence each, most important first. */
  findings: string[];
}

export interface Recommendation {
  action: Action;
  /** The images it is for. */
  images: string[];
  text: string;
}

export interface ReseedOutcome {
  status: 'triggered' | 'not-needed' | 'failed';
  url?: string;
  error?: string;
}

export interface DoctorReport {
  formatVersion: typeof DOCTOR_FORMAT_VERSION;
  registry: string;
  checkedAt: string;
  minRetained: number;
  seedEnabled: boolean;
  status: Health;
  images: ImageReport[];
  /** Most important first: reseed, then fixes to the files, then building main. */
  recommendations: Recommendation[];
  reseed?: ReseedOutcome;
}

/** Exit codes of `doctor` (docs/exit-codes.md): 0 healthy, 1 error, 2 degraded. */
export const DOCTOR_EXIT: Record<Health, number> = { healthy: 0, error: 1, degraded: 2 };

export async function doctor(dir: string, options: DoctorOptions = {}): Promise<DoctorReport> {
  const config = loadConfig(dir);
  const bakeText = options.bakeText ?? readBakeFile(dir, config);
  return doctorWithConfig(config, { ...options, ...(bakeText === undefined ? {} : { bakeText }) });
}

/** The bake file as the repository holds it, read like every generated file (RepoFiles). */
function readBakeFile(dir: string, config: ResolvedConfig): string | undefined {
  return new RepoFiles(dir).read(config.paths.bakeFile);
}

/** The same, for a configuration already loaded (the projen component, fleet runs, tests). */
export async function doctorWithConfig(
  config: ResolvedConfig,
  options: DoctorOptions = {},
): Promise<DoctorReport> {
  const minRetained = options.minRetained ?? DEFAULT_MIN_RETAINED;
  if (!(minRetained > 0 && minRetained <= 1)) {
    throw new CachedDeployError('USAGE', `--min-retained: ${minRetained} is not in (0, 1]`);
  }
  const now = options.now ?? new Date();
  if (Number.isNaN(now.getTime())) throw new CachedDeployError('USAGE', '--now: not a date');
  if (options.reseed) checkCanReseed(config, options);
  const periodMs = config.seed.enabled ? periodOf(config.seed.schedule) : undefined;

  // One bounded client for the whole run: its overall deadline covers every read and the reseed.
  const http = createHttpClient({
    fetch: options.fetch,
    totalMs: options.timeoutMs,
    requestMs: options.requestTimeoutMs,
  });
  const registry =
    options.registry ??
    (options.registryUrl !== undefined
      ? ociRegistry(options.registryUrl, { http })
      : await ecrRegistry({
          registryId: config.aws.accountId,
          region: config.aws.region,
          clientConfig: options.ecrClientConfig,
          http,
        }));
  const branchScope =
    options.branch === undefined || options.branch === config.mainBranch
      ? undefined
      : cacheScope({
          isMainBranch: false,
          branch: options.branch,
          tagSuffixes: cacheTagSuffixes(config.images),
        });

  const images: ImageReport[] = [];
  try {
    // One report per bake target: an image, or each platform of an image built per platform,
    // whose caches are apart (docs/multi-platform.md).
    for (const target of buildTargets(config)) {
      const { image } = target;
      // main.* and seed.* live in the cache repository; a branch's cache in the branch-cache one.
      const wanted: [CacheKind, string, string][] = [['main', MAIN_SCOPE, image.cacheRepository]];
      if (config.seed.enabled) wanted.push(['seed', SEED_SCOPE, image.cacheRepository]);
      if (branchScope) wanted.push(['branch', branchScope, image.branchCacheRepository]);
      const read = await Promise.all(
        wanted.map(([kind, scope, repository]) =>
          inspectCache(registry, repository, kind, cacheTag(scope, target.tagSuffix), now),
        ),
      );
      images.push(
        judgeImage({
          image: image.name,
          platform: target.platform,
          target: target.name,
          cacheRepository: image.cacheRepository,
          branchCacheRepository: image.branchCacheRepository,
          read,
          config,
          minRetained,
          branch: options.branch,
          now,
          periodMs,
          imported: seedImportOf(config, target, options.bakeText),
        }),
      );
    }
  } finally {
    // An adapter passed in belongs to the caller.
    if (!options.registry) registry.close?.();
  }

  const status = worst(images.map((image) => image.status));
  const recommendations = recommend(config, images);
  const report: DoctorReport = {
    formatVersion: DOCTOR_FORMAT_VERSION,
    registry: registry.description,
    checkedAt: now.toISOString(),
    minRetained,
    seedEnabled: config.seed.enabled,
    status,
    images,
    recommendations,
  };
  if (options.reseed) report.reseed = await reseed(config, options, recommendations, http);
  if (report.reseed?.status === 'failed') report.status = 'error';
  return report;
}

/** The schedule's period; a schedule that never runs has none. */
function periodOf(schedule: string): number | undefined {
  try {
    return schedulePeriodMs(schedule);
  } catch (error) {
    if (error instanceof CronError) {
      throw new CachedDeployError('CONFIG_INVALID', `seed.schedule: ${error.message}`);
    }
    throw error;
  }
}

function checkCanReseed(config: ResolvedConfig, options: DoctorOptions): void {
  if (config.ci === 'gitlab') {
    // Read now: a configuration without a project fails before any registry read.
    gitlabProject(config, { instanceUrl: options.gitlabUrl });
    if (!options.gitlabToken) {
      throw new CachedDeployError(
        'USAGE',
        `--reseed needs a GitLab token with the api scope: pass --gitlab-token or set ${GITLAB_TOKEN_ENV}`,
      );
    }
  } else if (!options.githubToken) {
    throw new CachedDeployError(
      'USAGE',
      '--reseed needs a GitHub token with "actions: write": pass --github-token or set GITHUB_TOKEN',
    );
  }
  if (!config.seed.enabled) {
    throw new CachedDeployError(
      'USAGE',
      '--reseed: the seed is disabled in cached-deploy.yml (seed.enabled: false), so the workflow has no seed job to run',
    );
  }
}

async function reseed(
  config: ResolvedConfig,
  options: DoctorOptions,
  recommendations: Recommendation[],
  http: HttpClient,
): Promise<ReseedOutcome> {
  if (!recommendations.some((each) => each.action === 'reseed')) return { status: 'not-needed' };
  const project = gitlabProject(config, { instanceUrl: options.gitlabUrl });
  if (project) {
    try {
      const { connectGitLab } = await import('../gitlab-api/client.js');
      const { triggerGitLabReseed } = await import('../gitlab-api/reseed.js');
      // Through the run's bounded client: its overall deadline covers the reseed too.
      const api = await connectGitLab({
        instanceUrl: project.instanceUrl,
        token: options.gitlabToken ?? '',
        policy: options.gitlabPolicy,
        http,
      });
      const pipeline = await triggerGitLabReseed(api, project);
      return { status: 'triggered', ...(pipeline.url ? { url: pipeline.url } : {}) };
    } catch (error) {
      if (!isCachedDeployError(error)) throw error;
      return { status: 'failed', error: `reseed: ${error.message}` };
    }
  }
  try {
    const { url } = await dispatchReseed({
      apiUrl: options.githubApiUrl ?? GITHUB_API_URL,
      repository: githubOf(config).repository,
      workflowFile: basename(config.workflow.file),
      ref: config.mainBranch,
      token: options.githubToken ?? '',
      http,
    });
    return { status: 'triggered', url };
  } catch (error) {
    if (!isCachedDeployError(error)) throw error;
    return { status: 'failed', error: error.message };
  }
}

/** A cache as read: the report, and its cacheconfig for matching steps. */
interface ReadCache {
  report: CacheReport;
  config?: CacheConfig;
}

async function inspectCache(
  registry: CacheRegistry,
  repository: string,
  kind: CacheKind,
  tag: string,
  now: Date,
): Promise<ReadCache> {
  try {
    const fetched = await registry.getManifest(repository, tag);
    if (!fetched) return { report: { kind, repository, tag, status: 'missing' } };
    const manifest = parseCacheManifest(fetched.text);
    const blob = await registry.getBlob(repository, manifest.config.digest);
    if (blob.byteLength !== manifest.config.size) {
      throw new CacheFormatError(
        `the cacheconfig is ${blob.byteLength} bytes, the manifest says ${manifest.config.size}`,
      );
    }
    const config = parseCacheConfig(blob);
    const stats = cacheStats(manifest, config);
    const ageSeconds =
      stats.newestResultAt === undefined
        ? undefined
        : Math.max(0, Math.round((now.getTime() - Date.parse(stats.newestResultAt)) / 1000));
    return {
      report: {
        kind,
        repository,
        tag,
        status: 'ok',
        digest: fetched.digest,
        ...(ageSeconds === undefined ? {} : { ageSeconds }),
        stats,
      },
      config,
    };
  } catch (error) {
    // Messages may quote what the registry sent: escaped here, whatever made them.
    if (error instanceof CacheFormatError) {
      return {
        report: {
          kind,
          repository,
          tag,
          status: 'error',
          error: `${repository}:${tag}: ${printable(error.message)}`,
        },
      };
    }
    if (isCachedDeployError(error)) {
      return {
        report: { kind, repository, tag, status: 'error', error: printable(error.message) },
      };
    }
    throw error;
  }
}

const percent = (fraction: number) => `${Math.round(fraction * 100)}%`;
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

interface JudgeInput {
  image: string;
  platform: string | undefined;
  /** The bake target whose caches these are. */
  target: string;
  cacheRepository: string;
  branchCacheRepository: string;
  read: ReadCache[];
  config: ResolvedConfig;
  minRetained: number;
  branch: string | undefined;
  now: Date;
  periodMs: number | undefined;
  imported: SeedImport;
}

function judgeImage(input: JudgeInput): ImageReport {
  const { config, read } = input;
  const find = (kind: CacheKind) => read.find((cache) => cache.report.kind === kind);
  const main = find('main');
  const seed = find('seed');
  const branch = find('branch');
  const problems: Problem[] = [];
  const findings: string[] = [];
  for (const cache of read.filter((each) => each.report.status === 'error')) {
    findings.push(`cannot read ${cache.report.tag}: ${cache.report.error}`);
  }

  // The seed, on its own.
  let seedVerdict: SeedVerdict | undefined;
  if (config.seed.enabled && seed) {
    seedVerdict = judgeSeed(input, seed, problems, findings);
  }
  const seedUsable =
    seedVerdict !== undefined &&
    seedVerdict.imported.imported !== false &&
    seed?.config !== undefined;

  // Main and branch, step by step against the seed.
  for (const cache of [main, branch]) {
    if (!cache?.config) continue;
    if (seed?.config) cache.report.againstSeed = compareWithSeed(seed.config, cache.config);
    const imports = [
      ...(seedUsable && seed?.config ? [seed.config] : []),
      ...(cache === branch && main?.config ? [main.config] : []),
    ];
    cache.report.reusableByBuilds = reusableWith(cache.config, imports);
  }

  const mainVerdict = judgeMain(input, main, seed, seedUsable, problems, findings);
  if (branch && branch.report.status !== 'error') {
    findings.push(describeBranch(input, branch, seedUsable));
  }

  const hasError = read.some((cache) => cache.report.status === 'error');
  const status: Health = hasError ? 'error' : problems.length > 0 ? 'degraded' : 'healthy';
  return {
    image: input.image,
    ...(input.platform === undefined ? {} : { platform: input.platform }),
    cacheRepository: input.cacheRepository,
    branchCacheRepository: input.branchCacheRepository,
    status,
    caches: read.map((cache) => cache.report),
    ...(seedVerdict ? { seed: seedVerdict } : {}),
    main: mainVerdict,
    problems,
    findings,
  };
}

function judgeSeed(
  input: JudgeInput,
  seed: ReadCache,
  problems: Problem[],
  findings: string[],
): SeedVerdict {
  const { config, periodMs, imported } = input;
  const { tag } = seed.report;
  const schedule = config.seed.schedule;
  const base = {
    schedule,
    ...(periodMs === undefined
      ? {}
      : { periodSeconds: periodMs / 1000, staleAfterSeconds: (2 * periodMs) / 1000 }),
    ...(seed.report.ageSeconds === undefined ? {} : { ageSeconds: seed.report.ageSeconds }),
    imported,
  };
  const verdict = (status: SeedVerdict['status']): SeedVerdict => ({ status, ...base });

  // Whether builds import it matters whatever state it is in.
  if (imported.imported === false && imported.reason === 'not listed') {
    problems.push({
      code: 'seed-not-imported',
      action: 'regenerate',
      cause: `${config.paths.bakeFile} does not import ${tag}`,
    });
    findings.push(
      `builds do not import ${tag}: the cache-from of target "${input.target}" in ${config.paths.bakeFile} does not list it (edited by hand, or written by an older version), so nothing restores what main loses; regenerate`,
    );
  } else if (imported.imported === 'unknown') {
    findings.push(
      `cannot tell whether builds import ${tag}: ${imported.reason}; judged as if they do`,
    );
  }

  if (seed.report.status === 'error') return verdict('error');
  if (seed.report.status === 'missing') {
    problems.push({ code: 'seed-missing', action: 'reseed', cause: `no ${tag}` });
    findings.push(
      `no seed cache (${tag}): the seed job has not run, or could not export it, so nothing guards main against erosion; reseed`,
    );
    return verdict('missing');
  }
  const stats = seed.report.stats as CacheStats;
  if (stats.reusableSteps < stats.steps || stats.steps === 0) {
    problems.push({
      code: 'seed-incomplete',
      action: 'reseed',
      cause: `${tag} lacks results for ${stats.steps - stats.reusableSteps} of its ${plural(stats.steps, 'step')}`,
    });
    findings.push(
      stats.reusableSteps === 0
        ? `${tag} keeps no reusable steps: it was not written by a cold build; reseed`
        : `${tag} keeps results for only ${stats.reusableSteps} of its ${plural(stats.steps, 'step')} (${percent(stats.health)}): it was not written by a cold build (a cold build keeps them all); reseed`,
    );
    return verdict('incomplete');
  }
  if (periodMs === undefined) {
    problems.push({
      code: 'seed-unscheduled',
      action: 'reseed',
      cause: `seed.schedule (${schedule}) never runs`,
    });
    findings.push(
      `seed.schedule (${schedule}) never runs, so nothing refreshes ${tag}: fix the schedule in cached-deploy.yml, and reseed by hand meanwhile`,
    );
    return verdict('unscheduled');
  }
  const age = seed.report.ageSeconds;
  const period = formatAge(Math.round(periodMs / 1000));
  const staleAfter = formatAge(Math.round((2 * periodMs) / 1000));
  if (age === undefined) {
    findings.push(`${tag} records no build times, so its age against its schedule is unknown`);
    return verdict('unknown-age');
  }
  // Milliseconds, so that "exactly two periods" is not stale and a moment more is.
  const ageMs = input.now.getTime() - Date.parse(stats.newestResultAt as string);
  if (ageMs > 2 * periodMs) {
    problems.push({
      code: 'seed-stale',
      action: 'reseed',
      cause: `${tag} is ${formatAge(age)} old, stale after ${staleAfter}`,
    });
    findings.push(
      `${tag} is stale: ${formatAge(age)} old, more than twice the ${period} between runs of its schedule (${schedule}), so the seed job has stopped refreshing it; reseed, and check the job's runs`,
    );
    return verdict('stale');
  }
  findings.push(
    `${tag} is a complete cold build, ${formatAge(age)} old; its schedule (${schedule}) runs at least every ${period}, so it is stale after ${staleAfter}`,
  );
  return verdict('fresh');
}

function judgeMain(
  input: JudgeInput,
  main: ReadCache | undefined,
  seed: ReadCache | undefined,
  seedUsable: boolean,
  problems: Problem[],
  findings: string[],
): MainVerdict {
  const { config, minRetained } = input;
  if (!main || main.report.status === 'error') return { status: 'error' };
  // Main is judged with the seed it falls back on: an unreadable seed leaves nothing to judge by.
  if (seed?.report.status === 'error') return { status: 'error' };
  const seedOk = seedUsable && seed?.report.status === 'ok';
  if (main.report.status === 'missing') {
    problems.push({ code: 'main-missing', action: 'build-main', cause: `no ${main.report.tag}` });
    findings.push(
      seedOk
        ? `no main cache (${main.report.tag}): builds of the main branch rely on the seed alone until one exports it`
        : `no main cache (${main.report.tag}): builds of the main branch start cold until one exports it`,
    );
    return { status: 'missing' };
  }
  const stats = main.report.stats as CacheStats;
  const reusable = main.report.reusableByBuilds ?? stats.reusableSteps;
  const share = stats.steps === 0 ? 1 : reusable / stats.steps;
  const against = main.report.againstSeed;
  const tag = main.report.tag;

  if (against && against.different > 0) {
    findings.push(
      `main differs from the seed in ${plural(against.different, 'step')}: an input changed since the seed was built (a source file, the dependencies), so main has ${plural(against.own, 'step')} of its own, ${against.ownReusable} with results`,
    );
  }
  if (share < minRetained) {
    const unrecoverable = stats.steps - reusable;
    const seedImported = config.seed.enabled && input.imported.imported !== false;
    const action: Action = !config.seed.enabled
      ? 'enable-seed'
      : !seedImported
        ? 'regenerate'
        : 'reseed';
    problems.push({
      code: 'main-eroded',
      action,
      cause: `builds of ${tag} can reuse ${reusable} of its ${stats.steps} steps`,
    });
    const eroded = `main has eroded: builds can reuse only ${reusable} of its ${plural(stats.steps, 'step')} (${percent(share)} < ${percent(minRetained)})`;
    findings.push(
      action !== 'reseed'
        ? `${eroded}, and nothing restores the other ${unrecoverable}: builds do not import a seed`
        : seed?.report.status === 'ok'
          ? `${eroded}: ${unrecoverable} of main's steps lost their results and the seed does not hold them (main changed since the seed was built); reseed`
          : `${eroded}: ${unrecoverable} of main's steps lost their results and there is no seed to take them from; reseed`,
    );
    return { status: 'eroded', reusable: share };
  }
  if (against && seedOk) {
    if (against.lost > 0) {
      findings.push(
        `main lacks results for ${against.lost} of the seed's ${against.seedReusable} reusable steps; every build imports the seed and reuses them from there, and the next build of main writes them back: nothing to do`,
      );
    } else if (against.different === 0) {
      findings.push(`${tag} keeps all ${against.seedReusable} of the seed's reusable steps`);
    }
  }
  if (!config.seed.enabled) {
    findings.push(
      'the seed is disabled (seed.enabled: false): main can erode on fresh runners and nothing restores it; enable the seed',
    );
  }
  findings.push(
    `builds of main can reuse ${reusable} of its ${plural(stats.steps, 'step')} (${percent(share)}, at least ${percent(minRetained)})`,
  );
  return { status: 'healthy', reusable: share };
}

function describeBranch(input: JudgeInput, branch: ReadCache, seedUsable: boolean): string {
  const name = input.branch;
  const { report } = branch;
  if (!report.stats) {
    return `no cache for branch ${name} (${report.repository}:${report.tag}) yet: its first build imports main${seedUsable ? ' and the seed' : ''}`;
  }
  const stats = report.stats;
  const against = report.againstSeed;
  const reusable = report.reusableByBuilds ?? stats.reusableSteps;
  const share = percent(stats.steps === 0 ? 1 : reusable / stats.steps);
  const builds = `its builds can reuse ${reusable} of its ${plural(stats.steps, 'step')} (${share})`;
  if (!against) return `branch ${name}: ${builds}`;
  const lost = against.lost > 0 ? `, lacks results for ${against.lost}` : '';
  const different =
    against.different > 0
      ? `, and ${against.different} are other steps here (an input changed upstream of them, so they were rebuilt, not lost); it has ${plural(against.own, 'step')} of its own, ${against.ownReusable} with results`
      : '';
  return `branch ${name}: of the seed's ${against.seedReusable} reusable steps it keeps ${against.kept}${lost}${different}; ${builds}`;
}

/** How reports and recommendations name an image: `api`, or `api linux/arm64` for one platform. */
export function reportLabel(report: Pick<ImageReport, 'image' | 'platform'>): string {
  return report.platform === undefined ? report.image : `${report.image} ${report.platform}`;
}

function worst(statuses: Health[]): Health {
  if (statuses.includes('error')) return 'error';
  if (statuses.includes('degraded')) return 'degraded';
  return 'healthy';
}

const ACTION_ORDER: Action[] = ['reseed', 'regenerate', 'enable-seed', 'build-main'];

/** How to run the seed job by hand, on the repository's CI. */
function reseedHow(config: ResolvedConfig, workflow: string, ref: string): string {
  const project = config.ci === 'gitlab' ? gitlabProject(config) : undefined;
  if (project) {
    return `\`create-cached-deploy doctor --reseed\` (token in ${GITLAB_TOKEN_ENV}), or \`${gitlabReseedCommand(project)}\``;
  }
  return `\`create-cached-deploy doctor --reseed\` (token in GITHUB_TOKEN), or \`gh workflow run ${workflow} --ref ${ref} -f reseed=true\``;
}

function recommend(config: ResolvedConfig, images: ImageReport[]): Recommendation[] {
  const workflow = basename(config.workflow.file);
  const ref = config.mainBranch;
  const out: Recommendation[] = [];
  for (const action of ACTION_ORDER) {
    const causes = images.flatMap((image) => {
      const own = image.problems.filter((problem) => problem.action === action);
      return own.length === 0
        ? []
        : [{ image: reportLabel(image), cause: own.map((problem) => problem.cause).join(', ') }];
    });
    if (causes.length === 0) continue;
    const names = causes.map((each) => each.image);
    const why = causes.map((each) => each.cause).join('; ');
    const text = {
      reseed: `reseed ${names.join(', ')} (${why}): run the seed job (a cold build that rewrites seed.<image>) with ${reseedHow(config, workflow, ref)}`,
      regenerate: `regenerate ${config.paths.bakeFile} (${why}): run \`create-cached-deploy generate\` and commit it, so every build imports the seed`,
      'enable-seed': `enable the seed for ${names.join(', ')} (${why}): set seed.enabled: true in cached-deploy.yml, run \`create-cached-deploy generate\` and commit`,
      'build-main': `build ${ref} (push to it, or re-run its last ${config.ci === 'gitlab' ? 'pipeline' : 'workflow run'}) to write the main cache of ${names.join(', ')}`,
    }[action];
    out.push({ action, images: names, text });
  }
  return out;
}
