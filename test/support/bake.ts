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
 * - `--set <pattern>.<attr>=<value>` / `+=` overrides (what bake-action's `set` input passes).
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

const LIST_ATTRIBUTES = new Set([
  'cache-from',
  'cache-to',
  'platforms',
  'tags',
  'outputs',
  'secret',
  'ssh',
  'attest',
  'allow',
  'entitlements',
  'no-cache-filter',
]);

/**
 * Applies `--set` overrides (one per line, as bake-action's `set` input passes them):
 * `<target pattern>.<attribute>=<value>` replaces, `+=` appends to a list attribute. The pattern
 * matches target names with `*` and `?` globs. Returns new targets; the input is not changed.
 */
export function applyBakeSet(
  targets: Readonly<Record<string, EvaluatedTarget>>,
  overrides: readonly string[],
): Record<string, EvaluatedTarget> {
  const result: Record<string, EvaluatedTarget> = {};
  for (const [name, attributes] of Object.entries(targets)) {
    result[name] = structuredClone(attributes);
  }
  for (const line of overrides) {
    const match = /^([^.=]+)\.([A-Za-z0-9_-]+)(\+?=)(.*)$/.exec(line);
    if (!match) throw new Error(`unsupported --set ${JSON.stringify(line)}`);
    const [, pattern = '', attribute = '', operator, value = ''] = match;
    const glob = new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replaceAll('*', '.*')
        .replaceAll('?', '.')}$`,
    );
    const names = Object.keys(result).filter((name) => glob.test(name));
    if (names.length === 0) throw new Error(`--set ${line}: no target matches "${pattern}"`);
    for (const name of names) {
      const attributes = result[name] as EvaluatedTarget;
      if (LIST_ATTRIBUTES.has(attribute)) {
        const current = attributes[attribute];
        const existing = Array.isArray(current) ? current : [];
        attributes[attribute] = operator === '+=' ? [...existing, value] : [value];
      } else {
        if (operator === '+=') throw new Error(`--set ${line}: += on a scalar attribute`);
        attributes[attribute] = value;
      }
    }
  }
  return result;
}
