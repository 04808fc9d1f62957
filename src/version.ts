import { readFileSync } from 'node:fs';

/**
 * The generator's version, from package.json (one level up from both src/ and lib/). It is written
 * into every generated file's marker and the state file, so a fleet report can say which version
 * produced each repository's files.
 */
export const GENERATOR_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
