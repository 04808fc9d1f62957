/**
 * The ECR calls `apply` makes, as a narrow port: the logic (apply-ecr.ts) takes any object with
 * these methods, and `sdkPort` adapts @aws-sdk/client-ecr, imported only when it is created.
 * Errors are the SDK's: a service error has the exception's `name` (e.g.
 * `RepositoryNotFoundException`), which is all the logic looks at.
 */
import { createEcrClient } from './client.js';

export type TagMutabilityValue =
  | 'MUTABLE'
  | 'IMMUTABLE'
  | 'MUTABLE_WITH_EXCLUSION'
  | 'IMMUTABLE_WITH_EXCLUSION';

export interface ExclusionFilterValue {
  filterType: 'WILDCARD' | (string & {});
  filter: string;
}

export interface RepositoryDescription {
  repositoryName?: string;
  imageTagMutability?: TagMutabilityValue | (string & {});
  imageTagMutabilityExclusionFilters?: { filterType?: string; filter?: string }[];
  imageScanningConfiguration?: { scanOnPush?: boolean };
}

export interface PreviewResult {
  imageTags?: string[];
  imageDigest?: string;
  imagePushedAt?: Date;
  action?: { type?: string };
  appliedRulePriority?: number;
}

export interface ImageDetail {
  imageDigest?: string;
  imageTags?: string[];
  imagePushedAt?: Date;
}

interface InRepository {
  registryId?: string;
  repositoryName: string;
}

export interface EcrApplyPort {
  describeRepositories(input: {
    registryId?: string;
    repositoryNames: string[];
  }): Promise<{ repositories?: RepositoryDescription[] }>;
  createRepository(
    input: InRepository & {
      imageTagMutability: TagMutabilityValue;
      imageTagMutabilityExclusionFilters?: ExclusionFilterValue[];
      imageScanningConfiguration: { scanOnPush: boolean };
    },
  ): Promise<{ repository?: RepositoryDescription }>;
  putImageTagMutability(
    input: InRepository & {
      imageTagMutability: TagMutabilityValue;
      imageTagMutabilityExclusionFilters?: ExclusionFilterValue[];
    },
  ): Promise<unknown>;
  putImageScanningConfiguration(
    input: InRepository & { imageScanningConfiguration: { scanOnPush: boolean } },
  ): Promise<unknown>;
  getLifecyclePolicy(input: InRepository): Promise<{ lifecyclePolicyText?: string }>;
  putLifecyclePolicy(input: InRepository & { lifecyclePolicyText: string }): Promise<unknown>;
  startLifecyclePolicyPreview(
    input: InRepository & { lifecyclePolicyText: string },
  ): Promise<{ status?: string }>;
  getLifecyclePolicyPreview(
    input: InRepository & { maxResults?: number; nextToken?: string },
  ): Promise<{
    status?: string;
    lifecyclePolicyText?: string;
    previewResults?: PreviewResult[];
    nextToken?: string;
  }>;
  describeImages(
    input: InRepository & {
      filter?: { tagStatus?: 'TAGGED' | 'UNTAGGED' | 'ANY' };
      maxResults?: number;
      nextToken?: string;
    },
  ): Promise<{ imageDetails?: ImageDetail[]; nextToken?: string }>;
}

export interface SdkPortOptions {
  region: string;
  /** The ECR endpoint; default: the SDK's own resolution (which reads AWS_ENDPOINT_URL_ECR). */
  endpoint?: string;
  /** Passed to `new ECRClient(...)` last: credentials, retryStrategy, requestHandler... */
  clientOptions?: Record<string, unknown>;
}

/** A port over @aws-sdk/client-ecr (see client.ts for retries and endpoints). */
export async function sdkPort(
  options: SdkPortOptions,
): Promise<EcrApplyPort & { destroy(): void }> {
  const { sdk, client } = await createEcrClient({
    region: options.region,
    endpoint: options.endpoint,
    clientConfig: options.clientOptions,
  });
  // The port's inputs are the SDK's inputs (a subset, with string unions the SDK also accepts).
  // biome-ignore lint/suspicious/noExplicitAny: one cast at the boundary instead of one per call
  const send = (command: any) => client.send(command) as Promise<any>;
  return {
    describeRepositories: (input) => send(new sdk.DescribeRepositoriesCommand(input)),
    createRepository: (input) => send(new sdk.CreateRepositoryCommand(input as never)),
    putImageTagMutability: (input) => send(new sdk.PutImageTagMutabilityCommand(input as never)),
    putImageScanningConfiguration: (input) =>
      send(new sdk.PutImageScanningConfigurationCommand(input)),
    getLifecyclePolicy: (input) => send(new sdk.GetLifecyclePolicyCommand(input)),
    putLifecyclePolicy: (input) => send(new sdk.PutLifecyclePolicyCommand(input)),
    startLifecyclePolicyPreview: (input) => send(new sdk.StartLifecyclePolicyPreviewCommand(input)),
    getLifecyclePolicyPreview: (input) => send(new sdk.GetLifecyclePolicyPreviewCommand(input)),
    describeImages: (input) => send(new sdk.DescribeImagesCommand(input)),
    destroy: () => client.destroy(),
  };
}
