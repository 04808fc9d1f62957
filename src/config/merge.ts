/**
 * How a fleet's settings combine with a repository's own cached-deploy.yml. Pure, and applied to
 * the raw (parsed, not yet validated) objects, so the schema still sees one plain configuration
 * and its errors still name the field path (`images[0].target: ...`).
 *
 * Layers, weakest first:
 *
 *   1. the fleet's `defaults`        what a repository gets when its own file says nothing
 *   2. the repository's cached-deploy.yml
 *   3. the fleet's `enforce`         the fleet wins over the repository
 *   4. the repository's `overrides`  in fleet.yml: the fleet owner's explicit, reviewed exception
 *                                    for this one repository (so it may relax `enforce`)
 *
 * Rules, for each pair of layers (`base`, then `over`):
 *
 *   - two mappings merge key by key, recursively;
 *   - anything else in `over` (a list, a string, a number, a boolean) replaces `base` whole:
 *     lists replace, never concatenate (an enforced `workflow.on.push: [main]` is exactly that
 *     list, and `images` are never mixed between layers);
 *   - a key that is absent in `over` keeps `base`'s value;
 *   - a key set to `null` in `over` removes it, so the built-in default applies again (for
 *     example `enforce: { workflow: { deploy: null } }` removes every deploy job).
 *
 * Inputs are never modified; the result shares no mapping with them.
 */

export type Layer = unknown;

export function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `over` merged onto `base` by the rules above. */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return copy(base);
  if (!isMapping(base) || !isMapping(over)) return copy(over);
  const entries: [string, unknown][] = [];
  for (const key of Object.keys(base)) {
    if (!Object.hasOwn(over, key)) entries.push([key, copy(base[key])]);
    else if (over[key] !== null) entries.push([key, deepMerge(base[key], over[key])]);
  }
  for (const key of Object.keys(over)) {
    if (!Object.hasOwn(base, key) && over[key] !== null) entries.push([key, copy(over[key])]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays a (rejected) field.
  return Object.fromEntries(entries);
}

/** The layers merged in order, weakest first; undefined layers are skipped. */
export function mergeLayers(...layers: Layer[]): unknown {
  let merged: unknown;
  for (const layer of layers) {
    if (layer === undefined) continue;
    merged = merged === undefined ? copy(layer) : deepMerge(merged, layer);
  }
  return merged;
}

export interface FleetLayers {
  defaults?: Layer;
  enforce?: Layer;
  overrides?: Layer;
}

/**
 * A repository's effective raw configuration under a fleet: `defaults` under its own file,
 * `enforce` and then its `overrides` over it. A missing or empty file (`repo` undefined or null)
 * is just an empty layer, so a repository can take everything from the fleet.
 */
export function mergeFleetConfig(repo: unknown, layers: FleetLayers): unknown {
  return mergeLayers(layers.defaults ?? {}, repo ?? {}, layers.enforce, layers.overrides);
}

function copy(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(copy);
  if (isMapping(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, copy(item)]));
  }
  return value;
}
