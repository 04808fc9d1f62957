import { CachedDeployError, isCachedDeployError } from '../errors.js';
import { record } from './answers.js';
import { type HostConnection, hostText } from './host-connection.js';

/**
 * `@gitbeaker/rest` over a HostConnection (host-connection.ts): a requester of our own
 * (`requesterFn`, a documented option), because gitbeaker's default retries a 429 ten times within
 * a quarter of a second and ignores Retry-After. Every call goes through the connection's fetch:
 * bounded answers, deadlines, the host's rate limits, secrets out of messages. Used by the fleet's
 * merge requests (fleet/hosts/gitlab.ts) and by the GitLab calls of `apply` and `doctor`
 * (gitlab-api/).
 */

/** A non-2xx answer, as our requester reports it. */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly description: string,
  ) {
    super(description);
  }
}

/** What to tell the user about an HTTP status a call answered (401: the token is invalid...). */
export type StatusHints = Partial<Record<number, string>>;

/**
 * A failed gitbeaker call as one line: the instance, what was being done, the status and the
 * host's own words (secrets out, escaped, cut), and a hint for the status when there is one.
 */
export function gitlabCallError(
  connection: Pick<HostConnection, 'label' | 'secrets'>,
  action: string,
  error: unknown,
  hints: StatusHints = {},
): CachedDeployError {
  if (isCachedDeployError(error)) return error;
  const where = `${connection.label}: ${action} failed`;
  if (error instanceof HttpStatusError) {
    const hint = hints[error.status];
    return new CachedDeployError(
      'IO',
      `${where}: HTTP ${error.status} ${hostText(error.description, connection.secrets)}${hint ? ` (${hint})` : ''}`,
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new CachedDeployError('IO', `${where}: ${hostText(message, connection.secrets)}`);
}

/** The options every gitbeaker resource is constructed with. */
export async function gitbeakerConfig(options: {
  apiUrl: string;
  token: string;
  connection: HostConnection;
}) {
  const { createRequesterFn } = await import('@gitbeaker/requester-utils');
  const connection = options.connection;
  const requesterFn = createRequesterFn(
    async (_service, requestOptions) => requestOptions,
    async (endpoint, requestOptions) => {
      const { prefixUrl, searchParams, method, headers, body, signal } = (requestOptions ?? {}) as {
        prefixUrl: string;
        searchParams?: string;
        method?: string;
        headers?: Record<string, string>;
        body?: string;
        signal?: AbortSignal;
      };
      const url = new URL(endpoint, prefixUrl.endsWith('/') ? prefixUrl : `${prefixUrl}/`);
      if (searchParams) url.search = searchParams;
      const response = await connection.fetch(url.href, {
        method: method ?? 'GET',
        ...(headers ? { headers } : {}),
        ...(body !== undefined ? { body } : {}),
        ...(signal ? { signal } : {}),
      });
      const type = (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
      if (!response.ok) {
        const content = await response.text();
        let description = content;
        if (type === 'application/json') {
          try {
            const parsed = record(JSON.parse(content), 'error');
            const message = parsed.message ?? parsed.error ?? '';
            description = typeof message === 'string' ? message : JSON.stringify(message);
          } catch {
            // Not the JSON it claims: the text says enough.
          }
        }
        throw new HttpStatusError(response.status, description);
      }
      const answer: Record<string, unknown> | string | Blob | null =
        response.status === 204
          ? null
          : type === 'application/json'
            ? (((await response.json()) as Record<string, unknown> | null) ?? {})
            : type.startsWith('text/')
              ? await response.text()
              : await response.blob();
      const answerHeaders: Record<string, string> = {};
      response.headers.forEach((value, name) => {
        answerHeaders[name] = value;
      });
      return {
        body: answer,
        headers: answerHeaders,
        status: response.status,
      };
    },
  );
  // Without gitbeaker's own client-side rate limiters (the host's answers decide).
  return {
    host: options.apiUrl,
    token: options.token,
    requesterFn,
    rateLimits: {},
    // The connection times each attempt; gitbeaker's would also cover the rate-limit waits.
    queryTimeout: null,
  };
}
