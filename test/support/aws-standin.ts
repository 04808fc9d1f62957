// biome-ignore-all lint/suspicious/noTemplateCurlyInString: a shell script, whose ${…} is not JavaScript's
/**
 * A stand-in for the one `aws` call a step makes (`aws ecr describe-images --repository-name R
 * --image-ids imageTag=T …`), first on the steps' PATH: it answers from STANDIN_ECR_IMAGES (the
 * `R:T` that exist, set by the simulated credentials step) what awscli prints and how it exits,
 * and refuses any other call. test/immutable-rerun.test.ts runs the generated step with the real
 * awscli against the ECR test server, so the stand-in's answers are checked against the real ones.
 */
export const AWS_STANDIN = [
  '#!/bin/bash',
  'set -u',
  'if [ "${1:-} ${2:-}" != "ecr describe-images" ]; then echo "aws stand-in: unsupported: $*" >&2; exit 2; fi',
  'shift 2',
  'repo= tag=',
  'while [ $# -gt 0 ]; do',
  '  case "$1" in',
  '    --repository-name) repo=$2; shift 2 ;;',
  '    --image-ids) tag=${2#imageTag=}; shift 2 ;;',
  '    --query|--output) shift 2 ;;',
  '    *) echo "aws stand-in: unsupported option $1" >&2; exit 2 ;;',
  '  esac',
  'done',
  'if [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then',
  '  echo "Unable to locate credentials. You can configure credentials by running "aws configure"." >&2',
  '  exit 253',
  'fi',
  'for image in ${STANDIN_ECR_IMAGES:-}; do',
  '  if [ "$image" = "$repo:$tag" ]; then echo "sha256:$(printf %s "$image" | sha256sum | cut -c1-64)"; exit 0; fi',
  'done',
  'echo "" >&2',
  "echo \"An error occurred (ImageNotFoundException) when calling the DescribeImages operation: The image with imageId {imageDigest:'null', imageTag:'$tag'} does not exist within the repository with name '$repo' in the registry with id '123456789012'\" >&2",
  'exit 254',
].join('\n');

/**
 * A stand-in for the one `docker` call a step makes (`docker buildx imagetools create --tag T
 * SOURCE…`, the merge of platform images): it prints `DOCKER-CALL:` and its arguments, one per
 * line as `%q` quotes them, and refuses any other call, or a call without AWS credentials in the
 * environment (the ECR login before it needs them).
 */
export const DOCKER_STANDIN = [
  '#!/bin/bash',
  'set -u',
  'if [ "${1:-} ${2:-} ${3:-}" != "buildx imagetools create" ]; then echo "docker stand-in: unsupported: $*" >&2; exit 2; fi',
  'if [ -z "${AWS_ACCESS_KEY_ID:-}" ]; then echo "docker stand-in: no credentials" >&2; exit 1; fi',
  'printf "DOCKER-CALL:"',
  'printf " %q" "$@"',
  'printf "\\n"',
].join('\n');
