import { readFileSync } from 'node:fs';
import Handlebars from 'handlebars';

/**
 * Handlebars, set up so it cannot corrupt what it renders: `noEscape` (it would HTML-escape
 * quotes), `strict` (a misspelt field is an error, not an empty string). Values reach HCL only
 * through the `hcl` helpers, which quote and escape them.
 */
const handlebars = Handlebars.create();

/** An HCL string literal: escapes quotes and backslashes, and keeps `${`/`%{` literal unless marked. */
export function hclString(value: string, options: { interpolate?: boolean } = {}): string {
  let escaped = value
    .replaceAll('\\', '\\\\')
    .replaceAll('"', '\\"')
    .replaceAll('\n', '\\n')
    .replaceAll('\r', '\\r')
    .replaceAll('\t', '\\t');
  // A replacer function: in a replacement *string*, `$$` would collapse to a single `$`.
  if (!options.interpolate) {
    escaped = escaped.replaceAll('${', () => '$${').replaceAll('%{', () => '%%{');
  }
  return `"${escaped}"`;
}

const list = (values: unknown, interpolate: boolean) =>
  `[${(values as unknown[]).map((value) => hclString(String(value), { interpolate })).join(', ')}]`;
// `hcl`/`hclList` write literal strings (paths, names from the user's config). `hclTemplate`/
// `hclTemplateList` are for the tags and cache refs that model/bake.ts builds around bake
// variables (`${REGISTRY}`) on purpose; their other parts are validated names.
handlebars.registerHelper('hcl', (value: unknown) => hclString(String(value)));
handlebars.registerHelper('hclList', (values: unknown) => list(values, false));
handlebars.registerHelper('hclTemplate', (value: unknown) =>
  hclString(String(value), { interpolate: true }),
);
handlebars.registerHelper('hclTemplateList', (values: unknown) => list(values, true));

const TEMPLATE_DIR = new URL('../../templates/', import.meta.url);
const compiled = new Map<string, Handlebars.TemplateDelegate>();

export function renderTemplate(name: string, data: object): string {
  let template = compiled.get(name);
  if (!template) {
    const source = readFileSync(new URL(name, TEMPLATE_DIR), 'utf8');
    template = handlebars.compile(source, { strict: true, noEscape: true });
    compiled.set(name, template);
  }
  return template(data);
}
