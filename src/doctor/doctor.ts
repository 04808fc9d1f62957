/**
 * `doctor`: reads every image's main, seed and (optionally) branch cache from the registry,
 * measures them (cacheconfig.ts), says whether main has eroded against the seed
 * (docs/erosion-and-seed.md), and recommends, or triggers, a reseed. The report is data; format.ts
 * prints it.
 */
import { basename } from 'node:path';
import { loadConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError, isCachedDeployError } from '../errors.js';
import { cacheScope, cacheTag, MAIN_SCOPE, SEED_SCOPE } from '../model/cache-tags.js';
import { createHttpClient, type HttpClient } from '../net/bounded-fetch.js';
import { printable } from '../text.js';
import {
  CacheFormatError,
  type CacheStats,
  cacheStats,
  DEFAULT_MIN_RETAINED,
  type ErosionVerdict,
  erosionVerdict,
  parseCacheConfig,
  parseCacheManifest,
} from './cacheconfig.js';
import { DEFAULT_GITHUB_API_URL, dispatchReseed } from './github.js';
import { type CacheRegistry, ecrRegistry, ociRegistry } from './registry-client.js';

export const DOCTOR_FORMAT_VERSION = 1;

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
  /** The erosion threshold, in (0, 1]. Default DEFAULT_MIN_RETAINED (0.75). */
  minRetained?: number;
  /** Trigger a reseed through workflow_dispatch when one is recommended. Needs githubToken. */
  reseed?: boolean;
  githubToken?: string;
  /** Default https://api.github.com */
  githubApiUrl?: string;
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
  tag: string;
  status: 'ok' | 'missing' | 'error';
  digest?: string;
  /** Seconds since the newest result the cache holds was created. */
  ageSeconds?: number;
  stats?: CacheStats;
  /** recordsWithResults as a fraction of the seed's (main and branch, when both were read). */
  retained?: number;
  error?: string;
}

export interface ImageReport {
  image: string;
  cacheRepository: string;
  status: Health;
  caches: CacheReport[];
  /** Main against the seed; absent when either could not be read or the seed is disabled. */
  erosion?: ErosionVerdict;
  /** One sentence each, most important first. */
  findings: string[];
}

export interface Recommendation {
  action: 'reseed' | 'build-main';
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
  recommendation?: Recommendation;
  reseed?: ReseedOutcome;
}

/** Exit codes of `doctor` (docs/exit-codes.md): 0 healthy, 1 error, 2 degraded. */
export const DOCTOR_EXIT: Record<Health, number> = { healthy: 0, error: 1, degraded: 2 };

export async function doctor(dir: string, options: DoctorOptions = {}): Promise<DoctorReport> {
  return doctorWithConfig(loadConfig(dir), options);
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
  const imageNames = config.images.map((image) => image.name);
  const branchScope =
    options.branch === undefined || options.branch === config.github.mainBranch
      ? undefined
      : cacheScope({ isMainBranch: false, branch: options.branch, imageNames });

  const images: ImageReport[] = [];
  try {
    for (const image of config.images) {
      const wanted: [CacheKind, string][] = [['main', MAIN_SCOPE]];
      if (config.seed.enabled) wanted.push(['seed', SEED_SCOPE]);
      if (branchScope) wanted.push(['branch', branchScope]);
      const caches = await Promise.all(
        wanted.map(([kind, scope]) =>
          inspectCache(registry, image.cacheRepository, kind, cacheTag(scope, image.name), now),
        ),
      );
      images.push(
        judgeImage(image.name, image.cacheRepository, caches, config, minRetained, options.branch),
      );
    }
  } finally {
    // An adapter passed in belongs to the caller.
    if (!options.registry) registry.close?.();
  }

  const status = worst(images.map((image) => image.status));
  const recommendation = recommend(config, images);
  const report: DoctorReport = {
    formatVersion: DOCTOR_FORMAT_VERSION,
    registry: registry.description,
    checkedAt: now.toISOString(),
    minRetained,
    seedEnabled: config.seed.enabled,
    status,
    images,
    ...(recommendation ? { recommendation } : {}),
  };
  if (options.reseed) report.reseed = await reseed(config, options, recommendation, http);
  if (report.reseed?.status === 'failed') report.status = 'error';
  return report;
}

function checkCanReseed(config: ResolvedConfig, options: DoctorOptions): void {
  if (!options.githubToken) {
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
  recommendation: Recommendation | undefined,
  http: HttpClient,
): Promise<ReseedOutcome> {
  if (recommendation?.action !== 'reseed') return { status: 'not-needed' };
  try {
    const { url } = await dispatchReseed({
      apiUrl: options.githubApiUrl ?? DEFAULT_GITHUB_API_URL,
      repository: config.github.repository,
      workflowFile: basename(config.workflow.file),
      ref: config.github.mainBranch,
      token: options.githubToken ?? '',
      http,
    });
    return { status: 'triggered', url };
  } catch (error) {
    if (!isCachedDeployError(error)) throw error;
    return { status: 'failed', error: error.message };
  }
}

async function inspectCache(
  registry: CacheRegistry,
  repository: string,
  kind: CacheKind,
  tag: string,
  now: Date,
): Promise<CacheReport> {
  try {
    const fetched = await registry.getManifest(repository, tag);
    if (!fetched) return { kind, tag, status: 'missing' };
    const manifest = parseCacheManifest(fetched.text);
    const blob = await registry.getBlob(repository, manifest.config.digest);
    if (blob.byteLength !== manifest.config.size) {
      throw new CacheFormatError(
        `the cacheconfig is ${blob.byteLength} bytes, the manifest says ${manifest.config.size}`,
      );
    }
    const stats = cacheStats(manifest, parseCacheConfig(blob));
    const ageSeconds =
      stats.newestResultAt === undefined
        ? undefined
        : Math.max(0, Math.round((now.getTime() - Date.parse(stats.newestResultAt)) / 1000));
    return {
      kind,
      tag,
      status: 'ok',
      digest: fetched.digest,
      ...(ageSeconds === undefined ? {} : { ageSeconds }),
      stats,
    };
  } catch (error) {
    // Messages may quote what the registry sent: escaped here, whatever made them.
    if (error instanceof CacheFormatError) {
      return {
        kind,
        tag,
        status: 'error',
        error: `${repository}:${tag}: ${printable(error.message)}`,
      };
    }
    if (isCachedDeployError(error)) {
      return { kind, tag, status: 'error', error: printable(error.message) };
    }
    throw error;
  }
}

const percent = (fraction: number) => `${Math.round(fraction * 100)}%`;

function judgeImage(
  image: string,
  cacheRepository: string,
  caches: CacheReport[],
  config: ResolvedConfig,
  minRetained: number,
  branch: string | undefined,
): ImageReport {
  const find = (kind: CacheKind) => caches.find((cache) => cache.kind === kind);
  const main = find('main');
  const seed = find('seed');
  const branchCache = find('branch');
  const findings: string[] = [];
  const errors = caches.filter((cache) => cache.status === 'error');
  for (const cache of errors) findings.push(`cannot read ${cache.tag}: ${cache.error}`);

  const seedStats = seed?.stats;
  for (const cache of [main, branchCache]) {
    if (cache?.stats && seedStats && seedStats.recordsWithResults > 0) {
      cache.retained = cache.stats.recordsWithResults / seedStats.recordsWithResults;
    }
  }

  let erosion: ErosionVerdict | undefined;
  let degraded = false;
  if (main && main.status !== 'error' && (!config.seed.enabled || seed?.status !== 'error')) {
    if (config.seed.enabled) {
      erosion = erosionVerdict(main.stats, seed?.stats, minRetained);
      degraded = erosion.status !== 'healthy';
      findings.push(describeErosion(erosion, main, seed, minRetained));
      // The verdict names main first; a bad seed beside a missing main is a finding of its own.
      const seedProblem = erosion.status === 'main-missing' ? badSeed(seed) : undefined;
      if (seedProblem)
        findings.push(describeErosion({ status: seedProblem }, main, seed, minRetained));
    } else if (main.status === 'missing') {
      degraded = true;
      findings.push(
        `no main cache (${main.tag}): every build of ${config.github.mainBranch} starts cold until one exports it`,
      );
    } else {
      findings.push(
        'the seed is disabled (seed.enabled: false): main can erode on fresh runners and nothing restores it; enable the seed',
      );
    }
  }
  if (branchCache && branchCache.status === 'missing') {
    findings.push(
      `no cache for branch ${branch} (${branchCache.tag}) yet: its first build imports main${config.seed.enabled ? ' and the seed' : ''}`,
    );
  } else if (branchCache?.stats && branchCache.retained !== undefined) {
    findings.push(
      `branch ${branch} keeps ${branchCache.stats.recordsWithResults} of the seed's ${seedStats?.recordsWithResults} reusable steps (${percent(branchCache.retained)})`,
    );
  }
  const status: Health = errors.length > 0 ? 'error' : degraded ? 'degraded' : 'healthy';
  return {
    image,
    cacheRepository,
    status,
    caches,
    ...(erosion ? { erosion } : {}),
    findings,
  };
}

function describeErosion(
  erosion: ErosionVerdict,
  main: CacheReport,
  seed: CacheReport | undefined,
  minRetained: number,
): string {
  const kept = main.stats?.recordsWithResults;
  const seeded = seed?.stats?.recordsWithResults;
  switch (erosion.status) {
    case 'main-missing':
      return badSeed(seed)
        ? `no main cache (${main.tag}): builds of the main branch start cold until one exports it`
        : `no main cache (${main.tag}): builds of the main branch rely on the seed alone until one exports it`;
    case 'seed-missing':
      return `no seed cache (${seed?.tag}): nothing guards main against erosion, and its health cannot be measured; reseed`;
    case 'seed-empty':
      return `the seed cache (${seed?.tag}) keeps no reusable steps: it was not written by a cold build; reseed`;
    case 'eroded':
      return `main has eroded: it keeps ${kept} of the seed's ${seeded} reusable steps (${percent(erosion.retained)} < ${percent(minRetained)}); builds that miss the seed rebuild what main lost`;
    case 'healthy':
      return `main keeps ${kept} of the seed's ${seeded} reusable steps (${percent(erosion.retained)}, at least ${percent(minRetained)})`;
  }
}

/** What is wrong with a seed that was read (missing, or keeping no results); undefined if nothing. */
function badSeed(seed: CacheReport | undefined): 'seed-missing' | 'seed-empty' | undefined {
  if (seed?.status === 'missing') return 'seed-missing';
  if (seed?.stats && seed.stats.recordsWithResults === 0) return 'seed-empty';
  return undefined;
}

function worst(statuses: Health[]): Health {
  if (statuses.includes('error')) return 'error';
  if (statuses.includes('degraded')) return 'degraded';
  return 'healthy';
}

function recommend(config: ResolvedConfig, images: ImageReport[]): Recommendation | undefined {
  // A missing main does not make a missing or empty seed any less in need of its cold build.
  const needsSeed = images.filter(
    (image) =>
      ['eroded', 'seed-missing', 'seed-empty'].includes(image.erosion?.status ?? '') ||
      (image.erosion?.status === 'main-missing' &&
        badSeed(image.caches.find((cache) => cache.kind === 'seed')) !== undefined),
  );
  const workflow = basename(config.workflow.file);
  const ref = config.github.mainBranch;
  if (needsSeed.length > 0) {
    return {
      action: 'reseed',
      text:
        `reseed ${needsSeed.map((image) => image.image).join(', ')}: run the seed job (a cold build that rewrites seed.<image>) with ` +
        `\`create-cached-deploy doctor --reseed\` (token in GITHUB_TOKEN), or \`gh workflow run ${workflow} --ref ${ref} -f reseed=true\``,
    };
  }
  const noMain = images.filter(
    (image) =>
      image.erosion?.status === 'main-missing' ||
      (!config.seed.enabled &&
        image.caches.some((cache) => cache.kind === 'main' && cache.status === 'missing')),
  );
  if (noMain.length > 0) {
    return {
      action: 'build-main',
      text: `build ${ref} (push to it, or re-run its last workflow run) to write the main cache of ${noMain.map((image) => image.image).join(', ')}`,
    };
  }
  return undefined;
}
