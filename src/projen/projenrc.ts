/**
 * `create-cached-deploy init --projen`: adds the CachedDeploy component to a projen project's
 * .projenrc.ts instead of writing the files (projen writes them on `npx projen`). The edit is
 * textual and deliberately narrow: one import after the last import, one statement before the
 * single `<project>.synth()` line. Anything else and it prints exactly what to add instead.
 * This module does not import projen: the CLI runs without it.
 */
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { CONFIG_FILE } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import { renderFiles } from '../render/render-files.js';
import { RepoFiles } from '../repo-files.js';
import { writeRepoFile } from '../write/write-files.js';
import { type CachedDeployOptions, resolveCachedDeployOptions } from './options.js';

export const PROJENRC_TS = '.projenrc.ts';
const OTHER_PROJENRCS = ['.projenrc.js', '.projenrc.mjs', '.projenrc.cjs', '.projenrc.json'];
const MODULE = 'create-cached-deploy/projen';

export interface ProjenrcEdit {
  /** Whether .projenrc.ts was changed (false: `message` says what to add by hand, or why not). */
  edited: boolean;
  /** The projenrc file, relative to the repository root. */
  path: string;
  /** The component's options, as written (or to write) into .projenrc.ts. */
  options: Record<string, unknown>;
  /** What to tell the user: what was done and what to do next, or exactly what to add. */
  message: string;
}

/** The projenrc of the repository at `dir`; throws when it is not managed by projen. */
export function findProjenrc(dir: string): string {
  const repo = new RepoFiles(dir);
  for (const name of [PROJENRC_TS, ...OTHER_PROJENRCS]) {
    if (repo.check(name) !== undefined) return name;
  }
  throw new CachedDeployError(
    'USAGE',
    `--projen: ${join(dir, PROJENRC_TS)} not found; --projen adds the CachedDeploy component to a projen project's .projenrc.ts (run init without --projen to write the files directly)`,
  );
}

/**
 * Adds `new CachedDeploy(project, {...})` with the settings of `configText` (cached-deploy.yml as
 * init built it) to .projenrc.ts, or explains what to add when it cannot do so safely. Writes
 * nothing but .projenrc.ts.
 */
export function addToProjenrc(dir: string, configText: string): ProjenrcEdit {
  const options = componentOptions(configText);
  // The options must be valid for the component itself, not only for the CLI.
  const config = resolveCachedDeployOptions(options as unknown as CachedDeployOptions);
  const paths = renderFiles(config).map((file) => file.path);
  const name = findProjenrc(dir);
  const text = new RepoFiles(dir).read(name) ?? '';
  const manual = (why: string, quote = "'", projectName = 'project') => ({
    edited: false,
    path: name,
    options,
    message: [
      `Cannot edit ${name} safely: ${why}. Nothing was written.`,
      `Add this to ${name} yourself, before the project's synth() call:`,
      '',
      name === '.projenrc.js' || name === '.projenrc.cjs'
        ? `const { CachedDeploy } = require(${quoted(MODULE, quote)});`
        : importLine(quote, ';'),
      '',
      `${newStatement(projectName, options, '', quote)};`,
      '',
      ...nextSteps(dir, paths),
    ].join('\n'),
  });

  if (name !== PROJENRC_TS) {
    return manual(
      name === '.projenrc.json'
        ? 'a .projenrc.json cannot add components (move to a .projenrc.ts first)'
        : `only ${PROJENRC_TS} is edited`,
    );
  }
  const imports = [...text.matchAll(IMPORT)];
  const quote = imports[0]?.[0].match(/['"]/)?.[0] ?? "'";
  if (/\bCachedDeploy\b/.test(text)) {
    return {
      edited: false,
      path: name,
      options,
      message: [
        `${name} already uses CachedDeploy: nothing was written. Edit its options there; for this repository they would be:`,
        '',
        `${newStatement('project', options, '', quote)};`,
        '',
      ].join('\n'),
    };
  }
  const synthCalls = [...text.matchAll(SYNTH)];
  const synth = synthCalls[0];
  if (synthCalls.length !== 1 || synth === undefined) {
    return manual(
      synthCalls.length === 0
        ? 'it has no line that is just `project.synth();`'
        : `it has ${synthCalls.length} lines calling synth()`,
      quote,
    );
  }
  const lastImport = imports.at(-1);
  if (lastImport === undefined || (lastImport.index ?? 0) > (synth.index ?? 0)) {
    return manual('it has no import statement before the synth() call to add one after', quote);
  }

  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const semicolon = /;\s*$/.test(lastImport[0]) ? ';' : '';
  const indent = synth[1] ?? '';
  const projectName = synth[2] ?? 'project';
  const importEnd = (lastImport.index ?? 0) + lastImport[0].length;
  const synthStart = synth.index ?? 0;
  const before = text.slice(0, synthStart);
  const blank = /(^|\n)[ \t]*\r?\n$/.test(before) || before === '' ? '' : eol;
  const statement = `${newStatement(projectName, options, indent, quote)}${semicolon}`;
  const edited = [
    text.slice(0, importEnd),
    eol,
    importLine(quote, semicolon),
    text.slice(importEnd, synthStart),
    blank,
    indent,
    statement.replaceAll('\n', eol),
    eol,
    eol,
    text.slice(synthStart),
  ].join('');
  writeRepoFile(dir, name, edited);
  return {
    edited: true,
    path: name,
    options,
    message: [`updated  ${name} (added the CachedDeploy component)`, ...nextSteps(dir, paths)].join(
      '\n',
    ),
  };
}

// A top-level import statement, possibly over several lines: `import x from 'm';`,
// `import type { A, B } from "m"`, `import 'm';`.
const IMPORT =
  /^import\s+(?:['"][^'"\n]+['"]|[^;'"]*?\sfrom\s*['"][^'"\n]+['"])(?:\s+(?:with|assert)\s*\{[^}]*\})?[ \t]*;?[ \t]*(?=\r?\n|$)/gm;
// A line that only calls synth() on an identifier.
const SYNTH = /^([ \t]*)([A-Za-z_$][\w$]*)\.synth\(\s*\)[ \t]*;?[ \t]*(?=\r?\n|$)/gm;

function importLine(quote: string, semicolon: string): string {
  return `import { CachedDeploy } from ${quoted(MODULE, quote)}${semicolon}`;
}

function newStatement(
  projectName: string,
  options: Record<string, unknown>,
  indent: string,
  quote: string,
): string {
  return `new CachedDeploy(${projectName}, ${literal(options, indent, quote, true)})`;
}

function nextSteps(dir: string, paths: string[]): string[] {
  const steps = [
    'Next: install create-cached-deploy so .projenrc.ts can import it (`npm install --save-dev',
    'create-cached-deploy`; in a NodeProject the component keeps it in devDependencies), then run',
    '`npx projen`. It writes, and from then on owns:',
    ...paths.map((path) => `  ${path}`),
  ];
  const repo = new RepoFiles(dir);
  const leftovers = [CONFIG_FILE, '.cached-deploy/state.json'].filter(
    (path) => repo.check(path) !== undefined,
  );
  if (leftovers.length > 0) {
    steps.push(`${leftovers.join(' and ')} are not used with projen: delete them once it ran.`);
  }
  return steps;
}

/** cached-deploy.yml's settings as component options: without what only the file has. */
function componentOptions(configText: string): Record<string, unknown> {
  const {
    version: _version,
    generator: _generator,
    ...options
  } = parseDocument(configText).toJS() as Record<string, unknown>;
  const paths = options.paths as Record<string, unknown> | undefined;
  if (paths) {
    const { stateFile: _stateFile, ...rest } = paths;
    if (Object.keys(rest).length > 0) options.paths = rest;
    else delete options.paths;
  }
  return options;
}

/** A TypeScript literal of a YAML-like value: short values on one line, the rest indented. */
function literal(value: unknown, indent: string, quote: string, multiline = false): string {
  if (typeof value === 'string') return quoted(value, quote);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) {
    return String(value);
  }
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    const items = value.map((item) => literal(item, inner, quote));
    const inline = `[${items.join(', ')}]`;
    if (!multiline && fits(inline, indent)) return inline;
    return `[\n${items.map((item) => `${inner}${item},\n`).join('')}${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).map(
    ([key, item]) =>
      `${/^[A-Za-z_$][\w$]*$/.test(key) ? key : quoted(key, quote)}: ${literal(item, inner, quote)}`,
  );
  if (entries.length === 0) return '{}';
  const inline = `{ ${entries.join(', ')} }`;
  if (!multiline && fits(inline, indent)) return inline;
  return `{\n${entries.map((entry) => `${inner}${entry},\n`).join('')}${indent}}`;
}

function fits(inline: string, indent: string): boolean {
  return !inline.includes('\n') && indent.length + inline.length <= 72;
}

/** A string literal in the file's quote style (JSON's escapes, valid in TypeScript). */
function quoted(value: string, quote: string): string {
  const json = JSON.stringify(value);
  if (quote === '"') return json;
  // Escape pairs are matched as units: `\\"` becomes `"`, other escapes stay, a bare `'` is escaped.
  const body = json
    .slice(1, -1)
    .replace(/\\.|'/g, (match) => (match === '\\"' ? '"' : match === "'" ? "\\'" : match));
  return `'${body}'`;
}
