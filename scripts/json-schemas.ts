/**
 * The JSON Schemas shipped in schemas/ (for editors: completion and inline errors), generated from
 * the checkers the validator runs (src/config/validate.ts, src/config/schema.ts,
 * src/fleet/fleet-file.ts). `npx projen schemas` writes them; test/json-schema.test.ts fails when
 * the committed files differ from what the definitions produce.
 *
 *   tsx scripts/json-schemas.ts           write schemas/*.schema.json
 *   tsx scripts/json-schemas.ts --check   exit 1 when a committed file is out of date
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type JsonSchema, jsonSchemaDocument } from '../src/config/json-schema.js';
import { configSchema } from '../src/config/schema.js';
import { fleetSchema } from '../src/fleet/fleet-file.js';

export const REGENERATE_COMMAND = 'npx projen schemas';

const VALIDATOR_ONLY =
  'Generated from the definitions create-cached-deploy validates with; it checks everything a ' +
  'JSON Schema can express.';

/** Each shipped schema: its path in the package and its content. */
export function jsonSchemaFiles(): { path: string; schema: JsonSchema }[] {
  return [
    {
      path: 'schemas/cached-deploy.schema.json',
      schema: jsonSchemaDocument(configSchema.jsonSchema, {
        title: 'cached-deploy.yml',
        description: [
          "create-cached-deploy's settings for one repository: every generated file is made from them.",
          VALIDATOR_ONLY,
          'Only create-cached-deploy itself checks the rules that need the repository or several',
          'fields at once: that each Dockerfile and build context exists and each target is a stage',
          'of its Dockerfile, that no path leaves the repository through a symlink, that image names',
          'are unique, that no cache repository is also an image repository, and that a cron range',
          'does not end before it starts.',
        ].join(' '),
      }),
    },
    {
      path: 'schemas/fleet.schema.json',
      schema: jsonSchemaDocument(fleetSchema.jsonSchema, {
        title: 'fleet.yml',
        description: [
          'A fleet of repositories for `create-cached-deploy fleet`: what each repository gets',
          '(defaults), what the fleet decides (enforce), and the repositories.',
          VALIDATOR_ONLY,
          'Only create-cached-deploy itself checks that no repository is listed twice (by name,',
          'directory, or url and ref), and the cached-deploy.yml rules that its schema leaves to',
          'it, in defaults, enforce and overrides.',
        ].join(' '),
      }),
    },
  ];
}

/** The text of a schema file as committed: two-space JSON and a final newline. */
export function schemaText(schema: JsonSchema): string {
  return `${JSON.stringify(schema, null, 2)}\n`;
}

/** Paths of the committed files that differ from what the definitions produce. */
export function outdatedSchemaFiles(root: string): string[] {
  return jsonSchemaFiles().flatMap(({ path, schema }) => {
    let committed: string | undefined;
    try {
      committed = readFileSync(join(root, path), 'utf8');
    } catch {
      committed = undefined;
    }
    return committed === schemaText(schema) ? [] : [path];
  });
}

function main(): number {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  if (process.argv.includes('--check')) {
    const outdated = outdatedSchemaFiles(root);
    for (const path of outdated) console.error(`${path} is out of date: run ${REGENERATE_COMMAND}`);
    return outdated.length > 0 ? 1 : 0;
  }
  for (const { path, schema } of jsonSchemaFiles()) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), schemaText(schema));
    console.log(`wrote ${path}`);
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  process.exitCode = main();
}
