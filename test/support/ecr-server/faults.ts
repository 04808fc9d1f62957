import { ServiceError } from './errors.js';
import type { EcrOperation } from './operations.js';

/** An operation name; unknown names are allowed so tests can target UnknownOperation calls too. */
export type OperationName = EcrOperation | (string & {});

/**
 * `throttle`: 400 ThrottlingException, which the AWS SDKs classify as throttling and retry.
 * `server`: 500 ServerException, which they retry as a transient fault.
 */
export type FaultError = 'throttle' | 'server' | { status: number; type: string; message?: string };

/**
 * A lie told by an answer that is otherwise well formed: `request` changes what the operation
 * sees, `response` what the client gets. Both take and return the JSON bodies.
 */
export interface FaultRewrite {
  request?: (input: Record<string, unknown>) => Record<string, unknown>;
  response?: (
    output: Record<string, unknown>,
    input: Record<string, unknown>,
  ) => Record<string, unknown>;
}

/**
 * One fault rule. A rule applies to calls of `ops` (all calls if omitted); among those it fires on
 * calls after the first `after`, with probability `rate`, at most `times` times. A rule that fires
 * delays the response by `latencyMs` and, if it has an `error`, answers with it instead of running
 * the operation; a `rewrite` runs the operation on a changed request or changes its answer.
 */
export interface FaultRule {
  ops?: OperationName | readonly OperationName[];
  error?: FaultError;
  /** Fire at most this many times, then stay inert ("the next N calls"). */
  times?: number;
  /** Skip this many matching calls first ("every call after the Nth"). */
  after?: number;
  /** Fire on this fraction of eligible calls, drawn from the seeded generator. */
  rate?: number;
  latencyMs?: number;
  rewrite?: FaultRewrite;
}

export interface FaultHandle {
  readonly rule: Readonly<FaultRule>;
  /** Matching calls seen since the rule was added. */
  readonly seen: number;
  /** Times the rule fired. */
  readonly fired: number;
  remove(): void;
}

export interface FaultDecision {
  latencyMs: number;
  error?: ServiceError;
  /** In the order the rules were added. */
  rewrites: FaultRewrite[];
}

interface ActiveRule extends FaultHandle {
  seen: number;
  fired: number;
}

/** mulberry32: tiny, seedable, good enough to make "30% of calls fail" reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function toServiceError(error: FaultError): ServiceError {
  if (error === 'throttle') return new ServiceError('ThrottlingException', 'Rate exceeded', 400);
  if (error === 'server') {
    return new ServiceError('ServerException', 'Injected internal server error', 500);
  }
  return new ServiceError(error.type, error.message ?? `Injected ${error.type}`, error.status);
}

/** Fault rules, changeable while the server runs. */
export class Faults {
  private rules: ActiveRule[] = [];
  private random: () => number;

  constructor(seed = 1) {
    this.random = mulberry32(seed);
  }

  /** Restarts the generator behind `rate`, for reproducible sequences. */
  seed(seed: number): this {
    this.random = mulberry32(seed);
    return this;
  }

  add(rule: FaultRule): FaultHandle {
    const active: ActiveRule = {
      rule: { ...rule },
      seen: 0,
      fired: 0,
      remove: () => {
        this.rules = this.rules.filter((r) => r !== active);
      },
    };
    this.rules.push(active);
    return active;
  }

  /** Replaces all rules. */
  set(...rules: FaultRule[]): FaultHandle[] {
    this.clear();
    return rules.map((rule) => this.add(rule));
  }

  clear(): void {
    this.rules = [];
  }

  get active(): readonly FaultHandle[] {
    return this.rules;
  }

  throttleNext(times: number, ops?: FaultRule['ops']): FaultHandle {
    return this.add({ error: 'throttle', times, ops });
  }

  serverErrorNext(times: number, ops?: FaultRule['ops']): FaultHandle {
    return this.add({ error: 'server', times, ops });
  }

  throttleRate(rate: number, ops?: FaultRule['ops']): FaultHandle {
    return this.add({ error: 'throttle', rate, ops });
  }

  /** Every matching call after the first `calls` fails (500 unless `error` says otherwise). */
  failAfter(calls: number, options: { ops?: FaultRule['ops']; error?: FaultError } = {}) {
    return this.add({ error: options.error ?? 'server', after: calls, ops: options.ops });
  }

  latency(ms: number, ops?: FaultRule['ops']): FaultHandle {
    return this.add({ latencyMs: ms, ops });
  }

  /**
   * A paginated operation stuck on its first page: every answer is that page with the same
   * `nextToken`, and the token sent back is ignored. A client that trusts it never stops.
   */
  nextTokenLoop(ops: FaultRule['ops'], token = 'LOOP'): FaultHandle {
    return this.add({
      ops,
      rewrite: {
        request: withoutNextToken,
        response: (output) => ({ ...output, nextToken: token }),
      },
    });
  }

  /** A paginated operation that never ends: the first page again, with a fresh token each time. */
  endlessPages(ops: FaultRule['ops']): FaultHandle {
    let page = 0;
    return this.add({
      ops,
      rewrite: {
        request: withoutNextToken,
        response: (output) => ({ ...output, nextToken: `endless-${++page}` }),
      },
    });
  }

  /**
   * BatchGetImage leaves these digests out of its answer: neither in `images` nor in `failures`,
   * as a client must never assume cannot happen.
   */
  omitFromBatchGet(digests: Iterable<string>): FaultHandle {
    const omitted = new Set(digests);
    const kept = (entry: unknown) =>
      !omitted.has(
        ((entry as { imageId?: { imageDigest?: string } }).imageId?.imageDigest ?? '') as string,
      );
    return this.add({
      ops: 'BatchGetImage',
      rewrite: {
        response: (output) => ({
          ...output,
          images: ((output.images ?? []) as unknown[]).filter(kept),
          failures: ((output.failures ?? []) as unknown[]).filter(kept),
        }),
      },
    });
  }

  /**
   * One enormous page: DescribeImages (or ListImages) answers carry `count` more entries, untagged
   * images that are not cache artifacts (nothing a pruner may delete), whatever maxResults said.
   */
  hugePage(count: number, ops: 'DescribeImages' | 'ListImages' = 'DescribeImages'): FaultHandle {
    return this.add({
      ops,
      times: 1,
      rewrite: {
        response: (output, input) => {
          const key = ops === 'DescribeImages' ? 'imageDetails' : 'imageIds';
          const entries = [...((output[key] ?? []) as unknown[])];
          for (let i = 0; i < count; i++) {
            const imageDigest = `sha256:e${i.toString(16).padStart(63, '0')}`;
            entries.push(
              ops === 'ListImages'
                ? { imageDigest }
                : {
                    repositoryName: input.repositoryName,
                    imageDigest,
                    imageSizeInBytes: 1,
                    imagePushedAt: 0,
                    imageManifestMediaType: 'application/vnd.oci.image.manifest.v1+json',
                    artifactMediaType: 'application/vnd.oci.image.config.v1+json',
                  },
            );
          }
          return { ...output, [key]: entries };
        },
      },
    });
  }

  /**
   * Decides one call's fate. Latency adds up over the rules that fire; only the first error rule
   * that fires counts it, so a later "next N" rule is not used up by a call that already failed.
   */
  decide(op: string): FaultDecision {
    const decision: FaultDecision = { latencyMs: 0, rewrites: [] };
    for (const active of [...this.rules]) {
      const { rule } = active;
      const ops = rule.ops === undefined ? undefined : [rule.ops].flat();
      if (ops && !ops.includes(op)) continue;
      active.seen++;
      if (active.seen <= (rule.after ?? 0)) continue;
      if (rule.times !== undefined && active.fired >= rule.times) continue;
      if (rule.error && decision.error) continue;
      if (rule.rate !== undefined && this.random() >= rule.rate) continue;
      active.fired++;
      decision.latencyMs += rule.latencyMs ?? 0;
      if (rule.error) decision.error = toServiceError(rule.error);
      if (rule.rewrite) decision.rewrites.push(rule.rewrite);
    }
    return decision;
  }
}

function withoutNextToken(input: Record<string, unknown>): Record<string, unknown> {
  const { nextToken: _ignored, ...rest } = input;
  return rest;
}
