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
 * One fault rule. A rule applies to calls of `ops` (all calls if omitted); among those it fires on
 * calls after the first `after`, with probability `rate`, at most `times` times. A rule that fires
 * delays the response by `latencyMs` and, if it has an `error`, answers with it instead of running
 * the operation.
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
   * Decides one call's fate. Latency adds up over the rules that fire; only the first error rule
   * that fires counts it, so a later "next N" rule is not used up by a call that already failed.
   */
  decide(op: string): FaultDecision {
    const decision: FaultDecision = { latencyMs: 0 };
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
    }
    return decision;
  }
}
