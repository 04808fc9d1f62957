/**
 * The one place the CLI reads HTTP from outside: a registry, its token service, a presigned blob
 * URL, the GitHub and GitLab APIs (net/host-connection.ts adds the code hosts' rate limits and
 * retries on top). Everything it answers is written by someone else, so every read here has
 *
 * - a size cap: the body is read chunk by chunk and the read stops, with an error, past the cap
 *   (a `Content-Length` above it fails before reading anything). Callers get bytes, never a
 *   stream, so none can read past a cap;
 * - a per-request deadline (from sending the request to the body's last byte, redirects
 *   included: a server dripping one byte every few seconds fails in bounded time) and an overall
 *   one for the whole command, after which every request fails at once;
 * - at most a few redirects, each to http(s) and never from https down to http; a loop is an
 *   error. A redirect to another origin drops the `authorization` header, for good, so no
 *   credential is ever sent to a host the caller did not address.
 *
 * Failures are one-line `HttpError`s (code 'IO') naming what was read; text from the server (a
 * reason phrase, a location) reaches a message only through `printable` and `quoteForMessage`.
 */
import { CachedDeployError } from '../errors.js';
import { printable, quoteForMessage } from '../text.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;

/** Default deadlines: generous for a registry, short enough that a stuck one is noticed. */
export const DEFAULT_TOTAL_TIMEOUT_MS = 300_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_REDIRECTS = 5;
/** How much of an error answer is kept: enough for a message, never a whole download. */
export const ERROR_BODY_BYTES = 64 * KiB;

export interface HttpDeadlines {
  /**
   * The whole run, from the client's creation: after it, every request fails at once
   * (`Infinity`: no overall deadline, for a run as long as its work, like a fleet's).
   */
  totalMs?: number;
  /** One request, from sending it to its body's last byte, redirects included. */
  requestMs?: number;
}

export interface HttpClientOptions extends HttpDeadlines {
  /** The transport. Default: the global fetch. */
  fetch?: typeof fetch;
}

export interface HttpRequest {
  method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Header names in lower case. `authorization` is dropped on a redirect to another origin. */
  headers?: Record<string, string>;
  body?: string;
  /** The largest body a 2xx answer may have; a larger one is an error, read no further. */
  maxBytes: number;
  /** Redirects followed (GET only); a 3xx beyond them is an error. 0: a 3xx is the answer. */
  maxRedirects?: number;
  /** What messages call the request, e.g. `manifest shop:main.web`. Default: the URL. */
  what?: string;
  /** The caller's cancellation, besides the deadlines. */
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  /** The reason phrase, as the server sent it (print it only through `printable`). */
  statusText: string;
  ok: boolean;
  headers: Headers;
  /** The URL that answered, after redirects. */
  url: string;
  /** A 2xx answer's whole body (at most maxBytes); the first ERROR_BODY_BYTES of any other. */
  body: Uint8Array;
}

export interface HttpClient {
  request(url: string, request: HttpRequest): Promise<HttpResponse>;
  /**
   * Runs a call that is not an HTTP read of ours (an AWS SDK command) under the same deadlines:
   * `signal` aborts when either passes, and the call's failure then reads as a deadline error.
   */
  within<T>(what: string, call: (signal: AbortSignal) => Promise<T>): Promise<T>;
  readonly totalMs: number;
  readonly requestMs: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * A read that failed. `transient` when the same request may well succeed if sent again: the host
 * was unreachable, gave no complete answer in time, or cut the connection. A refusal (too large,
 * a bad redirect) or the run's own deadline is not.
 */
export class HttpError extends CachedDeployError {
  constructor(
    message: string,
    readonly transient = false,
  ) {
    super('IO', message);
  }
}

const ioError = (message: string, transient = false) => new HttpError(message, transient);

/** Bytes for people: `4 MiB`, `64 KiB`, `100 B`. */
export function formatLimit(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}

const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;

export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  const totalMs = positive(options.totalMs, DEFAULT_TOTAL_TIMEOUT_MS, 'total timeout');
  const requestMs = Math.min(
    positive(options.requestMs, DEFAULT_REQUEST_TIMEOUT_MS, 'request timeout'),
    totalMs,
  );
  const transport = options.fetch ?? fetch;
  const expiresAt = Date.now() + totalMs;

  /**
   * A signal that aborts at the request deadline, the overall one or the caller's cancellation,
   * and why it did.
   */
  function deadline(what: string, cancel?: AbortSignal) {
    const left = expiresAt - Date.now();
    if (left <= 0) throw ioError(`${what}: out of time (${seconds(totalMs)} for the whole run)`);
    if (cancel?.aborted) throw ioError(`${what}: cancelled`);
    const controller = new AbortController();
    const overall = left <= requestMs;
    const timer = setTimeout(() => controller.abort(), overall ? left : requestMs);
    const onCancel = () => controller.abort();
    cancel?.addEventListener('abort', onCancel, { once: true });
    const reason = () =>
      cancel?.aborted
        ? ioError(`${what}: cancelled`)
        : overall
          ? ioError(`${what}: out of time (${seconds(totalMs)} for the whole run)`)
          : ioError(`${what}: no complete answer within ${seconds(requestMs)}`, true);
    const done = () => {
      clearTimeout(timer);
      cancel?.removeEventListener('abort', onCancel);
    };
    return { signal: controller.signal, reason, done };
  }

  async function request(url: string, init: HttpRequest): Promise<HttpResponse> {
    const what = init.what ?? url;
    const method = init.method ?? 'GET';
    const maxRedirects = method === 'GET' ? (init.maxRedirects ?? DEFAULT_MAX_REDIRECTS) : 0;
    const limit = deadline(what, init.signal);
    try {
      let target = new URL(url);
      const origin = target.origin;
      let headers = { ...init.headers };
      const visited = new Set([target.href]);
      for (let redirects = 0; ; redirects++) {
        let response: Response;
        try {
          response = await transport(target, {
            method,
            headers,
            ...(init.body === undefined ? {} : { body: init.body }),
            redirect: 'manual',
            signal: limit.signal,
          });
        } catch (error) {
          if (limit.signal.aborted) throw limit.reason();
          throw ioError(`${what}: cannot reach ${target.origin}: ${networkReason(error)}`, true);
        }
        const location = response.headers.get('location');
        if (!REDIRECTS.has(response.status) || location === null || maxRedirects === 0) {
          const body = await readBody(response, init.maxBytes, what, limit);
          return {
            status: response.status,
            statusText: response.statusText,
            ok: response.ok,
            headers: response.headers,
            url: target.href,
            body,
          };
        }
        await response.body?.cancel().catch(() => {});
        const next = URL.canParse(location, target.href)
          ? new URL(location, target.href)
          : undefined;
        if (!next || (next.protocol !== 'https:' && next.protocol !== 'http:')) {
          throw ioError(
            `${what}: redirected to ${printable(quoteForMessage(location))}, not a URL`,
          );
        }
        if (target.protocol === 'https:' && next.protocol === 'http:') {
          throw ioError(`${what}: redirected from https to http (${next.origin}); not followed`);
        }
        if (visited.has(next.href)) {
          throw ioError(`${what}: redirect loop (${printable(quoteForMessage(next.href))})`);
        }
        if (redirects + 1 > maxRedirects) {
          throw ioError(`${what}: more than ${maxRedirects} redirects; not followed`);
        }
        visited.add(next.href);
        // Once the read has left the origin it was sent to, it never carries its credentials
        // again, even if a later redirect comes back.
        if (next.origin !== origin) headers = withoutAuthorization(headers);
        target = next;
      }
    } finally {
      limit.done();
    }
  }

  async function within<T>(what: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const limit = deadline(what);
    try {
      return await call(limit.signal);
    } catch (error) {
      if (limit.signal.aborted) throw limit.reason();
      throw error;
    } finally {
      limit.done();
    }
  }

  return { request, within, totalMs, requestMs };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(value > 0)) {
    throw new CachedDeployError('USAGE', `${name}: ${value} is not a positive duration`);
  }
  return value;
}

function withoutAuthorization(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'authorization'),
  );
}

/**
 * Reads the body chunk by chunk. A 2xx answer past `maxBytes` is an error (nothing more is read);
 * any other answer is cut to ERROR_BODY_BYTES, as only a message is wanted from it.
 */
async function readBody(
  response: Response,
  maxBytes: number,
  what: string,
  limit: { signal: AbortSignal; reason: () => CachedDeployError },
): Promise<Uint8Array> {
  const cap = response.ok ? maxBytes : ERROR_BODY_BYTES;
  const tooLarge = () => ioError(`${what}: the answer is larger than ${formatLimit(maxBytes)}`);
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (response.ok && Number.isFinite(declared) && declared > cap) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!response.body) return new Uint8Array();
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (total + value.byteLength > cap) {
        await reader.cancel().catch(() => {});
        if (response.ok) throw tooLarge();
        chunks.push(value.subarray(0, cap - total));
        total = cap;
        break;
      }
      chunks.push(value);
      total += value.byteLength;
    }
  } catch (error) {
    if (error instanceof CachedDeployError) throw error;
    if (limit.signal.aborted) throw limit.reason();
    throw ioError(`${what}: the connection broke: ${networkReason(error)}`, true);
  }
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const reason =
    (typeof cause?.code === 'string' && cause.code) ||
    (typeof cause?.message === 'string' && cause.message) ||
    (error as Error).message;
  return printable(String(reason).slice(0, 200));
}

/** A body as text (UTF-8), for JSON and messages. */
export function bodyText(response: HttpResponse): string {
  return Buffer.from(
    response.body.buffer,
    response.body.byteOffset,
    response.body.byteLength,
  ).toString('utf8');
}

/** The body as JSON, or undefined when it is not JSON. */
export function bodyJson(response: HttpResponse): unknown {
  try {
    return JSON.parse(bodyText(response));
  } catch {
    return undefined;
  }
}
