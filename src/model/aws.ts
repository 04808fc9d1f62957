/** ARNs and hostnames differ by partition; derive them from the region instead of assuming "aws". */
export function partitionOf(
  region: string,
): 'aws' | 'aws-cn' | 'aws-us-gov' | 'aws-iso' | 'aws-iso-b' {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  if (region.startsWith('us-isob-')) return 'aws-iso-b';
  if (region.startsWith('us-iso-')) return 'aws-iso';
  return 'aws';
}

export function registryHost(accountId: string, region: string): string {
  const suffix = {
    aws: 'amazonaws.com',
    'aws-us-gov': 'amazonaws.com',
    'aws-cn': 'amazonaws.com.cn',
    'aws-iso': 'c2s.ic.gov',
    'aws-iso-b': 'sc2s.sgov.gov',
  }[partitionOf(region)];
  return `${accountId}.dkr.ecr.${region}.${suffix}`;
}

export function repositoryArn(accountId: string, region: string, repository: string): string {
  return `arn:${partitionOf(region)}:ecr:${region}:${accountId}:repository/${repository}`;
}

export function roleArn(accountId: string, region: string, roleName: string): string {
  return `arn:${partitionOf(region)}:iam::${accountId}:role/${roleName}`;
}

/** The IAM OIDC identity provider of an issuer host (one per account and host). */
export function oidcProviderArn(accountId: string, region: string, host: string): string {
  return `arn:${partitionOf(region)}:iam::${accountId}:oidc-provider/${host}`;
}
