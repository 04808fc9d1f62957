/**
 * Derived BuildKit cache artifacts with known step sets, made deterministically from the real ones
 * in test/fixtures/buildkit/ (see its README). Run `npx tsx test/support/buildkit-fixtures.ts` to
 * write them; test/doctor.test.ts checks that the committed files are exactly what this derives.
 *
 * The real artifacts come from a multi-stage Node.js service. Its cacheconfig links 20 records
 * into chains (`inputs[][].link`); 12 are steps with results, 8 are sources that never carry one:
 * the base image (2 records), checksums of build-context files (4) and checksums of one stage's
 * output copied into another (2). A record's `digest` is its operation's own cache key; what it
 * was built from is its inputs chain. So when a branch changes package-lock.json, only the
 * checksum record of the copied package files changes: `COPY package*.json`, `RUN npm ci` and
 * every step after them keep their digests but hang off a different chain, and are different
 * steps with different results (layers).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES_DIR = join(
  fileURLToPath(new URL('.', import.meta.url)),
  '..',
  'fixtures',
  'buildkit',
);

interface Layer {
  blob: string;
  parent?: number;
}
interface Result {
  layer: number;
  createdAt: string;
}
interface Input {
  selector?: string;
  link: number;
}
interface CacheRecord {
  layers?: Result[];
  digest: string;
  inputs?: Input[][];
}
interface CacheConfig {
  layers: Layer[];
  records: CacheRecord[];
}
interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface Manifest {
  schemaVersion: number;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}
interface Artifact {
  config: CacheConfig;
  manifest: Manifest;
}

/** The checksum record of the build-context files `COPY package*.json` copies (no inputs). */
export const PACKAGE_FILES_CHECKSUM =
  'sha256:e6ced696ccc0f0b8f359a192159227043d57785ac0f62e595ca32ea118d30e74';
/** The checksum record of node_modules as the runtime stage copies it from the prune stage. */
export const NODE_MODULES_CHECKSUM =
  'sha256:18a78db7c8b60f642fb85526e95763e66a3ef9b628e409cfec66e146879a8639';

const sha256 = (text: string | Buffer) =>
  `sha256:${createHash('sha256').update(text).digest('hex')}`;

function readArtifact(stage: string): Artifact {
  const recorded = JSON.parse(
    readFileSync(join(FIXTURES_DIR, `${stage}.manifest.json`), 'utf8'),
  ) as { manifest: Manifest };
  const config = JSON.parse(
    readFileSync(join(FIXTURES_DIR, `${stage}.cacheconfig.json`), 'utf8'),
  ) as CacheConfig;
  return { config, manifest: recorded.manifest };
}

/** Index of the parent layer (BuildKit omits 0); -1 for none. */
const parentOf = (layer: Layer) => layer.parent ?? 0;

/** Every record whose inputs chain reaches one of `changed` (the changed records included). */
function downstreamOf(config: CacheConfig, changed: Set<number>): Set<number> {
  const affected = new Set(changed);
  let grew = true;
  while (grew) {
    grew = false;
    config.records.forEach((record, index) => {
      if (affected.has(index)) return;
      if ((record.inputs ?? []).flat().some((input) => affected.has(input.link))) {
        affected.add(index);
        grew = true;
      }
    });
  }
  return affected;
}

/**
 * BuildKit's normal form (cache/remotecache/v1/utils.go, sortConfig): layers sorted by blob,
 * records by digest (then inputs), every index remapped.
 */
function normalise(config: CacheConfig): CacheConfig {
  const layerOrder = config.layers
    .map((layer, index) => ({ layer, index }))
    .sort((a, b) => (a.layer.blob < b.layer.blob ? -1 : a.layer.blob > b.layer.blob ? 1 : 0));
  const newLayer = new Map(layerOrder.map(({ index }, position) => [index, position]));
  const recordKey = (record: CacheRecord) =>
    JSON.stringify([
      record.digest,
      (record.inputs ?? []).map((alternatives) =>
        alternatives.map((input) => [
          input.selector ?? '',
          config.records[input.link]?.digest ?? '',
        ]),
      ),
    ]);
  const recordOrder = config.records
    .map((record, index) => ({ record, index, key: recordKey(record) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const newRecord = new Map(recordOrder.map(({ index }, position) => [index, position]));
  return {
    layers: layerOrder.map(({ layer }) => {
      const parent = parentOf(layer);
      const mapped = parent === -1 ? -1 : (newLayer.get(parent) as number);
      return mapped === 0 ? { blob: layer.blob } : { blob: layer.blob, parent: mapped };
    }),
    records: recordOrder.map(({ record }) => {
      const out: CacheRecord = { digest: record.digest };
      if (record.layers) {
        out.layers = record.layers.map((result) => ({
          layer: newLayer.get(result.layer) as number,
          createdAt: result.createdAt,
        }));
      }
      if (record.inputs) {
        out.inputs = record.inputs.map((alternatives) =>
          alternatives
            .map((input) => ({ ...input, link: newRecord.get(input.link) as number }))
            .sort((a, b) => a.link - b.link),
        );
      }
      // Key order as BuildKit writes it: layers, digest, inputs.
      return {
        ...(out.layers ? { layers: out.layers } : {}),
        digest: out.digest,
        ...(out.inputs ? { inputs: out.inputs } : {}),
      };
    }),
  };
}

/** Keeps only the layers a result needs (its own and its parents'), as an export does. */
function dropUnusedLayers(artifact: Artifact): Artifact {
  const { config } = artifact;
  const needed = new Set<number>();
  for (const record of config.records) {
    for (const result of record.layers ?? []) {
      let layer: number = result.layer;
      while (layer !== -1 && !needed.has(layer)) {
        needed.add(layer);
        layer = parentOf(config.layers[layer] as Layer);
      }
    }
  }
  const kept = config.layers.map((_, index) => index).filter((index) => needed.has(index));
  const position = new Map(kept.map((index, newIndex) => [index, newIndex]));
  const layers = kept.map((index) => {
    const layer = config.layers[index] as Layer;
    const parent = parentOf(layer);
    const mapped = parent === -1 ? -1 : (position.get(parent) as number);
    return mapped === 0 ? { blob: layer.blob } : { blob: layer.blob, parent: mapped };
  });
  const records = config.records.map((record) =>
    record.layers
      ? {
          ...record,
          layers: record.layers.map((result) => ({
            ...result,
            layer: position.get(result.layer) as number,
          })),
        }
      : record,
  );
  const blobs = new Set(layers.map((layer) => layer.blob));
  return {
    config: { layers, records },
    manifest: {
      ...artifact.manifest,
      layers: artifact.manifest.layers.filter((layer) => blobs.has(layer.digest)),
    },
  };
}

/**
 * The branch that changed its dependencies, after its first build on a fresh runner (which
 * imported the seed): the two checksum records that depend on package files get new digests;
 * every step downstream of them gets new result layers, created a day after the seed's; the base
 * image, apt and WORKDIR steps keep the seed's results (the build pulled them to run `npm ci` on).
 */
function branchWithNewDependencies(seed: Artifact): Artifact {
  const config = structuredClone(seed.config);
  const changed = new Set<number>();
  config.records.forEach((record, index) => {
    if (record.digest === PACKAGE_FILES_CHECKSUM || record.digest === NODE_MODULES_CHECKSUM) {
      record.digest = sha256(`derived: new dependencies: ${record.digest}`);
      changed.add(index);
    }
  });
  if (changed.size !== 2) throw new Error('the seed no longer holds the two checksum records');
  const affected = downstreamOf(config, changed);
  // New layers for the affected results, chained to each other where the old ones were.
  const oldLayers = config.layers;
  const renewed = new Map<number, number>();
  const descriptors = new Map(seed.manifest.layers.map((layer) => [layer.digest, layer]));
  const newDescriptors: Descriptor[] = [];
  const renew = (index: number): number => {
    const known = renewed.get(index);
    if (known !== undefined) return known;
    const old = oldLayers[index] as Layer;
    const blob = sha256(`derived: new dependencies: ${old.blob}`);
    const at = config.layers.length;
    config.layers.push({ blob, parent: parentOf(old) });
    renewed.set(index, at);
    const descriptor = descriptors.get(old.blob) as Descriptor;
    newDescriptors.push({
      ...descriptor,
      digest: blob,
      annotations: {
        'buildkit/createdat': dayLater(descriptor.annotations?.['buildkit/createdat'] ?? ''),
        'containerd.io/uncompressed': sha256(`derived: uncompressed: ${blob}`),
      },
    });
    return at;
  };
  const affectedLayers = new Set<number>();
  for (const index of affected) {
    for (const result of config.records[index]?.layers ?? []) affectedLayers.add(result.layer);
  }
  for (const index of affected) {
    const record = config.records[index] as CacheRecord;
    record.layers = record.layers?.map((result) => ({
      layer: renew(result.layer),
      createdAt: dayLater(result.createdAt),
    }));
  }
  // A renewed layer's parent is the renewed parent when that one was renewed too.
  for (const [old, renewedIndex] of renewed) {
    const parent = parentOf(oldLayers[old] as Layer);
    const layer = config.layers[renewedIndex] as Layer;
    layer.parent = affectedLayers.has(parent) ? renew(parent) : parent;
  }
  const pruned = dropUnusedLayers({
    config,
    manifest: { ...seed.manifest, layers: [...seed.manifest.layers, ...newDescriptors] },
  });
  return pruned;
}

function dayLater(timestamp: string): string {
  const match = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?Z$/.exec(timestamp);
  if (!match) throw new Error(`unexpected timestamp ${timestamp}`);
  const shifted = new Date(Date.parse(`${match[1]}Z`) + 86_400_000).toISOString().slice(0, 19);
  return `${shifted}${match[2] ?? ''}Z`;
}

/**
 * Drops the results of every step that lost its result between the real seed and a real
 * fresh-runner re-export, matching records by digest (the steps shared with the seed) or, for the
 * steps that changed, by the digest they still share with the seed's step: erosion as measured,
 * applied to another cache.
 */
function erodeLike(artifact: Artifact, seed: Artifact, eroded: Artifact): Artifact {
  const lost = new Set(
    seed.config.records
      .filter((record) => record.layers)
      .map((record) => record.digest)
      .filter(
        (digest) =>
          !eroded.config.records.some((record) => record.digest === digest && record.layers),
      ),
  );
  const config = structuredClone(artifact.config);
  for (const record of config.records) {
    if (lost.has(record.digest)) delete record.layers;
  }
  return dropUnusedLayers({ config, manifest: artifact.manifest });
}

/** The files of an artifact, written as the real ones are. */
function files(name: string, artifact: Artifact): [string, string][] {
  const config = normalise(artifact.config);
  const configText = JSON.stringify(config);
  const byDigest = new Map(artifact.manifest.layers.map((layer) => [layer.digest, layer]));
  const manifest: Manifest = {
    ...artifact.manifest,
    config: {
      ...artifact.manifest.config,
      digest: sha256(configText),
      size: Buffer.byteLength(configText),
    },
    layers: config.layers.map((layer) => byDigest.get(layer.blob) as Descriptor),
  };
  if (manifest.layers.some((layer) => layer === undefined)) {
    throw new Error(`${name}: a layer has no descriptor`);
  }
  const recorded = { digest: sha256(JSON.stringify(manifest)), manifest };
  return [
    [`${name}.cacheconfig.json`, configText],
    [`${name}.manifest.json`, `${JSON.stringify(recorded, null, 1)}\n`],
  ];
}

/** Every derived file: name → content. */
export function deriveFixtures(): Map<string, string> {
  const seed = readArtifact('cache-seed');
  const reexport4 = readArtifact('cache-fresh-runner-reexport-4');
  const branch = branchWithNewDependencies(seed);
  return new Map([
    ...files('derived-branch-new-dependencies', branch),
    ...files('derived-main-new-dependencies-eroded', erodeLike(branch, seed, reexport4)),
  ]);
}

/**
 * The erosion step checked against the measurement: the real seed, eroded like re-export N by
 * erodeLike, in BuildKit's normal form, next to the real re-export N's cacheconfig.
 */
export function erosionCheck(stage: string): { derived: string; real: string } {
  const seed = readArtifact('cache-seed');
  const real = readArtifact(stage);
  return {
    derived: JSON.stringify(normalise(erodeLike(seed, seed, real).config)),
    real: readFileSync(join(FIXTURES_DIR, `${stage}.cacheconfig.json`), 'utf8'),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [name, content] of deriveFixtures()) {
    writeFileSync(join(FIXTURES_DIR, name), content);
    console.log(`wrote test/fixtures/buildkit/${name}`);
  }
}
