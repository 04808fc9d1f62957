/**
 * The HTTP side shared by the fake GitHub and GitLab APIs: a server on 127.0.0.1 (a port it
 * picks), routes matched on the raw path (so `%2F` in a GitLab project id stays one segment),
 * JSON bodies, per-call latency, a log of every call, and injectable faults (answer the next N
 * matching calls with something else: a 403 with retry-after, a 429, a 500, garbage).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FakeRequest {
  method: string;
  /** The raw path (still percent-encoded), without the query. */
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** Parsed JSON, or the text, or undefined when empty. */
  body: unknown;
  /** The server's own base URL (http://127.0.0.1:PORT). */
  base: string;
}

export interface FakeResponse {
  status: number;
  headers?: Record<string, string>;
  /** An object or array is sent as JSON; a string as text/plain. */
  body?: unknown;
}

/** Route parameters: named groups of the pattern, percent-decoded. */
export type Params = Record<string, string>;
export type Handler = (
  request: FakeRequest,
  params: Params,
) => FakeResponse | Promise<FakeResponse>;

export interface CallRecord {
  index: number;
  method: string;
  path: string;
  query: string;
  status: number;
  /** Set when a fault answered the call. */
  fault?: boolean;
}

/**
 * Answer calls matching `method` and `path` (a substring of the decoded path, or a pattern) with
 * `respond`, after skipping `after` of them, at most `times` times (default 1).
 */
export interface FaultRule {
  method?: string;
  path?: string | RegExp;
  after?: number;
  times?: number;
  /** Wait this long before answering (a host that hangs). */
  delayMs?: number;
  respond: FakeResponse | ((request: FakeRequest) => FakeResponse);
}

export interface FaultHandle {
  readonly seen: number;
  readonly fired: number;
  remove(): void;
}

export class FakeHttpServer {
  readonly calls: CallRecord[] = [];
  /** Added to every call before it is answered (the bench: 50 ms). */
  latencyMs = 0;
  private readonly routes: { method: string; pattern: RegExp; handler: Handler }[] = [];
  private faults: (FaultRule & { seen: number; fired: number })[] = [];
  private server: Server | undefined;
  private base = '';

  constructor(
    /** Every answer gets these (rate-limit headers, say); the call's own win. */
    private readonly commonHeaders: (request: FakeRequest) => Record<string, string> = () => ({}),
    /** Runs first; an answer refuses the call (authentication). */
    private readonly guard: (request: FakeRequest) => FakeResponse | undefined = () => undefined,
  ) {}

  route(method: string, pattern: RegExp, handler: Handler): this {
    this.routes.push({ method, pattern, handler });
    return this;
  }

  fault(rule: FaultRule): FaultHandle {
    const active = { ...rule, seen: 0, fired: 0 };
    this.faults.push(active);
    return {
      get seen() {
        return active.seen;
      },
      get fired() {
        return active.fired;
      },
      remove: () => {
        this.faults = this.faults.filter((candidate) => candidate !== active);
      },
    };
  }

  get url(): string {
    return this.base;
  }

  async start(): Promise<string> {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error) => {
        response.statusCode = 500;
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ message: `fake server bug: ${(error as Error).message}` }));
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.base = `http://127.0.0.1:${port}`;
    return this.base;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Calls whose method and decoded path match. */
  callsTo(method: string, path: string | RegExp): CallRecord[] {
    return this.calls.filter(
      (call) =>
        call.method === method &&
        (typeof path === 'string' ? decode(call.path) === path : path.test(decode(call.path))),
    );
  }

  private async handle(incoming: IncomingMessage, out: ServerResponse): Promise<void> {
    const raw = await readBody(incoming);
    const url = new URL(incoming.url ?? '/', 'http://127.0.0.1');
    const path = (incoming.url ?? '/').split('?')[0] as string;
    const type = String(incoming.headers['content-type'] ?? '');
    let body: unknown;
    if (raw.length > 0) {
      const text = raw.toString('utf8');
      try {
        body = type.includes('json') ? JSON.parse(text) : text;
      } catch {
        body = text;
      }
    }
    const request: FakeRequest = {
      method: incoming.method ?? 'GET',
      path,
      query: url.searchParams,
      headers: incoming.headers,
      body,
      base: this.base,
    };
    if (this.latencyMs > 0) await sleep(this.latencyMs);
    const call: CallRecord = {
      index: this.calls.length + 1,
      method: request.method,
      path,
      query: url.search,
      status: 0,
    };
    this.calls.push(call);
    let answer = this.guard(request);
    if (!answer) {
      const fault = this.matchFault(request);
      if (fault) {
        call.fault = true;
        if (fault.delayMs) await sleep(fault.delayMs);
        answer = typeof fault.respond === 'function' ? fault.respond(request) : fault.respond;
      }
    }
    if (!answer) answer = await this.dispatch(request);
    call.status = answer.status;
    const headers = { ...this.commonHeaders(request), ...answer.headers };
    for (const [name, value] of Object.entries(headers)) out.setHeader(name, value);
    out.statusCode = answer.status;
    if (answer.body === undefined || answer.status === 204) {
      out.end();
    } else if (typeof answer.body === 'string') {
      if (!out.hasHeader('content-type'))
        out.setHeader('content-type', 'text/plain; charset=utf-8');
      out.end(answer.body);
    } else {
      out.setHeader('content-type', 'application/json; charset=utf-8');
      out.end(JSON.stringify(answer.body));
    }
  }

  private matchFault(request: FakeRequest) {
    const decoded = decode(request.path);
    for (const fault of this.faults) {
      if (fault.method && fault.method !== request.method) continue;
      if (fault.path !== undefined) {
        const hit =
          typeof fault.path === 'string' ? decoded.includes(fault.path) : fault.path.test(decoded);
        if (!hit) continue;
      }
      fault.seen++;
      if (fault.seen <= (fault.after ?? 0)) continue;
      if (fault.fired >= (fault.times ?? 1)) continue;
      fault.fired++;
      return fault;
    }
    return undefined;
  }

  private async dispatch(request: FakeRequest): Promise<FakeResponse> {
    for (const route of this.routes) {
      if (route.method !== request.method) continue;
      const match = route.pattern.exec(request.path);
      if (!match) continue;
      const params: Params = {};
      for (const [name, value] of Object.entries(match.groups ?? {})) {
        params[name] = decode(value ?? '');
      }
      return route.handler(request, params);
    }
    return { status: 404, body: { message: 'Not Found' } };
  }
}

function decode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** One page of `items` and the page numbers around it (1-based `page`). */
export function paginate<T>(
  items: readonly T[],
  query: URLSearchParams,
  options: { defaultPerPage: number; maxPerPage: number },
): { page: T[]; current: number; last: number; perPage: number } {
  const perPage = Math.min(
    options.maxPerPage,
    Math.max(1, Number(query.get('per_page') ?? options.defaultPerPage) || options.defaultPerPage),
  );
  const current = Math.max(1, Number(query.get('page') ?? 1) || 1);
  const last = Math.max(1, Math.ceil(items.length / perPage));
  return { page: items.slice((current - 1) * perPage, current * perPage), current, last, perPage };
}

/** RFC 8288 Link header for the pages around `current`, as GitHub and GitLab send it. */
export function linkHeader(
  request: FakeRequest,
  current: number,
  last: number,
): string | undefined {
  const at = (page: number) => {
    const query = new URLSearchParams(request.query);
    query.set('page', String(page));
    return `<${request.base}${request.path}?${query}>`;
  };
  const links: string[] = [];
  if (current > 1) links.push(`${at(current - 1)}; rel="prev"`);
  if (current < last) links.push(`${at(current + 1)}; rel="next"`);
  links.push(`${at(1)}; rel="first"`, `${at(last)}; rel="last"`);
  return links.join(', ');
}
