/**
 * Lifecycle policy previews, as ECR runs them: `StartLifecyclePolicyPreview` starts an evaluation
 * of a policy (the given text, or the repository's own) over the repository's images, and
 * `GetLifecyclePolicyPreview` answers IN_PROGRESS until it completes, then COMPLETE with one
 * result per image the policy would expire. Here a preview answers IN_PROGRESS to its first
 * `inProgressPolls` Get calls (default 1; `server.state.lifecyclePreviews.inProgressPolls`) and
 * is evaluated when it completes, at the server clock, by the project's local lifecycle evaluator
 * (src/policy/evaluate-lifecycle.ts: ECR's documented rules, index children kept).
 *
 * Also `PutImageScanningConfiguration`, the repository setting `apply` changes besides tag
 * mutability.
 */

import type { LifecyclePolicy } from '../../../src/model/lifecycle.js';
import { evaluateLifecyclePolicy } from '../../../src/policy/evaluate-lifecycle.js';
import { invalidParameter, ServiceError } from './errors.js';
import type { Registry, Repository } from './registry.js';

type Input = Record<string, unknown>;
type Output = Record<string, unknown>;

const MAX_PAGE = 100;

interface Preview {
  id: number;
  policyText: string;
  /** Get calls still to answer IN_PROGRESS. */
  pollsLeft: number;
  results?: Output[];
}

export class LifecyclePreviews {
  /** Get calls a new preview answers with IN_PROGRESS before it completes. */
  inProgressPolls = 1;
  /** Previews started, in order (tests inspect which policies were previewed). */
  readonly started: { repositoryName: string; policyText: string }[] = [];
  private readonly byRepo = new WeakMap<Repository, Preview>();
  private nextId = 0;

  start(repo: Repository, policyText: string): Preview {
    const current = this.byRepo.get(repo);
    if (current && current.results === undefined) {
      throw new ServiceError(
        'LifecyclePolicyPreviewInProgressException',
        'The previous lifecycle policy preview request has not completed. Wait and try again.',
      );
    }
    const preview = { id: ++this.nextId, policyText, pollsLeft: this.inProgressPolls };
    this.byRepo.set(repo, preview);
    this.started.push({ repositoryName: repo.name, policyText });
    return preview;
  }

  /** The repository's preview after one more poll, evaluated when it completes. */
  poll(registry: Registry, repo: Repository): Preview {
    const preview = this.byRepo.get(repo);
    if (!preview) {
      throw new ServiceError(
        'LifecyclePolicyPreviewNotFoundException',
        `There is no dry run for this repository with name '${repo.name}' in the registry with id '${registry.registryId}'`,
      );
    }
    if (preview.results !== undefined) return preview;
    if (preview.pollsLeft > 0) {
      preview.pollsLeft--;
      return preview;
    }
    preview.results = evaluate(registry, repo, preview.policyText);
    return preview;
  }
}

function evaluate(registry: Registry, repo: Repository, text: string): Output[] {
  const policy = JSON.parse(text) as LifecyclePolicy;
  const images = [...repo.images.values()].map((image) => ({
    digest: image.digest,
    tags: [...image.tags].sort(),
    pushedAt: image.pushedAt,
    sizeInBytes: image.sizeInBytes,
    children: [...image.children],
  }));
  const { expired } = evaluateLifecyclePolicy(policy, images, registry.now());
  const seq = new Map([...repo.images.values()].map((image) => [image.digest, image.seq]));
  return expired
    .sort((a, b) => (seq.get(a.image.digest) ?? 0) - (seq.get(b.image.digest) ?? 0))
    .map(({ image, rule }) => ({
      ...(image.tags.length > 0 ? { imageTags: image.tags } : {}),
      imageDigest: image.digest,
      imagePushedAt: image.pushedAt.getTime() / 1000,
      action: { type: 'EXPIRE' },
      appliedRulePriority: rule.rulePriority,
      storageClass: 'STANDARD',
    }));
}

// --- the operations ---

function repository(registry: Registry, input: Input): Repository {
  const name = input.repositoryName;
  if (typeof name !== 'string' || name === '') {
    throw invalidParameter("Invalid parameter: 'repositoryName' is required");
  }
  const registryId = input.registryId;
  if (registryId !== undefined && registryId !== null && registryId !== registry.registryId) {
    throw new ServiceError(
      'RepositoryNotFoundException',
      `The repository with name '${name}' does not exist in the registry with id '${String(registryId)}'`,
    );
  }
  return registry.require(name);
}

/** ECR's cheap checks of a policy text (Put and StartPreview): length, JSON, a `rules` list. */
export function checkPolicyText(text: unknown): string {
  const invalid = (why: string) =>
    invalidParameter(
      `Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: ${why}'`,
    );
  if (typeof text !== 'string') throw new ServiceError('SerializationException', 'not a string');
  if (text.length < 100 || text.length > 30720) throw invalid('length must be 100..30720');
  let policy: unknown;
  try {
    policy = JSON.parse(text);
  } catch {
    throw invalid('not valid JSON');
  }
  if (!Array.isArray((policy as { rules?: unknown } | null)?.rules)) {
    throw invalid('object has missing required properties (["rules"])');
  }
  return text;
}

export function StartLifecyclePolicyPreview(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  let text = input.lifecyclePolicyText;
  if (text === undefined || text === null) {
    text = repo.lifecyclePolicyText;
    if (text === undefined) {
      throw new ServiceError(
        'LifecyclePolicyNotFoundException',
        `Lifecycle policy does not exist for the repository with name '${repo.name}' in the registry with id '${registry.registryId}'`,
      );
    }
  }
  const policyText = checkPolicyText(text);
  registry.lifecyclePreviews.start(repo, policyText);
  return {
    registryId: registry.registryId,
    repositoryName: repo.name,
    lifecyclePolicyText: policyText,
    status: 'IN_PROGRESS',
  };
}

interface PageToken {
  repo: string;
  preview: number;
  offset: number;
}

export function GetLifecyclePolicyPreview(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const maxResults = input.maxResults ?? MAX_PAGE;
  if (
    typeof maxResults !== 'number' ||
    !Number.isInteger(maxResults) ||
    maxResults < 1 ||
    maxResults > MAX_PAGE
  ) {
    throw invalidParameter(
      `Invalid parameter at 'maxResults' failed to satisfy constraint: 'Member must have value between 1 and ${MAX_PAGE}'`,
    );
  }
  const preview = registry.lifecyclePreviews.poll(registry, repo);
  const base = {
    registryId: registry.registryId,
    repositoryName: repo.name,
    lifecyclePolicyText: preview.policyText,
  };
  if (preview.results === undefined) return { ...base, status: 'IN_PROGRESS' };

  const status = ((input.filter as Input | undefined)?.tagStatus ?? 'ANY') as string;
  if (!['TAGGED', 'UNTAGGED', 'ANY'].includes(status)) {
    throw invalidParameter(
      "Invalid parameter at 'filter.tagStatus' failed to satisfy constraint: 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'",
    );
  }
  const ids = (input.imageIds as { imageDigest?: string; imageTag?: string }[] | undefined) ?? [];
  const results = preview.results.filter((result) => {
    const tags = (result.imageTags as string[] | undefined) ?? [];
    if (status === 'TAGGED' && tags.length === 0) return false;
    if (status === 'UNTAGGED' && tags.length > 0) return false;
    if (ids.length === 0) return true;
    return ids.some(
      (id) =>
        (id.imageDigest === undefined || id.imageDigest === result.imageDigest) &&
        (id.imageTag === undefined || tags.includes(id.imageTag)),
    );
  });

  let offset = 0;
  if (typeof input.nextToken === 'string') {
    let token: Partial<PageToken>;
    try {
      token = JSON.parse(Buffer.from(input.nextToken, 'base64url').toString('utf8'));
    } catch {
      token = {};
    }
    if (
      token.repo !== repo.name ||
      token.preview !== preview.id ||
      !Number.isInteger(token.offset)
    ) {
      throw invalidParameter(
        "Invalid parameter at 'nextToken' failed to satisfy constraint: 'Invalid NextToken'",
      );
    }
    offset = token.offset as number;
  }
  const page = results.slice(offset, offset + maxResults);
  const next = offset + page.length;
  const nextToken =
    next < results.length
      ? Buffer.from(
          JSON.stringify({ repo: repo.name, preview: preview.id, offset: next } as PageToken),
        ).toString('base64url')
      : undefined;
  return {
    ...base,
    status: 'COMPLETE',
    previewResults: page,
    summary: { expiringImageTotalCount: results.length },
    ...(nextToken ? { nextToken } : {}),
  };
}

export function PutImageScanningConfiguration(registry: Registry, input: Input): Output {
  const repo = repository(registry, input);
  const config = input.imageScanningConfiguration;
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw invalidParameter("Invalid parameter: 'imageScanningConfiguration' is required");
  }
  const scanOnPush = (config as Input).scanOnPush;
  if (scanOnPush !== undefined && typeof scanOnPush !== 'boolean') {
    throw new ServiceError('SerializationException', "'scanOnPush' must be a boolean");
  }
  repo.scanOnPush = scanOnPush === true;
  return {
    registryId: registry.registryId,
    repositoryName: repo.name,
    imageScanningConfiguration: { scanOnPush: repo.scanOnPush },
  };
}
