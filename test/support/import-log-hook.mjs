// Loaded with `node --import`: records the URL of every module the process resolves into the
// file named by IMPORT_LOG, so a test can prove what a command does not load.
import { register } from 'node:module';

const hooks = `
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(${JSON.stringify(process.env.IMPORT_LOG)}, result.url + '\\n');
  return result;
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
