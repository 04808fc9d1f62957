/**
 * Reading a BuildKit registry cache and judging its health (docs/erosion-and-seed.md). Pure: text
 * in, numbers and verdicts out; fetching is registry-client.ts's job.
 *
 * A cache artifact is an OCI image manifest (`image-manifest=true`) whose config, of media type
 * `application/vnd.buildkit.cacheconfig.v0`, is the cacheconfig: `layers[]` (blobs) and
 * `records[]` (build steps). A record keeps a *result* when it lists `layers` (or `chains`): only
 * then can a build reuse that step without running it. The older layout (an OCI index listing the
 * cacheconfig among its `manifests[]`) holds the same cacheconfig and is read the same way.
 *
 * Fields follow moby/buildkit `cache/remotecache/v1/spec.go`.
 */

import { quoteForMessage } from '../text.js';

export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.buildkit.cacheconfig.v0';

/**
 * Main is *eroded* when it keeps fewer than this fraction of the seed's records with results. On
 * the measured data (12 → 9 → 7 → 6 → 5 → 4) one fresh-runner re-export keeps 9/12 = 75 % and
 * passes; two already keep 7/12 = 58 % and fail, which is where a dependency change started to
 * rebuild everything.
 */
export const DEFAULT_MIN_RETAINED = 0.75;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The cache artifact's manifest, reduced to what the doctor reads. */
export interface CacheManifest {
  /** The cacheconfig blob. */
  config: Descriptor;
  /** The layer blobs (for the index layout: every entry but the cacheconfig). */
  layers: Descriptor[];
}

export interface CacheConfigLayer {
  blob: string;
  /** Index of the parent layer; absent (BuildKit omits 0) or -1 for none. */
  parent?: number;
}

export interface CacheResult {
  layer: number;
  createdAt?: string;
}

export interface CacheConfigRecord {
  digest?: string;
  layers?: CacheResult[];
  chains?: { layers: number[]; createdAt?: string }[];
  inputs?: unknown;
}

export interface CacheConfig {
  layers: CacheConfigLayer[];
  records: CacheConfigRecord[];
}

export interface CacheStats {
  /** Blobs listed in the cacheconfig. */
  layers: number;
  /** Sum of the manifest's layer sizes: what a build may pull. */
  bytes: number;
  /** Build steps the cache describes. */
  records: number;
  /** Steps a build can reuse without running them. */
  recordsWithResults: number;
  /** The newest `createdAt` of any result (ISO 8601), when one is recorded. */
  newestResultAt: string | undefined;
  /** recordsWithResults / records, in [0, 1]; see healthScore. */
  health: number;
}

/** The error every parse failure throws; the caller adds which cache it was. */
export class CacheFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheFormatError';
  }
}

const INDEX_MEDIA_TYPES: ReadonlySet<string> = new Set([
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
]);

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function parseJson(input: string | Uint8Array, what: string): unknown {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('utf8');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CacheFormatError(`${what} is not valid JSON: ${(error as Error).message}`);
  }
}

function descriptor(value: unknown, path: string): Descriptor {
  if (!isObject(value)) throw new CacheFormatError(`${path}: not a descriptor object`);
  const { mediaType, digest, size } = value;
  if (typeof mediaType !== 'string') throw new CacheFormatError(`${path}.mediaType: missing`);
  if (typeof digest !== 'string' || !/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(digest))
    throw new CacheFormatError(`${path}.digest: not a digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    throw new CacheFormatError(`${path}.size: not a byte count`);
  return { mediaType, digest, size };
}

/**
 * Reads a cache artifact's manifest (image-manifest layout or the older index layout). Throws
 * CacheFormatError when it is not a BuildKit cache, e.g. a deployable image pushed to a cache tag.
 */
export function parseCacheManifest(input: string | Uint8Array): CacheManifest {
  const doc = parseJson(input, 'the manifest');
  if (!isObject(doc)) throw new CacheFormatError('the manifest is not a JSON object');
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if ((mediaType && INDEX_MEDIA_TYPES.has(mediaType)) || Array.isArray(doc.manifests)) {
    if (!Array.isArray(doc.manifests)) throw new CacheFormatError('manifests: missing');
    const entries = doc.manifests.map((entry, i) => descriptor(entry, `manifests[${i}]`));
    const config = entries.find((entry) => entry.mediaType === CACHE_CONFIG_MEDIA_TYPE);
    if (!config) {
      throw new CacheFormatError(
        `an index without a ${CACHE_CONFIG_MEDIA_TYPE} entry: not a BuildKit cache`,
      );
    }
    return { config, layers: entries.filter((entry) => entry !== config) };
  }
  const config = descriptor(doc.config, 'config');
  if (config.mediaType !== CACHE_CONFIG_MEDIA_TYPE) {
    throw new CacheFormatError(
      `config.mediaType is ${quoteForMessage(config.mediaType)}, not ${CACHE_CONFIG_MEDIA_TYPE}: not a BuildKit cache`,
    );
  }
  const layers = doc.layers ?? [];
  if (!Array.isArray(layers)) throw new CacheFormatError('layers: not a list');
  return { config, layers: layers.map((layer, i) => descriptor(layer, `layers[${i}]`)) };
}

function layerIndex(value: unknown, path: string, layerCount: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value >= layerCount) {
    const shown = JSON.stringify(value) ?? String(value);
    throw new CacheFormatError(
      `${path}: ${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown} is not an index of layers[] (${layerCount} layers)`,
    );
  }
  return value;
}

function timestamp(value: unknown, path: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
    throw new CacheFormatError(`${path}: not a timestamp`);
  }
  return value;
}

/**
 * Parses and checks a cacheconfig blob: every result must point at a layer that exists, or the
 * cache could not be imported. Unknown fields are kept out of the result and otherwise ignored.
 */
export function parseCacheConfig(input: string | Uint8Array): CacheConfig {
  const doc = parseJson(input, 'the cacheconfig');
  if (!isObject(doc)) throw new CacheFormatError('the cacheconfig is not a JSON object');
  const rawLayers = doc.layers ?? [];
  const rawRecords = doc.records ?? [];
  if (!Array.isArray(rawLayers)) throw new CacheFormatError('layers: not a list');
  if (!Array.isArray(rawRecords)) throw new CacheFormatError('records: not a list');
  const layers = rawLayers.map((layer, i): CacheConfigLayer => {
    if (!isObject(layer) || typeof layer.blob !== 'string')
      throw new CacheFormatError(`layers[${i}].blob: missing`);
    return typeof layer.parent === 'number'
      ? { blob: layer.blob, parent: layer.parent }
      : { blob: layer.blob };
  });
  const records = rawRecords.map((record, i): CacheConfigRecord => {
    const path = `records[${i}]`;
    if (!isObject(record)) throw new CacheFormatError(`${path}: not an object`);
    const out: CacheConfigRecord = {};
    if (typeof record.digest === 'string') out.digest = record.digest;
    if (record.inputs !== undefined) out.inputs = record.inputs;
    if (record.layers !== undefined) {
      if (!Array.isArray(record.layers)) throw new CacheFormatError(`${path}.layers: not a list`);
      out.layers = record.layers.map((result, j) => {
        const at = `${path}.layers[${j}]`;
        if (!isObject(result)) throw new CacheFormatError(`${at}: not an object`);
        const createdAt = timestamp(result.createdAt, `${at}.createdAt`);
        const layer = layerIndex(result.layer, `${at}.layer`, layers.length);
        return createdAt === undefined ? { layer } : { layer, createdAt };
      });
    }
    if (record.chains !== undefined) {
      if (!Array.isArray(record.chains)) throw new CacheFormatError(`${path}.chains: not a list`);
      out.chains = record.chains.map((chain, j) => {
        const at = `${path}.chains[${j}]`;
        if (!isObject(chain) || !Array.isArray(chain.layers))
          throw new CacheFormatError(`${at}.layers: not a list`);
        const indexes = chain.layers.map((index, k) =>
          layerIndex(index, `${at}.layers[${k}]`, layers.length),
        );
        const createdAt = timestamp(chain.createdAt, `${at}.createdAt`);
        return createdAt === undefined ? { layers: indexes } : { layers: indexes, createdAt };
      });
    }
    return out;
  });
  return { layers, records };
}

/** A record keeps a result when a build can take its output from the cache instead of running it. */
export function hasResult(record: CacheConfigRecord): boolean {
  return (record.layers?.length ?? 0) > 0 || (record.chains?.length ?? 0) > 0;
}

/**
 * The health score: the fraction of records that keep a result. It falls by one step every time a
 * fresh runner re-exports an imported cache (docs/erosion-and-seed.md). A cold build does not reach
 * 1: records of sources (the build context, base image metadata) never carry layers; on the
 * measured service a fresh cold build scores 12/20 = 0.60. That is why the verdict compares main
 * with the seed (the same build, cold) rather than with 1.
 */
export function healthScore(stats: Pick<CacheStats, 'records' | 'recordsWithResults'>): number {
  return stats.records === 0 ? 0 : stats.recordsWithResults / stats.records;
}

export function cacheStats(manifest: CacheManifest, config: CacheConfig): CacheStats {
  let newest: string | undefined;
  let newestMs = Number.NEGATIVE_INFINITY;
  for (const record of config.records) {
    const times = [
      ...(record.layers ?? []).map((r) => r.createdAt),
      ...(record.chains ?? []).map((c) => c.createdAt),
    ];
    for (const at of times) {
      if (at === undefined) continue;
      const ms = Date.parse(at);
      if (ms > newestMs) {
        newestMs = ms;
        newest = at;
      }
    }
  }
  const records = config.records.length;
  const recordsWithResults = config.records.filter(hasResult).length;
  return {
    layers: config.layers.length,
    bytes: manifest.layers.reduce((sum, layer) => sum + layer.size, 0),
    records,
    recordsWithResults,
    newestResultAt: newest,
    health: healthScore({ records, recordsWithResults }),
  };
}

export type ErosionVerdict =
  /** main keeps at least minRetained of the seed's results */
  | { status: 'healthy'; retained: number }
  /** main keeps fewer: a reseed (cold build) restores it */
  | { status: 'eroded'; retained: number }
  /** no main cache: every build of main starts cold */
  | { status: 'main-missing' }
  /** no seed: nothing guards main against erosion, and nothing to compare it with */
  | { status: 'seed-missing' }
  /** the seed itself keeps no results: it was not written by a cold build */
  | { status: 'seed-empty' };

/**
 * The erosion rule: main is degraded when it is missing, or when it keeps fewer than
 * `minRetained` (default 75 %) of the seed's records with results. A missing or empty seed is
 * degraded too: the periodic cold build that writes it has not run.
 */
export function erosionVerdict(
  main: Pick<CacheStats, 'recordsWithResults'> | undefined,
  seed: Pick<CacheStats, 'recordsWithResults'> | undefined,
  minRetained = DEFAULT_MIN_RETAINED,
): ErosionVerdict {
  if (!main) return { status: 'main-missing' };
  if (!seed) return { status: 'seed-missing' };
  if (seed.recordsWithResults === 0) return { status: 'seed-empty' };
  const retained = main.recordsWithResults / seed.recordsWithResults;
  return { status: retained < minRetained ? 'eroded' : 'healthy', retained };
}
