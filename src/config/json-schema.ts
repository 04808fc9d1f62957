/**
 * JSON Schema (draft-07) fragments for the checkers of validate.ts. Every checker carries the
 * schema of what it accepts, so the schemas shipped in schemas/ for editors come from the same
 * definitions the validator runs, and a field added with the toolkit gets its schema for free.
 *
 * Draft-07 because it is the newest draft that the editors' YAML support (Red Hat's YAML
 * extension for VS Code, JetBrains IDEs) fully implements.
 */

/** A JSON Schema, or a fragment of one. */
export type JsonSchema = { readonly [keyword: string]: unknown };

export const JSON_SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

/**
 * A RegExp as a JSON Schema `pattern`: ECMA-262 syntax without flags (JSON Schema has none, so a
 * flagged pattern is a programming error, caught when the module loads). `\0` is written `\x00`,
 * which JetBrains' Java regex engine also reads.
 */
export function jsonPattern(pattern: RegExp): string {
  if (pattern.flags !== '') {
    throw new Error(
      `${pattern}: a JSON Schema pattern has no flags; spell them out in the pattern`,
    );
  }
  const source = pattern.source;
  let out = '';
  for (let i = 0; i < source.length; i++) {
    const char = source[i];
    if (char !== '\\') {
      out += char;
      continue;
    }
    const next = source[i + 1] ?? '';
    out += next === '0' && !/\d/.test(source[i + 2] ?? '') ? '\\x00' : `\\${next}`;
    i++;
  }
  return out;
}

/**
 * `schema`, or null. The validator reads an optional field set to null (`cache:` with nothing
 * after it) as absent, so the schema must accept null there too.
 */
export function nullable(schema: JsonSchema): JsonSchema {
  // `not` would also judge null (a pattern holds vacuously for a non-string, so `not` fails it).
  if ('not' in schema) return { anyOf: [schema, { type: 'null' }] };
  if (Array.isArray(schema.anyOf)) return { ...schema, anyOf: [...schema.anyOf, { type: 'null' }] };
  if ('const' in schema) {
    const { const: value, ...rest } = schema;
    return { ...rest, enum: [value, null] };
  }
  if (typeof schema.type === 'string') {
    return {
      ...schema,
      type: [schema.type, 'null'],
      ...(Array.isArray(schema.enum) ? { enum: [...schema.enum, null] } : {}),
    };
  }
  return { anyOf: [schema, { type: 'null' }] };
}

/**
 * The schema of a partial value that is merged onto `base` before it is validated (config/merge.ts:
 * mappings merge key by key, anything else replaces, a key set to null is removed): at every depth
 * where both are mappings, a key that `base` provides is no longer required, and any key, even an
 * unknown one, may be null (the merge removes it before the validator sees it).
 */
export function mergedOntoSchema(schema: JsonSchema, base: Record<string, unknown>): JsonSchema {
  const properties = (schema.properties ?? (schema.required ? {} : undefined)) as
    | Record<string, JsonSchema>
    | undefined;
  if (!properties) return schema;
  const required = ((schema.required as string[] | undefined) ?? []).filter(
    (key) => !Object.hasOwn(base, key),
  );
  const relaxed = Object.fromEntries(
    Object.entries(properties).map(([key, property]) => {
      const provided = base[key];
      const isMapping =
        provided !== null && typeof provided === 'object' && !Array.isArray(provided);
      return [
        key,
        isMapping ? mergedOntoSchema(property, provided as Record<string, unknown>) : property,
      ];
    }),
  );
  const { required: _, ...rest } = schema;
  // Conditions across fields (`if`/`then`/`else` under `allOf`) are relaxed the same way: what
  // `base` provides is no longer required by either branch.
  const relaxBranch = (branch: unknown) =>
    branch !== null && typeof branch === 'object'
      ? mergedOntoSchema(branch as JsonSchema, base)
      : branch;
  const allOf = Array.isArray(schema.allOf)
    ? (schema.allOf as JsonSchema[]).map((entry) => ({
        ...entry,
        // biome-ignore lint/suspicious/noThenProperty: JSON Schema's keyword, not a thenable
        ...('then' in entry ? { then: relaxBranch(entry.then) } : {}),
        ...('else' in entry ? { else: relaxBranch(entry.else) } : {}),
      }))
    : undefined;
  return {
    ...rest,
    ...(allOf ? { allOf } : {}),
    properties: relaxed,
    ...(required.length > 0 ? { required } : {}),
    ...(schema.additionalProperties === false ? { additionalProperties: { type: 'null' } } : {}),
  };
}

const DEFINITION = Symbol('definition');

/**
 * `schema`, written once under `definitions` and referenced by `$ref` wherever it is used: for a
 * large schema used several times (the cached-deploy.yml layers of fleet.yml).
 */
export function definition(name: string, schema: JsonSchema): JsonSchema {
  const reference = { $ref: `#/definitions/${name}` };
  Object.defineProperty(reference, DEFINITION, { value: { name, schema } });
  return reference;
}

/** A complete schema document for a file, around the schema of its top-level checker. */
export function jsonSchemaDocument(
  schema: JsonSchema,
  meta: { title: string; description: string },
): JsonSchema {
  const definitions: Record<string, unknown> = {};
  const hoist = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(hoist);
    if (value === null || typeof value !== 'object') return value;
    const named = (value as { [DEFINITION]?: { name: string; schema: JsonSchema } })[DEFINITION];
    if (named && !(named.name in definitions)) {
      definitions[named.name] = true; // taken, while its own schema is walked
      definitions[named.name] = hoist(named.schema);
    }
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, hoist(item)]));
  };
  const root = hoist(schema) as JsonSchema;
  return {
    $schema: JSON_SCHEMA_DRAFT,
    title: meta.title,
    description: meta.description,
    ...root,
    ...(Object.keys(definitions).length > 0 ? { definitions } : {}),
  };
}
