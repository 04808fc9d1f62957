import { CachedDeployError } from '../errors.js';
import { printable } from '../text.js';
import {
  createHttpClient,
  type HttpClient,
  HttpError,
  type HttpRequest,
  type HttpResponse,
} from './bounded-fetch.js';

/**
 * The transport to the code hosts' APIs (GitHub, GitLab) under both clients (octokit's
 * `request.fetch`, gitbeaker's `requesterFn`), shared by the fleet's pull requests
 * (fleet/hosts/), `apply`'s GitLab schedule and `doctor --reseed` on GitLab (gitlab-api/). Every
 * call goes through `HostConnection.fetch`, which sends it through bounded-fetch.ts (size cap,
 * deadline, redirects that never carry the token to another origin) and
 *
 * - waits while the host said it is rate limited, for everyone talking to that host (a secondary
 *   limit or an exhausted primary limit is per account, not per request);
 * - spaces writes (POST, PATCH, PUT, DELETE) to one host `writeIntervalMs` apart, one at a time
 *   (GitHub asks for at least one second between mutative requests);
 * - retries a rate-limited answer after the wait the host asked for: `retry-after`, else the
 *   reset time (`x-ratelimit-reset` on GitHub, `RateLimit-Reset` on GitLab), else one minute,
 *   doubling (GitHub's guidance for a secondary limit without headers), at most `maxRetries`
 *   times and never longer than `maxWaitMs` at once: a longer wait fails the repository at once,
 *   naming when to rerun (`--only-failed`);
 * - retries a GET that failed in transit or with 502/503/504 (1 s, then doubling);
 * - gives each attempt `requestTimeoutMs` (a host that never answers fails the repository) and
 *   reads at most `maxResponseBytes` of an answer.
 *
 * The facts and their sources are in docs/pull-requests.md.
 */

/** The code hosts the tool talks to. */
export type HostKind = 'github' | 'gitlab';

export interface HostPolicy {
  /** Retries of one request after a rate limit or a transient failure. */
  maxRetries: number;
  /** The longest single wait; a host asking for more fails the request instead. */
  maxWaitMs: number;
  /** Minimum time between two writes to the host (0: no pacing). */
  writeIntervalMs: number;
  maxResponseBytes: number;
  /** One attempt, from sending to the answer's last byte. */
  requestTimeoutMs: number;
  /** What a message about a wait too long tells the user to do (the fleet: `--only-failed`). */
  rerunHint: string;
  /** Seconds pass here (tests pass a clock that only records). */
  sleep: (ms: number) => Promise<void>;
  now: () => number;
}

export const DEFAULT_MAX_RETRIES = 3;
export const DEFAULT_MAX_WAIT_MS = 120_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
/** GitHub's best practices: "wait at least one second between each request" that writes. */
export const DEFAULT_WRITE_INTERVAL_MS: Record<HostKind, number> = { github: 1000, gitlab: 0 };

export function defaultPolicy(kind: HostKind, overrides: Partial<HostPolicy> = {}): HostPolicy {
  return {
    maxRetries: DEFAULT_MAX_RETRIES,
    maxWaitMs: DEFAULT_MAX_WAIT_MS,
    writeIntervalMs: DEFAULT_WRITE_INTERVAL_MS[kind],
    maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
    requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
    rerunHint: 'rerun with --only-failed',
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: Date.now,
    ...overrides,
  };
}

/** A wait the host asked for, and why. */
export interface RateLimitWait {
  ms: number;
  reason: string;
}

type HeaderLookup = { get(name: string): string | null };

const MINUTE = 60_000;

/** Seconds (`120`) or an HTTP date, as ms from `now`. */
function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+(?:\.\d+)?$/.test(value.trim())) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** An epoch-seconds reset time, as ms from `now` (one extra second: clocks differ). */
function resetMs(value: string | null, now: number): number | undefined {
  if (value === null || !/^\d{1,12}$/.test(value.trim())) return undefined;
  return Math.max(0, Number(value) * 1000 - now) + 1000;
}

/**
 * Whether an answer is a rate limit, and how long to wait before the next request. Pure.
 * `attempt` is 0 for the first retry.
 */
export function rateLimitWait(
  kind: HostKind,
  status: number,
  headers: HeaderLookup,
  body: string,
  attempt: number,
  now: number,
): RateLimitWait | undefined {
  const backoff = MINUTE * 2 ** attempt;
  if (kind === 'github') {
    if (status !== 403 && status !== 429) return undefined;
    const after = retryAfterMs(headers.get('retry-after'), now);
    if (after !== undefined) return { ms: after, reason: 'secondary rate limit' };
    if (headers.get('x-ratelimit-remaining') === '0') {
      const reset = resetMs(headers.get('x-ratelimit-reset'), now);
      return { ms: reset ?? backoff, reason: 'primary rate limit' };
    }
    // A 403 is usually a permission, unless it says it is a (secondary) rate limit.
    if (status === 429 || /rate limit/i.test(body)) {
      return { ms: backoff, reason: 'secondary rate limit' };
    }
    return undefined;
  }
  if (status !== 429) return undefined;
  const after = retryAfterMs(headers.get('retry-after'), now);
  if (after !== undefined) return { ms: after, reason: 'rate limit' };
  const reset = resetMs(headers.get('ratelimit-reset'), now);
  return { ms: reset ?? backoff, reason: 'rate limit' };
}

/** The wait a successful answer announces: the primary limit is used up until its reset. */
export function exhaustedUntil(kind: HostKind, headers: HeaderLookup, now: number) {
  const remaining =
    kind === 'github' ? headers.get('x-ratelimit-remaining') : headers.get('ratelimit-remaining');
  if (remaining !== '0') return undefined;
  const reset = resetMs(
    kind === 'github' ? headers.get('x-ratelimit-reset') : headers.get('ratelimit-reset'),
    now,
  );
  return reset === undefined ? undefined : now + reset;
}

/** Replaces every secret in `text` (a token the host's answer echoed, for one) with `***`. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    out = out.split(secret).join('***');
    const encoded = encodeURIComponent(secret);
    if (encoded !== secret) out = out.split(encoded).join('***');
  }
  return out;
}

/** Text from a host, for a one-line message: secrets out, control characters escaped, bounded. */
export function hostText(text: string, secrets: readonly string[], max = 300): string {
  const clean = printable(redact(text, secrets).replace(/\s+/g, ' ').trim());
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

const WRITE_METHODS = new Set(['POST', 'PATCH', 'PUT', 'DELETE']);
const TRANSIENT = new Set([502, 503, 504]);

/**
 * One host (one API URL and token): its shared rate-limit pause and write queue, and the fetch
 * both clients use.
 */
export class HostConnection {
  private pausedUntil = 0;
  private pauseReason = '';
  private writeQueue: Promise<void> = Promise.resolve();
  private lastWrite = Number.NEGATIVE_INFINITY;
  constructor(
    readonly kind: HostKind,
    readonly label: string,
    readonly policy: HostPolicy,
    /** The token and anything else no message may show. */
    readonly secrets: readonly string[],
    /**
     * The bounded client every attempt goes through. Default: each attempt its own deadline and no
     * overall one (a fleet runs as long as its repositories take); a command with a deadline for
     * the whole run (doctor) passes its own.
     */
    private readonly http: HttpClient = createHttpClient({
      requestMs: policy.requestTimeoutMs,
      totalMs: Number.POSITIVE_INFINITY,
    }),
  ) {}

  readonly fetch = async (
    input: string | URL | Request,
    init: RequestInit = {},
  ): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method ?? 'GET').toUpperCase() as Method;
    const what = `${this.label}: ${method} ${pathOf(url)}`;
    const read = method === 'GET' || method === 'HEAD';
    for (let attempt = 0; ; attempt++) {
      await this.waitForPause(what);
      if (WRITE_METHODS.has(method)) await this.writeSlot();
      let response: HttpResponse;
      try {
        response = await this.http.request(url, {
          method,
          headers: headerRecord(init.headers),
          ...(init.body === undefined || init.body === null ? {} : { body: bodyText(init.body) }),
          maxBytes: this.policy.maxResponseBytes,
          what,
          ...(init.signal ? { signal: init.signal } : {}),
        });
      } catch (error) {
        if (
          error instanceof HttpError &&
          error.transient &&
          read &&
          attempt < this.policy.maxRetries
        ) {
          await this.policy.sleep(1000 * 2 ** attempt);
          continue;
        }
        throw error;
      }
      const now = this.policy.now();
      const body = response.body;
      const text = new TextDecoder().decode(body.subarray(0, 4096));
      const wait = rateLimitWait(this.kind, response.status, response.headers, text, attempt, now);
      if (wait) {
        this.pause(now + wait.ms, wait.reason);
        if (wait.ms > this.policy.maxWaitMs) {
          throw new CachedDeployError(
            'IO',
            `${what}: ${wait.reason}, the host asks to wait ${Math.ceil(wait.ms / 1000)} s (until ${new Date(now + wait.ms).toISOString()}), more than the ${Math.round(this.policy.maxWaitMs / 1000)} s a run waits: ${this.policy.rerunHint} after then`,
          );
        }
        if (attempt >= this.policy.maxRetries) {
          throw new CachedDeployError(
            'IO',
            `${what}: still rate limited (${wait.reason}) after ${attempt + 1} attempts: ${this.policy.rerunHint} later`,
          );
        }
        continue;
      }
      if (TRANSIENT.has(response.status) && read && attempt < this.policy.maxRetries) {
        await this.policy.sleep(1000 * 2 ** attempt);
        continue;
      }
      const exhausted = exhaustedUntil(this.kind, response.headers, now);
      if (exhausted !== undefined) this.pause(exhausted, 'primary rate limit');
      // A fresh Response over the bytes read: 204/205/304 carry no body.
      const empty = response.status === 204 || response.status === 205 || response.status === 304;
      return new Response(
        empty || body.byteLength === 0 ? null : (body as unknown as ArrayBuffer),
        {
          status: response.status,
          statusText: response.statusText,
          headers: response.headers,
        },
      );
    }
  };

  private pause(until: number, reason: string): void {
    if (until > this.pausedUntil) {
      this.pausedUntil = until;
      this.pauseReason = reason;
    }
  }

  private async waitForPause(what: string): Promise<void> {
    const wait = this.pausedUntil - this.policy.now();
    if (wait <= 0) return;
    if (wait > this.policy.maxWaitMs) {
      throw new CachedDeployError(
        'IO',
        `${what}: not sent: ${this.pauseReason} until ${new Date(this.pausedUntil).toISOString()}, more than the ${Math.round(this.policy.maxWaitMs / 1000)} s a run waits: ${this.policy.rerunHint} after then`,
      );
    }
    await this.policy.sleep(wait);
  }

  /** One write at a time, at least `writeIntervalMs` after the previous one started. */
  private writeSlot(): Promise<void> {
    const interval = this.policy.writeIntervalMs;
    if (interval <= 0) return Promise.resolve();
    const slot = this.writeQueue.then(async () => {
      const wait = this.lastWrite + interval - this.policy.now();
      if (wait > 0) await this.policy.sleep(wait);
      this.lastWrite = this.policy.now();
    });
    this.writeQueue = slot.catch(() => {});
    return slot;
  }
}

type Method = NonNullable<HttpRequest['method']>;

/** A request's headers as bounded-fetch takes them: a record with lower-case names. */
function headerRecord(headers: RequestInit['headers']): Record<string, string> {
  const record: Record<string, string> = {};
  new Headers(headers ?? {}).forEach((value, name) => {
    record[name] = value;
  });
  return record;
}

/** Both clients send JSON or form text; anything else is not a request of ours. */
function bodyText(body: NonNullable<RequestInit['body']>): string {
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  throw new CachedDeployError('IO', 'a request to a code host with a body that is not text');
}

/** The path of a request URL, for messages (the query may hold a branch name; kept short). */
function pathOf(url: string): string {
  try {
    const parsed = new URL(url);
    return printable(parsed.pathname.slice(0, 200));
  } catch {
    return '?';
  }
}
