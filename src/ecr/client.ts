import type { ECRClient } from '@aws-sdk/client-ecr';

/**
 * The one place an ECR client is made (apply, `policy preview --live`, doctor; the shipped prune
 * script has its own, since it must stand alone). The SDK is imported here, on first use, so
 * `generate` and `--version` never load it. Credentials come from the SDK's standard chain, and
 * the SDK itself honours AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL.
 */
export interface EcrClientOptions {
  region: string;
  /** An explicit endpoint (tests, VPC endpoints); otherwise the SDK's own resolution. */
  endpoint?: string;
  /** Extra ECRClient configuration, applied last (credentials, retryStrategy, ...). */
  clientConfig?: Record<string, unknown>;
}

export type EcrSdk = typeof import('@aws-sdk/client-ecr');

export async function createEcrClient(
  options: EcrClientOptions,
): Promise<{ sdk: EcrSdk; client: ECRClient }> {
  const sdk = await import('@aws-sdk/client-ecr');
  const client = new sdk.ECRClient({
    region: options.region,
    // The SDK retries throttling and 5xx with exponential backoff and jitter; these commands
    // run in CI or by hand and can afford to be patient, so 8 attempts instead of 3.
    maxAttempts: 8,
    retryMode: 'standard',
    // A connection that hangs fails (and is retried) instead of holding the command: 10 s to
    // connect, 60 s of silence on a socket. doctor also bounds each call as a whole.
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 60_000 },
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...options.clientConfig,
  });
  return { sdk, client };
}
