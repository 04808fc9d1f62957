import { CachedDeployError } from '../errors.js';
import { printable, quoteForMessage } from '../text.js';
import { type JsonSchema, jsonPattern, nullable } from './json-schema.js';

/**
 * A tiny schema toolkit: each checker takes an unknown value and the field path it came from, and
 * returns the typed value or throws one CONFIG_INVALID error naming the path and what is allowed.
 * Hand-rolled rather than a schema library so `generate` stays fast to start and the messages stay
 * ours ("images[1].target: ...").
 *
 * Each checker also carries the JSON Schema of what it accepts (`jsonSchema`), from which
 * schemas/*.schema.json are generated for editors. A checker written by hand declares its own
 * with `checker(check, jsonSchema)`; what JSON Schema cannot express (checks across fields or
 * against the repository) stays the validator's alone, and the schema's description says so.
 */
export interface Checker<T> {
  (value: unknown, path: string, source: string): T;
  readonly jsonSchema: JsonSchema;
}

export function checker<T>(
  check: (value: unknown, path: string, source: string) => T,
  jsonSchema: JsonSchema,
): Checker<T> {
  return Object.assign(check, { jsonSchema });
}

export function fail(source: string, path: string, message: string): never {
  throw new CachedDeployError(
    'CONFIG_INVALID',
    `${path ? `${source}: ${path}` : source}: ${message}`,
  );
}

/** A value as an error shows it: its kind, and for a scalar, the value quoted and cut short. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `string ${quoteForMessage(value)}`;
  return `${typeof value} ${printable(String(value)).slice(0, 40)}`;
}

export function string(
  options: { pattern?: RegExp; hint?: string; maxLength?: number } = {},
): Checker<string> {
  const jsonSchema: JsonSchema = {
    type: 'string',
    minLength: 1,
    ...(options.maxLength !== undefined ? { maxLength: options.maxLength } : {}),
    ...(options.pattern ? { pattern: jsonPattern(options.pattern) } : {}),
    ...(options.hint ? { description: sentence(options.hint) } : {}),
  };
  return checker((value, path, source) => {
    if (typeof value !== 'string' || value.length === 0) {
      fail(source, path, `expected a non-empty string, got ${describe(value)}`);
    }
    // Characters are code points, as JSON Schema's maxLength counts them (an emoji is one).
    if (options.maxLength !== undefined && [...value].length > options.maxLength) {
      fail(
        source,
        path,
        `${quoteForMessage(value)} is longer than ${options.maxLength} characters`,
      );
    }
    if (options.pattern && !options.pattern.test(value)) {
      fail(
        source,
        path,
        `${quoteForMessage(value)} is not ${options.hint ?? String(options.pattern)}`,
      );
    }
    return value;
  }, jsonSchema);
}

/** "a 12-digit AWS account id" -> "A 12-digit AWS account id." */
function sentence(hint: string): string {
  return `${hint.charAt(0).toUpperCase()}${hint.slice(1)}.`;
}

export function oneOf<const T extends readonly string[]>(allowed: T): Checker<T[number]> {
  return checker(
    (value, path, source) => {
      if (typeof value !== 'string' || !allowed.includes(value)) {
        fail(source, path, `${describe(value)} is not allowed (allowed: ${allowed.join(', ')})`);
      }
      return value as T[number];
    },
    { type: 'string', enum: [...allowed] },
  );
}

export function integer(min: number, max: number): Checker<number> {
  return checker(
    (value, path, source) => {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
        fail(source, path, `${describe(value)} is not an integer from ${min} to ${max}`);
      }
      return value;
    },
    { type: 'integer', minimum: min, maximum: max },
  );
}

export function boolean(): Checker<boolean> {
  return checker(
    (value, path, source) => {
      if (typeof value !== 'boolean')
        fail(source, path, `expected true or false, got ${describe(value)}`);
      return value;
    },
    { type: 'boolean' },
  );
}

export function literal<const T extends string | number>(expected: T): Checker<T> {
  return checker(
    (value, path, source) => {
      if (value !== expected)
        fail(source, path, `${describe(value)} is not allowed (allowed: ${expected})`);
      return expected;
    },
    { const: expected },
  );
}

export function list<T>(
  item: Checker<T>,
  options: { min?: number; max?: number; unique?: boolean } = {},
): Checker<T[]> {
  const jsonSchema: JsonSchema = {
    type: 'array',
    items: item.jsonSchema,
    ...(options.min ? { minItems: options.min } : {}),
    ...(options.max !== undefined ? { maxItems: options.max } : {}),
    ...(options.unique ? { uniqueItems: true } : {}),
  };
  return checker((value, path, source) => {
    if (!Array.isArray(value)) fail(source, path, `expected a list, got ${describe(value)}`);
    const min = options.min ?? 0;
    if (value.length < min) fail(source, path, `needs at least ${min} item(s)`);
    if (options.max !== undefined && value.length > options.max) {
      fail(source, path, `allows at most ${options.max} items, got ${value.length}`);
    }
    const items = value.map((entry, index) => item(entry, `${path}[${index}]`, source));
    if (options.unique) {
      const seen = new Set<string>();
      items.forEach((entry, index) => {
        const key = JSON.stringify(entry);
        if (seen.has(key)) {
          fail(source, `${path}[${index}]`, `${printable(key.slice(0, 120))} is listed twice`);
        }
        seen.add(key);
      });
    }
    return items;
  }, jsonSchema);
}

type Shape = Record<string, Checker<unknown>>;
type Out<S extends Shape> = { [K in keyof S]: ReturnType<S[K]> };

/**
 * A mapping with a fixed set of keys. Unknown keys are errors (a typo must not silently fall back
 * to a default); keys in `optional` may be absent and come back as undefined.
 */
export function object<S extends Shape, O extends keyof S = never>(
  shape: S,
  optional: readonly O[] = [],
): Checker<Omit<Out<S>, O> & Partial<Pick<Out<S>, O>>> {
  const isOptional = (key: string) => (optional as readonly string[]).includes(key);
  const required = Object.keys(shape).filter((key) => !isOptional(key));
  const jsonSchema: JsonSchema = {
    type: 'object',
    properties: Object.fromEntries(
      Object.entries(shape).map(([key, check]) => [
        key,
        isOptional(key) ? nullable(check.jsonSchema) : check.jsonSchema,
      ]),
    ),
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
  return checker((value, path, source) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail(source, path, `expected a mapping, got ${describe(value)}`);
    }
    const input = value as Record<string, unknown>;
    const allowed = Object.keys(shape);
    for (const key of Object.keys(input)) {
      if (!allowed.includes(key)) {
        // The key comes from the file: quoted and cut short unless it looks like a field name.
        const shown = /^[\w-]{1,64}$/.test(key) ? key : quoteForMessage(key, 60);
        fail(source, join(path, shown), `unknown field (allowed: ${allowed.join(', ')})`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [key, check] of Object.entries(shape)) {
      const raw = input[key];
      if (raw === undefined || raw === null) {
        if (isOptional(key)) continue;
        fail(source, join(path, key), 'is required');
      }
      out[key] = check(raw, join(path, key), source);
    }
    return out as Omit<Out<S>, O> & Partial<Pick<Out<S>, O>>;
  }, jsonSchema);
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}
