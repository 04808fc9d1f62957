import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { renderFiles } from '../src/render/render-files.js';
import {
  configYaml,
  FIXTURE_GENERATOR_VERSION,
  FIXTURE_PATH,
  SINGLE_PLATFORM_CONFIGS,
  type SinglePlatformFixture,
} from './support/single-platform-configs.js';
import { PROJECT_ROOT } from './support/temp-repo.js';

/**
 * Building images per platform changes nothing for an image on one platform: every file every
 * single-platform configuration of the suite generates is byte for byte what the generator wrote
 * before multi-platform support (test/fixtures/single-platform.json.gz, rendered by the commit it
 * names), so upgrading changes no file of theirs.
 */
const fixture = JSON.parse(
  gunzipSync(readFileSync(join(PROJECT_ROOT, FIXTURE_PATH))).toString('utf8'),
) as SinglePlatformFixture;

describe('single-platform configurations generate the files they did before multi-platform builds', () => {
  it('has the fixture of every configuration, rendered by an earlier commit', () => {
    expect(Object.keys(fixture.configs).sort()).toEqual(
      SINGLE_PLATFORM_CONFIGS.map(({ name }) => name).sort(),
    );
    expect(fixture.renderedAt).toMatch(/^[0-9a-f]{40}$/);
    expect(fixture.version).toBe(FIXTURE_GENERATOR_VERSION);
    for (const [hash, content] of Object.entries(fixture.blobs)) {
      expect(createHash('sha256').update(content, 'utf8').digest('hex')).toBe(hash);
    }
  });

  it.each(SINGLE_PLATFORM_CONFIGS)('$name: every file, byte for byte', ({ name, raw }) => {
    const expected = fixture.configs[name] ?? {};
    const files = renderFiles(parseConfig(configYaml(raw)), FIXTURE_GENERATOR_VERSION);
    expect(files.map((file) => file.path).sort()).toEqual(Object.keys(expected).sort());
    for (const file of files) {
      const hash = expected[file.path] ?? '';
      // On a mismatch, the diff of the file's text.
      expect(file.content, `${name}: ${file.path}`).toBe(fixture.blobs[hash]);
    }
  });
});
