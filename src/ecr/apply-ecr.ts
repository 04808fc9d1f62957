import type { RepositoryKind, RepositorySettings } from '../model/ecr-repositories.js';
import { plural, printable } from '../text.js';
import { PaginationError, pages } from './paginate.js';
import type {
  EcrApplyPort,
  ExclusionFilterValue,
  PreviewResult,
  RepositoryDescription,
} from './port.js';

/**
 * `apply`, the logic: makes ECR match the desired repositories, idempotently, in two phases.
 *
 *   1. read (every repository): describe it, compare tag mutability, scan-on-push and the
 *      lifecycle policy; for a policy that differs, preview it with ECR
 *      (StartLifecyclePolicyPreview, then GetLifecyclePolicyPreview until it is no longer
 *      IN_PROGRESS) and check what it would expire against what the config protects.
 *   2. write, only without `dryRun`, and only when no preview would expire a protected image
 *      (unless `force`): create missing repositories, set their settings, put the policies.
 *
 * Phase 1 never writes, so a refusal or a read error leaves ECR untouched. Phase 2 does each
 * repository's steps in an order that a later run can always finish (create, settings, policy):
 * after a failure midway, a second apply sees the partial state and completes it.
 */

export interface DesiredRepository extends RepositorySettings {
  /** The committed lifecycle policy, exactly as it is put. */
  policyText: string;
}

export interface Protection {
  /** Cache tags with these prefixes must never expire (main's and the seed's cache). */
  cacheTagPrefixes: string[];
  /** The newest N tagged images of an image repository must never expire (deployImages.keep). */
  keepNewestImages: number;
}

export interface ApplyEcrInput {
  /** The account of the registry (sent as registryId, so another account's credentials fail). */
  registryId: string;
  region: string;
  repositories: DesiredRepository[];
  protection: Protection;
}

export interface ApplyEcrOptions {
  /** Read and preview only; write nothing. */
  dryRun?: boolean;
  /** Put a policy even when its preview expires a protected image. */
  force?: boolean;
  /** How long to wait between preview polls. Default 2000 ms. */
  pollIntervalMs?: number;
  /** Polls of an IN_PROGRESS preview before giving up. Default 150 (5 minutes at 2 s). */
  maxPolls?: number;
  /** Injectable for tests. */
  sleep?: (ms: number) => Promise<void>;
}

export type ActionType =
  | 'create-repository'
  | 'set-tag-mutability'
  | 'set-scan-on-push'
  | 'put-lifecycle-policy';

export interface RepositoryAction {
  type: ActionType;
  /** In words, e.g. `tag mutability MUTABLE -> IMMUTABLE_WITH_EXCLUSION (main.*, seed.*, br-*)`. */
  description: string;
  status: 'pending' | 'done' | 'failed' | 'not-run';
}

export interface ExpiringImage {
  digest: string;
  tags: string[];
  /** ISO 8601. */
  pushedAt?: string;
  rulePriority?: number;
}

export interface ProtectedExpiry extends ExpiringImage {
  /** Why the config protects it, e.g. `the main cache (main.api)`. */
  reason: string;
}

export interface RepositoryReport {
  name: string;
  kind: RepositoryKind;
  policyFile: string;
  existed: boolean;
  actions: RepositoryAction[];
  /** What ECR's preview says the new policy would expire (absent when no preview ran). */
  preview?: { expiring: ExpiringImage[] };
  /** Expiring images the config protects: the policy is refused unless forced. */
  protectedExpiring: ProtectedExpiry[];
}

/**
 * in-sync: nothing to do. applied: everything done. pending: a dry run found changes. refused: a
 * policy would expire protected images (nothing was written). failed: an ECR call failed.
 */
export type ApplyStatus = 'in-sync' | 'applied' | 'pending' | 'refused' | 'failed';

export interface ApplyReport {
  formatVersion: 1;
  status: ApplyStatus;
  dryRun: boolean;
  force: boolean;
  registry: { accountId: string; region: string };
  repositories: RepositoryReport[];
  warnings: string[];
  /** With status `failed`: what failed, in one line. */
  error?: string;
  /** With `ci: gitlab`: the seed's pipeline schedule (src/gitlab-api/seed-schedule.ts). */
  pipelineSchedule?: import('../gitlab-api/seed-schedule.js').ScheduleReport;
}

/** Exit codes (docs/exit-codes.md): 0 in sync or applied, 1 error or refused, 2 pending. */
export function exitCodeOf(report: ApplyReport): 0 | 1 | 2 {
  if (report.status === 'pending') return 2;
  if (report.status === 'refused' || report.status === 'failed') return 1;
  return 0;
}

const PREVIEW_PAGE = 100;
const IMAGES_PAGE = 1000;

export async function applyEcr(
  port: EcrApplyPort,
  input: ApplyEcrInput,
  options: ApplyEcrOptions = {},
): Promise<ApplyReport> {
  const context: Context = {
    port,
    input,
    sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    pollIntervalMs: options.pollIntervalMs ?? 2000,
    maxPolls: Math.max(1, options.maxPolls ?? 150),
  };
  const report: ApplyReport = {
    formatVersion: 1,
    status: 'in-sync',
    dryRun: Boolean(options.dryRun),
    force: Boolean(options.force),
    registry: { accountId: input.registryId, region: input.region },
    repositories: [],
    warnings: [],
  };

  // Phase 1: read and preview. Nothing is written.
  const plans: { desired: DesiredRepository; report: RepositoryReport }[] = [];
  try {
    for (const desired of input.repositories) {
      const repoReport = await inspect(context, desired);
      report.repositories.push(repoReport);
      plans.push({ desired, report: repoReport });
    }
  } catch (error) {
    return fail(report, error);
  }

  const changes = report.repositories.some((repo) => repo.actions.length > 0);
  const refused = report.repositories.some((repo) => repo.protectedExpiring.length > 0);
  if (refused && !options.force) return { ...report, status: 'refused' };
  if (!changes) return report;
  if (options.dryRun) return { ...report, status: 'pending' };

  // Phase 2: write, repository by repository.
  for (const plan of plans) {
    try {
      await execute(context, plan.desired, plan.report, Boolean(options.force));
    } catch (error) {
      for (const action of plan.report.actions) {
        if (action.status === 'pending') action.status = 'failed';
      }
      for (const later of plans.slice(plans.indexOf(plan) + 1)) {
        for (const action of later.report.actions) action.status = 'not-run';
      }
      return fail(report, error, plan.desired.name);
    }
  }
  return { ...report, status: 'applied' };
}

interface Context {
  port: EcrApplyPort;
  input: ApplyEcrInput;
  sleep: (ms: number) => Promise<void>;
  pollIntervalMs: number;
  maxPolls: number;
}

function fail(report: ApplyReport, error: unknown, repository?: string): ApplyReport {
  const message = describeError(error);
  const where = repository ? `${repository}: ` : '';
  const rerun = report.repositories.some((repo) =>
    repo.actions.some((action) => action.status === 'done'),
  )
    ? ' (what was done stays; rerun apply to finish)'
    : '';
  return { ...report, status: 'failed', error: `${where}${message}${rerun}` };
}

/** One line for the report. ECR's words (a hostile endpoint's, maybe) are escaped and cut. */
export function describeError(error: unknown): string {
  if (error instanceof ApplyError || error instanceof PaginationError) return error.message;
  if (error instanceof Error) {
    const first = cut(printable(error.message.split('\n')[0] ?? ''));
    return error.name && error.name !== 'Error' ? `${cut(printable(error.name))}: ${first}` : first;
  }
  return cut(printable(String(error)));
}

const cut = (text: string, max = 300) => (text.length > max ? `${text.slice(0, max)}…` : text);

/** A failure of apply's own (as opposed to an ECR error), with a message for the user. */
export class ApplyError extends Error {
  override name = 'ApplyError';
}

const errorName = (error: unknown): string | undefined =>
  error !== null && typeof error === 'object' && 'name' in error
    ? String((error as { name: unknown }).name)
    : undefined;

// --- phase 1 ---

async function inspect(context: Context, desired: DesiredRepository): Promise<RepositoryReport> {
  const report: RepositoryReport = {
    name: desired.name,
    kind: desired.kind,
    policyFile: desired.policyFile,
    existed: false,
    actions: [],
    protectedExpiring: [],
  };
  const live = await describeRepository(context, desired.name);
  if (!live) {
    report.actions.push(
      action(
        'create-repository',
        `create the ${desired.kind} repository (${settingsText(desired)})`,
      ),
      action(
        'put-lifecycle-policy',
        `put ${desired.policyFile} (a new repository: nothing to expire)`,
      ),
    );
    return report;
  }
  report.existed = true;
  await planExisting(context, desired, live, report);
  return report;
}

/** The actions an existing repository needs, with the preview of its new policy. */
async function planExisting(
  context: Context,
  desired: DesiredRepository,
  live: RepositoryDescription,
  report: RepositoryReport,
): Promise<void> {
  const liveMutability = live.imageTagMutability ?? 'MUTABLE';
  const liveFilters = (live.imageTagMutabilityExclusionFilters ?? []).map(
    (filter) => `${filter.filterType ?? 'WILDCARD'}:${filter.filter ?? ''}`,
  );
  const wantFilters = desired.exclusionFilters.map(
    (filter) => `${filter.filterType}:${filter.filter}`,
  );
  if (liveMutability !== desired.tagMutability || !sameSet(liveFilters, wantFilters)) {
    report.actions.push(
      action(
        'set-tag-mutability',
        `set tag mutability ${mutabilityText(liveMutability, live.imageTagMutabilityExclusionFilters)} -> ${mutabilityText(desired.tagMutability, desired.exclusionFilters)}`,
      ),
    );
  }
  const liveScan = live.imageScanningConfiguration?.scanOnPush ?? false;
  if (liveScan !== desired.scanOnPush) {
    report.actions.push(
      action(
        'set-scan-on-push',
        `set scan on push ${onOff(liveScan)} -> ${onOff(desired.scanOnPush)}`,
      ),
    );
  }

  const livePolicy = await getLifecyclePolicy(context, desired.name);
  if (livePolicy !== undefined && samePolicy(livePolicy, desired.policyText)) return;
  const expiring = await previewPolicy(context, desired);
  report.preview = { expiring };
  report.protectedExpiring = await protectedAmong(context, desired, expiring);
  const verb = livePolicy === undefined ? 'put' : 'replace the lifecycle policy with';
  report.actions.push(
    action(
      'put-lifecycle-policy',
      `${verb} ${desired.policyFile} (the preview expires ${plural(expiring.length, 'image')})`,
    ),
  );
}

async function describeRepository(
  context: Context,
  name: string,
): Promise<RepositoryDescription | undefined> {
  try {
    const output = await context.port.describeRepositories({
      registryId: context.input.registryId,
      repositoryNames: [name],
    });
    return output.repositories?.find((repo) => repo.repositoryName === name);
  } catch (error) {
    if (errorName(error) === 'RepositoryNotFoundException') return undefined;
    throw error;
  }
}

async function getLifecyclePolicy(context: Context, name: string): Promise<string | undefined> {
  try {
    const output = await context.port.getLifecyclePolicy({
      registryId: context.input.registryId,
      repositoryName: name,
    });
    return output.lifecyclePolicyText;
  } catch (error) {
    if (errorName(error) === 'LifecyclePolicyNotFoundException') return undefined;
    throw error;
  }
}

/** ECR's own preview of `desired.policyText` on the repository's images: what would expire. */
async function previewPolicy(
  context: Context,
  desired: DesiredRepository,
): Promise<ExpiringImage[]> {
  const repo = { registryId: context.input.registryId, repositoryName: desired.name };
  // One preview per repository at a time: wait for someone else's to finish.
  for (let attempt = 1; ; attempt++) {
    try {
      await context.port.startLifecyclePolicyPreview({
        ...repo,
        lifecyclePolicyText: desired.policyText,
      });
      break;
    } catch (error) {
      if (
        errorName(error) !== 'LifecyclePolicyPreviewInProgressException' ||
        attempt >= context.maxPolls
      ) {
        throw error;
      }
      await context.sleep(context.pollIntervalMs);
    }
  }
  let page = await context.port.getLifecyclePolicyPreview({ ...repo, maxResults: PREVIEW_PAGE });
  for (let polls = 1; page.status === 'IN_PROGRESS'; polls++) {
    if (polls >= context.maxPolls) {
      throw new ApplyError(
        `the lifecycle policy preview of ${desired.name} was still IN_PROGRESS after ${polls} polls; rerun apply later`,
      );
    }
    await context.sleep(context.pollIntervalMs);
    page = await context.port.getLifecyclePolicyPreview({ ...repo, maxResults: PREVIEW_PAGE });
  }
  if (page.status !== 'COMPLETE') {
    throw new ApplyError(
      `the lifecycle policy preview of ${desired.name} ended ${page.status ?? 'without a status'}`,
    );
  }
  if (
    page.lifecyclePolicyText !== undefined &&
    !samePolicy(page.lifecyclePolicyText, desired.policyText)
  ) {
    throw new ApplyError(
      `another lifecycle policy preview replaced apply's on ${desired.name}; rerun apply`,
    );
  }
  // The first page is the poll that saw COMPLETE. Results are appended one by one: a page is
  // the server's to size, and spreading a huge one into push() overflows the stack.
  const results: PreviewResult[] = [];
  let first: typeof page | undefined = page;
  const previewPages = pages(`GetLifecyclePolicyPreview on ${desired.name}`, (nextToken) => {
    const ready = first;
    first = undefined;
    return ready
      ? Promise.resolve(ready)
      : context.port.getLifecyclePolicyPreview({ ...repo, maxResults: PREVIEW_PAGE, nextToken });
  });
  for await (const next of previewPages) {
    for (const result of next.previewResults ?? []) results.push(result);
  }
  return results
    .filter((result) => (result.action?.type ?? 'EXPIRE').toUpperCase() === 'EXPIRE')
    .map((result) => ({
      digest: result.imageDigest ?? '',
      tags: [...(result.imageTags ?? [])].sort(),
      ...(result.imagePushedAt ? { pushedAt: isoDate(result.imagePushedAt) } : {}),
      ...(result.appliedRulePriority !== undefined
        ? { rulePriority: result.appliedRulePriority }
        : {}),
    }));
}

/** The expiring images that the config protects. */
async function protectedAmong(
  context: Context,
  desired: DesiredRepository,
  expiring: ExpiringImage[],
): Promise<ProtectedExpiry[]> {
  const tagged = expiring.filter((image) => image.tags.length > 0);
  if (tagged.length === 0) return [];
  const { cacheTagPrefixes, keepNewestImages } = context.input.protection;
  // A branch-cache repository protects nothing: everything in it expires, and anything a branch
  // wrote there (a main.* tag included) must not be able to hold up apply.
  if (desired.kind === 'branch-cache') return [];
  if (desired.kind === 'cache') {
    return tagged.flatMap((image) => {
      const tag = image.tags.find((t) => cacheTagPrefixes.some((prefix) => t.startsWith(prefix)));
      return tag ? [{ ...image, reason: `a kept cache tag (${tag})` }] : [];
    });
  }
  const newest = await newestTaggedImages(context, desired.name, keepNewestImages);
  return tagged.flatMap((image) =>
    newest.has(image.digest)
      ? [{ ...image, reason: `one of the ${keepNewestImages} newest deployable images` }]
      : [],
  );
}

async function newestTaggedImages(context: Context, name: string, count: number) {
  const images: { digest: string; pushedAt: number }[] = [];
  const listing = pages(`DescribeImages on ${name}`, (nextToken) =>
    context.port.describeImages({
      registryId: context.input.registryId,
      repositoryName: name,
      filter: { tagStatus: 'TAGGED' },
      maxResults: IMAGES_PAGE,
      ...(nextToken ? { nextToken } : {}),
    }),
  );
  for await (const page of listing) {
    for (const detail of page.imageDetails ?? []) {
      if (!detail.imageDigest) continue;
      images.push({
        digest: detail.imageDigest,
        pushedAt: detail.imagePushedAt ? new Date(detail.imagePushedAt).getTime() : 0,
      });
    }
  }
  images.sort((a, b) => b.pushedAt - a.pushedAt || (a.digest < b.digest ? -1 : 1));
  return new Set(images.slice(0, count).map((image) => image.digest));
}

// --- phase 2 ---

async function execute(
  context: Context,
  desired: DesiredRepository,
  report: RepositoryReport,
  force: boolean,
): Promise<void> {
  const { port } = context;
  const repo = { registryId: context.input.registryId, repositoryName: desired.name };
  const filters = (): ExclusionFilterValue[] | undefined =>
    desired.exclusionFilters.length > 0
      ? desired.exclusionFilters.map((filter) => ({ ...filter }))
      : undefined;
  for (const step of report.actions) {
    if (step.status !== 'pending') continue;
    switch (step.type) {
      case 'create-repository':
        try {
          await port.createRepository({
            ...repo,
            imageTagMutability: desired.tagMutability,
            ...(filters() ? { imageTagMutabilityExclusionFilters: filters() } : {}),
            imageScanningConfiguration: { scanOnPush: desired.scanOnPush },
          });
        } catch (error) {
          if (errorName(error) !== 'RepositoryAlreadyExistsException') throw error;
          // Created since phase 1 (or by a retry of this very call): plan it as an existing one.
          step.status = 'done';
          step.description += ' (it already existed)';
          await replan(context, desired, report, force);
          return;
        }
        break;
      case 'set-tag-mutability':
        await port.putImageTagMutability({
          ...repo,
          imageTagMutability: desired.tagMutability,
          ...(filters() ? { imageTagMutabilityExclusionFilters: filters() } : {}),
        });
        break;
      case 'set-scan-on-push':
        await port.putImageScanningConfiguration({
          ...repo,
          imageScanningConfiguration: { scanOnPush: desired.scanOnPush },
        });
        break;
      case 'put-lifecycle-policy':
        await port.putLifecyclePolicy({ ...repo, lifecyclePolicyText: desired.policyText });
        break;
    }
    step.status = 'done';
  }
}

/** A repository that appeared between the phases: read it again and plan what it still needs. */
async function replan(
  context: Context,
  desired: DesiredRepository,
  report: RepositoryReport,
  force: boolean,
): Promise<void> {
  const live = await describeRepository(context, desired.name);
  if (!live) throw new ApplyError(`${desired.name} was reported to exist but cannot be described`);
  const fresh: RepositoryReport = { ...report, actions: [], protectedExpiring: [] };
  await planExisting(context, desired, live, fresh);
  report.actions = report.actions.filter((step) => step.status === 'done');
  report.actions.push(...fresh.actions);
  if (fresh.preview) report.preview = fresh.preview;
  report.protectedExpiring = fresh.protectedExpiring;
  if (fresh.protectedExpiring.length > 0 && !force) {
    for (const step of fresh.actions) step.status = 'not-run';
    throw new ApplyError(
      `${desired.name} appeared meanwhile and its new lifecycle policy would expire ${plural(fresh.protectedExpiring.length, 'protected image')}; rerun apply (or with --force)`,
    );
  }
  await execute(context, desired, report, force);
}

// --- comparisons and words ---

/** Lifecycle policies compare as JSON: key order, whitespace and rule order do not matter. */
export function samePolicy(a: string, b: string): boolean {
  try {
    return canonical(JSON.parse(a)) === canonical(JSON.parse(b));
  } catch {
    return false;
  }
}

function canonical(policy: unknown): string {
  const sortKeys = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sortKeys);
    if (value !== null && typeof value === 'object') {
      return Object.fromEntries(
        Object.keys(value)
          .sort()
          .map((key) => [key, sortKeys((value as Record<string, unknown>)[key])]),
      );
    }
    return value;
  };
  const value = sortKeys(policy) as { rules?: unknown };
  if (Array.isArray(value.rules)) {
    value.rules = [...value.rules].sort(
      (x, y) =>
        Number((x as { rulePriority?: unknown }).rulePriority) -
        Number((y as { rulePriority?: unknown }).rulePriority),
    );
  }
  return JSON.stringify(value);
}

function sameSet(a: string[], b: string[]): boolean {
  const left = [...new Set(a)].sort();
  const right = [...new Set(b)].sort();
  return left.length === right.length && left.every((value, index) => value === right[index]);
}

function action(type: ActionType, description: string): RepositoryAction {
  return { type, description, status: 'pending' };
}

function settingsText(desired: RepositorySettings): string {
  return `tags ${mutabilityText(desired.tagMutability, desired.exclusionFilters)}, scan on push ${onOff(desired.scanOnPush)}`;
}

function mutabilityText(mutability: string, filters: { filter?: string }[] | undefined): string {
  const list = (filters ?? []).map((filter) => filter.filter ?? '');
  return list.length > 0 ? `${mutability} (except ${list.join(', ')})` : mutability;
}

const onOff = (value: boolean) => (value ? 'on' : 'off');

function isoDate(value: Date | string | number): string {
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString();
}
