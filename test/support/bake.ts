import { parse } from '@cdktf/hcl2json';

/**
 * A small evaluator for buildx bake files, for tests: the HCL is parsed by the real HCL parser
 * (@cdktf/hcl2json, HashiCorp's hcl/v2 compiled to WebAssembly), and the parsed document is then
 * evaluated the way `docker buildx bake --print` would for the features our generated file uses:
 *
 * - `variable "X" { default = "…" }`: the value is the default, unless an environment variable of
 *   the same name is set (bake's `os.LookupEnv`: set-but-empty still overrides). A variable
 *   without a default is "" unless overridden. A default may itself interpolate other variables.
 * - `${X}` inside a string (with optional whitespace and `~` strip markers) is replaced by X's
 *   value; `$${` is a literal `${` and `%%{` a literal `%{`. An unknown variable is an error, as
 *   in bake.
 * - `group` blocks with `targets`, `target` blocks with attributes that are strings, numbers,
 *   booleans, lists and maps of those.
 * - `--set <pattern>.<key>=<value>` / `+=` overrides (what bake-action's `set` input passes), and
 *   the normalisation buildx gives every target: see applyBakeSet.
 *
 * Anything else (functions, `%{ }` directives, `inherits`, a target defined twice, expressions
 * other than a bare variable) throws, so a generated file that starts to depend on a feature this
 * evaluator does not model fails loudly instead of being evaluated wrongly.
 *
 * hcl2json gives every string attribute in HCL's JSON syntax, where a string is a template: the
 * escape sequences of the native syntax are already decoded, interpolations are normalised to
 * `${NAME}`, and `$${`/`%%{` are kept as the escapes they are. That template text is what is
 * evaluated here.
 */

export type BakeValue =
  | string
  | number
  | boolean
  | null
  | BakeValue[]
  | { [key: string]: BakeValue };

export interface ParsedBake {
  /** The parsed document, as hcl2json returns it. */
  json: Record<string, unknown>;
  /** Variable name → its default as an unevaluated template (undefined when there is none). */
  variables: Map<string, BakeValue | undefined>;
  groups: Map<string, Record<string, BakeValue>>;
  targets: Map<string, Record<string, BakeValue>>;
}

export interface EvaluatedBake {
  variables: Record<string, BakeValue>;
  groups: Record<string, { targets: string[] }>;
  targets: Record<string, EvaluatedTarget>;
}

export type EvaluatedTarget = Record<string, BakeValue> & {
  context?: string;
  dockerfile?: string;
  target?: string;
  platforms?: string[];
  tags?: string[];
  'cache-from'?: string[];
  'cache-to'?: string[];
  output?: string[];
  'no-cache'?: boolean;
};

export async function parseBake(hcl: string, filename = 'docker-bake.hcl'): Promise<ParsedBake> {
  const json = (await parse(filename, hcl)) as Record<string, unknown>;
  const known = new Set(['variable', 'group', 'target']);
  for (const key of Object.keys(json)) {
    if (!known.has(key)) throw new Error(`${filename}: unsupported top-level "${key}"`);
  }
  const variables = new Map<string, BakeValue | undefined>();
  for (const [name, body] of blocks(json.variable, 'variable', filename)) {
    for (const key of Object.keys(body)) {
      if (key !== 'default')
        throw new Error(`${filename}: variable "${name}": unsupported "${key}"`);
    }
    variables.set(name, body.default);
  }
  const groups = new Map(blocks(json.group, 'group', filename));
  const targets = new Map(blocks(json.target, 'target', filename));
  for (const [name, body] of targets) {
    if ('inherits' in body) throw new Error(`${filename}: target "${name}": inherits unsupported`);
  }
  return { json, variables, groups, targets };
}

function blocks(
  section: unknown,
  kind: string,
  filename: string,
): [string, Record<string, BakeValue>][] {
  if (section === undefined) return [];
  if (typeof section !== 'object' || section === null || Array.isArray(section)) {
    throw new Error(`${filename}: malformed ${kind} section`);
  }
  return Object.entries(section).map(([name, bodies]) => {
    if (!Array.isArray(bodies) || bodies.length !== 1) {
      throw new Error(`${filename}: ${kind} "${name}" must be defined exactly once`);
    }
    return [name, bodies[0] as Record<string, BakeValue>];
  });
}

/**
 * The effective variables, groups and per-target attributes for an environment (only the names
 * of declared variables are looked up in it, as bake does).
 */
export function evaluateBake(
  parsed: ParsedBake,
  env: Readonly<Record<string, string | undefined>> = {},
): EvaluatedBake {
  const values = new Map<string, string>();
  const resolving = new Set<string>();
  const lookup = (name: string): string => {
    const done = values.get(name);
    if (done !== undefined) return done;
    if (!parsed.variables.has(name)) throw new Error(`unknown variable "${name}"`);
    if (resolving.has(name)) throw new Error(`variable cycle through "${name}"`);
    resolving.add(name);
    let value: string;
    const override = env[name];
    if (override !== undefined) {
      // Environment values are taken literally, never as templates.
      value = override;
    } else {
      const fallback = parsed.variables.get(name);
      if (fallback === undefined) value = '';
      else if (typeof fallback === 'string') value = evaluateTemplate(fallback, lookup);
      else throw new Error(`variable "${name}": only string defaults are supported`);
    }
    resolving.delete(name);
    values.set(name, value);
    return value;
  };

  const variables: Record<string, BakeValue> = {};
  for (const name of parsed.variables.keys()) variables[name] = lookup(name);

  const groups: Record<string, { targets: string[] }> = {};
  for (const [name, body] of parsed.groups) {
    const targets = evaluateValue(body.targets ?? [], lookup);
    if (!Array.isArray(targets) || !targets.every((target) => typeof target === 'string')) {
      throw new Error(`group "${name}": targets must be a list of strings`);
    }
    for (const target of targets) {
      if (!parsed.targets.has(target) && !parsed.groups.has(target)) {
        throw new Error(`group "${name}": unknown target "${target}"`);
      }
    }
    groups[name] = { targets };
  }

  const targets: Record<string, EvaluatedTarget> = {};
  for (const [name, body] of parsed.targets) {
    const attributes: Record<string, BakeValue> = {};
    for (const [key, value] of Object.entries(body)) {
      attributes[key] = evaluateValue(value, lookup);
    }
    targets[name] = attributes as EvaluatedTarget;
  }
  return { variables, groups, targets };
}

export async function evaluateBakeFile(
  hcl: string,
  env: Readonly<Record<string, string | undefined>> = {},
): Promise<EvaluatedBake> {
  return evaluateBake(await parseBake(hcl), env);
}

function evaluateValue(value: BakeValue, lookup: (name: string) => string): BakeValue {
  if (typeof value === 'string') return evaluateTemplate(value, lookup);
  if (Array.isArray(value)) return value.map((item) => evaluateValue(item, lookup));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, evaluateValue(item, lookup)]),
    );
  }
  return value;
}

const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Evaluates an HCL string template whose only interpolations are bare variable names. */
export function evaluateTemplate(template: string, lookup: (name: string) => string): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    if (template.startsWith('$${', i)) {
      out += '${';
      i += 3;
    } else if (template.startsWith('%%{', i)) {
      out += '%{';
      i += 3;
    } else if (template.startsWith('${', i)) {
      const end = template.indexOf('}', i + 2);
      if (end < 0) throw new Error(`unterminated interpolation in ${JSON.stringify(template)}`);
      const inner = template
        .slice(i + 2, end)
        .replace(/^~/, '')
        .replace(/~$/, '')
        .trim();
      if (!VARIABLE_NAME.test(inner)) {
        throw new Error(`unsupported interpolation \${${inner}} in ${JSON.stringify(template)}`);
      }
      out += lookup(inner);
      i = end + 1;
    } else if (template.startsWith('%{', i)) {
      throw new Error(`template directives are not supported: ${JSON.stringify(template)}`);
    } else {
      out += template[i];
      i += 1;
    }
  }
  return out;
}

/**
 * `--set` overrides (one per line, as bake-action's `set` input passes them), applied as buildx
 * bake applies them (docker/buildx `bake/bake.go`: `newOverrides`, `Target.AddOverrides`,
 * `Target.normalize`; `util/buildflags`; docs/reference/buildx_bake.md, "--set"):
 *
 * - `<pattern>.<key>=<value>`; the pattern is an exact target name, else a `path.Match` glob
 *   (`*`, `?`); no matching target is an error.
 * - `--set` is repeatable: every line for the same target and key adds its value to one list,
 *   and that list *replaces* the attribute (`+=`: is merged into it). Whether the list replaces or
 *   merges is decided by the last of those lines (buildx keeps one `Append` flag per key).
 * - An empty value adds nothing, so `*.cache-from=` clears the list.
 * - `cache-from`, `cache-to` and `output` entries are parsed like the build flags: CSV
 *   `key=value` fields with a `type` (a `cache-*` value without `=` is a list of registry refs;
 *   an `output` value without `=` is a local destination). A merge (`+=`) appends, then drops
 *   duplicates, comparing type and attributes, not text.
 * - `+=` on a key that is not a list is taken as `=` (buildx does not refuse it).
 * - `push`/`no-cache` take booleans; `push=true` adds `type=image,push=true` unless an output
 *   that is not `docker` exists, `push=false` drops registry outputs (`setPushOverride`).
 * - Every target is then normalised, with or without overrides: duplicates leave `cache-from`,
 *   `cache-to`, `output` (buildx's `removeDupes`, which moves the last entry into a removed one's
 *   place), `tags` and `platforms`, and an attribute left empty is absent (as `--print` omits it).
 *
 * Keys buildx accepts but this evaluator does not model throw, as do keys buildx does not know
 * (`platforms`, `outputs`: the `--set` names are `platform` and `output`). Returns new targets.
 */
export function applyBakeSet(
  targets: Readonly<Record<string, EvaluatedTarget>>,
  overrides: readonly string[],
): Record<string, EvaluatedTarget> {
  const result: Record<string, EvaluatedTarget> = {};
  for (const [name, attributes] of Object.entries(targets)) {
    result[name] = structuredClone(attributes);
  }
  // target -> key -> the accumulated override, in the order keys first appear.
  const collected = new Map<string, Map<string, { values: string[]; append: boolean }>>();
  for (const line of overrides) {
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`--set ${line}: expected target.key=value`);
    const rawKey = line.slice(0, eq);
    const value = line.slice(eq + 1);
    const append = rawKey.endsWith('+');
    const keys = splitN(append ? rawKey.slice(0, -1) : rawKey, '.', 3);
    if (keys.length < 2)
      throw new Error(`--set ${line}: invalid override key, expected target.name`);
    const [pattern = '', ...rest] = keys;
    const key = rest.join('.');
    const kind = overrideKind(key, line);
    for (const name of expandTargets(Object.keys(result), pattern, line)) {
      const perTarget = collected.get(name) ?? new Map();
      collected.set(name, perTarget);
      const override = perTarget.get(key) ?? { values: [], append: false };
      if (kind === 'list') {
        override.append = append;
        override.values.push(value);
      } else {
        override.values = [value];
      }
      perTarget.set(key, override);
    }
  }
  for (const [name, perTarget] of collected) {
    const target = result[name] as EvaluatedTarget;
    if (perTarget.has('push') && perTarget.has('output')) {
      // buildx applies a target's overrides in Go map order: which one wins is not defined.
      throw new Error(`target "${name}": push and output overridden together`);
    }
    for (const [key, { values, append }] of perTarget) {
      const last = values[values.length - 1] ?? '';
      switch (key) {
        case 'cache-from':
        case 'cache-to':
        case 'output': {
          const parse = key === 'output' ? parseExportEntries : parseCacheEntries;
          const added = parse(values);
          const current = parse(stringList(target[key], key));
          setEntries(target, key, append ? removeDupes([...current, ...added]) : added);
          break;
        }
        case 'tags':
        case 'platform': {
          const attribute = key === 'tags' ? 'tags' : 'platforms';
          const current = stringList(target[attribute], attribute);
          target[attribute] = append ? [...current, ...values] : [...values];
          break;
        }
        case 'no-cache':
          target['no-cache'] = parseBool(last, key);
          break;
        case 'push':
          setEntries(target, 'output', pushOverride(target, parseBool(last, key)));
          break;
        default:
          // context, dockerfile, target, args.<name>: a plain value.
          if (key.startsWith('args.')) {
            const args = (target.args ?? {}) as Record<string, BakeValue>;
            args[key.slice('args.'.length)] = last;
            target.args = args;
          } else {
            target[key] = last;
          }
      }
    }
  }
  for (const target of Object.values(result)) normalizeTarget(target);
  return result;
}

/** Go's strings.SplitN. */
function splitN(text: string, separator: string, n: number): string[] {
  const parts = text.split(separator);
  return parts.length <= n ? parts : [...parts.slice(0, n - 1), parts.slice(n - 1).join(separator)];
}

/** The `--set` keys buildx collects as lists (newOverrides) vs single values; others throw. */
function overrideKind(key: string, line: string): 'list' | 'value' {
  const [head = '', sub] = splitN(key, '.', 2);
  if (['cache-from', 'cache-to', 'output', 'tags', 'platform'].includes(head)) return 'list';
  if (['context', 'dockerfile', 'target', 'no-cache', 'push'].includes(head)) return 'value';
  if (head === 'args' && sub) return 'value';
  const known = [
    'annotations',
    'attest',
    'args',
    'call',
    'contexts',
    'entitlements',
    'extra-hosts',
    'labels',
    'load',
    'network',
    'no-cache-filter',
    'policy',
    'pull',
    'resources',
    'secret',
    'secrets',
    'shm-size',
    'ssh',
    'ulimits',
  ];
  if (known.includes(head)) throw new Error(`--set ${line}: "${head}" is not modelled here`);
  throw new Error(`--set ${line}: unknown key: ${head}`);
}

function expandTargets(names: readonly string[], pattern: string, line: string): string[] {
  if (names.includes(pattern)) return [pattern];
  if (/[[\]\\]/.test(pattern)) throw new Error(`--set ${line}: pattern syntax not modelled`);
  const glob = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|]/g, '\\$&')
      .replaceAll('*', '[^/]*')
      .replaceAll('?', '[^/]')}$`,
  );
  const matching = names.filter((name) => glob.test(name));
  if (matching.length === 0) {
    throw new Error(`--set ${line}: could not find any target matching '${pattern}'`);
  }
  return matching;
}

function parseBool(text: string, key: string): boolean {
  // Go's strconv.ParseBool.
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  throw new Error(`invalid value ${text} for boolean key ${key}`);
}

function stringList(value: BakeValue | undefined, attribute: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new Error(`${attribute}: only a list of strings is modelled`);
  }
  return value as string[];
}

/** A parsed cache or export entry, with the text it came from. */
interface Entry {
  text: string;
  type: string;
  attrs: Map<string, string>;
}

/** CSV fields, as go-csvvalue splits them (double quotes group, `""` is a quote). */
function csvFields(text: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"' && field === '') quoted = true;
    else if (char === ',') {
      fields.push(field);
      field = '';
    } else field += char;
  }
  if (quoted) throw new Error(`unterminated quote in ${JSON.stringify(text)}`);
  fields.push(field);
  return fields;
}

function keyValueEntry(text: string, fields: string[], what: string): Entry {
  const attrs = new Map<string, string>();
  let type = '';
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq < 0) throw new Error(`invalid value ${field}`);
    const key = field.slice(0, eq).trim().toLowerCase();
    if (key === 'type') type = field.slice(eq + 1);
    else attrs.set(key, field.slice(eq + 1));
  }
  if (type === '') throw new Error(`type required for ${what} ${JSON.stringify(text)}`);
  return { text, type, attrs };
}

/** buildflags.ParseCacheEntry. */
function parseCacheEntries(values: readonly string[]): Entry[] {
  const entries: Entry[] = [];
  for (const value of values) {
    if (value === '') continue;
    if (!value.includes('=')) {
      // Ref-only: each CSV field is a registry ref.
      for (const ref of csvFields(value)) {
        entries.push({ text: ref, type: 'registry', attrs: new Map([['ref', ref]]) });
      }
      continue;
    }
    entries.push(keyValueEntry(value, csvFields(value), 'cache entry'));
  }
  return entries;
}

/** buildflags.ParseExports (`dest` is an attribute like the others here). */
function parseExportEntries(values: readonly string[]): Entry[] {
  const entries: Entry[] = [];
  for (const value of values) {
    if (value === '') continue;
    const fields = csvFields(value);
    if (fields.length === 1 && fields[0] === value && !value.startsWith('type=')) {
      entries.push({
        text: value,
        type: value === '-' ? 'tar' : 'local',
        attrs: new Map([['dest', value]]),
      });
      continue;
    }
    entries.push(keyValueEntry(value, fields, 'output'));
  }
  return entries;
}

const sameEntry = (a: Entry, b: Entry) =>
  a.type === b.type &&
  a.attrs.size === b.attrs.size &&
  [...a.attrs].every(([key, value]) => b.attrs.get(key) === value);

/** buildx's removeDupes, exactly: a duplicate's place is taken by the last entry. */
function removeDupes(list: Entry[]): Entry[] {
  const s = [...list];
  let length = s.length;
  for (let i = length - 2; i >= 0; i--) {
    for (let j = i + 1; j < length; j++) {
      if (sameEntry(s[i] as Entry, s[j] as Entry)) {
        s[j] = s[length - 1] as Entry;
        length--;
        break;
      }
    }
  }
  return s.slice(0, length);
}

function setEntries(target: EvaluatedTarget, attribute: string, entries: Entry[]): void {
  if (entries.length === 0) delete target[attribute];
  else target[attribute] = entries.map((entry) => entry.text);
}

/** buildx's setPushOverride. */
function pushOverride(target: EvaluatedTarget, push: boolean): Entry[] {
  const outputs = parseExportEntries(stringList(target.output, 'output'));
  const text = (entry: Entry) =>
    [`type=${entry.type}`, ...[...entry.attrs].map(([key, value]) => `${key}=${value}`)].join(',');
  if (!push) {
    return outputs
      .filter((entry) => entry.type !== 'registry')
      .map((entry) => {
        if (entry.type !== 'image') return entry;
        const attrs = new Map(entry.attrs).set('push', 'false');
        return { ...entry, attrs, text: text({ ...entry, attrs }) };
      });
  }
  const pushed = outputs.map((entry) => {
    if (entry.type !== 'image') return entry;
    const attrs = new Map(entry.attrs).set('push', 'true');
    return { ...entry, attrs, text: text({ ...entry, attrs }) };
  });
  if (outputs.every((entry) => entry.type === 'docker')) {
    pushed.push({
      text: 'type=image,push=true',
      type: 'image',
      attrs: new Map([['push', 'true']]),
    });
  }
  return pushed;
}

/** Target.normalize: what every resolved target goes through. */
function normalizeTarget(target: EvaluatedTarget): void {
  for (const attribute of ['cache-from', 'cache-to', 'output'] as const) {
    if (target[attribute] === undefined) continue;
    const parse = attribute === 'output' ? parseExportEntries : parseCacheEntries;
    setEntries(target, attribute, removeDupes(parse(stringList(target[attribute], attribute))));
  }
  for (const attribute of ['tags', 'platforms'] as const) {
    if (target[attribute] === undefined) continue;
    const unique = [...new Set(stringList(target[attribute], attribute).filter(Boolean))];
    if (unique.length === 0) delete target[attribute];
    else target[attribute] = unique;
  }
}
