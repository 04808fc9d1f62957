/**
 * Writes test/fixtures/single-platform.json.gz: every file the generator renders for each
 * single-platform configuration of test/support/single-platform-configs.ts, each distinct content
 * once (`blobs`, by SHA-256), and which configuration has which files (`configs`: path to hash).
 * Gzipped, since it is ~1.2 MB of mostly repeated workflows. test/single-platform-identity.test.ts
 * renders them again and compares byte for byte.
 *
 * The committed fixtures were written by the generator before images could be built per
 * platform (the manifest names the commit). Run this only when a change is meant to alter
 * single-platform output, and say so in its commit:
 *
 *   npx tsx scripts/single-platform-fixtures.ts
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { parseConfig } from '../src/config/load.js';
import { renderFiles } from '../src/render/render-files.js';
import {
  configYaml,
  FIXTURE_GENERATOR_VERSION,
  FIXTURE_PATH,
  SINGLE_PLATFORM_CONFIGS,
} from '../test/support/single-platform-configs.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const blobs: Record<string, string> = {};
const configs: Record<string, Record<string, string>> = {};
for (const { name, raw } of SINGLE_PLATFORM_CONFIGS) {
  const files: Record<string, string> = {};
  for (const file of renderFiles(parseConfig(configYaml(raw)), FIXTURE_GENERATOR_VERSION)) {
    const hash = sha256(file.content);
    blobs[hash] = file.content;
    files[file.path] = hash;
  }
  configs[name] = files;
}
const commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
const fixture = { renderedAt: commit, version: FIXTURE_GENERATOR_VERSION, configs, blobs };
// mtime 0 in the gzip header: the same fixtures give the same bytes.
writeFileSync(
  join(root, FIXTURE_PATH),
  gzipSync(`${JSON.stringify(fixture, null, 1)}\n`, { level: 9 }),
);
