/**
 * An Amazon ECR API test double: the real AWS JSON 1.1 protocol over HTTP on 127.0.0.1, an
 * in-memory registry with ECR's semantics, and injectable faults. Point an `ECRClient` (or
 * `aws ecr --endpoint-url`) at `server.endpoint`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ServiceError } from './errors.js';
import { Faults, type OperationName } from './faults.js';
import { isEcrOperation, operations } from './operations.js';
import { type JsonObject, listenAwsJson } from './protocol.js';
import { Registry } from './registry.js';

export { ServiceError } from './errors.js';
export type {
  FaultError,
  FaultHandle,
  FaultRewrite,
  FaultRule,
  OperationName,
} from './faults.js';
export { Faults } from './faults.js';
export { LAYER_URL_TTL_SECONDS, LayerDownloads } from './layers.js';
export { LifecyclePreviews } from './lifecycle-preview.js';
export {
  buildCacheManifest,
  buildImageManifest,
  buildIndexManifest,
  type ImageManifestOptions,
  type IndexChild,
  MediaTypes,
  sha256Digest,
} from './manifests.js';
export type { EcrOperation } from './operations.js';
export type {
  CreateRepositoryOptions,
  ImageRecord,
  RepositoryRecord,
  SeedImage,
  TagMutability,
  TagMutabilityExclusionFilter,
} from './registry.js';
export { Registry } from './registry.js';

export const ECR_TARGET_PREFIX = 'AmazonEC2ContainerRegistry_V20150921';

export interface EcrServerOptions {
  /** Default `123456789012`. */
  registryId?: string;
  /** Used in ARNs and URIs only. Default `us-east-1`. */
  region?: string;
  /** The server's clock for `imagePushedAt` and `createdAt`. Default: real time. */
  now?: () => Date;
  /** Seed for fault rules with a `rate`. Default 1. */
  seed?: number;
  /** Refuse unsigned requests, as AWS does. Default true. */
  requireSignature?: boolean;
  /** GetLifecyclePolicyPreview calls a new preview answers IN_PROGRESS to. Default 1. */
  lifecyclePreviewPolls?: number;
}

export interface CallRecord {
  /** 1-based arrival order. */
  index: number;
  op: string;
  request: JsonObject;
  at: Date;
  /** HTTP status sent; undefined while the call is in flight. */
  status?: number;
  /** `__type` of the error sent, if any. */
  errorType?: string;
}

/**
 * Runs before the operation (after any injected latency) on every call, including ones a fault
 * will fail. May mutate `server.state`, e.g. to play a concurrent build between a pruner's calls.
 * Throwing a ServiceError answers the call with that error.
 */
export type OnCallHook = (
  op: string,
  request: JsonObject,
  call: CallRecord,
) => void | Promise<void>;

export interface EcrTestServer {
  /** e.g. `http://127.0.0.1:41234` */
  readonly endpoint: string;
  readonly registryId: string;
  readonly region: string;
  /** Seed and inspect the registry directly. */
  readonly state: Registry;
  readonly faults: Faults;
  /** Every call that reached an operation (or an injected fault), in arrival order. */
  readonly calls: readonly CallRecord[];
  /** Calls of `op`, or all calls. */
  callCount(op?: OperationName): number;
  callsTo(op: OperationName): CallRecord[];
  /** Registers a hook; returns a function that unregisters it. */
  onCall(hook: OnCallHook): () => void;
  /** Server bugs (non-ServiceError exceptions), each also answered with a 500. Expect it empty. */
  readonly unexpectedErrors: readonly unknown[];
  /** Options for `new ECRClient(...)` pointing at this server with dummy credentials. */
  clientConfig(): {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
  };
  /** Empties the registry, the call log, the fault rules and the hooks. */
  reset(): void;
  close(): Promise<void>;
}

export async function startEcrServer(options: EcrServerOptions = {}): Promise<EcrTestServer> {
  const registryId = options.registryId ?? '123456789012';
  const region = options.region ?? 'us-east-1';
  const state = new Registry({ registryId, region, now: options.now ?? (() => new Date()) });
  if (options.lifecyclePreviewPolls !== undefined) {
    state.lifecyclePreviews.inProgressPolls = options.lifecyclePreviewPolls;
  }
  const faults = new Faults(options.seed ?? 1);
  const calls: CallRecord[] = [];
  const unexpectedErrors: unknown[] = [];
  let hooks: OnCallHook[] = [];
  // Cancels latency sleeps on close so no timer outlives the server.
  const closing = new AbortController();

  async function dispatch(op: string, request: JsonObject): Promise<JsonObject> {
    const call: CallRecord = { index: calls.length + 1, op, request, at: new Date() };
    calls.push(call);
    try {
      const decision = faults.decide(op);
      if (decision.latencyMs > 0) await sleep(decision.latencyMs, undefined, closing);
      for (const hook of hooks) await hook(op, request, call);
      if (decision.error) throw decision.error;
      if (!isEcrOperation(op)) {
        throw new ServiceError('UnknownOperationException', `Unknown operation '${op}'`);
      }
      let input = request;
      for (const rewrite of decision.rewrites) if (rewrite.request) input = rewrite.request(input);
      let output = operations[op](state, input);
      for (const rewrite of decision.rewrites) {
        if (rewrite.response) output = rewrite.response(output, input);
      }
      call.status = 200;
      return output;
    } catch (error) {
      call.status = error instanceof ServiceError ? error.status : 500;
      call.errorType = error instanceof ServiceError ? error.type : 'InternalFailure';
      throw error;
    }
  }

  const http = await listenAwsJson({
    targetPrefix: ECR_TARGET_PREFIX,
    dispatch,
    requireSignature: options.requireSignature ?? true,
    onUnexpectedError: (error) => {
      if (!closing.signal.aborted) unexpectedErrors.push(error);
    },
    serveOther: (req, res) => state.layerDownloads.serve(state, req, res),
  });
  state.layerDownloads.baseUrl = http.endpoint;

  let closed: Promise<void> | undefined;
  return {
    endpoint: http.endpoint,
    registryId,
    region,
    state,
    faults,
    calls,
    unexpectedErrors,
    callCount: (op) => (op === undefined ? calls.length : calls.filter((c) => c.op === op).length),
    callsTo: (op) => calls.filter((c) => c.op === op),
    onCall(hook) {
      hooks.push(hook);
      return () => {
        hooks = hooks.filter((h) => h !== hook);
      };
    },
    clientConfig: () => ({
      endpoint: http.endpoint,
      region,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    }),
    reset() {
      state.clear();
      calls.length = 0;
      unexpectedErrors.length = 0;
      faults.clear();
      hooks = [];
    },
    close() {
      closed ??= (() => {
        closing.abort();
        return http.close();
      })();
      return closed;
    },
  };
}
