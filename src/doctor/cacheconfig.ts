/**
 * Reading a BuildKit registry cache and judging its health (docs/doctor.md). Pure: text in, numbers
 * and verdicts out; fetching is registry-client.ts's job.
 *
 * A cache artifact is an OCI image manifest (`image-manifest=true`) whose config, of media type
 * `application/vnd.buildkit.cacheconfig.v0`, is the cacheconfig: `layers[]` (blobs) and
 * `records[]` (cache keys, linked into chains by their `inputs`). A record keeps a *result* when it
 * lists `layers` (or `chains`): only then can a build reuse that step without running it. The
 * older layout (an OCI index listing the cacheconfig among its `manifests[]`) holds the same
 * cacheconfig and is read the same way.
 *
 * A record is a *step* when it takes inputs or carries a result; the others are *sources* (the
 * base image, checksums of build-context files or of another stage's output), which never carry
 * results. A step is identified by its digest together with its inputs chain, not by its digest
 * alone: the digest is the operation's own cache key, so `RUN npm ci` after a changed
 * package-lock.json has the digest it had before, and only its inputs chain tells the two apart
 * (docs/doctor.md).
 *
 * Fields follow moby/buildkit `cache/remotecache/v1/types/spec.go`.
 */

import { CACHE_CONFIG_MEDIA_TYPE, isIndexMediaType } from '../media-types.js';
import { quoteForMessage } from '../text.js';

/**
 * Main is *eroded* when builds can reuse fewer than this fraction of its steps, counting a step
 * as reusable when main or, for builds that import it, the seed holds its result. On the measured
 * data (12 → 9 → 7 → 6 → 5 → 4 steps with results, without a seed to fall back on) one
 * fresh-runner re-export keeps 9/12 = 75 % and passes; two keep 7/12 = 58 % and fail, which is
 * where a dependency change started to rebuild everything.
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

/** One way to reach an input: the record it links to, seen through an optional selector. */
export interface CacheInput {
  /** A path selector (its digest) when the step reads only part of the input. */
  selector?: string;
  /** Index of the linked record in `records[]`. */
  link: number;
}

export interface CacheConfigRecord {
  /** The operation's cache key, without its inputs. */
  digest: string;
  layers?: CacheResult[];
  chains?: { layers: number[]; createdAt?: string }[];
  /** Per input of the operation, the records that can stand for it (any one matches). */
  inputs?: CacheInput[][];
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
  /** Records in the cacheconfig: steps and sources. */
  records: number;
  /** Records that keep a result (only steps do). */
  recordsWithResults: number;
  /** Records that are build steps: they take inputs or carry a result (sources never do). */
  steps: number;
  /** Steps a build can reuse without running them. */
  reusableSteps: number;
  /** The newest `createdAt` of any result (ISO 8601), when one is recorded. */
  newestResultAt: string | undefined;
  /** reusableSteps / steps, in [0, 1]: 1 right after a cold build; see healthScore. */
  health: number;
}

/** The error every parse failure throws; the caller adds which cache it was. */
export class CacheFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CacheFormatError';
  }
}

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
  if (isIndexMediaType(mediaType) || Array.isArray(doc.manifests)) {
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
    if (typeof record.digest !== 'string' || record.digest === '')
      throw new CacheFormatError(`${path}.digest: missing`);
    const out: CacheConfigRecord = { digest: record.digest };
    if (record.inputs !== undefined) {
      out.inputs = parseInputs(record.inputs, `${path}.inputs`, rawRecords.length);
    }
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
  inputsFirstOrder(records);
  return { layers, records };
}

function parseInputs(value: unknown, path: string, recordCount: number): CacheInput[][] {
  if (!Array.isArray(value)) throw new CacheFormatError(`${path}: not a list`);
  return value.map((alternatives, i) => {
    // BuildKit refuses an input with no record to stand for it ("invalid empty input").
    if (!Array.isArray(alternatives) || alternatives.length === 0)
      throw new CacheFormatError(`${path}[${i}]: not a non-empty list`);
    return alternatives.map((input, j): CacheInput => {
      const at = `${path}[${i}][${j}]`;
      if (!isObject(input)) throw new CacheFormatError(`${at}: not an object`);
      const link = input.link;
      if (typeof link !== 'number' || !Number.isInteger(link) || link < 0 || link >= recordCount) {
        throw new CacheFormatError(
          `${at}.link: ${JSON.stringify(link)} is not an index of records[] (${recordCount} records)`,
        );
      }
      if (input.selector !== undefined && typeof input.selector !== 'string')
        throw new CacheFormatError(`${at}.selector: not a string`);
      return input.selector ? { selector: input.selector, link } : { link };
    });
  });
}

/**
 * The records in an order where every record comes after the records it links to. Throws when
 * inputs loop (BuildKit refuses "invalid looping record" too). Iterative: a hostile file may
 * chain many thousands of records.
 */
export function inputsFirstOrder(records: readonly CacheConfigRecord[]): number[] {
  const order: number[] = [];
  const state = new Uint8Array(records.length); // 0 new, 1 on the current path, 2 done
  for (let start = 0; start < records.length; start++) {
    if (state[start] !== 0) continue;
    const stack: [number, number][] = [[start, 0]];
    state[start] = 1;
    while (stack.length > 0) {
      const top = stack[stack.length - 1] as [number, number];
      const [index, next] = top;
      const links = (records[index]?.inputs ?? []).flat().map((input) => input.link);
      if (next >= links.length) {
        state[index] = 2;
        order.push(index);
        stack.pop();
        continue;
      }
      top[1] = next + 1;
      const link = links[next] as number;
      if (state[link] === 1) {
        throw new CacheFormatError(`records[${link}]: its inputs loop back to itself`);
      }
      if (state[link] === 0) {
        state[link] = 1;
        stack.push([link, 0]);
      }
    }
  }
  return order;
}

/** A record keeps a result when a build can take its output from the cache instead of running it. */
export function hasResult(record: CacheConfigRecord): boolean {
  return (record.layers?.length ?? 0) > 0 || (record.chains?.length ?? 0) > 0;
}

/** A record is a build step when it takes inputs or carries a result; sources do neither. */
export function isStep(record: CacheConfigRecord): boolean {
  return (record.inputs?.length ?? 0) > 0 || hasResult(record);
}

/**
 * The health score: the fraction of a cache's steps that keep a result, 1 right after a cold
 * build. Sources (the base image, checksums of build-context files or of another stage's output)
 * never carry results and do not count: on the measured service a cold build holds 20 records,
 * 12 of them steps, all 12 reusable. It falls every time a fresh runner re-exports an imported
 * cache (12 → 9 → 7 → 6 → 5 → 4, docs/doctor.md).
 */
export function healthScore(stats: Pick<CacheStats, 'steps' | 'reusableSteps'>): number {
  return stats.steps === 0 ? 0 : stats.reusableSteps / stats.steps;
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
  const steps = config.records.filter(isStep);
  const reusableSteps = steps.filter(hasResult).length;
  return {
    layers: config.layers.length,
    bytes: manifest.layers.reduce((sum, layer) => sum + layer.size, 0),
    records: config.records.length,
    recordsWithResults: config.records.filter(hasResult).length,
    steps: steps.length,
    reusableSteps,
    newestResultAt: newest,
    health: healthScore({ steps: steps.length, reusableSteps }),
  };
}

/**
 * Which records of `cache` are the same build step as each record of `reference`: the same
 * digest, and for every input some linked record (through the same selector) that is itself the
 * same on both sides, down to the sources. This is how a build finds a step in an imported cache,
 * so a step whose inputs changed upstream is another step, whatever its digest.
 * Returns, per reference record index, the matching record indexes of `cache`.
 */
export function matchSteps(reference: CacheConfig, cache: CacheConfig): number[][] {
  const byDigest = new Map<string, number[]>();
  cache.records.forEach((record, index) => {
    const list = byDigest.get(record.digest);
    if (list) list.push(index);
    else byDigest.set(record.digest, [index]);
  });
  // Inputs first, so every linked record's matches are known when a record is matched.
  const matches: Set<number>[] = reference.records.map(() => new Set());
  for (const r of inputsFirstOrder(reference.records)) {
    const record = reference.records[r] as CacheConfigRecord;
    const inputs = record.inputs ?? [];
    for (const c of byDigest.get(record.digest) ?? []) {
      const other = cache.records[c]?.inputs ?? [];
      const same =
        inputs.length === other.length &&
        inputs.every((alternatives, i) =>
          alternatives.some((x) =>
            (other[i] ?? []).some(
              (y) => x.selector === y.selector && (matches[x.link]?.has(y.link) ?? false),
            ),
          ),
        );
      if (same) matches[r]?.add(c);
    }
  }
  return matches.map((set) => [...set].sort((a, b) => a - b));
}

/** A cache's steps against the seed's, matched step by step (matchSteps). */
export interface StepsAgainstSeed {
  /** The seed's reusable steps: the denominator of kept, lost and different. */
  seedReusable: number;
  /** Of those, steps this cache holds with their result. */
  kept: number;
  /** Steps this cache holds without their result (lost on fresh runners). */
  lost: number;
  /** Steps this cache does not hold at all: an input changed upstream, so here they are other steps. */
  different: number;
  /** This cache's steps that are not the seed's (changed inputs, or steps the seed never built). */
  own: number;
  /** Of those, the ones that keep a result. */
  ownReusable: number;
  /** The digests of the seed's reusable steps, by what became of them here. */
  digests: { kept: string[]; lost: string[]; different: string[] };
}

export function compareWithSeed(seed: CacheConfig, cache: CacheConfig): StepsAgainstSeed {
  const matches = matchSteps(seed, cache);
  const out: StepsAgainstSeed = {
    seedReusable: 0,
    kept: 0,
    lost: 0,
    different: 0,
    own: 0,
    ownReusable: 0,
    digests: { kept: [], lost: [], different: [] },
  };
  // Which of this cache's records are one of the seed's steps.
  const seedStep = new Set<number>();
  seed.records.forEach((record, r) => {
    const here = matches[r] ?? [];
    if (isStep(record)) for (const c of here) seedStep.add(c);
    if (!hasResult(record)) return;
    out.seedReusable++;
    const kind = here.some((c) => hasResult(cache.records[c] as CacheConfigRecord))
      ? 'kept'
      : here.length > 0
        ? 'lost'
        : 'different';
    out[kind]++;
    out.digests[kind].push(record.digest);
  });
  cache.records.forEach((record, c) => {
    if (!isStep(record)) return;
    if (!seedStep.has(c)) {
      out.own++;
      if (hasResult(record)) out.ownReusable++;
    }
  });
  return out;
}

/**
 * How many of `cache`'s steps a build that imports `cache` and every cache of `imported` can
 * reuse: the step's result is in `cache`, or the same step (matchSteps) keeps one in an import.
 */
export function reusableWith(cache: CacheConfig, imported: readonly CacheConfig[]): number {
  const elsewhere = imported.map((other) => ({ other, matches: matchSteps(cache, other) }));
  let reusable = 0;
  cache.records.forEach((record, r) => {
    if (!isStep(record)) return;
    const found =
      hasResult(record) ||
      elsewhere.some(({ other, matches }) =>
        (matches[r] ?? []).some((c) => hasResult(other.records[c] as CacheConfigRecord)),
      );
    if (found) reusable++;
  });
  return reusable;
}
