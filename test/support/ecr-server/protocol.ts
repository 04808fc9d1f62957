/**
 * The AWS JSON 1.1 wire protocol, as real clients (AWS SDK for JavaScript v3, botocore/awscli)
 * speak it: `POST /` with `X-Amz-Target: <prefix>.<Operation>`, a JSON body, and errors as
 * `{"__type": ..., "message": ...}` plus an `x-amzn-ErrorType` header. Knows nothing about ECR.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ServiceError } from './errors.js';

export const CONTENT_TYPE = 'application/x-amz-json-1.1';

export type JsonObject = Record<string, unknown>;

/** Runs one operation; throws ServiceError for an error response. */
export type Dispatch = (op: string, input: JsonObject) => Promise<JsonObject>;

export interface AwsJsonServerOptions {
  /** e.g. `AmazonEC2ContainerRegistry_V20150921` */
  targetPrefix: string;
  dispatch: Dispatch;
  /** Refuse requests without a SigV4 `Authorization` header (the signature is not verified). */
  requireSignature: boolean;
  /** Anything but a ServiceError escaping `dispatch`: answered with a 500, reported here. */
  onUnexpectedError: (error: unknown) => void;
  /**
   * Requests that are not AWS JSON calls, such as the GET of a presigned layer URL: returns true
   * when it answered the request.
   */
  serveOther?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export interface AwsJsonServer {
  endpoint: string;
  close(): Promise<void>;
}

const unknownOperation = (message: string) =>
  new ServiceError('UnknownOperationException', message);

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: JsonObject, headers: JsonObject = {}) {
  // The client may have gone away (or the server closed) while a latency fault was pending.
  if (res.destroyed || res.writableEnded) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': CONTENT_TYPE,
    'content-length': Buffer.byteLength(payload),
    'x-amzn-requestid': randomUUID(),
    ...headers,
  });
  res.end(payload);
}

function sendError(res: ServerResponse, error: ServiceError) {
  send(
    res,
    error.status,
    { __type: error.type, message: error.message },
    { 'x-amzn-errortype': error.type },
  );
}

/** Checks the framing and returns the operation name and parsed input. */
async function parseRequest(req: IncomingMessage, options: AwsJsonServerOptions) {
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const target = req.headers['x-amz-target'];
  if (req.method !== 'POST' || path !== '/' || typeof target !== 'string') {
    throw unknownOperation(`Expected POST / with X-Amz-Target, got ${req.method} ${path}`);
  }
  const [prefix, op, ...rest] = target.split('.');
  if (prefix !== options.targetPrefix || !op || rest.length > 0) {
    throw unknownOperation(`Unknown target '${target}'`);
  }
  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
  if (contentType !== CONTENT_TYPE) {
    throw unknownOperation(`Expected Content-Type ${CONTENT_TYPE}, got '${contentType ?? ''}'`);
  }
  if (
    options.requireSignature &&
    !/^AWS4-HMAC-SHA256 Credential=/.test(req.headers.authorization ?? '')
  ) {
    throw new ServiceError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  }
  const text = await readBody(req);
  let input: unknown = {};
  if (text.trim() !== '') {
    try {
      input = JSON.parse(text);
    } catch {
      throw new ServiceError('SerializationException', 'Request body is not valid JSON');
    }
  }
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ServiceError('SerializationException', 'Request body must be a JSON object');
  }
  return { op, input: input as JsonObject };
}

export async function listenAwsJson(options: AwsJsonServerOptions): Promise<AwsJsonServer> {
  const server = createServer((req, res) => {
    if (options.serveOther?.(req, res)) return;
    void (async () => {
      try {
        const { op, input } = await parseRequest(req, options);
        send(res, 200, await options.dispatch(op, input));
      } catch (error) {
        if (error instanceof ServiceError) {
          sendError(res, error);
          return;
        }
        options.onUnexpectedError(error);
        sendError(res, new ServiceError('InternalFailure', String(error), 500));
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  // A test that forgets close() must not hold the process open.
  server.unref();
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // SDK clients keep connections alive; without this close() would wait for them.
        server.closeAllConnections();
      }),
  };
}
