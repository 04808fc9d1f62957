/**
 * Every failure a user can cause or fix is a CachedDeployError: a stable code (for scripts and
 * tests) and a one-line message that names what and where and, when it can, what to do next.
 * Anything else reaching the CLI is a bug and is reported with its stack under --debug.
 */
export type ErrorCode =
  | 'CONFIG_INVALID' // cached-deploy.yml does not match the schema
  | 'CONFIG_NOT_FOUND'
  | 'CONFIG_PARSE' // cached-deploy.yml is not valid YAML
  | 'DOCKERFILE_NOT_FOUND'
  | 'STAGE_NOT_FOUND'
  | 'NO_DOCKERFILE'
  | 'PATH_OUTSIDE_REPO'
  | 'UNSAFE_PATH' // a symlink, special file or oversized file where the tool reads or writes
  | 'STATE_INVALID' // the state file is not one this tool wrote (a key it never generates)
  | 'POLICY_INVALID' // a generated lifecycle policy breaks an ECR rule (a bug, caught before writing)
  | 'CONFLICT' // a generated file was edited by hand
  | 'MISSING_VALUE' // a required answer with no TTY to ask it
  | 'USAGE'
  | 'IO';

export class CachedDeployError extends Error {
  readonly code: ErrorCode;
  /** Extra text printed after the message (for example the diff of a conflict). */
  readonly details: string | undefined;

  constructor(code: ErrorCode, message: string, details?: string) {
    super(message);
    this.name = 'CachedDeployError';
    this.code = code;
    this.details = details;
  }
}

export function isCachedDeployError(error: unknown): error is CachedDeployError {
  return error instanceof CachedDeployError;
}
