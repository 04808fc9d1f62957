/**
 * The JSON Schemas as shipped (schemas/*.schema.json, the committed files), compiled with ajv in
 * strict mode: what an editor checks a user's cached-deploy.yml or fleet.yml against. Tests use it
 * to prove that the schema and the validator agree on every example they hold.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { PROJECT_ROOT } from './temp-repo.js';

export type SchemaName = 'cached-deploy' | 'fleet';

const compiled = new Map<SchemaName, ValidateFunction>();

function validatorFor(name: SchemaName): ValidateFunction {
  let validate = compiled.get(name);
  if (!validate) {
    const schema = JSON.parse(
      readFileSync(join(PROJECT_ROOT, 'schemas', `${name}.schema.json`), 'utf8'),
    );
    // strict: an unknown keyword or a malformed schema is an error, not a warning. Union types
    // (`type: [string, null]`) are how optional fields accept null, as the validator does.
    validate = new Ajv({ strict: true, allowUnionTypes: true, allErrors: false }).compile(schema);
    compiled.set(name, validate);
  }
  return validate;
}

/** The schema's first complaint about `value` (a parsed YAML document), or undefined if valid. */
export function schemaError(name: SchemaName, value: unknown): string | undefined {
  const validate = validatorFor(name);
  if (validate(value)) return undefined;
  const first = validate.errors?.[0];
  return `${first?.instancePath || '/'} ${first?.message ?? 'is invalid'}`;
}
