import { isAlias, LineCounter, parseDocument, visit } from 'yaml';
import { CachedDeployError } from '../errors.js';

/**
 * YAML text to a plain value, with one-line `file:line:col: not valid YAML: …` errors. No schema
 * validation here: cached-deploy.yml validates right after, and the fleet first merges its
 * defaults/enforce layers in.
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
    // An alias without its anchor (or an alias bomb) only fails here, not in document.errors.
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
