import { readFileSync } from 'node:fs';
import { loadConfig } from '../config/load.js';
import type { ResolvedConfig } from '../config/resolve.js';
import { CachedDeployError } from '../errors.js';
import type { LifecyclePolicy } from '../model/lifecycle.js';
import {
  formatPolicyPreview,
  mergeListings,
  type ParsedListing,
  type PolicyPreview,
  type PreviewImage,
  previewPolicy,
} from '../policy/preview.js';
import { renderFiles } from '../render/render-files.js';
import { formatJson, formatMarkdown, formatUnified } from './format.js';
import {
  diffRepository,
  hasChanges,
  knownRepositories,
  parseListingOrThrow,
  policyFileFor,
} from './report.js';

/**
 * The `diff` and `policy preview` commands: options in, text out, exit code back. The CLI shell
 * (src/cli/main.ts) only parses argv and imports this module when one of them runs.
 */

interface Output {
  stdout: (text: string) => void;
}

export interface DiffCommandOptions {
  format?: string;
  listing?: string[];
  live?: boolean;
  maxBytes?: string;
  now?: string;
  /** Names a listing whose entries carry no repositoryName. */
  repository?: string;
}

export async function runDiff(
  dir: string,
  options: DiffCommandOptions,
  io: Output,
): Promise<number> {
  const format = options.format ?? 'unified';
  if (!['unified', 'markdown', 'json'].includes(format)) {
    throw new CachedDeployError('USAGE', `--format ${format}: expected unified, markdown or json`);
  }
  const now = parseNow(options.now);
  const maxBytes = options.maxBytes === undefined ? undefined : parseMaxBytes(options.maxBytes);
  const listings = listingsByRepository(
    readListingFiles(options.listing ?? []),
    options.repository,
  );
  const diff = await diffRepository(dir, {
    now,
    images: listings,
    live: Boolean(options.live),
  });
  const text =
    format === 'json'
      ? formatJson([diff])
      : format === 'markdown'
        ? formatMarkdown([diff], { maxBytes })
        : formatUnified([diff]);
  if (text.length > 0) io.stdout(text.endsWith('\n') ? text : `${text}\n`);
  return hasChanges(diff) ? 2 : 0;
}

export interface PreviewCommandOptions {
  listing?: string[];
  repository?: string;
  json?: boolean;
  live?: boolean;
  now?: string;
  /** Tests: an ECR endpoint and credentials for --live. */
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export async function runPolicyPreview(
  dir: string,
  options: PreviewCommandOptions,
  io: Output,
): Promise<number> {
  const previews = await previewRepository(dir, options);
  if (options.json) {
    io.stdout(`${JSON.stringify({ formatVersion: 1, repositories: previews }, null, 2)}\n`);
  } else {
    io.stdout(previews.map((preview) => formatPolicyPreview(preview)).join('\n'));
  }
  return 0;
}

/** Each listed (or, with `live`, each configured) repository's images against its generated policy. */
export async function previewRepository(
  dir: string,
  options: PreviewCommandOptions,
): Promise<PolicyPreview[]> {
  const config = loadConfig(dir);
  const now = parseNow(options.now);
  const files = options.listing ?? [];
  if (options.live && files.length > 0) {
    throw new CachedDeployError('USAGE', 'give either --listing or --live, not both');
  }
  if (!options.live && files.length === 0) {
    throw new CachedDeployError(
      'USAGE',
      'policy preview needs --listing FILE (the output of `aws ecr describe-images`) or --live',
    );
  }
  if (options.repository !== undefined && !policyFileFor(config, options.repository)) {
    throw unknownRepository(config, options.repository, '--repository');
  }
  let listings: Map<string, PreviewImage[]>;
  if (options.live) {
    const { readLiveListing } = await import('./live-listing.js');
    listings = new Map();
    const repositories = options.repository ? [options.repository] : knownRepositories(config);
    for (const repository of repositories) {
      listings.set(
        repository,
        await readLiveListing(repository, {
          region: config.aws.region,
          registryId: config.aws.accountId,
          endpoint: options.endpoint,
          credentials: options.credentials,
        }),
      );
    }
  } else {
    listings = new Map(
      Object.entries(listingsByRepository(readListingFiles(files), options.repository)),
    );
    if (options.repository !== undefined) {
      for (const name of [...listings.keys()])
        if (name !== options.repository) listings.delete(name);
      if (listings.size === 0) {
        throw new CachedDeployError(
          'USAGE',
          `no listing given is of ECR repository "${options.repository}"`,
        );
      }
    }
  }
  const rendered = new Map(renderFiles(config).map((file) => [file.path, file.content]));
  const previews: PolicyPreview[] = [];
  for (const [repository, images] of [...listings].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const target = policyFileFor(config, repository);
    if (!target) throw unknownRepository(config, repository, 'a listing');
    const policy = JSON.parse(rendered.get(target.path) ?? '{"rules":[]}') as LifecyclePolicy;
    previews.push(previewPolicy(policy, images, now, { repository, policyFile: target.path }));
  }
  return previews;
}

function unknownRepository(
  config: ResolvedConfig,
  repository: string,
  where: string,
): CachedDeployError {
  return new CachedDeployError(
    'USAGE',
    `${where} names ECR repository "${repository}", which is none of this configuration's (${knownRepositories(config).join(', ')})`,
  );
}

function readListingFiles(files: string[]): { source: string; text: string }[] {
  return files.map((file) => {
    try {
      return { source: file, text: readFileSync(file, 'utf8') };
    } catch (error) {
      throw new CachedDeployError(
        'IO',
        `--listing ${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
  });
}

/**
 * Listing files grouped by the `repositoryName` their entries carry (several files or pages of
 * one repository merge). A listing without one (an empty repository) needs `fallback`.
 */
export function listingsByRepository(
  files: { source: string; text: string }[],
  fallback: string | undefined,
): Record<string, PreviewImage[]> {
  const parsed: ParsedListing[] = [];
  for (const file of files) {
    for (const listing of parseListingOrThrow(file.text, file.source)) {
      const repository = listing.repository ?? fallback;
      if (repository === undefined) {
        throw new CachedDeployError(
          'USAGE',
          `${file.source}: its images name no repositoryName (is it empty?): pass --repository NAME`,
        );
      }
      parsed.push({ repository, images: listing.images });
    }
  }
  return Object.fromEntries(
    mergeListings(parsed).map((listing) => [listing.repository as string, listing.images]),
  );
}

function parseNow(text: string | undefined): Date {
  if (text === undefined) return new Date();
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) {
    throw new CachedDeployError('USAGE', `--now ${text}: not a date (use ISO 8601)`);
  }
  return date;
}

function parseMaxBytes(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 2000) {
    throw new CachedDeployError('USAGE', `--max-bytes ${text}: expected an integer >= 2000`);
  }
  return value;
}
