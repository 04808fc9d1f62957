import { isAlias, LineCounter, parseDocument, visit } from 'yaml';
import { CachedDeployError } from '../errors.js';

/**
 * YAML text to a plain value, with the same one-line `file:line:col: not valid YAML` errors as
 * config/load.ts, but without schema validation: the fleet merges its layers in before validating.
 * (Duplicates the parsing half of `parseRawConfig`; see the note in the fleet report.)
 */
export function parseYamlValue(text: string, source: string): unknown {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true, lineCounter });
  const error = document.errors[0];
  if (error) {
    const position = lineCounter.linePos(error.pos[0]);
    const where = position ? `${source}:${position.line}:${position.col}` : source;
    const reason = error.message.split('\n')[0] ?? 'invalid YAML';
    throw new CachedDeployError('CONFIG_PARSE', `${where}: not valid YAML: ${reason}`);
  }
  try {
    return document.toJS();
  } catch (error) {
    // An alias without its anchor (or an alias bomb) only fails here.
    let offset: number | undefined;
    visit(document, {
      Alias(_, node) {
        if (offset === undefined && isAlias(node) && node.resolve(document) === undefined) {
          offset = node.range?.[0];
        }
      },
    });
    const position = offset === undefined ? undefined : lineCounter.linePos(offset);
    const where = position ? `${source}:${position.line}:${position.col}` : source;
    const reason = (error as Error).message.split('\n')[0];
    throw new CachedDeployError('CONFIG_PARSE', `${where}: not valid YAML: ${reason}`);
  }
}
